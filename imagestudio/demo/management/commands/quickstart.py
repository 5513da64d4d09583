"""Set up the embedded default and serve it: migrate, a demo user with a token, a demo dataset, runserver."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from imagestudio.accounts.services import token_for
from imagestudio.demo.services import demo_dataset_get_or_create, demo_embeddings_ensure
from imagestudio.jobs.liveness import heartbeats_enabled
from imagestudio.jobs.services import jobs_requeue_orphaned


class Command(BaseCommand):
    help = "Migrate, create the demo user and dataset, print a token, and run the development server."

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Set up and exit without serving.")

    def handle(self, *args, addrport, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        user, created = get_user_model().objects.get_or_create(username="demo", defaults={"is_staff": True,
                                                                                           "is_superuser": True})
        password = None
        if created:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
        token = token_for(user=user)
        if not heartbeats_enabled():  # jobs run in this process: any left active, a stopped server left
            left = jobs_requeue_orphaned(stale_after_seconds=0, include_queued=True)
            if any(left.values()):
                self.stdout.write(f"Jobs the last run left unfinished: {left['requeued']} run again, "
                                  f"{left['failed']} failed.")
        dataset, job = demo_dataset_get_or_create(user=user)
        if job is not None:
            self.stdout.write(f"Demo dataset imported: job {job.status}, {job.result.get('created', 0)} images.")
        job = demo_embeddings_ensure(dataset=dataset, user=user)
        if job is not None:
            self.stdout.write(f"Demo embeddings: job {job.status}, {job.result.get('computed', 0)} vectors "
                              f"with {job.result.get('identity', job.error)}.")
        if settings.EMBEDDING_DEFAULT_ENCODER == "conse-offline":
            self.stdout.write("  Encoder:  conse-offline (EfficientNet-Lite0 + MiniLM, offline). No CLIP checkpoint is "
                              "configured; set CLIP_CHECKPOINT (and CLIP_MODEL) to use open_clip.")
        base = f"http://{addrport}"
        self.stdout.write(self.style.SUCCESS("Image Studio is set up (embedded: SQLite, in-process tasks, local media)."))
        self.stdout.write(f"  Studio:   {base}/studio/  (sign in as demo, or paste the token)")
        self.stdout.write(f"  API:      {base}/api/")
        self.stdout.write(f"  Docs:     {base}/api/docs/")
        self.stdout.write(f"  Admin:    {base}/admin/  (user demo{', password ' + password if password else ''})")
        self.stdout.write(f"  Token:    {token}")
        self.stdout.write(f"  Try:      curl -H 'Authorization: Token {token}' {base}/api/datasets/{dataset.id}/samples/")
        if not no_serve:
            call_command("runserver", addrport, use_reloader=False)
