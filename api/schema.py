import copy
import re

from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import deep_import_string, get_class, safe_ref
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from inflection import camelize

from api.headers import IF_MATCH_CURRENT, ConditionalWritesMixin
from api.responses import LocatedCreatesMixin
from api.serializers.polymorphic import pascal

PATH_VARIABLE = re.compile(r"{(\w+)_id}")
UUID_IDS = {"job"}  # jobs are named by a UUID; every other resource by an integer
# What an enum reference leaves behind of the schema it replaces (the values say the rest).
ENUM_KEYS = ("enum", "type", "x-spec-enum-id", "minLength", "maxLength")
LOCATION_OF_CREATED = OpenApiParameter("Location", OpenApiTypes.URI, OpenApiParameter.HEADER, response=[201],
                                       description="The URL of what was created.")


class AutoSchema(SpectacularAutoSchema):
    """One path-parameter name per resource (`<resource>_id`, typed, everywhere) and one tag per resource."""

    def get_override_parameters(self):
        declared = [
            OpenApiParameter(f"{resource}_id", OpenApiTypes.UUID if resource in UUID_IDS else int,
                             OpenApiParameter.PATH, description=f"The {resource.replace('_', ' ')}'s id.")
            for resource in PATH_VARIABLE.findall(self.path)
        ]
        if self.method == "POST" and isinstance(self.view, LocatedCreatesMixin):
            declared.append(LOCATION_OF_CREATED)
        if self.method in ("PATCH", "DELETE") and isinstance(self.view, ConditionalWritesMixin):
            declared.append(IF_MATCH_CURRENT)
        return [*declared, *super().get_override_parameters()]

    def get_tags(self):
        """The resource the operation acts on: a viewset's collection (its own actions stripped), or for a plain
        view the first word after the dataset (`datasets/{dataset_id}/annotations/bulk/` -> annotations)."""
        words = [part for part in self.path.strip("/").split("/")[1:] if not part.startswith("{")]
        action = getattr(self.view, "action", None)
        if action and action in {extra.__name__ for extra in self.view.get_extra_actions()}:
            return [words[-2]]
        if action or words[:1] != ["datasets"] or len(words) == 1:
            return [words[-1] if action else words[0]]
        return [words[1]]

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # a oneOf lists no required property of its own, yet each of its variants has some
        return schema, required or PolymorphicExtension._matches(serializer)

    def _is_list_view(self, serializer=None):
        # A list that shapes its own page (count, links, results) answers one object, not an array.
        if getattr(self.view, "pages_itself", False):
            return False
        return super()._is_list_view(serializer)


class PolymorphicExtension(OpenApiSerializerExtension):
    """A serializer declaring `variants` (api.serializers.polymorphic) is a `oneOf` of them, discriminated by its
    `discriminator` field (each variant pins that field to its value), or an `anyOf` without a discriminator."""

    target_class = "rest_framework.serializers.BaseSerializer"
    match_subclasses = True

    @classmethod
    def _matches(cls, target):
        return "variants" in vars(get_class(target))

    def get_name(self, auto_schema, direction):
        return getattr(self.target, "component_name", None)

    def map_serializer(self, auto_schema, direction):
        refs = {str(value): auto_schema.resolve_serializer(variant, direction).ref
                for value, variant in self.target.variants.items()}
        if self.target.discriminator is None:
            return {"anyOf": list(refs.values())}
        return {"oneOf": list(refs.values()), "discriminator": {
            "propertyName": self.target.discriminator, "mapping": {value: ref["$ref"] for value, ref in refs.items()}}}


def _oas30(schema):
    """A JSON Schema (2020-12) of the domain as an OpenAPI 3.0 schema: `const` as a one-value enum, a property that
    depends on another through if / then / else as the oneOf of its alternatives, no empty `required`, no title."""
    # no `title`: generators would name the class after it rather than after the component
    converted = {key: value for key, value in schema.items() if key not in ("allOf", "const", "required", "title")}
    if "const" in schema:
        converted["enum"] = [schema["const"]]
    if schema.get("required"):
        converted["required"] = schema["required"]
    if "properties" in schema:
        converted["properties"] = {name: _oas30(prop) for name, prop in schema["properties"].items()}
    for key in ("items", "oneOf"):
        if key in schema:
            converted[key] = _oas30(schema[key]) if key == "items" else [_oas30(item) for item in schema[key]]
    for branch in schema.get("allOf", []):
        alternatives = [branch[key]["properties"] for key in ("then", "else") if key in branch]
        for name in alternatives[0] if alternatives else ():
            converted["properties"][name] = {
                "oneOf": [_oas30(alternative[name]) for alternative in alternatives],
                **{k: v for k, v in schema["properties"][name].items() if k == "description"}}
    return converted


