"""Identifiers in text (paths, query strings, filter conditions): ASCII digits only, bounded. `str.isdigit()`
also accepts '²' or '٣', which `int()` then refuses or reads as another number."""

MAX_ID = 2**63 - 1  # bigint


def parse_id(text: str) -> int | None:
    """The positive id `text` spells in ASCII digits, or None."""
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
