"""JSON objects that take one of several shapes, told apart by the value of one field (their discriminator).

A serializer class declaring `discriminator` and `variants` ({value: serializer class}) is documented as a
`oneOf` of its variants with an OpenAPI discriminator (api.schema.PolymorphicExtension). A
`PolymorphicSerializer` also validates with the variant its discriminator names, so the schema and the
validation are the same classes. `discriminator = None` documents a plain union (`anyOf`), for a value whose
shape another field decides.
"""

import re
from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.validation import refuse_unknown_keys


class PolymorphicSerializer(serializers.Serializer):
    discriminator: str | None = None
    variants: dict[str, type[serializers.Serializer]] = {}
    component_name: str | None = None  # the schema component's name (default: from the class name)
    known_keys_only = False  # True: a key the chosen variant does not know is a 400 (validation.refuse_unknown_keys)

    def to_internal_value(self, data):
        assert self.discriminator, "a union without discriminator only documents: validate with the variant named"
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": [
                f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]})
        value = data.get(self.discriminator)
        variant = self.variants.get(value) if isinstance(value, str) else None
        if variant is None:
            raise serializers.ValidationError({self.discriminator: [
                f"Give one of {', '.join(self.variants)} (got {value!r})."]})
        serializer = variant(data=data, context=self.context)
        if self.known_keys_only:
            refuse_unknown_keys(serializer, data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def to_representation(self, instance):
        return self.variants[instance[self.discriminator]](instance, context=self.context).data


def variant_of(base, name, **fields):
    """A subclass of `base` named `name` whose `fields` replace the base's (e.g. the discriminator pinned to one
    choice, a free-form field typed)."""
    return type(name, (base,), {"__module__": base.__module__, **fields})


def pinned(value, **kwargs):
    """A discriminator field that takes exactly one value."""
    return serializers.ChoiceField(choices=[str(value)], **kwargs)


def stored(schema, **kwargs):
    """A JSON value rendered as stored, documented as `schema` (a serializer or a field) describes it."""
    return extend_schema_field(schema)(type("StoredJSONField", (serializers.JSONField,), {}))(**kwargs)


def pascal(value):
    """`lf_votes` -> `LFVotes`, `similarity_text` -> `SimilarityText`: a value as part of a component name."""
    return "".join(word.upper() if word == "lf" else word.capitalize() for word in re.split(r"[_\-\s]+", str(value)))