def add_lf_configs(result, generator, request, public):
    """The LF configs' components, from the JSON Schemas validation enforces (the lf-types/ catalogue): one per
    type (`<Type>Config`), the pattern's a oneOf of its builders' (`<Builder>Pattern`) by `builder`, and `LFConfig`
    (any of them, for where the type is beside it)."""
    from api.serializers.labeling import ANY_CONFIG, CONFIG_COMPONENTS
    from imagestudio.labeling.services import lf_type_catalogue

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    catalogue = lf_type_catalogue()
    builders = {entry["builder"]: f"{pascal(entry['builder'])}Pattern" for entry in catalogue["builders"]}
    for entry in catalogue["builders"]:
        schemas[builders[entry["builder"]]] = _oas30(entry["config_schema"])
    for entry in catalogue["types"]:
        schemas[CONFIG_COMPONENTS[entry["type"]]] = _oas30(entry["config_schema"]) if entry["type"] != "pattern" else {
            "description": entry["description"],
            "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in builders.values()],
            "discriminator": {"propertyName": "builder",
                              "mapping": {builder: f"#/components/schemas/{name}" for builder, name in builders.items()}}}
    schemas[ANY_CONFIG] = {"description": "The config of an LF: its `type`, beside it, says which.",
                           "anyOf": [{"$ref": f"#/components/schemas/{name}"} for name in CONFIG_COMPONENTS.values()]}
    return result


def unwrap_read_only_refs(result, generator, request, public):
    """In answer components (requests have their own, COMPONENT_SPLIT_REQUEST), a property that is only a read-only
    reference becomes the reference: `readOnly` says nothing there, and the `allOf` wrapper that carried it made
    openapi-typescript drop a discriminated union's discriminator (`Omit<PatternConfig, "builder">`: a saved
    pattern LF's config lost its builder, words and pattern)."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            continue
        for field, prop in schema.get("properties", {}).items():
            if set(prop) == {"allOf", "readOnly"} and len(prop["allOf"]) == 1 and set(prop["allOf"][0]) == {"$ref"}:
                schema["properties"][field] = dict(prop["allOf"][0])
    return result



def add_job_event_payloads(result, generator, request, public):
    """The data of the job stream's `progress` events as a component, JobProgressEvent: OpenAPI cannot type a
    text/event-stream body, so a generated client gets the model to parse each event's data with (a `done` event's
    data is a Job). tests/api/test_job_events.py checks the events against it."""
    result["components"]["schemas"]["JobProgressEvent"] = {
        "type": "object",
        "description": "The data (JSON) of a `progress` event of jobs/{job_id}/events/.",
        "properties": {"status": {"$ref": "#/components/schemas/JobStatusEnum"},
                       "progress": {"type": "number", "format": "double", "minimum": 0, "maximum": 1},
                       "message": {"type": "string"}},
        "required": ["status", "progress", "message"]}
    return result

IDENTIFIER = re.compile(r"[A-Za-z][\w-]*")
OPERATOR_NAMES = {"<": "LT", "<=": "LE", "=": "EQ", ">=": "GE", ">": "GT"}


def _varname(value):
    """A constant's name for an enum value that is no identifier: `-id` -> ID_DESC, `<=` -> LE."""
    if value.startswith("-"):
        return f"{_varname(value[1:])}_DESC"
    return OPERATOR_NAMES.get(value) or re.sub(r"\W+", "_", value).upper()


def _enum_names():
    """ENUM_NAME_OVERRIDES as {frozenset of values: component name}."""
    names = {}
    for name, choices in spectacular_settings.ENUM_NAME_OVERRIDES.items():
        choices = deep_import_string(choices) if isinstance(choices, str) else choices
        values = getattr(choices, "values", None) or [c[0] if isinstance(c, tuple | list) else c for c in choices]
        names[frozenset(str(value) for value in values)] = name
    return names


