"""Compare what the services keep current (counters, split counts, LF votes) with a recount, and check that
sample blobs and artifacts are intact; optionally repair what can be recomputed."""

from django.core.management.base import BaseCommand, CommandError

from imagestudio.datasets.models import Dataset
from imagestudio.demo.integrity import integrity_check


class Command(BaseCommand):
    help = ("Recount ground-truth counters and split counts, re-apply every LF, check sample blobs and artifact "
            "hashes. Exits 1 while anything drifted stays unrepaired.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=int, action="append", help="A dataset id (repeatable; default: all).")
        parser.add_argument("--repair", action="store_true",
                            help="Recount counters and split counts, rewrite drifted LF votes, then check again.")

    def handle(self, *args, dataset, repair, **options):
        datasets = Dataset.objects.order_by("id")
        if dataset:
            datasets = datasets.filter(id__in=dataset)
            missing = set(dataset) - set(datasets.values_list("id", flat=True))
            if missing:
                raise CommandError(f"No dataset with id {sorted(missing)}.")
        report = integrity_check(datasets=datasets, repair=repair)
        for drift in report.found:
            self.stdout.write(f"DRIFT  {drift}")
        if repair:
            for drift in report.remaining:
                self.stdout.write(f"NOT REPAIRED  {drift}")
            self.stdout.write(f"Repaired {len(report.found) - len(report.remaining)} of {len(report.found)} drifts.")
        if not report.clean:
            raise CommandError(f"{len(report.remaining)} drifts {'remain' if repair else 'found'}.")
        self.stdout.write(self.style.SUCCESS("No drift." if not report.found else "Everything drifted was repaired."))
