from urllib.parse import urlencode

from django.urls import reverse
from rest_framework import serializers

from api.job_access import ACCESS_PARAM
from api.links import absolute_url
from imagestudio.jobs.access import job_access_token
from imagestudio.jobs.models import Job, JobStatus

# Params that are internal bookkeeping (staging keys), not something a client sent or needs.
_INTERNAL_PARAMS = ("staging",)


class JobSerializer(serializers.ModelSerializer):
    """A unit of async work. Its URLs are absolute; its `events_url` is signed for the user who asked."""

    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    creator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField(
        help_text="Server-Sent Events of this job's progress, openable without a token (an EventSource): it carries "
                  "a signed `access` for you and this job, valid JOB_EVENTS_ACCESS_SECONDS (900 by default).")
    updated_at = serializers.DateTimeField(
        read_only=True, help_text="Moves with every change of the job: `?since=` of a long poll, id of its events.")
    params = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "url", "events_url", "kind", "status", "progress", "message", "error", "result", "params",
                  "dataset", "creator", "attempts", "created_at", "started_at", "finished_at", "updated_at"]
        read_only_fields = fields

    def get_url(self, job) -> str:
        return absolute_url(self.context["request"], reverse("job-detail", args=[job.pk]))

    def get_events_url(self, job) -> str:
        request = self.context["request"]
        token = job_access_token(job=job, user=request.user)
        return absolute_url(request, f"{reverse('job-events', args=[job.pk])}?{urlencode({ACCESS_PARAM: token})}")

    def get_params(self, job) -> dict:
        return {key: value for key, value in job.params.items() if key not in _INTERNAL_PARAMS}