class _EnumNamer:
    def __init__(self, schemas):
        self.schemas, self.names, self.created = schemas, _enum_names(), {}

    def component(self, values, field):
        """A reference to the enum component of `values`, created on first use."""
        key = frozenset(values)
        # a discriminator pinned to one value (api.serializers.polymorphic.pinned): PatternTypeEnum, ImportKindEnum
        single = pascal(values[0]) if len(values) == 1 else ""
        name = self.names.get(key) or f"{single}{camelize(field)}Enum"
        if self.created.setdefault(name, key) != key:
            warn(f"Two closed sets want the enum name {name}: {sorted(self.created[name])} and {sorted(key)}. "
                 "Name one in SPECTACULAR_SETTINGS['ENUM_NAME_OVERRIDES'].")
            name = f"{name}{len(self.created)}"
        enum = {"enum": values, "type": "integer" if {type(v) for v in values} == {int} else "string"}
        if not all(IDENTIFIER.fullmatch(str(value)) for value in values):
            enum["x-enum-varnames"] = [_varname(str(value)) for value in values]  # names for generated clients
        self.schemas.setdefault(name, enum)
        return {"$ref": f"#/components/schemas/{name}"}

    def replace(self, schema, field):
        """`schema` with every enum in it (at any depth) a reference; `field` names an enum met at the top."""
        if not isinstance(schema, dict):
            return schema
        if "enum" in schema:
            rest = {key: value for key, value in schema.items() if key not in ENUM_KEYS}
            if None in schema["enum"]:
                rest["nullable"] = True
            return safe_ref({**self.component([v for v in schema["enum"] if v is not None], field), **rest})
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                schema[key] = self.replace(schema[key], field)
        for key in ("oneOf", "anyOf", "allOf"):
            if key in schema:
                schema[key] = [self.replace(item, field) for item in schema[key]]
        for name, prop in schema.get("properties", {}).items():
            schema["properties"][name] = self.replace(prop, name)
        return schema


def name_enums(result, generator, request, public):
    """Every closed set of words becomes one named enum component, referenced wherever it appears: properties,
    array items, map values and query parameters alike, so a generated client has one `SplitEnum`, not one per
    field. Names come from ENUM_NAME_OVERRIDES (by value set), else from the field (`<Field>Enum`); a derived
    name taken by another set is a warning to fix in ENUM_NAME_OVERRIDES. Nullable enums stay nullable (no
    `NullEnum`)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    namer = _EnumNamer(schemas)
    for name in list(schemas):
        if "enum" not in schemas[name]:
            # a copy: hooks add module-level schemas (the error shapes), which the next generation reuses
            schemas[name] = namer.replace(copy.deepcopy(schemas[name]), name)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = namer.replace(copy.deepcopy(parameter["schema"]), parameter["name"])
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    return result


ERROR_SCHEMA = {
    "type": "object",
    "description": "An error: a human-readable `detail` and a stable machine-readable `code`.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"},
                   "version": {"type": "integer", "description": "A version conflict (409): the current version."}},
    "required": ["detail", "code"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Bad input: messages per field (`non_field_errors` for the request as a whole), "
    "or `detail` and `code`.",
    "additionalProperties": {},
}
STANDARD_ERRORS = {
    "400": ("ValidationError", "Bad input."),
    "401": ("Error", "Missing or invalid credentials (or, for auth/token/, a wrong password)."),
    "403": ("Error", "Your role on the dataset is too low."),
    "404": ("Error", "Not found, or not visible to you."),
}


NOT_MODIFIED = {"description": "Not Modified: the If-None-Match you sent is the current ETag (every GET answer "
                               "carries one).",
                "headers": {"ETag": {"schema": {"type": "string"}, "description": "The current tag."}}}
PRECONDITION_FAILED = {
    "description": "Precondition Failed: the If-Match you sent is not the current version (or, for a resource "
                   "without versions, not the ETag of what it shows now); nothing changed. The body gives the current "
                   "`version` and `etag` (also in the ETag header).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PreconditionFailed"}}},
}
PRECONDITION_FAILED_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string", "enum": ["version_conflict"]},
                   "version": {"type": "integer", "nullable": True,
                               "description": "The current version; null for a resource without versions."},
                   "etag": {"type": "string"}},
    "required": ["detail", "code", "version", "etag"],
}


HEADER_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "The representation's tag: send it as "
                        "If-None-Match for a 304, or as If-Match where a write takes one."}}
HEADER_WRITTEN_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "Where the request sent If-Match: the tag "
                                "of what it wrote, for the If-Match of the next write."}}
HEADER_JOB_LOCATION = {"Location": {"schema": {"type": "string", "format": "uri"},
                                    "description": "The job's URL: poll it (`?wait=`), or open its `events_url`."}}
HEADER_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
HEADER_RETRY_LATER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Where waiting is the answer (a file "
                                      "still being written): seconds to wait before asking again."}}


def _add_conditional_responses(method, operation):
    """304 and an ETag on every GET but a stream (ConditionalGetMiddleware, or the file views); 412 where If-Match
    is taken; the job's Location on a 202."""
    responses = operation.setdefault("responses", {})
    streams = "text/event-stream" in responses.get("200", {}).get("content", {})
    if method == "get" and not streams:
        responses.setdefault("304", NOT_MODIFIED)
        if "200" in responses:
            responses["200"].setdefault("headers", {}).update(HEADER_ETAG)
    if "202" in responses:
        responses["202"].setdefault("headers", {}).update(HEADER_JOB_LOCATION)
    if any(parameter.get("name") == "If-Match" for parameter in operation.get("parameters", ())):
        responses.setdefault("412", {**PRECONDITION_FAILED, "headers": HEADER_ETAG})
        for status, response in responses.items():  # a write sent with If-Match answers the new tag: chain the next
            if status.startswith("2") and "content" in response:
                response.setdefault("headers", {}).update(HEADER_WRITTEN_ETAG)


