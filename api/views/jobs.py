from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.settings import api_settings

from api.job_events import MAX_WAIT_SECONDS, job_event_stream, parse_state_id, wait_for_change
from api.limits import MAX_INT
from api.scoping import schema_placeholder
from api.serializers.jobs import JobByKindSerializer, JobSerializer
from api.signed_access import JobAccessAuthentication
from api.validation import refuse_body, validated_query
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


class JobWaitQuerySerializer(serializers.Serializer):
    wait = serializers.FloatField(required=False, min_value=0, max_value=MAX_WAIT_SECONDS,
                                  help_text="Long poll: answer as soon as the job changes, or after this many seconds.")
    since = serializers.DateTimeField(required=False, help_text="With `wait`: the job's `updated_at` you last saw "
                                                                "(default: the job as the request finds it).")


class JSONErrorsNegotiation(DefaultContentNegotiation):
    """For the event stream, which sets its own content type: whatever Accept says (an EventSource asks for
    text/event-stream), what else the view answers (errors) is JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


EVENTS_DESCRIPTION = (
    "Server-Sent Events: `progress` events (data: a JobProgressEvent, JSON) as the job changes, `: heartbeat` "
    "comments while it does not, a final `done` event (data: the Job, JSON) once it succeeded, failed or was cancelled, "
    "then the end. Each event's `id` is the job's `updated_at`. The stream ends after JOB_EVENTS_MAX_SECONDS and "
    "the client reconnects with Last-Event-ID (the state it saw is not sent again).")


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
        query = validated_query(JobQuerySerializer, request)
        queryset = job_list(user=request.user, **query)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(parameters=[JobWaitQuerySerializer], responses={200: JobByKindSerializer})
    def retrieve(self, request, *args, **kwargs):
        """The job. With `?wait=` a long poll: the answer comes as soon as the job differs from `since` (or from
        how the request found it), is finished, or after `wait` seconds (at most 30), whichever is first."""
        job = self.get_object()
        query = validated_query(JobWaitQuerySerializer, request)
        if query.get("wait"):
            wait_for_change(job.pk, since=query.get("since", job.updated_at), seconds=query["wait"])
            job = self.get_object()
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(parameters=[OpenApiParameter(
        "Last-Event-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
        description="The id of the last event received (an EventSource sends it when it reconnects): the stream "
                    "resumes after it.")], responses={
        (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description=EVENTS_DESCRIPTION),
        204: OpenApiResponse(description="The job has finished and Last-Event-ID is its final event: nothing more "
                                         "will come (an EventSource stops reconnecting)."),
    })
    @action(detail=True, methods=["get"], content_negotiation_class=JSONErrorsNegotiation,
            authentication_classes=[*api_settings.DEFAULT_AUTHENTICATION_CLASSES, JobAccessAuthentication])
    def events(self, request, *args, **kwargs):
        """The job's progress, pushed (text/event-stream). Open it with the `events_url` of the Job payload,
        which carries a signed `access` (an EventSource cannot send Authorization), or with your token."""
        job = self.get_object()
        last_seen = parse_state_id(request.headers.get("Last-Event-ID", ""))
        if not job.is_active and last_seen == job.updated_at:
            return HttpResponse(status=204)

        def final_payload():
            finished = job_get(user=request.user, job_id=job.pk)
            return None if finished is None else JobSerializer(finished, context={"request": request}).data

        stream = job_event_stream(job.pk, last_seen=last_seen, final_payload=final_payload)
        response = StreamingHttpResponse(stream, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
        return response

    @extend_schema(request=None, responses={200: JobByKindSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, job_id=None):
        """Cancel a queued or running job (409 when it already finished)."""
        refuse_body(request)
        job = self.get_object()
        if job.creator_id != request.user.id and job.dataset is not None:
            if not role_at_least(dataset_role(user=request.user, dataset=job.dataset), Role.EDITOR):
                raise PermissionDenied("Only the job's creator or an editor of its dataset may cancel it.")
        return Response(JobSerializer(job_cancel(job=job), context={"request": request}).data)


    @extend_schema(responses={(200, "application/jsonl"): OpenApiResponse(
        OpenApiTypes.BINARY, description="JSON lines, one object per input file: file, outcome (created, stripped, "
                                         "duplicate, refused, skipped or cancelled), sample_id, reason, conflict, "
                                         "merged.")})
    @action(detail=True, methods=["get"])
    def report(self, request, job_id=None):
        """The complete per-file report of an import job, when its result is `truncated` (see `report_file`)."""
        stream = report_open(job=self.get_object())
        if stream is None:
            raise NotFound("This job has no stored per-file report.")
        return FileResponse(stream, content_type="application/jsonl", as_attachment=True,
                            filename=f"import-report-{job_id}.jsonl")

