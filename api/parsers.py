"""JSON bodies the service can hold: bounded nesting and size of each array and object, and no text Postgres or
Python would refuse later (lone UTF-16 surrogates, NUL), refused at the door with a 400 instead of failing deep
inside with a 500, or after seconds of validating items one by one."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from imagestudio.datasets.filters import MAX_FILTER_IDS

MAX_DEPTH = 32
# No operation takes a longer list (MAX_FILTER_IDS sample ids) or an object with more members.
MAX_MEMBERS = MAX_FILTER_IDS


def _check(value, path=()):
    if len(path) > MAX_DEPTH:
        raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            where = ".".join(map(str, path)) or "the body"
            raise ParseError(f"The text at {where} holds a NUL character or a lone UTF-16 surrogate.")
    elif isinstance(value, dict | list) and len(value) > MAX_MEMBERS:
        where = ".".join(map(str, path)) or "the body"
        raise ParseError(f"The {'object' if isinstance(value, dict) else 'array'} at {where} holds {len(value):,} "
                         f"members; no operation takes more than {MAX_MEMBERS:,}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, path)
            _check(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, (*path, index))


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        _check(data)
        return data