def _answers_json(operation):
    """Whether its success is JSON (or has no body): Accept is negotiated there, files and streams ignore it."""
    kinds = [kind for status, response in operation.get("responses", {}).items() if status.startswith("2")
             for kind in response.get("content", {})]
    return not kinds or "application/json" in kinds


def _error(description, component="Error", **extra):
    return {"description": description, **extra,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}}


def _add_standard_errors(operation, public):
    responses = operation.setdefault("responses", {})
    for status, (component, description) in STANDARD_ERRORS.items():
        if not (public and status in ("403", "404")):
            responses.setdefault(status, _error(description, component))
    if "requestBody" in operation:
        responses.setdefault("415", _error("The body's Content-Type is not one this operation reads."))
        responses.setdefault("411", _error("The body was sent chunked, without a Content-Length: send its length."))
    if public:
        responses.setdefault("429", _error("Too many attempts: retry after the delay said.", headers=HEADER_RETRY_AFTER))
    # Any operation may meet a state it cannot serve (reads too: a model or export not ready, or failed), and any
    # may find the database or the queue down.
    responses.setdefault("409", _error("Conflict with the current state (a version, a budget, a missing prerequisite, "
                                       "a product not ready or failed).", headers=HEADER_RETRY_LATER))
    responses.setdefault("503", _error("The database or the task queue is unavailable: retry after the delay said.",
                                       headers=HEADER_RETRY_AFTER))


def add_error_responses(result, generator, request, public):
    """Document the error shape on every operation, so generated clients parse errors too."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["ValidationError"] = VALIDATION_ERROR_SCHEMA
    schemas["PreconditionFailed"] = PRECONDITION_FAILED_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            _add_conditional_responses(method, operation)
            if _answers_json(operation):  # files and streams are answered whatever Accept says
                operation["responses"].setdefault(
                    "406", _error("Not Acceptable: the Accept header names no type this operation answers in."))
        if path.endswith("/health/") or path == "/api/":
            # Answer with their own report or links, as declared on the views, and need no database; a query
            # parameter they do not take is a 400 like anywhere (api.middleware).
            operations["get"]["responses"].setdefault("400", _error(STANDARD_ERRORS["400"][1], "ValidationError"))
            continue
        for operation in operations.values():
            _add_standard_errors(operation, public=path.endswith("/auth/token/"))  # the one needing no credentials
    return result
