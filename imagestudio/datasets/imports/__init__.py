"""Image imports: the web side stages the request's files and queues a job (start.py); the job validates every
file with Pillow before anything is written for it, decides what is new (dedupe.py, pure) and stores blobs and
rows (store.py). Blobs are content-addressed and rows unique per (dataset, sha256), so running the same import
again, or resuming one whose worker died, adds nothing twice."""

from .dedupe import DuplicatePolicy
from .report import report_open
from .run import import_finished, import_run
from .staging import imports_sweep_orphans
from .start import IMPORT_TASK, import_start

__all__ = ["IMPORT_TASK", "DuplicatePolicy", "import_finished", "import_run", "import_start", "imports_sweep_orphans",
           "report_open"]
