"""Serializer fields shared by the API's serializers."""

import re

from rest_framework import serializers

# A JSON number, or a string of ASCII digits with an optional sign (and DRF's tolerated ".0"): Python's int()
# also reads other scripts' digits ("٣", "１"), spaces and underscores, which an id or a count never is.
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+(?:\.0*)?")


class AsciiIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A whole number written in ASCII digits is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, str) and not _ASCII_INTEGER.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)
