"""LF configs as JSON Schemas, one per LF type and per pattern builder: GET lf-types/ publishes them and
validation enforces them (`check` runs first on every config), so the menu and the rules cannot drift apart.
What a schema cannot say is checked after it, where the data is: a regex compiles, [low, high] is ordered, a
number is finite, a sample or model exists. Pure (jsonschema), no Django.

`check` returns the config with the schema's defaults filled in and unknown keys dropped; a refusal names the
first property at fault (in the schema's order) with that property's `description`.
"""

import math
from collections.abc import Sequence

from jsonschema import Draft202012Validator

from imagestudio.datasets.field_stats import BUILTIN_FIELDS

BUILDERS = ("keyword", "regex", "numeric", "length", "empty")
OPERATORS = ("<", "<=", "=", ">=", ">", "between")
MAX_PATTERN = 1000
MAX_WORDS = 100
MAX_WORD = 100  # characters: a keyword's cost grows with text length x its length
MAX_FIELD = 100
MAX_TEXT = 10_000
NON_BLANK = r"\S"


class ConfigError(ValueError):
    """The config is unusable; `field` names the config key at fault."""

    def __init__(self, message, field="config"):
        super().__init__(message)
        self.field = field


def _object(title, description, properties, required=(), **extra):
    return {"type": "object", "title": title, "description": description, "properties": properties,
            "required": list(required), **extra}


def _pattern(builder, title, description, properties=None, required=(), **extra):
    field = {"type": "string", "minLength": 1, "maxLength": MAX_FIELD,
             "description": f"the name of a metadata field (1 to {MAX_FIELD} characters) or a built-in column: "
                            f"{', '.join(BUILTIN_FIELDS)}"}
    return _object(title, f"{description} Scores 1 where the rule matches the field's value, 0 where not.",
                   {"field": field, "builder": {"const": builder, "description": f"{builder!r}"},
                    **(properties or {})}, ("field", "builder", *required), **extra)


_CASE = {"type": "boolean", "default": False, "description": "true or false: whether letter case must match"}
_NUMBER = {"type": "number", "description": "a finite number"}
_COMPARISON = {
    "op": {"enum": list(OPERATORS), "description": f"one of {' '.join(OPERATORS)}"},
    "value": {"description": "a finite number, or [low, high] with low <= high for between"},
}
# value is a number, or a pair for between
_COMPARISON_VALUE = [{"if": {"properties": {"op": {"const": "between"}}, "required": ["op"]},
                      "then": {"properties": {"value": {"type": "array", "items": _NUMBER,
                                                        "minItems": 2, "maxItems": 2}}},
                      "else": {"properties": {"value": _NUMBER}}}]

PATTERN_SCHEMAS = {
    "keyword": _pattern("keyword", "Keywords", "Any (or all) of the words appear in the field's text.", {
        "words": {"type": "array", "minItems": 1, "maxItems": MAX_WORDS,
                  "items": {"type": "string", "minLength": 1, "maxLength": MAX_WORD, "pattern": NON_BLANK},
                  "description": f"a list of 1 to {MAX_WORDS} non-blank strings of at most {MAX_WORD} characters"},
        "mode": {"enum": ["any", "all"], "default": "any", "description": "any or all: which words must appear"},
        "case_sensitive": _CASE,
        "whole_word": {"type": "boolean", "default": True,
                       "description": "true or false: whether a word must stand alone, not inside a longer word"},
    }, ("words",)),
    "regex": _pattern("regex", "Regular expression", "The regular expression matches somewhere in the field's text "
                      "(RE2 syntax; backreferences and lookaround run on a time-limited backtracking engine).", {
                          "pattern": {"type": "string", "minLength": 1, "maxLength": MAX_PATTERN,
                                      "description": f"a regular expression of 1 to {MAX_PATTERN} characters that "
                                                     "compiles"},
                          "case_sensitive": _CASE,
                      }, ("pattern",)),
    "numeric": _pattern("numeric", "Number comparison", "The field's value, read as a number, compares to `value`.",
                        _COMPARISON, ("op", "value"), allOf=_COMPARISON_VALUE),
    "length": _pattern("length", "Text length", "The length of the field's text compares to `value`.",
                       _COMPARISON, ("op", "value"), allOf=_COMPARISON_VALUE),
    "empty": _pattern("empty", "Empty", "The field is missing, null or blank."),
}
# What every pattern config starts with: checked first, so an unknown builder is named as such.
PATTERN_BASE = _object("Pattern", "A rule on one metadata field.", {
    "field": PATTERN_SCHEMAS["empty"]["properties"]["field"],
    "builder": {"enum": list(BUILDERS), "description": f"one of {', '.join(BUILDERS)}"},
}, ("field", "builder"))


