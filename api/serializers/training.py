from typing import Literal

from rest_framework import serializers

from api.fields import AsciiIntegerField, NameOrIdField, StrictCharField, StrictModelSerializer
from api.limits import MAX_INT
from api.serializers.labeling import SummaryRowSerializer
from api.serializers.polymorphic import stored
from api.serializers.reports import (
    ClassLabelReportSerializer,
    EvaluationSerializer,
    ModelMetricsField,
    ModelParamsSerializer,
    SnapshotSerializer,
    TrainingSetReportField,
)
from imagestudio.annotations.models import GroundTruthValue
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.training.analysis import GUIDANCE_KINDS
from imagestudio.training.models import PREDICTION_LABELS, FastModel, TrainingSet
from imagestudio.training.selectors import model_staleness, product_status, training_set_staleness

ProductStatus = Literal["ready", "queued", "running", "failed", "cancelled"]


class ProductStatusMixin(serializers.Serializer):
    """What a client needs to tell a product being made from a failed one."""

    status = serializers.SerializerMethodField(help_text="ready, or the status of the job making it.")
    error = serializers.SerializerMethodField(help_text="The job's error when it failed, else empty.")

    def get_status(self, record) -> ProductStatus:
        return product_status(record)

    def get_error(self, record) -> str:
        return record.job.error if record.job_id and not record.ready else ""


class StalenessMixin(serializers.Serializer):
    """Whether the inputs changed since the product was built, and how (the current inputs are read once per
    response and shared by its items)."""

    stale = serializers.SerializerMethodField(help_text="The inputs changed since it was built: rebuild it.")
    stale_reasons = serializers.SerializerMethodField()

    def _reasons(self, record):
        cache = self.context.setdefault("staleness", {})
        if ("record", record.pk, type(record).__name__) not in cache:
            current = cache.setdefault("current", {})
            cache[("record", record.pk, type(record).__name__)] = (
                training_set_staleness(record, current) if isinstance(record, TrainingSet) and record.ready
                else model_staleness(record, current) if isinstance(record, FastModel) else [])
        return cache[("record", record.pk, type(record).__name__)]

    def get_stale(self, record) -> bool:
        return bool(self._reasons(record))

    def get_stale_reasons(self, record) -> list[str]:
        return self._reasons(record)


class TrainingSetSerializer(ProductStatusMixin, StalenessMixin, StrictModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    snapshot = stored(SnapshotSerializer, read_only=True)
    report = stored(TrainingSetReportField(), read_only=True)
    content_hash = StrictCharField(read_only=True, help_text=(
        "The sha256 of its inputs; `pending-...` for a set asked for while the LF votes were being refreshed, "
        "until its job reads them (then its job may answer an existing set of the same inputs: see the job's "
        "`result.reused`)."))
    requested_at = serializers.DateTimeField(read_only=True, help_text=(
        "When a request last asked for its inputs (built, or answered by POST training-sets/): the ready set "
        "asked for last is the dataset's latest, which models, analysis and exports default to."))

    class Meta:
        model = TrainingSet
        fields = ["id", "content_hash", "snapshot", "report", "samples", "ready", "status", "error", "stale",
                  "stale_reasons", "job", "created_at", "requested_at"]
        read_only_fields = fields


class TrainingSetCreateSerializer(serializers.Serializer):
    splits = serializers.ListField(child=serializers.ChoiceField(choices=Split.choices), required=False,
                                   min_length=1, help_text="Samples of these splits (default all).")
    seed = AsciiIntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)


class TrainingLabelQuerySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, required=False,
                                    help_text="The samples the set holds in this split (as it was built).")


class ClassLabelSerializer(serializers.Serializer):
    probability = serializers.FloatField(allow_null=True, help_text="Calibrated P(PRESENT); where the chosen label "
                                                                    "model gives no label, its estimate for such "
                                                                    "samples.")
    label = serializers.ChoiceField(choices=GroundTruthValue.choices,
                                    help_text="PRESENT / ABSENT from the chosen label model; where it gives none (no LF "
                                              "voted, or a tie), the side of that estimate when dev labels calibrated "
                                              "it, else ABSTAIN (also at exactly 0.5).")
    provenance = serializers.DictField(child=serializers.ChoiceField(choices=PREDICTION_LABELS),
                                       help_text="LF id -> its vote (LFs that abstained are left out).")


class TrainingLabelSerializer(serializers.Serializer):
    sample_id = AsciiIntegerField()
    split = serializers.ChoiceField(choices=Split.choices,
                                    help_text="The sample's split when the set was built (its snapshot; a move since "
                                              "makes the set stale). A `training_labels` export writes the split now.")
    classes = serializers.DictField(child=ClassLabelSerializer(), help_text="Class name -> its training label.")


