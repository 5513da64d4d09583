import hashlib

from django.http import FileResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.settings import api_settings

from api.headers import if_none_match_names
from api.responses import accepted
from api.scoping import DatasetScopedMixin
from api.serializers.exports import ExportCreateSerializer, ExportSerializer
from api.serializers.jobs import JOB_VARIANTS
from api.signed_access import ExportAccessAuthentication
from api.validation import refuse_unknown_keys
from imagestudio.datasets.models import Role
from imagestudio.exports.models import Export
from imagestudio.exports.selectors import export_list
from imagestudio.exports.services import export_file, export_start
from imagestudio.jobs.models import JobKind


class ExportViewSet(DatasetScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """CSV exports written by a job: `dataset` (columns, metadata, ground truth, a model's predictions) or
    `training_labels` (a training set's label and probability per class). Download when ready."""

    serializer_class = ExportSerializer
    scoped_model = Export
    lookup_url_kwarg = "export_id"
    scoped_selector = staticmethod(export_list)
    not_found = "No such export in this dataset."
    write_role = Role.VIEWER  # reading the data out needs no more than reading it in the API

    @extend_schema(request=ExportCreateSerializer, responses={202: JOB_VARIANTS[JobKind.EXPORT]})
    def create(self, request, dataset_id=None):
        serializer = ExportCreateSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)  # a misspelt "colums" would export the default columns
        serializer.is_valid(raise_exception=True)
        export = export_start(dataset=self.dataset, user=request.user, **serializer.validated_data)
        return accepted(request, export.job)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The CSV file.")})
    @action(detail=True, methods=["get"],
            authentication_classes=[*api_settings.DEFAULT_AUTHENTICATION_CLASSES, ExportAccessAuthentication])
    def download(self, request, dataset_id=None, export_id=None):
        """The CSV; 409 with Retry-After while its job is still writing it. Open it with the `download_url` of the
        Export payload, which carries a signed `access` (a link sends no Authorization), or with your token."""
        export = self.get_object()
        if not export.ready:
            status = export.job.status if export.job else "unknown"
            return Response({"detail": f"The export is not ready (job {status}).", "code": "not_ready"},
                            status=409, headers={"Retry-After": "5"})
        # A ready export's file is never written again: its key and size name its bytes.
        etag = f'"{hashlib.sha256(f"{export.file}:{export.bytes}".encode()).hexdigest()[:16]}"'
        if if_none_match_names(request, etag):
            response = HttpResponseNotModified()
        else:
            response = FileResponse(export_file(export), content_type="text/csv", as_attachment=True,
                                    filename=f"dataset-{export.dataset_id}-{export.kind}-{export.id}.csv")
        response["ETag"] = etag
        return response
