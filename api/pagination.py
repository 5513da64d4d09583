from rest_framework import pagination
from rest_framework.exceptions import ValidationError


class LimitOffsetPagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=` with `count`, `next`, `previous`, `results`; limit capped at max_limit.

    Unlike DRF's default, a limit or offset that is not a non-negative integer is a 400, not ignored.
    """

    default_limit = 50
    max_limit = 500

    def _integer(self, request, name, minimum):
        raw = request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: ["A whole number is required."]}) from None
        if value < minimum:
            raise ValidationError({name: [f"Ensure this value is at least {minimum}."]})
        return value

    def get_limit(self, request):
        value = self._integer(request, self.limit_query_param, 1)
        return self.default_limit if value is None else min(value, self.max_limit)

    def get_offset(self, request):
        return self._integer(request, self.offset_query_param, 0) or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1 if parameter["name"] == self.limit_query_param else 0
        return parameters
