"""Class names: what makes two names the same class, and what a name may not be. Pure Python.

Names are compared after Unicode NFKC (full-width `ｃａｔ` is `cat`), without invisible format characters (a
zero-width space), and case-folded: `cat`, `Cat`, `cat` + ZWSP and `ｃａｔ` are one class. A name is never all
digits (references by name and by id would collide: is `4` the class named 4 or the class whose id is 4?), and
never holds a comma, which separates values in the samples-list filters.
"""

import unicodedata

MAX_NAME = 100


class NameError_(ValueError):
    """A class name that is not allowed; the message says why."""


def _visible(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf").strip()


def class_name_clean(name: str, what: str = "class") -> str:
    """The name as stored: NFKC, without invisible format characters, stripped; or NameError_. Tags, which filters
    also take by name or id, follow the same rules (`what`: "tag")."""
    clean = _visible(name)
    if not clean or len(clean) > MAX_NAME:
        raise NameError_(f"A {what} name has 1 to {MAX_NAME} visible characters.")
    if clean.isdigit():
        raise NameError_(f"A {what} name cannot be all digits: it would read as a {what} id.")
    if "," in clean:
        raise NameError_(f"A {what} name cannot hold a comma: filters separate values with commas.")
    if any(unicodedata.category(ch) == "Cc" for ch in clean):
        raise NameError_(f"A {what} name cannot hold control characters.")
    return clean


def class_name_key(name: str) -> str:
    """What two names of the same class share."""
    return _visible(name).casefold()
