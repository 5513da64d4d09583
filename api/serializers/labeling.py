import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.limits import MAX_INT
from api.serializers.embeddings import BoxField
from api.serializers.polymorphic import PolymorphicSerializer, pascal, pinned, variant_of
from imagestudio.annotations.models import GroundTruthValue
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.labeling.models import LabelingFunction, LFType
from imagestudio.labeling.patterns import MAX_FIELD, MAX_PATTERN, MAX_WORD, MAX_WORDS, OPERATORS
from imagestudio.labeling.services import MAX_BINS, MAX_TOP
from imagestudio.training.models import PREDICTION_LABELS

# ---------------------------------------------------------------- LF configs, one shape per type and builder
# They check the shape; the domain (labeling.services.validate_rule) checks the rest against the data and
# normalizes (the sample or model exists, the regex compiles, the field is in the metadata).


class SimilarityConfigSerializer(serializers.Serializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS, required=False,
                                      help_text="Default: the server's EMBEDDING_DEFAULT_ENCODER.")
    space = serializers.ChoiceField(choices=SPACES, required=False,
                                    help_text="The vectors compared: joint (texts and images; the only one for a "
                                              "text) or visual (the image network's own; the default for images).")


class SimilarityTextConfigSerializer(SimilarityConfigSerializer):
    text = serializers.CharField(max_length=10_000, trim_whitespace=False, help_text="What the images should show.")


class SimilarityImageConfigSerializer(SimilarityConfigSerializer):
    sample_id = serializers.IntegerField(min_value=1, max_value=MAX_INT, help_text="A sample of this dataset.")


class SimilarityPatchConfigSerializer(SimilarityImageConfigSerializer):
    box = BoxField(help_text="The patch: [x0, y0, x1, y1] in pixels of the (EXIF-oriented) image.")


class ModelConfigSerializer(serializers.Serializer):
    model_id = serializers.IntegerField(min_value=1, max_value=MAX_INT,
                                        help_text="A trained fast model of this dataset (scores its decision "
                                                  "function for the LF's class).")


class PatternFieldSerializer(serializers.Serializer):
    field = serializers.CharField(max_length=MAX_FIELD, help_text="The metadata field the pattern reads.")


class KeywordPatternSerializer(PatternFieldSerializer):
    builder = pinned("keyword")
    words = serializers.ListField(child=serializers.CharField(max_length=MAX_WORD), min_length=1,
                                  max_length=MAX_WORDS)
    mode = serializers.ChoiceField(choices=["any", "all"], required=False, help_text="Any word (default) or all.")
    case_sensitive = serializers.BooleanField(required=False, help_text="Default false.")
    whole_word = serializers.BooleanField(required=False, help_text="Default true.")


class RegexPatternSerializer(PatternFieldSerializer):
    builder = pinned("regex")
    pattern = serializers.CharField(max_length=MAX_PATTERN, trim_whitespace=False)
    case_sensitive = serializers.BooleanField(required=False, help_text="Default false.")


@extend_schema_field({"oneOf": [{"type": "number"},
                                {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}]})
class ComparedValueField(serializers.Field):
    """A number, or [low, high] for `between`."""

    def to_internal_value(self, data):
        numbers = data if isinstance(data, list) else [data]
        if not 1 <= len(numbers) <= 2 or not all(
                isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n) for n in numbers):
            raise serializers.ValidationError("A finite number, or [low, high] for between.")
        return data

    def to_representation(self, value):
        return value


class NumericPatternSerializer(PatternFieldSerializer):
    builder = pinned("numeric", help_text="Compares the field's value as a number.")
    op = serializers.ChoiceField(choices=OPERATORS)
    value = ComparedValueField()


class LengthPatternSerializer(NumericPatternSerializer):
    builder = pinned("length", help_text="Compares the length of the field's text.")


class EmptyPatternSerializer(PatternFieldSerializer):
    builder = pinned("empty", help_text="Matches a missing or empty field.")


class PatternConfigSerializer(PolymorphicSerializer):
    discriminator = "builder"
    variants = {"keyword": KeywordPatternSerializer, "regex": RegexPatternSerializer,
                "numeric": NumericPatternSerializer, "length": LengthPatternSerializer,
                "empty": EmptyPatternSerializer}


