import re

from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import deep_import_string, get_class, safe_ref
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from inflection import camelize

from api.serializers.polymorphic import pascal

PATH_VARIABLE = re.compile(r"{(\w+)_id}")
UUID_IDS = {"job"}  # jobs are named by a UUID; every other resource by an integer
# What an enum reference leaves behind of the schema it replaces (the values say the rest).
ENUM_KEYS = ("enum", "type", "x-spec-enum-id", "minLength", "maxLength")


class AutoSchema(SpectacularAutoSchema):
    """One path-parameter name per resource (`<resource>_id`, typed, everywhere) and one tag per resource."""

    def get_override_parameters(self):
        declared = [
            OpenApiParameter(f"{resource}_id", OpenApiTypes.UUID if resource in UUID_IDS else int,
                             OpenApiParameter.PATH, description=f"The {resource.replace('_', ' ')}'s id.")
            for resource in PATH_VARIABLE.findall(self.path)
        ]
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
            schemas[name] = namer.replace(schemas[name], name)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = namer.replace(parameter["schema"], parameter["name"])
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    return result


ERROR_SCHEMA = {
    "type": "object",
    "description": "An error: a human-readable `detail` and a stable machine-readable `code`.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
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


def add_error_responses(result, generator, request, public):
    """Document the error shape on every operation, so generated clients parse errors too."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["ValidationError"] = VALIDATION_ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if path.endswith("/health/"):
            continue  # answers 200 or 503 with its own report, as declared on the view
        public = path.endswith("/auth/token/")  # the one operation that needs no credentials
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, (component, description) in STANDARD_ERRORS.items():
                if public and status in ("403", "404"):
                    continue
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                })
            if public:
                responses.setdefault("429", {
                    "description": "Too many attempts: retry after the delay said.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
            # Any operation may meet a state it cannot serve (reads too: a model or export not ready, or failed),
            # and any may find the database or the queue down.
            responses.setdefault("409", {
                "description": "Conflict with the current state (a version, a budget, a missing prerequisite, a "
                               "product not ready or failed).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
            responses.setdefault("503", {
                "description": "The database or the task queue is unavailable: retry after the delay said.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            })
    return result