def pattern_schema() -> dict:
    """The pattern LF's config: one of the builders' schemas, told apart by `builder`."""
    return {"title": "Pattern", "description": "A rule on one metadata field, by builder. Scores 1 where it matches, "
                                               "0 where not.",
            "oneOf": [PATTERN_SCHEMAS[builder] for builder in BUILDERS]}


def similarity_schema(lf_type: str, encoders: Sequence[str], spaces: Sequence[str]) -> dict:
    """A similarity LF's config: its query (a text, a sample, a box of a sample), encoder and vector space."""
    common = {"encoder": {"enum": [*encoders, None],
                          "description": f"one of {', '.join(encoders)}, or null for the configured default"}}
    scores = "Scores the cosine similarity (-1 to 1) of each image to the query."
    if lf_type == "similarity_text":
        return _object("Text similarity", f"Images like a text query, in the joint text-image space. {scores}", {
            "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NON_BLANK,
                     "description": f"a non-blank text of at most {MAX_TEXT:,} characters"},
            **common,
            "space": {"const": "joint", "default": "joint", "description": "joint (texts live in no other space)"},
        }, ("text",))
    properties = {
        "sample_id": {"type": "integer", "minimum": 1, "description": "the id of a sample of this dataset"},
        **common,
        "space": {"enum": list(spaces), "default": "visual",
                  "description": f"one of {', '.join(spaces)}: the image network's own features or the joint space"},
    }
    if lf_type == "similarity_image":
        return _object("Image similarity", f"Images like one sample's image. {scores}", properties, ("sample_id",))
    properties["box"] = {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "integer", "minimum": 0},
                         "description": "[x0, y0, x1, y1]: non-negative integer pixels inside the sample's image"}
    return _object("Patch similarity", f"Images like a box of one sample's image. {scores}", properties,
                   ("sample_id", "box"))


def _property_at_fault(schema, error):
    if error.path:
        return str(error.path[0])
    if error.validator == "required":
        return next((name for name in schema["properties"] if name in error.validator_value
                     and name not in error.instance), None)
    return None


def check(schema: dict, config) -> dict:
    """`config` checked against `schema`: a normalized copy, or ConfigError (see the module notes)."""
    if not isinstance(config, dict):
        raise ConfigError("the config must be an object")
    names = list(schema["properties"])
    for name, spec in schema["properties"].items():  # before the validator, which would check every item first
        if isinstance(config.get(name), list) and len(config[name]) > spec.get("maxItems", math.inf):
            raise ConfigError(f"'{name}' must be {spec.get('description', 'valid')}", field=name)
    faults = [(_property_at_fault(schema, error), error) for error in Draft202012Validator(schema).iter_errors(config)]
    if faults:
        name, error = min(faults, key=lambda fault: names.index(fault[0]) if fault[0] in names else len(names))
        if name not in names:
            raise ConfigError(error.message)
        described = schema["properties"][name].get("description", "valid")
        raise ConfigError(f"'{name}' is required: {described}" if name not in config else f"'{name}' must be {described}",
                          field=name)
    return {name: config[name] if name in config else spec["default"]
            for name, spec in schema["properties"].items() if name in config or "default" in spec}
