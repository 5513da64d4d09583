"""gunicorn config for the benchmarks' `--gc-freeze` diagnostic (not used by default).

After the worker starts, import the URLconf (which imports DRF, the views and torch) and move every object
alive at that point into the GC's permanent generation (gc.freeze()), so that full collections scan only
what requests leave behind. Without it, each full collection walks the ~260,000 import-time objects of the
web process (130-180 ms on a 2-core bench machine) every few dozen requests.
"""

import gc


def post_worker_init(worker):
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module now, not on the first request
    gc.collect()
    gc.freeze()