CONFIGS = {LFType.SIMILARITY_TEXT: SimilarityTextConfigSerializer,
           LFType.SIMILARITY_IMAGE: SimilarityImageConfigSerializer,
           LFType.SIMILARITY_PATCH: SimilarityPatchConfigSerializer, LFType.MODEL: ModelConfigSerializer,
           LFType.PATTERN: PatternConfigSerializer}


class LFConfigSerializer(PolymorphicSerializer):
    """Any LF config; its `type`, beside it, says which."""

    variants = CONFIGS


def config_validated(lf_type, config):
    """`config` checked against the shape of `lf_type`'s configs (a 400 on `config` otherwise)."""
    serializer = CONFIGS[lf_type](data=config)
    if not serializer.is_valid():
        raise serializers.ValidationError({"config": serializer.errors})
    return dict(serializer.validated_data)


def by_type(base, **fields):
    """One variant of `base` per LF type, `type` pinned and `config` typed, as {type: serializer class}."""
    name = base.__name__
    return {lf_type: variant_of(base, f"{pascal(lf_type)}{name}", type=pinned(lf_type, **fields),
                                config=CONFIGS[lf_type](**fields))
            for lf_type in LFType}


class VoteTotalsSerializer(serializers.Serializer):
    present = serializers.IntegerField()
    absent = serializers.IntegerField()


class LFSerializer(serializers.ModelSerializer):
    label_class = serializers.CharField(source="label_class.name", read_only=True)
    class_id = serializers.IntegerField(source="label_class_id", read_only=True)
    type = serializers.ChoiceField(choices=LFType.choices, read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    votes = serializers.SerializerMethodField()

    class Meta:
        model = LabelingFunction
        fields = ["id", "name", "label_class", "class_id", "type", "config", "low", "high", "invert", "active",
                  "version", "encoder", "votes", "votes_updated_at", "author", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(VoteTotalsSerializer(help_text="Samples it votes PRESENT and ABSENT on."))
    def get_votes(self, lf):
        return {"present": len(bytes(lf.votes_present)) // 8, "absent": len(bytes(lf.votes_absent)) // 8}


class LFByTypeSerializer(LFSerializer):
    """An LF as answered (rendered by LFSerializer); documented per type with its config typed."""

    component_name = "LF"
    discriminator = "type"
    variants = by_type(LFSerializer, read_only=True)


class RuleSerializer(serializers.Serializer):
    label_class = serializers.CharField(max_length=120, help_text="Class name or id.")
    type = serializers.ChoiceField(choices=LFType.choices)
    config = serializers.DictField()
    low = serializers.FloatField(required=False, allow_null=True, default=None,
                                 help_text="score <= low votes ABSENT (PRESENT when inverted).")
    high = serializers.FloatField(required=False, allow_null=True, default=None,
                                  help_text="score >= high votes PRESENT (ABSENT when inverted).")
    invert = serializers.BooleanField(required=False, default=False)


class LFCreateSerializer(RuleSerializer):
    name = serializers.CharField(max_length=200)
    active = serializers.BooleanField(required=False, default=True)


class LFCreateByTypeSerializer(PolymorphicSerializer):
    component_name = "LFCreate"
    discriminator = "type"
    variants = by_type(LFCreateSerializer)


@extend_schema_field(LFConfigSerializer)
class LFConfigField(serializers.DictField):
    """Any LF config (what its shape must be depends on the LF's type: see LFUpdateSerializer.validate)."""


class LFUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    label_class = serializers.CharField(max_length=120, required=False)
    type = serializers.ChoiceField(choices=LFType.choices, required=False)
    config = LFConfigField(required=False, help_text="The config of the LF's type (of `type` when it changes too).")
    low = serializers.FloatField(required=False, allow_null=True)
    high = serializers.FloatField(required=False, allow_null=True)
    invert = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)
    version = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT,
                                       help_text="The version you edited; a newer one on the server is a 409.")

    def validate(self, attrs):
        """The config against the shape of the LF's type (context `lf_type`), or of the new `type`."""
        if "config" in attrs:
            attrs["config"] = config_validated(attrs.get("type", self.context["lf_type"]), attrs["config"])
        return attrs


class PreviewSerializer(RuleSerializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False, allow_null=True, default=None)
    in_sample = serializers.BooleanField(required=False, default=False, help_text="Only the active resample.")
    bins = serializers.IntegerField(required=False, default=40, min_value=1, max_value=MAX_BINS)
    top = serializers.IntegerField(required=False, default=50, min_value=0, max_value=MAX_TOP,
                                   help_text="How many best-scored samples to return for the grid.")
    min_precision = serializers.FloatField(required=False, default=0.9, min_value=0, max_value=1,
                                           help_text="For the suggested best-recall-at-precision thresholds.")


class PreviewByTypeSerializer(PolymorphicSerializer):
    component_name = "LFPreview"
    discriminator = "type"
    variants = by_type(PreviewSerializer)


class RateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    successes = serializers.IntegerField()
    trials = serializers.IntegerField()
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="Wilson 95% interval.")


