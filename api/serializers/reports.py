"""The typed shapes of what jobs write and the API hands back as stored: job params and results per kind, model
params and metrics, label-model reports, training-set snapshots. They document JSON the domain builds (rendered
as stored); tests/conformance.py holds every answer of the test suite to them, so they cannot drift."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers.charts import CalibrationSerializer, ConfusionSerializer
from api.serializers.labeling import PrecisionRecallSerializer, RateSerializer, config_field
from imagestudio.datasets.imports import DuplicatePolicy
from imagestudio.datasets.models import Split
from imagestudio.embeddings.encoders import ENCODER_KEYS, SPACES
from imagestudio.exports.services import SAMPLE_COLUMNS
from imagestudio.labeling.label_choice import CANDIDATES
from imagestudio.labeling.models import LFType

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
    key = serializers.CharField(help_text="Where the upload waits in storage until the job reads it.")
    name = serializers.CharField(help_text="The uploaded file's name.")


class ImportParamsSerializer(JobRecordSerializer):
    source = serializers.ChoiceField(choices=["upload", "archive", "server"])
    split = serializers.ChoiceField(choices=SPLITS)
    duplicates = serializers.ChoiceField(choices=[policy.value for policy in DuplicatePolicy])
    files = StagedFileSerializer(many=True, required=False, help_text="source upload.")
    metadata = serializers.DictField(child=FreeFormObjectField(), required=False,
                                     help_text="source upload: file name -> its metadata.")
    archive = StagedFileSerializer(required=False, help_text="source archive.")
    manifest = StagedFileSerializer(required=False)
    path = serializers.CharField(required=False, help_text="source server: below the server's import root.")


class ImportedFileSerializer(serializers.Serializer):
    file = serializers.CharField()
    sample_id = serializers.IntegerField(help_text="The sample created, or the stored twin of a duplicate.")
    reason = serializers.CharField()


class DuplicateFileSerializer(ImportedFileSerializer):
    conflict = serializers.CharField(required=False, help_text="How it differs from its twin.")
    merged = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="What it added to its twin (duplicates=merge).")


class RefusedFileSerializer(serializers.Serializer):
    file = serializers.CharField()
    reason = serializers.CharField()
    conflict = serializers.CharField(required=False)


class ImportResultSerializer(JobRecordSerializer):
    total = serializers.IntegerField(help_text="Files in the request (archive members, manifest rows).")
    created = serializers.IntegerField(help_text="New samples (stripped ones included).")
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Refused files.")
    annotations = serializers.IntegerField(help_text="Ground-truth labels written.")
    stripped = serializers.IntegerField(help_text="New samples whose data after the image was cut off.")
    conflicts = serializers.IntegerField(help_text="Duplicates whose split, metadata or labels differ.")
    merged = serializers.IntegerField()
    duplicate_files = DuplicateFileSerializer(many=True)
    error_files = RefusedFileSerializer(many=True)
    stripped_files = ImportedFileSerializer(many=True)
    truncated = serializers.BooleanField(help_text="The lists hold the first 1,000 entries: see `report_file`.")
    report_file = serializers.CharField(help_text="The complete per-file report (GET jobs/{job_id}/report/).")
    duplicate_policy = serializers.ChoiceField(choices=[policy.value for policy in DuplicatePolicy])
    seconds = serializers.FloatField()
    auto_embed_job = serializers.UUIDField(help_text="The embeddings job it started (auto_embed datasets).")
    lf_refresh_job = serializers.UUIDField(help_text="The job refreshing the LF votes on the new samples.")


# ---------------------------------------------------------------- embeddings


class EmbeddingsParamsSerializer(JobRecordSerializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    split = serializers.ChoiceField(choices=SPLITS, allow_null=True, help_text="Null: every split.")
    source = serializers.CharField(help_text="`command line` when started by `manage.py embed_dataset`.")


class SpaceVectorsSerializer(serializers.Serializer):
    identity = serializers.CharField()
    dim = serializers.IntegerField()
    computed = serializers.IntegerField()


class SpacesVectorsSerializer(serializers.Serializer):
    joint = SpaceVectorsSerializer(required=False)
    visual = SpaceVectorsSerializer(required=False)


class EmbeddingFailureSerializer(serializers.Serializer):
    sample_id = serializers.IntegerField()
    reason = serializers.CharField()


class EmbeddingsResultSerializer(JobRecordSerializer):
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    identity = serializers.CharField(help_text="The joint space's vectors.")
    dim = serializers.IntegerField()
    spaces = SpacesVectorsSerializer(help_text="Per space the encoder stores.")
    device = serializers.CharField()
    missing_before = serializers.IntegerField()
    computed = serializers.IntegerField()
    failed = serializers.IntegerField()
    failures = EmbeddingFailureSerializer(many=True, help_text="The first 1,000.")
    seconds = serializers.FloatField()
    images_per_second = serializers.FloatField(allow_null=True)


# ---------------------------------------------------------------- LF votes


class LFRefreshSerializer(serializers.Serializer):
    present = serializers.IntegerField()
    absent = serializers.IntegerField()
    scored = serializers.IntegerField()
    rows_deleted = serializers.IntegerField()
    rows_written = serializers.IntegerField()


class LFVotesResultSerializer(JobRecordSerializer):
    refreshed = serializers.DictField(child=LFRefreshSerializer(), help_text="LF id -> its new votes.")
    failed = serializers.DictField(child=serializers.CharField(), help_text="LF id -> why it could not vote.")


@extend_schema_field({"type": "object", "properties": {}, "additionalProperties": False,
                      "description": "No parameters."})
class NoParamsField(serializers.DictField):
    pass


# ---------------------------------------------------------------- label-model reports


class ScoresSerializer(ConfusionSerializer):
    accuracy = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True, help_text="PRESENT positive.")
    brier = serializers.FloatField(allow_null=True)
    scored = serializers.IntegerField()


class CandidateScoresSerializer(serializers.Serializer):
    dev = ScoresSerializer(help_text="Out-of-fold on the labeled dev samples (how candidates are chosen).")
    valid = ScoresSerializer(help_text="Refit on all dev labels, on the labeled valid samples.")


CandidatesSerializer = type("CandidatesSerializer", (serializers.Serializer,), {
    "__module__": __name__, **{name: CandidateScoresSerializer() for name in CANDIDATES}})


class DevValidCalibrationSerializer(serializers.Serializer):
    dev = CalibrationSerializer(allow_null=True, help_text="The chosen candidate's out-of-fold dev probabilities.")
    valid = CalibrationSerializer()


class LearnedConditionalsSerializer(serializers.Serializer):
    p_present_given_present = serializers.FloatField()
    p_absent_given_present = serializers.FloatField()
    p_abstain_given_present = serializers.FloatField()
    p_present_given_absent = serializers.FloatField()
    p_absent_given_absent = serializers.FloatField()
    p_abstain_given_absent = serializers.FloatField()


class SidesSerializer(serializers.Serializer):
    present = serializers.FloatField()
    absent = serializers.FloatField()


class SidesQualitySerializer(serializers.Serializer):
    present = PrecisionRecallSerializer()
    absent = PrecisionRecallSerializer()


class LFDiagnosticsSerializer(serializers.Serializer):
    lf = serializers.IntegerField()
    name = serializers.CharField()
    learned = LearnedConditionalsSerializer(help_text="P(vote | class) the model learned.")
    implied_precision = SidesSerializer()
    dev = SidesQualitySerializer(help_text="Precision and recall of its votes on dev.")
    dependence_group = serializers.ListField(child=serializers.IntegerField(),
                                             help_text="LFs the model treats as one source with it.")
    weight = serializers.FloatField()
    check = serializers.ListField(child=serializers.ChoiceField(choices=["present", "absent"]),
                                  help_text="Sides whose implied precision is outside the dev interval.")
    message = serializers.CharField(allow_null=True)
    ground_truth_precision = RateSerializer()


class ClassLabelReportSerializer(serializers.Serializer):
    """One class's label model: the chosen candidate and why, every candidate's figures, calibration, per LF. A
    class without active LFs has none (`chosen` null): its samples abstain."""

    class_id = serializers.IntegerField()
    chosen = serializers.ChoiceField(choices=CANDIDATES, allow_null=True)
    reason = serializers.CharField()
    candidates = CandidatesSerializer(required=False)
    calibration = DevValidCalibrationSerializer(required=False)
    dependent_groups = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                             required=False)
    lfs = LFDiagnosticsSerializer(many=True, required=False)
    covered = serializers.IntegerField(help_text="Samples with a training label.")
    present = serializers.IntegerField()
    absent = serializers.IntegerField()


class TrainingSetReportField(serializers.DictField):
    child = ClassLabelReportSerializer()

    def __init__(self, **kwargs):
        super().__init__(help_text="Class name -> its label-model report.", **kwargs)


# `class` is the stored key, and no Python name
SnapshotLFSerializer = type("SnapshotLFSerializer", (serializers.Serializer,), {
    "__module__": __name__, "__doc__": "An LF as the training set read it.",
    "id": serializers.IntegerField(), "class_id": serializers.IntegerField(),
    "class": serializers.CharField(help_text="The class's name."),
    "type": serializers.ChoiceField(choices=LFType.choices), "config": config_field(),
    "low": serializers.FloatField(allow_null=True), "high": serializers.FloatField(allow_null=True),
    "invert": serializers.BooleanField(), "encoder": serializers.CharField(), "votes_sha256": serializers.CharField(),
})


class SnapshotSerializer(serializers.Serializer):
    """What a training set was built from: the active LFs and the samples of its splits."""

    lfs = SnapshotLFSerializer(many=True)
    splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    seed = serializers.IntegerField()
    samples = serializers.IntegerField()
    samples_sha256 = serializers.CharField()
    dev_labels_sha256 = serializers.CharField()


class TrainingSetParamsSerializer(JobRecordSerializer):
    training_set = serializers.IntegerField()


class TrainingSetResultSerializer(JobRecordSerializer):
    training_set = serializers.IntegerField()
    samples = serializers.IntegerField()
    classes = TrainingSetReportField()


# ---------------------------------------------------------------- fast models


class EvaluationSerializer(serializers.Serializer):
    """On the labeled valid samples; only `labeled` and `reason` when there are none."""

    labeled = serializers.IntegerField()
    reason = serializers.CharField(required=False)
    precision = serializers.FloatField(required=False)
    recall = serializers.FloatField(required=False)
    f1 = serializers.FloatField(required=False)
    pr_auc = serializers.FloatField(required=False, allow_null=True)
    roc_auc = serializers.FloatField(required=False, allow_null=True)
    confusion = ConfusionSerializer(required=False)


class TrainedOnSerializer(serializers.Serializer):
    positives = serializers.IntegerField()
    negatives = serializers.IntegerField()


class CeilingSerializer(serializers.Serializer):
    """The same features trained on the ground truth of train and dev: what the training labels cost. Only
    `reason` when there is too little ground truth."""

    reason = serializers.CharField(required=False)
    C = serializers.FloatField(required=False)
    cv_f1_by_C = serializers.DictField(child=serializers.FloatField(), required=False,
                                       help_text="C -> cross-validated F1.")
    trained_on = serializers.IntegerField(required=False)
    valid = EvaluationSerializer(required=False)


class ClassModelMetricsSerializer(serializers.Serializer):
    class_id = serializers.IntegerField()
    C = serializers.FloatField()
    dev_f1_by_C = serializers.DictField(child=serializers.FloatField(), allow_null=True,
                                        help_text="C -> F1 on dev; null when C was not chosen on dev.")
    trained_on = TrainedOnSerializer()
    valid = EvaluationSerializer()
    ceiling = CeilingSerializer(required=False, help_text="Models trained on a training set.")


class ModelMetricsField(serializers.DictField):
    child = ClassModelMetricsSerializer()

    def __init__(self, **kwargs):
        super().__init__(help_text="Class name -> its metrics (empty until trained).", **kwargs)


class ModelInputsSerializer(serializers.Serializer):
    vectors = serializers.CharField(help_text="The vector set's identity.")
    vectors_version = serializers.IntegerField()
    labels_sha256 = serializers.DictField(child=serializers.CharField(), help_text="Split -> its labels' digest.")


class ModelParamsSerializer(serializers.Serializer):
    classes = serializers.ListField(child=serializers.IntegerField(), help_text="Class ids.")
    ground_truth_splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    negative_ratio = serializers.FloatField(allow_null=True)
    seed = serializers.IntegerField()
    encoder = serializers.ChoiceField(choices=ENCODER_KEYS)
    space = serializers.ChoiceField(choices=SPACES, required=False, help_text="Absent: joint (older models).")
    auto = serializers.BooleanField(required=False, help_text="Trained by auto-train.")
    inputs = ModelInputsSerializer(required=False, help_text="What the fit read, once trained.")


class FastModelParamsSerializer(JobRecordSerializer):
    model = serializers.IntegerField()


class FastModelResultSerializer(JobRecordSerializer):
    model = serializers.IntegerField()
    version = serializers.IntegerField()
    metrics = ModelMetricsField()
    seconds = serializers.FloatField()
    already_stored = serializers.BooleanField(help_text="A redelivered job found the model trained.")


class AutoTrainParamsSerializer(JobRecordSerializer):
    label_class = serializers.IntegerField()


class AutoTrainResultSerializer(FastModelResultSerializer):
    skipped = serializers.CharField(help_text="Why nothing was trained (then the only field).")
    training_set = serializers.IntegerField()


# ---------------------------------------------------------------- exports


class ExportParamsSerializer(serializers.Serializer):
    columns = serializers.ListField(child=serializers.ChoiceField(choices=SAMPLE_COLUMNS))
    fields = serializers.ListField(child=serializers.CharField(), help_text="Metadata fields.")
    splits = serializers.ListField(child=serializers.ChoiceField(choices=SPLITS))
    ground_truth = serializers.BooleanField()
    raw = serializers.BooleanField(required=False)
    model = serializers.IntegerField(required=False)
    training_set = serializers.IntegerField(required=False)


class ExportJobParamsSerializer(JobRecordSerializer):
    export = serializers.IntegerField()


class ExportResultSerializer(JobRecordSerializer):
    export = serializers.IntegerField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    seconds = serializers.FloatField()
    rows_per_second = serializers.FloatField(allow_null=True)
