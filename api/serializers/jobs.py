from urllib.parse import urlencode

from django.urls import reverse
from rest_framework import serializers

from api.fields import StrictModelSerializer
from api.links import absolute_url
from api.serializers import reports
from api.serializers.polymorphic import pascal, pinned, variant_of
from api.signed_access import ACCESS_PARAM, request_grant
from imagestudio.jobs.access import job_access_token
from imagestudio.jobs.models import Job, JobKind, JobStatus

# Params that are internal bookkeeping (staging keys), not something a client sent or needs.
_INTERNAL_PARAMS = ("staging",)


class JobSerializer(StrictModelSerializer):
    """A unit of async work. Its URLs are absolute; its `events_url` is signed for the user who asked."""

    kind = serializers.ChoiceField(choices=JobKind.choices, read_only=True)
    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    creator = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                           help_text="The user name of who asked for it (null: a system job, or a "
                                                     "user since deleted).")
    url = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField(
        help_text="Server-Sent Events of this job's progress, openable without a token (an EventSource): it carries "
                  "a signed `access` for you and this job, valid JOB_EVENTS_ACCESS_SECONDS (900 by default).")
    updated_at = serializers.DateTimeField(
        read_only=True, help_text="Moves with every change of the job: `?since=` of a long poll, id of its events.")
    params = serializers.SerializerMethodField()
    heartbeat_at = serializers.DateTimeField(
        read_only=True, allow_null=True,
        help_text="When the worker running it last said it is alive (every JOB_HEARTBEAT_SECONDS); a running job "
                  "silent for JOB_ORPHAN_SECONDS is delivered again. Null where tasks run in the web process, and "
                  "while it is queued (a job waiting for its inputs goes back to the queue, saying so in `message`).")

    class Meta:
        model = Job
        fields = ["id", "url", "events_url", "kind", "status", "progress", "message", "error", "result", "params",
                  "dataset", "creator", "attempts", "created_at", "started_at", "finished_at", "updated_at",
                  "heartbeat_at"]
        read_only_fields = fields

    def get_url(self, job) -> str:
        return absolute_url(self.context["request"], reverse("job-detail", args=[job.pk]))

    def get_events_url(self, job) -> str:
        request = self.context["request"]
        token = job_access_token(job=job, user=request.user, grant=request_grant(request))
        return absolute_url(request, f"{reverse('job-events', args=[job.pk])}?{urlencode({ACCESS_PARAM: token})}")

    def get_params(self, job) -> dict:
        return {key: value for key, value in job.params.items() if key not in _INTERNAL_PARAMS}


# Each kind's params and result (JSON the job's domain writes; see api.serializers.reports).
KIND_SHAPES = {
    JobKind.IMPORT: (reports.ImportParamsSerializer, reports.ImportResultSerializer),
    JobKind.EMBEDDINGS: (reports.EmbeddingsParamsSerializer, reports.EmbeddingsResultSerializer),
    JobKind.LF_VOTES: (reports.LFVotesParamsSerializer, reports.LFVotesResultSerializer),
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
