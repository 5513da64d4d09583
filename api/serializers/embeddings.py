from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.embeddings.models import EmbeddingSet, ResourceAllocation

MAX_SEARCH_LIMIT = 1000


class EmbeddingCoverageSerializer(StrictModelSerializer):
    encoder = serializers.ChoiceField(source="encoder.key", choices=ENCODER_KEYS)
    identity = StrictCharField(source="encoder.identity")
    dim = AsciiIntegerField(source="encoder.dim")
    space = serializers.ChoiceField(source="encoder.space", choices=SPACES,
                                    help_text="joint: texts and images; visual: the image network's own features.")
    samples = serializers.SerializerMethodField(help_text="Samples in the dataset.")
    coverage = serializers.SerializerMethodField(help_text="Share of the dataset's samples with a vector.")

    class Meta:
        model = EmbeddingSet
        fields = ["encoder", "identity", "dim", "space", "count", "samples", "coverage", "version", "updated_at"]
        read_only_fields = fields

    def get_samples(self, state) -> int:
        return sum(state.dataset.split_counts.values())

    def get_coverage(self, state) -> float:
        total = self.get_samples(state)
        return round(state.count / total, 6) if total else 0.0


class EmbeddingComputeSerializer(serializers.Serializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS, required=False,
                                      help_text="Defaults to the server's EMBEDDING_DEFAULT_ENCODER.")
    split = serializers.ChoiceField(choices=Split.choices, required=False, help_text="Only this split.")


class BoxField(serializers.ListField):
    child = AsciiIntegerField(min_value=0, max_value=1_000_000)

    def __init__(self, **kwargs):
        super().__init__(min_length=4, max_length=4, **kwargs)


class SimilaritySearchSerializer(serializers.Serializer):
    """Exactly one query: a text, or a dataset image (`sample_id`), optionally cropped by `box`."""

    text = StrictCharField(required=False, max_length=100_000, trim_whitespace=False)
    sample_id = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT)
    box = BoxField(required=False, help_text="[x0, y0, x1, y1] in pixels of the (EXIF-oriented) image.")
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS, required=False)
    split = serializers.ChoiceField(choices=Split.choices, required=False)
    in_sample = serializers.BooleanField(required=False, default=False)
    limit = AsciiIntegerField(required=False, default=50, min_value=1, max_value=MAX_SEARCH_LIMIT)
    space = serializers.ChoiceField(choices=SPACES, required=False,
                                    help_text="Default: joint for a text, visual for an image or a crop.")

    def validate(self, attrs):
        if ("text" in attrs) == ("sample_id" in attrs):
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of 'text' or 'sample_id'."]})
        if "box" in attrs and "sample_id" not in attrs:
            raise serializers.ValidationError({"box": ["A box crops a dataset image: give 'sample_id' too."]})
        return attrs


class SearchHitSerializer(serializers.Serializer):
    sample_id = AsciiIntegerField()
    score = serializers.FloatField()


class SimilaritySearchResultSerializer(serializers.Serializer):
    encoder = StrictCharField(help_text="The vectors' identity.")
    space = serializers.ChoiceField(choices=SPACES)
    truncated = serializers.BooleanField(required=False)
    message = StrictCharField(required=False)
    searched = AsciiIntegerField()
    results = SearchHitSerializer(many=True)


class ResourceSerializer(StrictModelSerializer):
    encoder = StrictCharField(source="encoder.identity")

    class Meta:
        model = ResourceAllocation
        fields = ["id", "encoder", "bytes", "created_at", "last_used_at"]
        read_only_fields = fields


class ResourceAllocateSerializer(serializers.Serializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS, required=False)
