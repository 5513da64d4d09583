"""Create a user (e.g. to add as a dataset member), with a password from an environment variable and, on request,
a named API token printed alone on stdout so a script can capture it."""

import os

from django.core.management.base import BaseCommand, CommandError

from imagestudio.accounts.services import token_create, token_default_lifetime, user_create
from imagestudio.common.errors import ValidationFailed


class Command(BaseCommand):
    help = ("Create a user. The password comes from the environment variable named by --password-env (never from "
            "the command line, where other users of the machine can read it); without it the user signs in with "
            "tokens only. --token NAME prints a new API token and nothing else.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
        parser.add_argument("--email", default="")
        parser.add_argument("--token", metavar="NAME", help="also issue an API token with this name and print it")

    def handle(self, *args, username, password_env, email, token, **options):
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"The environment variable {password_env} is not set or empty.")
        try:
            user = user_create(username=username, password=password, email=email)
        except ValidationFailed as exc:
            raise CommandError(exc.message) from exc
        if token:
            self.stdout.write(token_create(user=user, name=token, lifetime=token_default_lifetime()).key)
        else:
            self.stdout.write(f"created user {user.username}")
