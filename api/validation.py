from django.http import QueryDict
from rest_framework import serializers

from api.signed_access import ACCESS_PARAM


def refuse_unknown_keys(serializer, data):
    """A 400 naming each key of a JSON body the serializer does not know: a write must not guess what a typo meant
    (a misspelt bulk filter key was dropped and the action wrote to every sample; a misspelt PATCH key answered 200
    and changed nothing). Form bodies (QueryDicts) are not checked here; query parameters are, by
    `refuse_unknown_query_keys`. (The import view hands its form as a dict: `spilt=dev` imported into train.)"""
    if type(data) is not dict:
        return
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        known = ", ".join(sorted(name for name, field in serializer.fields.items() if not field.read_only))
        raise serializers.ValidationError({key: [f"Unknown key; this object takes {known}."] for key in unknown})


def refuse_body(request):
    """A 400 for a write that takes no body (a cancel, an undo, a rebuild) sent a JSON one that says something: it
    must not run as if the body were not there (`{"batch": ...}` to undo/ undid the latest batch, whichever it
    named). `{}`, `[]`, `null` and no body say nothing; a body of another type is not read, as before."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        return
    data = request.data
    if isinstance(data, dict) and data:
        raise serializers.ValidationError({key: ["Unknown key; this request takes no body."] for key in sorted(data)})
    if data not in (None, {}, [], ""):
        raise serializers.ValidationError({"non_field_errors": ["This request takes no body."]})


# Query parameters every read takes beside its own: paging, DRF's renderer choice, a signed link's token, and
# `_`, the cache-buster browsers' libraries add.
QUERY_KEYS_ANYWHERE = frozenset({"limit", "offset", "format", ACCESS_PARAM, "_"})
QUERY_KEYS_UNPAGED = QUERY_KEYS_ANYWHERE - {"limit", "offset"}  # of a read that answers no page


def unknown_query_errors(known, query, anywhere=QUERY_KEYS_ANYWHERE):
    """{parameter: [message]} for each query parameter a read does not take (`known`, beside `anywhere`)."""
    unknown = sorted(set(query) - set(known) - anywhere)
    takes = ", ".join(sorted(set(known) | anywhere - {"_", "format", ACCESS_PARAM})) or "none"
    return {key: [f"Unknown query parameter; this read takes {takes}."] for key in unknown}


def refuse_unknown_query_keys(known, query):
    """A 400 naming each query parameter a read does not take (`unknown_query_errors`): a misspelt filter
    (`?state=running`, `?clas=cat`, `datasets/?name=`) answered every row, which a page then showed as filtered."""
    errors = unknown_query_errors(known, query)
    if errors:
        raise serializers.ValidationError(errors)


def mark_query_checked(request):
    """Record that the read checked its query parameters itself, so that neither its paginator (api.pagination)
    nor api.middleware.UnknownQueryParametersMiddleware refuses its own filters."""
    request.query_keys_checked = True
    request._request.query_keys_checked = True


def mark_query_paged(request):
    """Record that the read answered a page, which takes `limit` and `offset` (api.middleware refuses them
    elsewhere)."""
    request._request.query_paged = True


def validated_query(serializer_class, request):
    """`validated` of the request's query parameters; the request is marked as checked (`mark_query_checked`)."""
    values = validated(serializer_class, request.query_params)
    mark_query_checked(request)
    return values


def validated(serializer_class, data, known_keys_only=False):
    """The validated data of `data` (a body or query parameters), or the serializer's 400. Query parameters it does
    not know are refused (`refuse_unknown_query_keys`). known_keys_only: a write that stores what it is given refuses
    body keys it does not know (a read, such as a preview, ignores them: a client may send the rule it will save,
    name included)."""
    serializer = serializer_class(data=data)
    if isinstance(data, QueryDict):
        refuse_unknown_query_keys(serializer.fields, data)
    elif known_keys_only and not hasattr(serializer, "variants"):  # a union checks the variant it picks
        refuse_unknown_keys(serializer, data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class KnownBodyKeysMixin:
    """For model viewsets: a create or update whose JSON body names a key the serializer does not know is a 400."""

    def get_serializer(self, *args, **kwargs):
        serializer = super().get_serializer(*args, **kwargs)
        if "data" in kwargs:
            refuse_unknown_keys(serializer, kwargs["data"])
        return serializer
