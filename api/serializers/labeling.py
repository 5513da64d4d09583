from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import AsciiIntegerField, NameOrIdField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from api.serializers.polymorphic import PolymorphicSerializer, pascal, pinned, stored, variant_of
from imagestudio.annotations.models import GroundTruthValue
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import SPACES
from imagestudio.labeling.label_choice import CANDIDATES
from imagestudio.labeling.metrics import THRESHOLD_OPERATORS
from imagestudio.labeling.models import LabelingFunction, LFType
from imagestudio.labeling.services import MAX_BINS, MAX_TOP
from imagestudio.training.models import PREDICTION_LABELS

# LF configs: the domain's JSON Schemas (imagestudio.labeling.config_schemas, published at lf-types/) are their one
# definition: validation enforces them (labeling.services.validate_rule) and api.schema.add_lf_configs makes them
# the components named here.
CONFIG_COMPONENTS = {lf_type: f"{pascal(lf_type)}Config" for lf_type in LFType}
ANY_CONFIG = "LFConfig"


def config_field(lf_type=None, **kwargs):
    """`config`, documented as the config of `lf_type` (without one: of any type)."""
    return stored({"$ref": f"#/components/schemas/{CONFIG_COMPONENTS.get(lf_type, ANY_CONFIG)}"}, **kwargs)


def by_type(base, **fields):
    """One variant of `base` per LF type, `type` pinned and `config` typed, as {type: serializer class}."""
    return {lf_type: variant_of(base, f"{pascal(lf_type)}{base.__name__}", type=pinned(lf_type, **fields),
                                config=config_field(lf_type, **fields))
            for lf_type in LFType}


class VoteTotalsSerializer(serializers.Serializer):
    present = AsciiIntegerField()
    absent = AsciiIntegerField()


class LFSerializer(StrictModelSerializer):
    label_class = StrictCharField(source="label_class.name", read_only=True)
    class_id = AsciiIntegerField(source="label_class_id", read_only=True)
    type = serializers.ChoiceField(choices=LFType.choices, read_only=True)
    author = StrictCharField(source="author.username", read_only=True, allow_null=True)
    votes = serializers.SerializerMethodField()

    class Meta:
        model = LabelingFunction
        fields = ["id", "name", "label_class", "class_id", "type", "config", "low", "high", "invert", "active",
                  "version", "encoder", "votes", "votes_updated_at", "refresh_error", "author", "created_at",
                  "updated_at"]
        read_only_fields = fields
        extra_kwargs = {"refresh_error": {"help_text": "Why a refresh could not score it on changed data (its votes "
                                                       "there were withdrawn and abstain); empty when its votes are "
                                                       "current. While it is set, a PATCH, even one that changes "
                                                       "nothing, scores it again on every sample."}}

    @extend_schema_field(VoteTotalsSerializer(help_text="Samples it votes PRESENT and ABSENT on."))
    def get_votes(self, lf):
        return {"present": len(bytes(lf.votes_present)) // 8, "absent": len(bytes(lf.votes_absent)) // 8}


class LFByTypeSerializer(LFSerializer):
    """An LF as answered (rendered by LFSerializer); documented per type with its config typed."""

    component_name = "LF"
    discriminator = "type"
    variants = by_type(LFSerializer, read_only=True)


class RuleSerializer(serializers.Serializer):
    label_class = NameOrIdField(max_length=120, help_text="Class name or id.")
    type = serializers.ChoiceField(choices=LFType.choices)
    config = serializers.DictField()
    low = serializers.FloatField(required=False, allow_null=True, default=None,
                                 help_text="score <= low votes ABSENT (PRESENT when inverted).")
    high = serializers.FloatField(required=False, allow_null=True, default=None,
                                  help_text="score >= high votes PRESENT (ABSENT when inverted).")
    invert = serializers.BooleanField(required=False, default=False)


class LFCreateSerializer(RuleSerializer):
    name = StrictCharField(max_length=200)
    active = serializers.BooleanField(required=False, default=True)


class LFCreateByTypeSerializer(PolymorphicSerializer):
    component_name = "LFCreate"
    discriminator = "type"
    variants = by_type(LFCreateSerializer)
    known_keys_only = True


class LFUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    label_class = NameOrIdField(max_length=120, required=False)
    type = serializers.ChoiceField(choices=LFType.choices, required=False)
    config = config_field(required=False, help_text="The config of the LF's type (of `type` when it changes too).")
    low = serializers.FloatField(required=False, allow_null=True)
    high = serializers.FloatField(required=False, allow_null=True)
    invert = serializers.BooleanField(required=False)
    active = serializers.BooleanField(required=False)
    version = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                       help_text="The version you edited; a newer one on the server is a 409.")


