from django.urls import reverse
from rest_framework import serializers

from api.serializers import reports
from api.serializers.polymorphic import pascal, pinned, variant_of
from imagestudio.jobs.models import Job, JobKind, JobStatus

# Params that are internal bookkeeping (staging keys), not something a client sent or needs.
_INTERNAL_PARAMS = ("staging",)


class JobSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=JobKind.choices, read_only=True)
    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    creator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    url = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "url", "kind", "status", "progress", "message", "error", "result", "params", "dataset",
                  "creator", "attempts", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_url(self, job) -> str:
        return reverse("job-detail", kwargs={"job_id": job.pk})

    def get_params(self, job) -> dict:
        return {key: value for key, value in job.params.items() if key not in _INTERNAL_PARAMS}


# Each kind's params and result (JSON the job's domain writes; see api.serializers.reports).
KIND_SHAPES = {
    JobKind.IMPORT: (reports.ImportParamsSerializer, reports.ImportResultSerializer),
    JobKind.EMBEDDINGS: (reports.EmbeddingsParamsSerializer, reports.EmbeddingsResultSerializer),
    JobKind.LF_VOTES: (reports.NoParamsField, reports.LFVotesResultSerializer),
    JobKind.TRAINING_SET: (reports.TrainingSetParamsSerializer, reports.TrainingSetResultSerializer),
    JobKind.FAST_MODEL: (reports.FastModelParamsSerializer, reports.FastModelResultSerializer),
    JobKind.AUTO_TRAIN: (reports.AutoTrainParamsSerializer, reports.AutoTrainResultSerializer),
    JobKind.EXPORT: (reports.ExportJobParamsSerializer, reports.ExportResultSerializer),
}
JOB_VARIANTS = {
    kind: variant_of(JobSerializer, f"{pascal(kind)}JobSerializer", kind=pinned(kind, read_only=True),
                     params=params(read_only=True), result=result(read_only=True))
    for kind, (params, result) in KIND_SHAPES.items()
}


class JobByKindSerializer(JobSerializer):
    """A job as answered (rendered by JobSerializer); documented per kind with its params and result typed."""

    component_name = "Job"
    discriminator = "kind"
    variants = JOB_VARIANTS
