import copy

from django.contrib import admin
from django.http import JsonResponse
from django.middleware import common as middleware
from django.middleware import http as http_middleware
from django.urls import include, is_valid_path, path
from django.views.defaults import bad_request, page_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("studio/", include("imagestudio.studio.urls")),
]


class CommonMiddleware(middleware.CommonMiddleware):
    """Django's, without the trailing-slash redirect under /api/: a redirect would drop a POST's body and answer
    an API client in HTML; not_found names the path with its slash instead."""

    def should_redirect_with_slash(self, request):
        return not request.path_info.startswith("/api/") and super().should_redirect_with_slash(request)

    def process_request(self, request):
        # Django reads a body by its Content-Length, which a chunked one has none of: it read as empty, and an upload
        # was refused for naming no file. The client can send the length (411 says so, RFC 9110 15.5.12).
        if request.path_info.startswith("/api/") and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return JsonResponse({"detail": "Send the body with a Content-Length: a chunked body (Transfer-Encoding: "
                                           "chunked) is not read.", "code": "length_required"}, status=411)
        return super().process_request(request)


class ConditionalGetMiddleware(http_middleware.ConditionalGetMiddleware):
    """Django's (an ETag on every GET answer, 304 for a matching If-None-Match), for HEAD too: RFC 9110 13.1.2
    applies If-None-Match to both, and a HEAD is answered as its GET (its body dropped by the server)."""

    def process_response(self, request, response):
        if request.method == "HEAD":
            request = copy.copy(request)
            request.method = "GET"
        return super().process_response(request, response)


def not_found(request, exception=None):
    """API clients get the API's JSON error shape even for paths no route matches."""
    if request.path.startswith("/api/"):
        detail = "Not found."
        if not request.path_info.endswith("/") and is_valid_path(f"{request.path_info}/",
                                                                 getattr(request, "urlconf", None)):
            detail += f" API paths end with a slash: {request.path}/"
        return JsonResponse({"detail": detail, "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def bad(request, exception=None):
    """Requests Django refuses before any view (too many fields, a broken body) answer in JSON under /api/."""
    if request.path.startswith("/api/"):
        detail = str(exception) if exception else "Bad request."
        return JsonResponse({"detail": detail, "code": "bad_request"}, status=400)
    return bad_request(request, exception)


handler404 = not_found
handler400 = bad