class PreviewSerializer(RuleSerializer):
    """A rule to score; `low` and `high` are optional here (the histogram and the sweep need none)."""

    split = serializers.ChoiceField(choices=Split.choices, required=False, allow_null=True, default=None)
    in_sample = serializers.BooleanField(required=False, default=False, help_text="Only the active resample.")
    bins = AsciiIntegerField(required=False, default=40, min_value=1, max_value=MAX_BINS)
    top = AsciiIntegerField(required=False, default=50, min_value=0, max_value=MAX_TOP,
                                   help_text="How many best-scored samples to return for the grid.")
    min_precision = serializers.FloatField(required=False, default=0.9, min_value=0, max_value=1,
                                           help_text="For the suggested best-recall-at-precision thresholds.")


class PreviewByTypeSerializer(PolymorphicSerializer):
    component_name = "LFPreview"
    discriminator = "type"
    variants = by_type(PreviewSerializer)


class RateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    successes = AsciiIntegerField()
    trials = AsciiIntegerField()
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True,
                                     help_text="Wilson 95% interval.")


class PrecisionRecallSerializer(serializers.Serializer):
    precision = RateSerializer()
    recall = RateSerializer()


class VoteCountsSerializer(serializers.Serializer):
    present = AsciiIntegerField()
    absent = AsciiIntegerField()
    abstain = AsciiIntegerField()


class PreviewMetricsSerializer(serializers.Serializer):
    votes = VoteCountsSerializer()
    coverage = RateSerializer()
    labeled = AsciiIntegerField()
    present = PrecisionRecallSerializer()
    absent = PrecisionRecallSerializer()
    reason = StrictCharField(required=False, help_text="Why rates are null (no ground truth).")


class HistogramCountsSerializer(serializers.Serializer):
    present = serializers.ListField(child=AsciiIntegerField())
    absent = serializers.ListField(child=AsciiIntegerField())
    unlabeled = serializers.ListField(child=AsciiIntegerField())


class HistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField(),
                                  help_text="bins + 1 equal-width edges over the finite scores' range: bin k counts "
                                            "edges[k] <= score < edges[k + 1], the last bin also its right edge.")
    counts = HistogramCountsSerializer()


class SweepSideSerializer(serializers.Serializer):
    """One side's rule with each histogram edge as its threshold: item j of every array is for histogram.edges[j]."""

    operator = serializers.ChoiceField(
        choices=THRESHOLD_OPERATORS, help_text="The rule at edge j: score >= edges[j] (the side `high` sets) or score <= "
                                       "edges[j] (the side `low` sets); PRESENT uses >= unless `invert`.")
    votes = serializers.ListField(child=AsciiIntegerField(),
                                  help_text="Samples of the population the rule votes on at edge j.")
    labeled = serializers.ListField(child=AsciiIntegerField(),
                                    help_text="Of those, the samples with ground truth (PRESENT or ABSENT).")
    correct = serializers.ListField(child=AsciiIntegerField(),
                                    help_text="Of those, the samples whose ground truth is this side.")
    precision = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                      help_text="correct[j] / labeled[j]; null where labeled[j] is 0.")
    recall = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                   help_text="correct[j] / samples of the population whose ground truth is this side; "
                                             "null when there is none.")
    coverage = serializers.ListField(child=serializers.FloatField(allow_null=True),
                                     help_text="votes[j] / population; null when the population is empty. A two-sided "
                                               "rule with low below high covers present.votes + absent.votes at its "
                                               "two edges.")


class SweepSerializer(serializers.Serializer):
    """Exact counts from cumulative bin counts: with a threshold equal to an edge, the point figures (`metrics`)
    are these numbers. Scores without a value (NaN) never vote."""

    present = SweepSideSerializer(help_text="The rule voting PRESENT (`high`, or `low` when inverted).")
    absent = SweepSideSerializer(help_text="The rule voting ABSENT (`low`, or `high` when inverted).")


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
    sample_id = AsciiIntegerField()
    score = serializers.FloatField()
    ground_truth = serializers.ChoiceField(choices=GroundTruthValue.choices)
    vote = serializers.ChoiceField(choices=GroundTruthValue.choices)


