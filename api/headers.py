from rest_framework.exceptions import ValidationError


def if_match_version(request):
    """The integer version in an If-Match header (`"3"`, `W/"3"` or `3`), or None without the header."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationError({"If-Match": ['Give the version you last saw, e.g. If-Match: "3".']})
    return int(value)
