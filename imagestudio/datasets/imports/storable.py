"""What the database would refuse in an item's text, and metadata values past the size every writer allows:
checked before any write, so one bad row is refused alone instead of failing its batch. Pure (no Django)."""

import json
import math

from ..manifest import MAX_FIELD_NAME, MAX_TEXT_VALUE, metadata_size_problem

_DEPTH_LIMIT = 20


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def _value_problem(value, depth=0) -> str | None:
    if depth > _DEPTH_LIMIT:
        return "is nested too deeply"
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    if isinstance(value, dict):
        return next((problem for key, item in value.items()
                     if (problem := text_problem(str(key)) or _value_problem(item, depth + 1))), None)
    if isinstance(value, list):
        return next((problem for item in value if (problem := _value_problem(item, depth + 1))), None)
    return None


def _too_long(value) -> bool:
    """A value longer than MAX_TEXT_VALUE characters (a list or object: its JSON text), which a pattern LF would
    have to search whole."""
    if isinstance(value, str):
        return len(value) > MAX_TEXT_VALUE
    return isinstance(value, dict | list) and len(json.dumps(value, ensure_ascii=False)) > MAX_TEXT_VALUE


def metadata_problem(metadata: dict) -> str | None:
    """Why a metadata object cannot be stored (too many fields or characters, a field name longer than
    MAX_FIELD_NAME, NUL, lone surrogates, non-finite numbers, a value longer than MAX_TEXT_VALUE characters), or None."""
    if problem := metadata_size_problem(metadata):
        return problem
    for key, value in metadata.items():
        if len(str(key)) > MAX_FIELD_NAME:
            return f"metadata field name {safe_text(str(key)[:40])!r}... is longer than {MAX_FIELD_NAME} characters"
        if problem := text_problem(str(key)) or _value_problem(value):
            return f"metadata field {safe_text(str(key))!r} {problem}"
        if _too_long(value):
            return f"metadata field {safe_text(str(key))!r} is longer than {MAX_TEXT_VALUE} characters"
    return None


def unstorable_reason(*, name: str, external_id: str, metadata: dict, ground_truth: dict) -> str | None:
    """Why the item's row cannot be stored, or None."""
    for what, text in (("the file name", name), ("the external_id", external_id)):
        if problem := text_problem(text):
            return f"{what} {problem}"
    if problem := metadata_problem(metadata):
        return problem
    for class_name in ground_truth:
        if problem := text_problem(class_name):
            return f"a ground truth class name {problem}"
    return None


def safe_text(text: str) -> str:
    """Text a JSON column accepts: NUL and lone surrogates escaped as visible backslash sequences."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
