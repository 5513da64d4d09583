from django.urls import reverse
from rest_framework import serializers

from api.links import absolute_url
from imagestudio.jobs.models import Job, JobStatus

# Params that are internal bookkeeping (staging keys), not something a client sent or needs.
_INTERNAL_PARAMS = ("staging",)


class JobSerializer(serializers.ModelSerializer):
    """A unit of async work. Its URLs are absolute."""

    status = serializers.ChoiceField(choices=JobStatus.choices, read_only=True)
    creator = serializers.SlugRelatedField(slug_field="username", read_only=True)
    url = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "url", "kind", "status", "progress", "message", "error", "result", "params", "dataset",
                  "creator", "attempts", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_url(self, job) -> str:
        return absolute_url(self.context["request"], reverse("job-detail", args=[job.pk]))

    def get_params(self, job) -> dict:
        return {key: value for key, value in job.params.items() if key not in _INTERNAL_PARAMS}
