from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.defaults import bad_request, page_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("studio/", include("imagestudio.studio.urls")),
]


def not_found(request, exception=None):
    """API clients get the API's JSON error shape even for paths no route matches."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def bad(request, exception=None):
    """Requests Django refuses before any view (too many fields, a broken body) answer in JSON under /api/."""
    if request.path.startswith("/api/"):
        detail = str(exception) if exception else "Bad request."
        return JsonResponse({"detail": detail, "code": "bad_request"}, status=400)
    return bad_request(request, exception)


handler404 = not_found
handler400 = bad