class PrecisionRecallSerializer(serializers.Serializer):
    precision = RateSerializer()
    recall = RateSerializer()


class VoteCountsSerializer(serializers.Serializer):
    present = serializers.IntegerField()
    absent = serializers.IntegerField()
    abstain = serializers.IntegerField()


class PreviewMetricsSerializer(serializers.Serializer):
    votes = VoteCountsSerializer()
    coverage = RateSerializer()
    labeled = serializers.IntegerField()
    present = PrecisionRecallSerializer()
    absent = PrecisionRecallSerializer()
    reason = serializers.CharField(required=False, help_text="Why rates are null (no ground truth).")


class HistogramCountsSerializer(serializers.Serializer):
    present = serializers.ListField(child=serializers.IntegerField())
    absent = serializers.ListField(child=serializers.IntegerField())
    unlabeled = serializers.ListField(child=serializers.IntegerField())


class HistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField())
    counts = HistogramCountsSerializer()


class CutSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    precision = serializers.FloatField()
    recall = serializers.FloatField()
    f1 = serializers.FloatField()


class SideSuggestionSerializer(serializers.Serializer):
    best_f1 = CutSerializer(allow_null=True)
    best_recall_at_precision = CutSerializer(allow_null=True)


class SuggestionsSerializer(serializers.Serializer):
    high = SideSuggestionSerializer()
    low = SideSuggestionSerializer()
    min_precision = serializers.FloatField()


class TopSampleSerializer(serializers.Serializer):
    sample_id = serializers.IntegerField()
    score = serializers.FloatField()
    ground_truth = serializers.ChoiceField(choices=GroundTruthValue.choices)
    vote = serializers.ChoiceField(choices=GroundTruthValue.choices)


class PreviewResultSerializer(serializers.Serializer):
    encoder = serializers.CharField(required=False, help_text="Similarity LFs: the vectors' identity.")
    space = serializers.ChoiceField(choices=SPACES, required=False, help_text="Similarity LFs: the space compared.")
    truncated = serializers.BooleanField(required=False)
    message = serializers.CharField(required=False)
    population = serializers.IntegerField(help_text="Samples scored.")
    score_range = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    histogram = HistogramSerializer()
    metrics = PreviewMetricsSerializer()
    suggested = SuggestionsSerializer()
    top = TopSampleSerializer(many=True)
    seconds = serializers.FloatField(help_text="Server-side compute time.")


class SummaryQuerySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False)
    label_class = serializers.CharField(max_length=120, required=False)
    active = serializers.BooleanField(required=False, default=False, help_text="Only active LFs.")


class SummaryRowSerializer(serializers.Serializer):
    lf = serializers.IntegerField()
    name = serializers.CharField()
    label_class = serializers.CharField()
    type = serializers.ChoiceField(choices=LFType.choices)
    active = serializers.BooleanField()
    polarity = serializers.ListField(child=serializers.ChoiceField(choices=PREDICTION_LABELS),
                                     help_text="The votes it casts on the split.")
    coverage = RateSerializer()
    overlaps = RateSerializer()
    conflicts = RateSerializer()
    precision = RateSerializer(help_text="Against ground truth, with its Wilson interval.")
    votes = VoteTotalsSerializer()


class SummarySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, allow_null=True)
    samples = serializers.IntegerField()
    lfs = SummaryRowSerializer(many=True)


class LFQuerySerializer(serializers.Serializer):
    label_class = serializers.CharField(max_length=120, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
