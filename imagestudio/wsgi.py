import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagestudio.settings")
application = get_wsgi_application()

# Import every view now, then move the long-lived objects (Django, DRF, torch) out of the collector's
# reach: otherwise each full collection walks them all and stalls a request by 150-250 ms.
_views = get_resolver().url_patterns
gc.freeze()
