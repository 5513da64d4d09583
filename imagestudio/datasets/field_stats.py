"""The metadata field catalogue's figures, per field: how many values of each JSON kind it has, how many samples
fill it, its distinct values and its most common ones. Pure Python, no Django: the SQLite path, and the
reference Postgres's SQL (selectors.field_catalogue) is tested against.

- kinds: string, number, boolean, object, array, null (a key present with the value null).
- type: the one kind of its non-null values; `mixed` when there are several, `null` when every value is null.
- filled: samples with a non-null value (a missing key and null both leave a sample unfilled).
- distinct: distinct non-null values, exact (numbers compare by value, 1 and 1.0 are one; objects and arrays by
  their JSON text with keys sorted).
- examples: up to EXAMPLES non-null values, the most frequent first, ties to the value seen first (lowest sample
  id); strings longer than EXAMPLE_CHARS are cut there.
"""

import json
from collections.abc import Iterable, Mapping

KINDS = ("string", "number", "boolean", "object", "array", "null")
FIELD_TYPES = (*KINDS, "mixed")
# Sample columns a pattern LF may read besides metadata fields.
BUILTIN_FIELDS = ("external_id", "file_name", "format", "width", "height", "bytes")
EXAMPLES = 5
EXAMPLE_CHARS = 200


def kind_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def _identity(kind, value):
    return (kind, json.dumps(value, sort_keys=True)) if kind in ("object", "array") else (kind, value)


def example(value):
    """An example as shown: long strings cut."""
    return value[:EXAMPLE_CHARS] if isinstance(value, str) else value


def catalogue_row(name: str, kinds: Mapping[str, int], distinct: int, examples: list, samples: int) -> dict:
    """One field's entry from its counts; `samples` is how many samples it was counted over."""
    present = [kind for kind in KINDS if kind != "null" and kinds.get(kind)]
    filled = sum(kinds.get(kind, 0) for kind in present)
    return {"name": name, "type": present[0] if len(present) == 1 else "mixed" if present else "null",
            "samples": samples, "filled": filled, "fill_rate": filled / samples if samples else 0.0,
            "kinds": {kind: int(kinds.get(kind, 0)) for kind in KINDS}, "distinct": distinct,
            "examples": [example(value) for value in examples]}


def field_catalogue_of(metadata_rows: Iterable[Mapping]) -> list[dict]:
    """The catalogue of the samples' metadata objects (in sample id order), by field name."""
    kinds: dict[str, dict[str, int]] = {}
    values: dict[str, dict] = {}  # field -> identity -> [count, first seen, value]
    samples = 0
    for position, metadata in enumerate(metadata_rows):
        samples += 1
        for name, value in metadata.items():
            kind = kind_of(value)
            counts = kinds.setdefault(name, dict.fromkeys(KINDS, 0))
            counts[kind] += 1
            if kind != "null":
                seen = values.setdefault(name, {}).setdefault(_identity(kind, value), [0, position, value])
                seen[0] += 1
    rows = []
    for name in sorted(kinds):
        distinct = values.get(name, {})
        common = sorted(distinct.values(), key=lambda entry: (-entry[0], entry[1]))[:EXAMPLES]
        rows.append(catalogue_row(name, kinds[name], len(distinct), [entry[2] for entry in common], samples))
    return rows
