import re

from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.utils.urls import remove_query_param, replace_query_param

from api.validation import mark_query_paged, refuse_unknown_query_keys

_ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _refuse_unchecked_query(request):
    """A list whose view read no query serializer (api.validation.validated_query) takes paging alone: `datasets/
    ?name=` answered every dataset."""
    if not getattr(request, "query_keys_checked", False):
        refuse_unknown_query_keys((), request.query_params)
    mark_query_paged(request)


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=` with `count`, `next`, `previous`, `results`; limit capped at max_limit.

    Every list of the API answers this envelope; `next` and `previous` are absolute URLs (see api/links.py).
    Unlike DRF's default, a limit or offset that is not a non-negative integer is a 400, not ignored.
    """

    default_limit = 50
    max_limit = 500

    def _integer(self, request, name, minimum):
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not _ASCII_INTEGER.fullmatch(raw):  # int() would read "٣", " 1" and "1_0" too
            raise ValidationError({name: ["A whole number written in ASCII digits is required."]})
        value = int(raw)
        if value < minimum:
            raise ValidationError({name: [f"Ensure this value is at least {minimum}."]})
        return value

    def paginate_queryset(self, queryset, request, view=None):
        _refuse_unchecked_query(request)
        return super().paginate_queryset(queryset, request, view)

    def get_limit(self, request):
        value = self._integer(request, self.limit_query_param, 1)
        return self.default_limit if value is None else min(value, self.max_limit)

    def get_offset(self, request):
        return self._integer(request, self.offset_query_param, 0) or 0

    def get_previous_link(self):
        """DRF's, but from an offset below the limit it is the rows before this page (limit = offset), not a full
        first page that repeats some of this one's."""
        if 0 < self.offset < self.limit:
            url = replace_query_param(self.request.build_absolute_uri(), self.limit_query_param, self.offset)
            return remove_query_param(url, self.offset_query_param)
        return super().get_previous_link()

    def paginate_counted(self, request, fetch):
        """The page of a selector that counts and slices its rows itself: `fetch(offset, limit)` returns
        (count, rows). Answer with get_paginated_response like any other page."""
        _refuse_unchecked_query(request)
        self.request = request
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        self.count, rows = fetch(self.offset, self.limit)
        return rows

    def get_paginated_response_schema(self, schema):
        # The four keys are always there (links null at either end), so generated clients need no "unset" case.
        page = super().get_paginated_response_schema(schema)
        page["required"] = ["count", "next", "previous", "results"]
        return page

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1 if parameter["name"] == self.limit_query_param else 0
        return parameters
