"""Grant (or revoke) a sub-directory of IMPORT_ROOT as a server-side import source of a dataset or a user."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from imagestudio.common.errors import DomainError
from imagestudio.datasets.imports.grants import import_grant_create, import_grant_revoke
from imagestudio.datasets.models import Dataset


class Command(BaseCommand):
    help = ("Let server-side imports read PATH (a directory relative to IMPORT_ROOT; '.' is the whole root): for "
            "every editor of a dataset (--dataset), or for a user on the datasets they edit (--user). --revoke "
            "withdraws the grant.")

    def add_arguments(self, parser):
        grantee = parser.add_mutually_exclusive_group(required=True)
        grantee.add_argument("--dataset", type=int, help="The id of the dataset to grant the source to.")
        grantee.add_argument("--user", help="The username of the user to grant the source to.")
        parser.add_argument("path", help="A directory relative to IMPORT_ROOT.")
        parser.add_argument("--revoke", action="store_true", help="Withdraw the grant instead.")

    def handle(self, *args, dataset, user, path, revoke, **options):
        grantee = {"dataset": self._dataset(dataset)} if dataset is not None else {"user": self._user(user)}
        try:
            if revoke:
                import_grant_revoke(path=path, **grantee)
            else:
                grant = import_grant_create(path=path, **grantee)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        whom = f"dataset {dataset}" if dataset is not None else f"user {user}"
        if revoke:
            self.stdout.write(self.style.SUCCESS(f"Revoked {path!r} from {whom}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Granted {grant.path!r} to {whom} (grant {grant.id})."))

    def _dataset(self, dataset_id):
        found = Dataset.objects.filter(pk=dataset_id).first()
        if found is None:
            raise CommandError(f"No dataset with id {dataset_id}.")
        return found

    def _user(self, username):
        found = get_user_model().objects.filter(username=username).first()
        if found is None:
            raise CommandError(f"No user named {username!r}.")
        return found
