from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, required=False,
                            description="The annotation version you last saw (same as the `version` field).")


def if_match_version(request):
    """The integer version in an If-Match header (`"3"`, `W/"3"` or `3`), or None without the header."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationError({"If-Match": ['Give the version you last saw, e.g. If-Match: "3".']})
    return int(value)
