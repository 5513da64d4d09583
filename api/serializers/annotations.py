from rest_framework import serializers

from api.fields import AsciiIntegerField, NameOrIdField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from api.serializers.samples import SampleSelectionSerializer
from imagestudio.annotations.models import Annotation, AnnotationEvent, AnnotationSource, GroundTruthValue

MAX_BULK_CLASSES = 100


class ClassRefField(NameOrIdField):
    """A class of the dataset, by name or id (resolved by the view, so unknown classes are a 400)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=120, **kwargs)


class AnnotationSerializer(StrictModelSerializer):
    # null for a label never set (PUT ABSTAIN on it answers version 0 and no row)
    id = AsciiIntegerField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    sample = AsciiIntegerField(source="sample_id", read_only=True)
    class_id = AsciiIntegerField(source="label_class_id", read_only=True)
    class_name = StrictCharField(source="label_class.name", read_only=True)
    value = serializers.ChoiceField(choices=GroundTruthValue.choices, read_only=True)
    updated_by = StrictCharField(source="updated_by.username", read_only=True, allow_null=True)

    class Meta:
        model = Annotation
        fields = ["id", "sample", "class_id", "class_name", "value", "version", "updated_by", "updated_at"]
        read_only_fields = fields


class AnnotationQuerySerializer(serializers.Serializer):
    sample = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT)
    label_class = ClassRefField(required=False, help_text="Class name or id.")
    value = serializers.ChoiceField(
        choices=GroundTruthValue.choices, required=False,
        help_text="PRESENT or ABSENT: the current labels. ABSTAIN: the pairs labeled once and cleared since.")


class AnnotationWriteSerializer(serializers.Serializer):
    sample = AsciiIntegerField(min_value=1, max_value=MAX_INT)
    label_class = ClassRefField(help_text="Class name or id.")
    value = serializers.ChoiceField(choices=GroundTruthValue.choices, help_text="ABSTAIN clears the label.")
    version = AsciiIntegerField(
        required=False, min_value=0,
        help_text="The version you last saw (0: never labeled). A mismatch is a 409. The If-Match header works too.",
    )


class AnnotationWriteResultSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    annotation = AnnotationSerializer()


class BulkAnnotationSerializer(SampleSelectionSerializer):
    classes = serializers.ListField(child=ClassRefField(), min_length=1, max_length=MAX_BULK_CLASSES,
                                    help_text="Class names or ids.")
    value = serializers.ChoiceField(choices=GroundTruthValue.choices)


class BulkResultSerializer(serializers.Serializer):
    samples = AsciiIntegerField()
    changed = AsciiIntegerField(help_text="(sample, class) pairs whose value changed.")
    unchanged = AsciiIntegerField()
    batch = serializers.UUIDField(allow_null=True, help_text="The bulk action's id (undo reverts it).")


class UndoResultSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    reverted = AsciiIntegerField()
    skipped = AsciiIntegerField(help_text="Labels changed again since, left as they are.")


class AnnotationEventSerializer(StrictModelSerializer):
    sample = AsciiIntegerField(source="sample_id", read_only=True)
    class_id = AsciiIntegerField(source="label_class_id", read_only=True)
    class_name = StrictCharField(source="label_class.name", read_only=True)
    user = StrictCharField(source="user.username", read_only=True, allow_null=True)
    old_value = serializers.ChoiceField(choices=GroundTruthValue.choices, read_only=True)
    new_value = serializers.ChoiceField(choices=GroundTruthValue.choices, read_only=True)
    source = serializers.ChoiceField(choices=AnnotationSource.choices, read_only=True)
    batch = serializers.UUIDField(source="batch_id", read_only=True, allow_null=True)

    class Meta:
        model = AnnotationEvent
        fields = ["id", "sample", "class_id", "class_name", "old_value", "new_value", "user", "source", "batch",
                  "created_at"]
        read_only_fields = fields


class HistoryQuerySerializer(serializers.Serializer):
    sample = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT)
    label_class = ClassRefField(required=False)
    user = StrictCharField(required=False, max_length=150, help_text="Username.")
    source = serializers.ChoiceField(choices=AnnotationSource.choices, required=False)
    batch = serializers.UUIDField(required=False)
