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


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField also takes a JSON number and stores its str() ({"name": 5}
    named a dataset "5"), which a typed client never sends and a script with a bug should hear about."""

    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class NameOrIdField(StrictCharField):
    """A resource named by its name or its id: a string, or the integer id the API hands out (as its string, which
    the view resolves)."""

    default_error_messages = {"invalid": "A name (string) or an id (integer) is required."}

    def to_internal_value(self, data):
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)
        return super().to_internal_value(data)


# A ModelSerializer whose fields built from the model's string columns are StrictCharFields (a comment, not a
# docstring: drf-spectacular would print a docstring as the description of every serializer built on it).
class StrictModelSerializer(serializers.ModelSerializer):
    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        return (StrictCharField if field_class is serializers.CharField else field_class), kwargs