class PreviewResultSerializer(serializers.Serializer):
    encoder = StrictCharField(required=False, help_text="Similarity LFs: the vectors' identity.")
    space = serializers.ChoiceField(choices=SPACES, required=False, help_text="Similarity LFs: the space compared.")
    truncated = serializers.BooleanField(required=False)
    message = StrictCharField(required=False)
    not_numbers = AsciiIntegerField(required=False, help_text="Numeric patterns: values of the field that are not "
                                    "numbers (text, booleans), each a miss; as many as the population says the field "
                                    "holds text, not numbers.")
    population = AsciiIntegerField(help_text="Samples of the split (or its resample) the preview covers.")
    unscored = AsciiIntegerField(help_text="Of them, those the rule has no score for (no embedding yet, no value): "
                                           "they abstain, as the saved LF's do.")
    score_range = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    histogram = HistogramSerializer()
    sweep = SweepSerializer(help_text="Both sides' figures at every histogram edge: move thresholds with no request.")
    metrics = PreviewMetricsSerializer(help_text="At the given low / high (every vote abstains when neither is given).")
    suggested = SuggestionsSerializer()
    top = TopSampleSerializer(many=True)
    seconds = serializers.FloatField(help_text="Server-side compute time.")


class SummaryQuerySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False)
    label_class = NameOrIdField(max_length=120, required=False)
    active = serializers.BooleanField(required=False, default=False, help_text="Only active LFs.")


class LearnedConditionalsSerializer(serializers.Serializer):
    p_present_given_present = serializers.FloatField()
    p_absent_given_present = serializers.FloatField()
    p_abstain_given_present = serializers.FloatField()
    p_present_given_absent = serializers.FloatField()
    p_absent_given_absent = serializers.FloatField()
    p_abstain_given_absent = serializers.FloatField()


def learned_by_field(**kwargs):
    return serializers.ChoiceField(
        choices=["em_semi_supervised", "em_unsupervised"],
        help_text="The EM fit whose conditionals these are: semi-supervised where dev labels can score candidates (at "
                  "least 2, of both classes), else unsupervised. "
                  "The training labels come from the class's chosen candidate, which may be another one.", **kwargs)


class SidesSerializer(serializers.Serializer):
    present = serializers.FloatField(allow_null=True, help_text="Null where the LF never votes PRESENT.")
    absent = serializers.FloatField(allow_null=True, help_text="Null where the LF never votes ABSENT.")


class SummaryLearnedSerializer(serializers.Serializer):
    training_set = AsciiIntegerField(help_text="The latest ready training set, whose label model this is.")
    learned_by = learned_by_field(allow_null=True)
    labels_from = serializers.ChoiceField(choices=CANDIDATES, allow_null=True,
                                          help_text="The candidate whose labels that set gives the LF's class.")
    learned = LearnedConditionalsSerializer(help_text="P(vote | class) the model learned.")
    implied_precision = SidesSerializer()
    weight = serializers.FloatField()
    check = serializers.ListField(child=serializers.ChoiceField(choices=["present", "absent"]),
                                  help_text="Sides whose implied precision is outside the LF's dev interval.")
    message = StrictCharField(allow_null=True)


class SummaryRowSerializer(serializers.Serializer):
    lf = AsciiIntegerField()
    name = StrictCharField()
    label_class = StrictCharField()
    type = serializers.ChoiceField(choices=LFType.choices)
    active = serializers.BooleanField()
    polarity = serializers.ListField(child=serializers.ChoiceField(choices=PREDICTION_LABELS),
                                     help_text="The votes it casts on the split.")
    coverage = RateSerializer()
    overlaps = RateSerializer(help_text="Samples it votes on where another active LF of its class votes too.")
    conflicts = RateSerializer(help_text="Samples it votes on where another active LF of its class votes the other way.")
    precision = RateSerializer(help_text="Against ground truth, with its Wilson interval.")
    votes = VoteTotalsSerializer()
    learned = SummaryLearnedSerializer(allow_null=True, help_text="What the label model of the latest ready training "
                                       "set learned of it; null where that set did not read it (built before it, or "
                                       "while it was inactive), read a rule it has been edited away from (class, type, "
                                       "config, thresholds, invert, encoder), or there is none.")


class SummarySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, allow_null=True)
    samples = AsciiIntegerField()
    lfs = SummaryRowSerializer(many=True)


class LFQuerySerializer(serializers.Serializer):
    label_class = NameOrIdField(max_length=120, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)
