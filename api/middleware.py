"""HTTP rules every read under /api/ follows, whichever view answers it."""

from django.http import JsonResponse

from api.validation import QUERY_KEYS_UNPAGED, unknown_query_errors


class UnknownQueryParametersMiddleware:
    """A GET or HEAD under /api/ refuses, with a 400 naming them, the query parameters it does not take, so that
    `jobs/<id>/?fields=id` or `lfs/<id>/?versoin=2` cannot pass for a read that honoured them. A read that answered
    a page (api.validation.mark_query_paged) was checked by its paginator; one that checked its own parameters
    (mark_query_checked) takes no `limit` / `offset` beside them; any other takes QUERY_KEYS_UNPAGED and those its
    view class names in `query_parameters`. Checked after the view (a read changes nothing), only where it
    succeeded: an error says what went wrong first. Views of other packages (drf-spectacular's schema and docs,
    Django's login page) are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (request.method not in ("GET", "HEAD") or response.status_code >= 400 or not request.path.startswith("/api/")
                or getattr(request, "query_paged", False) or not set(request.GET) - QUERY_KEYS_UNPAGED):
            return response
        view = getattr(getattr(request, "resolver_match", None), "func", None)
        view_class = getattr(view, "cls", None)
        if view_class is None or not view_class.__module__.startswith("api."):
            return response
        if getattr(request, "query_keys_checked", False):  # its own parameters checked: paging is what is left
            errors = {key: ["Unknown query parameter; this read answers no page."]
                      for key in sorted({"limit", "offset"} & set(request.GET))}
        else:
            errors = unknown_query_errors(getattr(view_class, "query_parameters", ()), request.GET, QUERY_KEYS_UNPAGED)
        if not errors:
            return response
        # Not response.close(): it sends request_finished, which closes the database connection mid-request; the
        # file or event stream a dropped response holds is closed when it is collected.
        return JsonResponse(errors, status=400)
