from rest_framework import serializers

from api.serializers.samples import SampleSelectionSerializer
from imagestudio.datasets.models import Tag


class TagSerializer(serializers.ModelSerializer):
    sample_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tag
        fields = ["id", "name", "sample_count", "created_at"]
        read_only_fields = ["id", "sample_count", "created_at"]


class TagApplySerializer(SampleSelectionSerializer):
    pass


class TagApplyResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField(help_text="Samples that gained (or lost) the tag.")


class CommentWriteSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10_000)