class FastModelSerializer(ProductStatusMixin, StalenessMixin, StrictModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    training_set = AsciiIntegerField(source="training_set_id", read_only=True, allow_null=True)
    params = stored(ModelParamsSerializer, read_only=True)
    metrics = stored(ModelMetricsField(), read_only=True)

    class Meta:
        model = FastModel
        fields = ["id", "version", "label_source", "training_set", "params", "metrics", "ready", "status", "error",
                  "stale", "stale_reasons", "job", "created_at"]
        read_only_fields = fields


class FastModelCreateSerializer(serializers.Serializer):
    label_source = serializers.ChoiceField(choices=FastModel.LabelSource.choices, required=False,
                                           default=FastModel.LabelSource.TRAINING_SET)
    training_set = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                            help_text="Default: the latest ready training set (the ready one "
                                                      "last asked for: built, or answered by POST training-sets/).")
    ground_truth_splits = serializers.ListField(child=serializers.ChoiceField(choices=Split.choices), required=False,
                                                default=lambda: [Split.TRAIN], min_length=1,
                                                help_text="ground_truth models: the splits whose labels it learns from "
                                                          "(not valid, where it is measured).")
    classes = serializers.ListField(child=NameOrIdField(max_length=120), required=False, min_length=1,
                                    help_text="Class names or ids (default all).")
    negative_ratio = serializers.FloatField(required=False, allow_null=True, default=None,
                                            help_text="At most this many negatives per positive (sampled).")
    seed = AsciiIntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS, required=False)
    space = serializers.ChoiceField(choices=SPACES, required=False, default="visual",
                                    help_text="Features to train on: the image network's own (visual, default) or the "
                                              "joint text-image space.")


class PredictionSerializer(serializers.Serializer):
    model = AsciiIntegerField(help_text="The fast model that made the prediction.")
    sample_id = AsciiIntegerField()
    label_class = StrictCharField()
    score = serializers.FloatField(help_text="Decision function.")
    probability = serializers.FloatField()
    label = serializers.ChoiceField(choices=PREDICTION_LABELS, help_text="PRESENT when the score is 0 or more.")


class PredictionQuerySerializer(serializers.Serializer):
    label_class = StrictCharField(max_length=120, required=False)
    sample = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT)


class AnalysisQuerySerializer(serializers.Serializer):
    label_class = StrictCharField(max_length=120, required=False)
    split = serializers.ChoiceField(choices=Split.choices, required=False, default=Split.TRAIN,
                                    help_text="Where LF coverage, conflicts and the next samples are computed.")
    model = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                              help_text="A ready model's id: its metrics and guidance for the classes it was trained "
                                        "for (null for the others). Default: each class's latest ready model.")
    training_set = AsciiIntegerField(required=False, min_value=1, max_value=MAX_INT,
                                     help_text="A ready training set's id: its label-model reports and what it "
                                               "learned of each LF. Default: the latest ready set.")


class GuidanceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=GUIDANCE_KINDS)
    message = StrictCharField()
    samples = StrictCharField(help_text="The samples-list URL that shows the cases.")


class NextSampleSerializer(serializers.Serializer):
    sample_id = AsciiIntegerField()
    priority = serializers.FloatField()
    reasons = serializers.ListField(child=StrictCharField())


class ClassLFStatsSerializer(serializers.Serializer):
    active = AsciiIntegerField(help_text="Active LFs of the class.")
    coverage = serializers.FloatField(help_text="Share of the split they vote on.")
    conflicts = serializers.FloatField(help_text="Share of the split they disagree on.")
    per_lf = SummaryRowSerializer(many=True)


class ClassModelSerializer(serializers.Serializer):
    id = AsciiIntegerField()
    version = AsciiIntegerField()
    valid = EvaluationSerializer(allow_null=True, help_text="Its metrics on the samples in valid now, against their "
                                 "ground truth now (the model's stored metrics are as of its training).")
    learned = AsciiIntegerField(help_text="Samples in valid now left out of `valid`: the model learned the class from "
                                          "them in another split, and they moved since (their scores are in-sample).")


class ClassAnalysisSerializer(serializers.Serializer):
    label_class = StrictCharField()
    lfs = ClassLFStatsSerializer()
    label_model = ClassLabelReportSerializer(allow_null=True, help_text="The latest training set's report of the "
                                             "class: the chosen candidate and why, every candidate's accuracy, F1, "
                                             "Brier score and counts on dev (out-of-fold) and valid, calibration, "
                                             "per-LF diagnostics.")
    model = ClassModelSerializer(allow_null=True, help_text="The latest model trained for the class.")
    valid_labels = AsciiIntegerField()
    guidance = GuidanceSerializer(many=True)
    next_to_annotate = NextSampleSerializer(many=True)


class AnalysisSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices)
    training_set = AsciiIntegerField(allow_null=True)
    training_set_stale_reasons = serializers.ListField(
        child=StrictCharField(),
        help_text="Why that training set no longer matches its inputs (empty: it is current). Each class's "
                  "`label_model` is its report as built; `model.valid` is measured now.")
    model = AsciiIntegerField(allow_null=True)
    classes = ClassAnalysisSerializer(many=True)
