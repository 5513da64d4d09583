from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField, StrictModelSerializer
from api.serializers.samples import SampleSelectionSerializer
from imagestudio.datasets.models import Tag


class TagSerializer(StrictModelSerializer):
    sample_count = AsciiIntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "name", "sample_count", "created_at"]
        read_only_fields = ["id", "sample_count", "created_at"]
        extra_kwargs = {"name": {"help_text": "Stored after Unicode NFKC, stripped; never all digits (filters take a "
                                              "tag by name or id), never a comma or a control character."}}


class TagApplySerializer(SampleSelectionSerializer):
    pass


class TagApplyResultSerializer(serializers.Serializer):
    changed = AsciiIntegerField(help_text="Samples that gained (or lost) the tag.")


class CommentWriteSerializer(serializers.Serializer):
    body = StrictCharField(max_length=10_000)
