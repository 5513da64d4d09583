from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from api.limits import MAX_INT
from api.scoping import schema_placeholder
from api.serializers.jobs import JobByKindSerializer, JobSerializer
from api.validation import validated
from imagestudio.datasets.imports import report_open
from imagestudio.datasets.models import Role, role_at_least
from imagestudio.datasets.selectors import dataset_role
from imagestudio.jobs.models import Job, JobKind, JobStatus
from imagestudio.jobs.selectors import job_get, job_list
from imagestudio.jobs.services import job_cancel


class JobQuerySerializer(serializers.Serializer):
    dataset = serializers.IntegerField(required=False, min_value=1, max_value=MAX_INT, help_text="Only jobs of this dataset.")
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    kind = serializers.ChoiceField(choices=JobKind.choices, required=False)


@extend_schema_view(retrieve=extend_schema(responses={200: JobByKindSerializer}))
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Async work: status, progress 0..1, message, error and result. Filter with `?dataset=`, `?status=`, `?kind=`."""

    serializer_class = JobSerializer
    lookup_url_kwarg = "job_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return schema_placeholder(Job)
        return job_list(user=self.request.user)

    def get_object(self):
        job = job_get(user=self.request.user, job_id=self.kwargs["job_id"])
        if job is None:
            raise NotFound("No job with this id.")
        return job

    @extend_schema(parameters=[JobQuerySerializer], responses={200: JobByKindSerializer(many=True)})
    def list(self, request, *args, **kwargs):
        query = validated(JobQuerySerializer, request.query_params)
        queryset = job_list(user=request.user, **query)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(request=None, responses={200: JobByKindSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, job_id=None):
        """Cancel a queued or running job (409 when it already finished)."""
        job = self.get_object()
        if job.creator_id != request.user.id and job.dataset is not None:
            if not role_at_least(dataset_role(user=request.user, dataset=job.dataset), Role.EDITOR):
                raise PermissionDenied("Only the job's creator or an editor of its dataset may cancel it.")
        return Response(JobSerializer(job_cancel(job=job)).data)


    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(
        OpenApiTypes.BINARY, description="JSON lines, one object per input file: file, outcome (created, stripped, "
                                         "duplicate or refused), sample_id, reason, conflict, merged.")})
    @action(detail=True, methods=["get"])
    def report(self, request, job_id=None):
        """The complete per-file report of an import job, when its result is `truncated` (see `report_file`)."""
        stream = report_open(job=self.get_object())
        if stream is None:
            raise NotFound("This job has no stored per-file report.")
        return FileResponse(stream, content_type="application/octet-stream", as_attachment=True,
                            filename=f"import-report-{job_id}.jsonl")

