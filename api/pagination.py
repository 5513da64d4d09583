from rest_framework import pagination


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=` with `count`, `next`, `previous`, `results`; limit capped at max_limit."""

    default_limit = 50
    max_limit = 500
