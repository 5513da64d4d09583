from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField
from imagestudio.datasets.field_stats import BUILTIN_FIELDS, EXAMPLE_CHARS, EXAMPLES, FIELD_TYPES
from imagestudio.datasets.models import Split
from imagestudio.labeling.config_schemas import BUILDERS
from imagestudio.labeling.models import LFType


class FieldQuerySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False,
                                    help_text="Count over this split's samples only (default: the whole dataset).")


class FieldKindsSerializer(serializers.Serializer):
    """Samples whose value for the field is of each JSON kind (null: the key is there, its value null)."""

    string = AsciiIntegerField()
    number = AsciiIntegerField()
    boolean = AsciiIntegerField()
    object = AsciiIntegerField()
    array = AsciiIntegerField()
    null = AsciiIntegerField()


class MetadataFieldSerializer(serializers.Serializer):
    name = StrictCharField()
    type = serializers.ChoiceField(choices=FIELD_TYPES, help_text="The one JSON kind of its non-null values; mixed "
                                                                   "for several, null when every value is null.")
    samples = AsciiIntegerField(help_text="Samples counted (the dataset's, or the split's).")
    filled = AsciiIntegerField(help_text="Samples with a non-null value (exact).")
    fill_rate = serializers.FloatField(help_text="filled / samples (0 when there are no samples).")
    kinds = FieldKindsSerializer()
    distinct = AsciiIntegerField(help_text="Distinct non-null values (exact; numbers by value, objects and "
                                                  "arrays by their JSON text with keys sorted).")
    examples = serializers.ListField(
        child=serializers.JSONField(), max_length=EXAMPLES,
        help_text=f"Up to {EXAMPLES} non-null values, most frequent first (ties: the first seen); strings cut at "
                  f"{EXAMPLE_CHARS} characters. Free-form: metadata values are any JSON.")


class LFTypeSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=LFType.choices)
    title = StrictCharField()
    description = StrictCharField(help_text="What it votes on and what its score is (thresholds apply to it).")
    config_schema = serializers.DictField(help_text="JSON Schema of its `config`, the one validation enforces "
                                                    "(pattern: oneOf the builders' schemas, by `builder`).")


class PatternBuilderSerializer(serializers.Serializer):
    builder = serializers.ChoiceField(choices=BUILDERS)
    title = StrictCharField()
    description = StrictCharField()
    config_schema = serializers.DictField(help_text="JSON Schema of a pattern LF's `config` with this builder.")


class LFTypeCatalogueSerializer(serializers.Serializer):
    dialect = serializers.URLField(help_text="The JSON Schema dialect of every config_schema.")
    types = LFTypeSerializer(many=True)
    builders = PatternBuilderSerializer(many=True)
    builtin_fields = serializers.ListField(child=serializers.ChoiceField(choices=BUILTIN_FIELDS),
                                           help_text="Sample columns a pattern may read besides metadata fields.")
