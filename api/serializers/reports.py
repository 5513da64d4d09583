"""The typed shapes of what jobs write and the API hands back as stored: job params and results per kind, model
params and metrics, label-model reports, training-set snapshots. They document JSON the domain builds (rendered
as stored); tests/conformance.py holds every answer of the test suite to them, so they cannot drift."""

from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField
from api.serializers.charts import CalibrationSerializer, ConfusionSerializer
from api.serializers.labeling import (
    LearnedConditionalsSerializer,
    PrecisionRecallSerializer,
    RateSerializer,
    SidesSerializer,
    by_type,
    config_field,
    learned_by_field,
)
from imagestudio.datasets.imports import DuplicatePolicy
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.exports.services import SAMPLE_COLUMNS
from imagestudio.labeling.label_choice import CANDIDATES
from imagestudio.labeling.models import LFType
from imagestudio.training.fitting import TARGET_KINDS

SPLITS = Split.choices


class JobRecordSerializer(serializers.Serializer):
    """A job's params or result. A result is empty until the job succeeds (then complete), and a job row made
    by hand (a script, a test) may lack params: no field is required."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
        return fields


class FreeFormObjectField(serializers.DictField):
    """Free-form by nature (metadata a user wrote)."""


# ---------------------------------------------------------------- imports


class StagedFileSerializer(serializers.Serializer):
    key = StrictCharField(help_text="Where the upload waits in storage until the job reads it.")
    name = StrictCharField(help_text="The uploaded file's name.")


class ImportParamsSerializer(JobRecordSerializer):
    source = serializers.ChoiceField(choices=["upload", "archive", "server"])
    split = serializers.ChoiceField(choices=SPLITS)
    duplicates = serializers.ChoiceField(choices=[policy.value for policy in DuplicatePolicy])
    files = StagedFileSerializer(many=True, required=False, help_text="source upload.")
    metadata = serializers.DictField(child=FreeFormObjectField(), required=False,
                                     help_text="source upload: file name -> its metadata.")
    archive = StagedFileSerializer(required=False, help_text="source archive.")
    manifest = StagedFileSerializer(required=False)
    path = StrictCharField(required=False, help_text="source server: below the server's import root.")


class ImportedFileSerializer(serializers.Serializer):
    file = StrictCharField()
    sample_id = AsciiIntegerField(help_text="The sample created, or the stored twin of a duplicate.")
    reason = StrictCharField()


class DuplicateFileSerializer(ImportedFileSerializer):
    conflict = StrictCharField(required=False, help_text="How it differs from its twin.")
    merged = serializers.ListField(child=StrictCharField(), required=False,
                                   help_text="What it added to its twin (duplicates=merge).")


class RefusedFileSerializer(serializers.Serializer):
    file = StrictCharField()
    reason = StrictCharField()
    conflict = StrictCharField(required=False)


class ImportResultSerializer(JobRecordSerializer):
    total = AsciiIntegerField(help_text="Files in the request (archive members, manifest rows).")
    created = AsciiIntegerField(help_text="New samples (stripped ones included).")
    duplicates = AsciiIntegerField()
    errors = AsciiIntegerField(help_text="Refused files.")
    skipped = AsciiIntegerField(required=False, help_text="Archive or directory members its manifest does not list "
                                                          "(not imported, not errors).")
    cancelled = AsciiIntegerField(required=False, help_text="Files a cancelled import did not reach (not imported); "
                                                            "the samples it stored before stay, and are counted.")
    annotations = AsciiIntegerField(help_text="Ground-truth labels written.")
    stripped = AsciiIntegerField(help_text="New samples whose data after the image was cut off.")
    conflicts = AsciiIntegerField(help_text="Duplicates whose split, metadata or labels differ.")
    merged = AsciiIntegerField()
    duplicate_files = DuplicateFileSerializer(many=True)
    error_files = RefusedFileSerializer(many=True)
    stripped_files = ImportedFileSerializer(many=True)
    skipped_files = RefusedFileSerializer(many=True, required=False)
    truncated = serializers.BooleanField(help_text="The lists hold the first 1,000 entries: see `report_file`.")
    report_file = StrictCharField(help_text="The complete per-file report (GET jobs/{job_id}/report/).")
    duplicate_policy = serializers.ChoiceField(choices=[policy.value for policy in DuplicatePolicy])
    seconds = serializers.FloatField()
    auto_embed_job = serializers.UUIDField(help_text="The embeddings job it started (auto_embed datasets).")
    lf_refresh_job = serializers.UUIDField(help_text="The job refreshing the LF votes on the new samples.")


# ---------------------------------------------------------------- embeddings


class EmbeddingsParamsSerializer(JobRecordSerializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    split = serializers.ChoiceField(choices=SPLITS, allow_null=True, help_text="Null: every split.")
    source = StrictCharField(help_text="`command line` when started by `manage.py embed_dataset`.")


class SpaceVectorsSerializer(serializers.Serializer):
    identity = StrictCharField()
    dim = AsciiIntegerField()
    computed = AsciiIntegerField()


class SpacesVectorsSerializer(serializers.Serializer):
    joint = SpaceVectorsSerializer(required=False)
    visual = SpaceVectorsSerializer(required=False)


class EmbeddingFailureSerializer(serializers.Serializer):
    sample_id = AsciiIntegerField()
    reason = StrictCharField()


class EmbeddingsResultSerializer(JobRecordSerializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    identity = StrictCharField(help_text="The joint space's vectors.")
    dim = AsciiIntegerField()
    spaces = SpacesVectorsSerializer(help_text="Per space the encoder stores.")
    device = StrictCharField()
    missing_before = AsciiIntegerField()
    computed = AsciiIntegerField()
    failed = AsciiIntegerField()
    failures = EmbeddingFailureSerializer(many=True, help_text="The first 1,000.")
    seconds = serializers.FloatField()
    images_per_second = serializers.FloatField(allow_null=True)


# ---------------------------------------------------------------- LF votes


class LFRefreshSerializer(serializers.Serializer):
    present = AsciiIntegerField()
    absent = AsciiIntegerField()
    scored = AsciiIntegerField()
    rows_deleted = AsciiIntegerField()
    rows_written = AsciiIntegerField()


class LFVotesParamsSerializer(JobRecordSerializer):
    sample_ids = serializers.ListField(child=AsciiIntegerField(), allow_null=True, required=False, help_text=(
        "The samples whose metadata changed, when only they need their pattern LFs re-applied; null or absent: "
        "every LF over every sample."))


class LFVotesResultSerializer(JobRecordSerializer):
    refreshed = serializers.DictField(child=LFRefreshSerializer(), help_text="LF id -> its new votes.")
    failed = serializers.DictField(child=StrictCharField(), help_text="LF id -> why it could not vote.")
    samples = AsciiIntegerField(allow_null=True, required=False,
                                help_text="How many samples were re-scored; null: all of them.")


# ---------------------------------------------------------------- label-model reports


class ScoresSerializer(ConfusionSerializer):
    accuracy = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True, help_text="PRESENT positive.")
    brier = serializers.FloatField(allow_null=True)
    scored = AsciiIntegerField()


class CandidateScoresSerializer(serializers.Serializer):
    dev = ScoresSerializer(help_text="Out-of-fold on the labeled dev samples (how candidates are chosen).")
    valid = ScoresSerializer(help_text="Refit on all dev labels, on the labeled valid samples.")


CandidatesSerializer = type("CandidatesSerializer", (serializers.Serializer,), {
    "__module__": __name__, **{name: CandidateScoresSerializer() for name in CANDIDATES}})


class CalibrationMapSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=["platt"])
    slope = serializers.FloatField(help_text="a of sigmoid(a logit(p) + b); 1 with b = 0 is the identity.")
    intercept = serializers.FloatField(help_text="b of sigmoid(a logit(p) + b).")
    label_less_probability = serializers.FloatField(
        allow_null=True, help_text="The probability of samples without a label (a tie, or no information).")
    fitted_on = AsciiIntegerField(help_text="Labeled dev samples the map was fitted on (0: the identity).")
    recurring_values = AsciiIntegerField(help_text="Probability values that recur on dev and take their own dev "
                                                   "frequency (e.g. majority vote's vote shares).")


class DevValidCalibrationSerializer(serializers.Serializer):
    dev = CalibrationSerializer(allow_null=True, help_text="The chosen candidate's out-of-fold dev probabilities.")
    valid = CalibrationSerializer()
    map = CalibrationMapSerializer(required=False, help_text="How the chosen candidate's probabilities were "
                                                             "calibrated; no label moves (absent in reports "
                                                             "built before it existed).")


class SidesQualitySerializer(serializers.Serializer):
    present = PrecisionRecallSerializer()
    absent = PrecisionRecallSerializer()


class LFDiagnosticsSerializer(serializers.Serializer):
    lf = AsciiIntegerField()
    name = StrictCharField()
    learned_by = learned_by_field(required=False)
    learned = LearnedConditionalsSerializer(help_text="P(vote | class) the model learned.")
    implied_precision = SidesSerializer()
    dev = SidesQualitySerializer(help_text="Precision and recall of its votes on dev.")
    dependence_group = serializers.ListField(child=AsciiIntegerField(),
                                             help_text="LFs the model treats as one source with it.")
    weight = serializers.FloatField()
    check = serializers.ListField(child=serializers.ChoiceField(choices=["present", "absent"]),
                                  help_text="Sides whose implied precision is outside the dev interval.")
    message = StrictCharField(allow_null=True)
    ground_truth_precision = RateSerializer()


class ClassLabelReportSerializer(serializers.Serializer):
    """One class's label model: the chosen candidate and why, every candidate's figures, calibration, per LF. A
    class without active LFs has none (`chosen` null): its samples abstain."""

    class_id = AsciiIntegerField()
    chosen = serializers.ChoiceField(choices=CANDIDATES, allow_null=True)
    reason = StrictCharField()
    candidates = CandidatesSerializer(required=False)
    calibration = DevValidCalibrationSerializer(required=False)
    dependent_groups = serializers.ListField(child=serializers.ListField(child=AsciiIntegerField()),
                                             required=False)
    lfs = LFDiagnosticsSerializer(many=True, required=False)
    covered = AsciiIntegerField(help_text="Samples with a training label.")
    present = AsciiIntegerField()
    absent = AsciiIntegerField()


class TrainingSetReportField(serializers.DictField):
    child = ClassLabelReportSerializer()

    def __init__(self, **kwargs):
        super().__init__(help_text="Class name -> its label-model report.", **kwargs)


# `class` is the stored key, and no Python name
SnapshotLFSerializer = type("SnapshotLFSerializer", (serializers.Serializer,), {
    "__module__": __name__, "__doc__": "An LF as the training set read it.",
    "id": AsciiIntegerField(), "class_id": AsciiIntegerField(),
    "class": StrictCharField(help_text="The class's name."),
    "type": serializers.ChoiceField(choices=LFType.choices), "config": config_field(),
    "low": serializers.FloatField(allow_null=True), "high": serializers.FloatField(allow_null=True),
    "invert": serializers.BooleanField(), "encoder": StrictCharField(), "votes_sha256": StrictCharField(),
})


class SnapshotLFByTypeSerializer(SnapshotLFSerializer):
    """A snapshot LF as answered (rendered by SnapshotLFSerializer); documented per type with its config typed, so
    a generated client reads each config as its type's (an untagged union parsed a patch's box as extra keys)."""

    component_name = "SnapshotLF"
    discriminator = "type"
    variants = by_type(SnapshotLFSerializer)


class SnapshotSerializer(serializers.Serializer):
    """What a training set was built from: the active LFs and the samples of its splits."""

    lfs = SnapshotLFByTypeSerializer(many=True)
    splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    seed = AsciiIntegerField()
    samples = AsciiIntegerField()
    samples_sha256 = StrictCharField()
    dev_labels_sha256 = StrictCharField(
        allow_null=True, help_text="A digest of the dev labels its label model learns from, whichever splits it "
                                   "labels; null in a set built without dev before sets of such splits learned from "
                                   "them (it reads stale).")
    dev_samples_sha256 = StrictCharField(
        required=False, help_text="Where dev is not among its splits: a digest of the dev samples its label model reads "
                                  "besides them (labeled and not).")
    measured_labels_sha256 = serializers.DictField(
        child=StrictCharField(), required=False,
        help_text="Per split of the set other than dev: a digest of its ground truth, which the report measures on.")
    labels_classes = serializers.ListField(
        child=AsciiIntegerField(), required=False,
        help_text="Ids of the classes whose ground truth the digests cover (those of its LFs); absent: every class.")


class TrainingSetParamsSerializer(JobRecordSerializer):
    training_set = AsciiIntegerField()


class TrainingSetResultSerializer(JobRecordSerializer):
    training_set = AsciiIntegerField(help_text="The set with these inputs: the one built, or (`reused`) an existing one.")
    samples = AsciiIntegerField()
    classes = TrainingSetReportField()
    reused = serializers.BooleanField(required=False, help_text="The inputs it read, once the LF votes it waited for "
                                      "were refreshed, were those of an existing ready set: that set is the answer, "
                                      "and the one this job was asked for (its copy) is gone.")


# ---------------------------------------------------------------- fast models


class EvaluationSerializer(serializers.Serializer):
    """On the labeled valid samples; only `labeled` and `reason` when there are none."""

    labeled = AsciiIntegerField()
    reason = StrictCharField(required=False)
    precision = serializers.FloatField(required=False, allow_null=True,
                                       help_text="tp / (tp + fp); null when the model says PRESENT on none (0/0).")
    recall = serializers.FloatField(required=False, allow_null=True,
                                    help_text="tp / (tp + fn); null when none is PRESENT (0/0).")
    f1 = serializers.FloatField(required=False, allow_null=True,
                                help_text="2 tp / (2 tp + fp + fn); null when there is neither a PRESENT nor a PRESENT "
                                          "prediction (0/0).")
    pr_auc = serializers.FloatField(required=False, allow_null=True)
    roc_auc = serializers.FloatField(required=False, allow_null=True)
    confusion = ConfusionSerializer(required=False)


class TrainedOnSerializer(serializers.Serializer):
    positives = AsciiIntegerField()
    negatives = AsciiIntegerField()


class CeilingSerializer(serializers.Serializer):
    """The same features trained on the ground truth of train and dev: what the training labels cost. Only
    `reason` when there is too little ground truth."""

    reason = StrictCharField(required=False)
    C = serializers.FloatField(required=False)
    cv_f1_by_C = serializers.DictField(child=serializers.FloatField(), required=False,
                                       help_text="C -> cross-validated F1.")
    trained_on = AsciiIntegerField(required=False)
    valid = EvaluationSerializer(required=False)


class ClassModelMetricsSerializer(serializers.Serializer):
    class_id = AsciiIntegerField()
    C = serializers.FloatField()
    dev_f1_by_C = serializers.DictField(child=serializers.FloatField(), allow_null=True,
                                        help_text="C -> F1 on dev; null when C was not chosen on dev.")
    cv_f1_by_C = serializers.DictField(
        child=serializers.FloatField(), allow_null=True,
        help_text="C -> cross-validated F1 over the training rows, when the model trains on dev rows (C is then "
                  "chosen this way, since scored on its own training rows the largest C would win); else null.")
    targets = serializers.ChoiceField(
        choices=TARGET_KINDS, required=False,
        help_text="What the regression fitted: the labels, or a training set's P(PRESENT) by cross-entropy (a row "
                  "the label model is unsure of pulls less). A training-set model with dev labels fits both and "
                  "keeps the better dev F1; absent on models trained before targets were chosen.")
    dev_f1_by_targets = serializers.DictField(
        child=serializers.FloatField(), allow_null=True, required=False,
        help_text="Targets -> their best dev F1 over C, when both were fitted and compared on dev; else null.")
    trained_on = TrainedOnSerializer()
    valid = EvaluationSerializer()
    ceiling = CeilingSerializer(required=False, help_text="Models trained on a training set.")


class ModelMetricsField(serializers.DictField):
    child = ClassModelMetricsSerializer()

    def __init__(self, **kwargs):
        super().__init__(help_text="Class name -> its metrics (empty until trained).", **kwargs)


class ModelInputsSerializer(serializers.Serializer):
    vectors = StrictCharField(help_text="The vector set's identity.")
    vectors_version = AsciiIntegerField()
    labels_sha256 = serializers.DictField(child=StrictCharField(),
                                          help_text="Split -> the digest of its labels of `labels_classes`.")
    labels_classes = serializers.ListField(child=AsciiIntegerField(), required=False,
                                           help_text="The model's class ids; absent: the digests cover every class.")


class ModelParamsSerializer(serializers.Serializer):
    classes = serializers.ListField(child=AsciiIntegerField(), help_text="Class ids.")
    ground_truth_splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    negative_ratio = serializers.FloatField(allow_null=True)
    seed = AsciiIntegerField()
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    space = serializers.ChoiceField(choices=SPACES, required=False, help_text="Absent: joint (older models).")
    auto = serializers.BooleanField(required=False, help_text="Trained by auto-train.")
    inputs = ModelInputsSerializer(required=False, help_text="What the fit read, once trained.")


class FastModelParamsSerializer(JobRecordSerializer):
    model = AsciiIntegerField()


class FastModelResultSerializer(JobRecordSerializer):
    model = AsciiIntegerField()
    version = AsciiIntegerField()
    metrics = ModelMetricsField()
    seconds = serializers.FloatField()
    already_stored = serializers.BooleanField(help_text="A redelivered job found the model trained.")


class AutoTrainParamsSerializer(JobRecordSerializer):
    label_class = AsciiIntegerField()


class AutoTrainResultSerializer(FastModelResultSerializer):
    skipped = StrictCharField(help_text="Why nothing was trained (then the only field).")
    training_set = AsciiIntegerField()


# ---------------------------------------------------------------- exports


class ExportParamsSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.ChoiceField(choices=SAMPLE_COLUMNS))
    fields = serializers.ListField(child=StrictCharField(), help_text="Metadata fields.")
    splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    ground_truth = serializers.BooleanField()
    raw = serializers.BooleanField(required=False)
    model = AsciiIntegerField(required=False)
    training_set = AsciiIntegerField(required=False)
    stale_sources = serializers.ListField(
        child=StrictCharField(), required=False,
        help_text="Why the model or training set it exports was out of date when it was asked for (empty: current).")


class ExportJobParamsSerializer(JobRecordSerializer):
    export = AsciiIntegerField()


class ExportResultSerializer(JobRecordSerializer):
    export = AsciiIntegerField()
    rows = AsciiIntegerField()
    bytes = AsciiIntegerField()
    seconds = serializers.FloatField()
    rows_per_second = serializers.FloatField(allow_null=True)
    stale_sources = serializers.ListField(child=StrictCharField(), required=False,
                                          help_text="As in the export's params.")
