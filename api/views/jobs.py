from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from api.serializers.jobs import JobSerializer
from imagestudio.datasets.models import Role, role_at_least
from imagestudio.datasets.selectors import dataset_role
from imagestudio.jobs.models import Job, JobStatus
from imagestudio.jobs.selectors import job_list_visible
from imagestudio.jobs.services import job_cancel


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Async work: status, progress 0..1, message, error and result. Filter with `?dataset=`, `?status=`, `?kind=`."""

    serializer_class = JobSerializer
    queryset = Job.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        queryset = job_list_visible(user=self.request.user).select_related("creator").order_by("-created_at", "id")
        for name in ("dataset", "status", "kind"):
            value = self.request.query_params.get(name)
            if value:
                if name == "dataset" and not value.isdigit():
                    return Job.objects.none()
                queryset = queryset.filter(**{name: value})
        return queryset

    @extend_schema(parameters=[
        OpenApiParameter("dataset", int, description="Only jobs of this dataset."),
        OpenApiParameter("status", str, enum=JobStatus.values),
        OpenApiParameter("kind", str, description="import, embeddings, ..."),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: JobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running job (409 when it already finished)."""
        job = get_object_or_404(self.get_queryset(), pk=pk)
        if job.creator_id != request.user.id and job.dataset is not None:
            if not role_at_least(dataset_role(user=request.user, dataset=job.dataset), Role.EDITOR):
                raise PermissionDenied("Only the job's creator or an editor of its dataset may cancel it.")
        return Response(JobSerializer(job_cancel(job=job)).data)


def accepted(job):
    """202 with the job and its Location, the answer of every async endpoint."""
    data = JobSerializer(job).data
    return Response(data, status=202, headers={"Location": data["url"]})
