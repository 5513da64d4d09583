import functools

from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError
from django.http import FileResponse, HttpResponseNotModified, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from api.exceptions import DATABASE_UNAVAILABLE
from api.headers import IF_MATCH_CURRENT, edit_etag, etagged, if_match_edit, if_none_match_names
from api.negotiation import FileContentNegotiation
from api.responses import accepted
from api.scoping import DatasetScopedMixin
from api.serializers.datasets import ResampleParamsSerializer, ResampleSerializer
from api.serializers.jobs import JOB_VARIANTS
from api.serializers.samples import (
    ImportSerializer,
    SampleDetailQuerySerializer,
    SampleDetailSerializer,
    SampleListQuerySerializer,
    SamplePageSerializer,
    SampleSerializer,
    SampleUpdateSerializer,
)
from api.validation import (
    mark_query_checked,
    mark_query_paged,
    refuse_unknown_keys,
    refuse_unknown_query_keys,
    validated_query,
)
from imagestudio.annotations.resamples import resample_clear, resample_create, resample_with_counts_now
from imagestudio.annotations.selectors import ground_truth_prefetch
from imagestudio.common.ids import parse_id
from imagestudio.common.transactions import retry_transient, row_locked
from imagestudio.datasets import services
from imagestudio.datasets.image_urls import EXPIRY_PARAM, REFUSALS, SIGNATURE_PARAM, ImageSize, signed_access
from imagestudio.datasets.imaging import mime_for_format
from imagestudio.datasets.imports import import_start
from imagestudio.datasets.models import Role, Sample, Split
from imagestudio.datasets.selectors import resample_get, sample_files_signed, sample_page
from imagestudio.jobs.models import JobKind
from imagestudio.labeling.selectors import sample_votes
from imagestudio.training.selectors import model_predictions, ready_model, sample_predictions

IMMUTABLE_CACHE = "private, max-age=31536000, immutable"
# Stored files are served as the image type Pillow decoded (never the uploaded name's), with nosniff from
# SecurityMiddleware; and should a browser still render one as a document, it gets no script, no plugin, no origin.
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
FILE_SIZES = {"image": ImageSize.ORIGINAL, "thumbnail": ImageSize.THUMBNAIL}
SIGNED_URL_PARAMETERS = [
    OpenApiParameter(EXPIRY_PARAM, int, description="Signed URL: its expiry (seconds since the epoch). The sample "
                     "payload's URL carries it; with it and `sig`, no token is needed."),
    OpenApiParameter(SIGNATURE_PARAM, str, description="Signed URL: its signature (see `exp`)."),
]
TOKEN_OR_SIGNATURE = [{"Token": []}, {"cookieAuth": []}, {}]  # {}: a signed URL needs no credentials
SIGNED_URL_REFUSED = OpenApiResponse(
    {"$ref": "#/components/schemas/Error"},  # completed by api.schema.add_error_responses
    description="A signed URL that is tampered with (code `signature_invalid`) or expired (`signature_expired`); "
                "with a token instead, a role too low.")


SAMPLE_EDIT_FIELDS = ("split", "metadata")  # what a PATCH may change: If-Match is about these


def _sample_edit_state(sample):
    return {name: getattr(sample, name) for name in SAMPLE_EDIT_FIELDS}


def is_signed(request):
    """Whether the request chose a signed URL over credentials (a token, when sent, wins)."""
    params = request.GET
    return (EXPIRY_PARAM in params or SIGNATURE_PARAM in params) and "Authorization" not in request.headers


def _error(status_code, detail, code, headers=None):
    """An error in the API's shape, for the signed path, which answers without DRF."""
    return JsonResponse({"detail": detail, "code": code}, status=status_code, headers=headers)


def _file_response(request, sample, size, cache_control):
    """The stored file of `size` of the sample (a 304 when If-None-Match names it), or None when it is missing."""
    if size == ImageSize.ORIGINAL:
        key, content_type, etag = sample.original, mime_for_format(sample.format), f'"{sample.sha256}"'
    else:
        key, content_type, etag = sample.thumbnail, "image/jpeg", f'"{sample.sha256}-thumb"'
    if if_none_match_names(request, etag):
        response = HttpResponseNotModified()
    else:
        try:
            response = FileResponse(default_storage.open(key, "rb"), content_type=content_type)
        except FileNotFoundError:
            return None
    response["ETag"] = etag
    response["Cache-Control"] = cache_control
    response["Content-Security-Policy"] = FILE_CSP
    return response


def _signed_file(request, size, dataset_id, sample_id):
    """A signed URL's file, answered before DRF: the signature is the permission, so no authentication, role,
    negotiation or throttle runs, only one read by primary key (the sample, hence its dataset, still exists)."""
    dataset_id, sample_id = parse_id(str(dataset_id)), parse_id(str(sample_id))
    access = signed_access(dataset_id=dataset_id, sample_id=sample_id, size=size,
                           expires=request.GET.get(EXPIRY_PARAM, ""), signature=request.GET.get(SIGNATURE_PARAM, ""))
    if access.refusal:
        return _error(403, REFUSALS[access.refusal], access.refusal)
    try:
        sample = sample_files_signed(dataset_id=dataset_id, sample_id=sample_id)
    except (OperationalError, InterfaceError):
        return _error(503, DATABASE_UNAVAILABLE, "database_unavailable", {"Retry-After": "10"})
    if sample is None:
        return _error(404, "No sample with this id in this dataset.", "not_found")
    # Cached no longer than the URL opens it; the bytes behind a URL never change (content-addressed).
    response = _file_response(request, sample, size, f"private, max-age={access.seconds_left}, immutable")
    return response or _error(404, "The stored file is missing.", "not_found")


def signed_first(view, size):
    """The file route `view` (the viewset's) with signed URLs answered first, by `_signed_file`. The route stays
    the viewset's (its attributes are copied), so the schema documents it as before."""

    @functools.wraps(view)
    def route(request, *args, **kwargs):
        if request.method in ("GET", "HEAD") and is_signed(request):
            return _signed_file(request, size, kwargs["dataset_id"], kwargs["sample_id"])
        return view(request, *args, **kwargs)

    return route


class SampleViewSet(DatasetScopedMixin, viewsets.GenericViewSet):
    """Samples of a dataset: the grid and data views (list), the image view (detail) and the image bytes."""

    serializer_class = SampleSerializer
    scoped_model = Sample
    lookup_url_kwarg = "sample_id"
    pagination_class = None
    pages_itself = True  # the list builds its page (counters, keyset links), see sample_page
    query_parameters = (EXPIRY_PARAM, SIGNATURE_PARAM)  # of a signed file URL (api.middleware)
    required_roles = {"partial_update": Role.EDITOR, "resample": Role.VIEWER}

    @extend_schema(parameters=[SampleListQuerySerializer], responses={200: SamplePageSerializer},
                   operation_id="datasets_samples_list")
    def list(self, request, dataset_id=None):
        query = SampleListQuerySerializer(data=request.query_params)
        refuse_unknown_query_keys(query.fields, request.query_params)
        mark_query_checked(request)
        mark_query_paged(request)  # the list builds its page itself
        query.is_valid(raise_exception=True)
        values = query.validated_data
        fields = values.get("fields")
        context = {"request": request,
                   "fields": None if fields is None else [f.strip() for f in fields.split(",") if f.strip()]}
        page = sample_page(dataset=self.dataset, spec=query.to_filter(self.dataset), ordering=values["ordering"],
                           limit=values["limit"], offset=values["offset"], after=values.get("after"),
                           before=values.get("before"), prefetch=[ground_truth_prefetch()])
        return Response({
            "count": page.count,
            "count_exact": page.count_exact,
            "next": self._next_link(request, values, page),
            "previous": self._previous_link(request, values, page),
            "results": SampleSerializer(page.samples, many=True, context=context).data,
        })

    @staticmethod
    def _position_known(request, values):
        """Whether `offset` says where the page is: a page by offset, or by key with the offset our links carry. A
        client paging by key alone gives none, and then the links must not invent one; nor from an offset of 0 beside
        a key (a page after or before a sample is past the first row), which clients send as a default."""
        return ("after" not in values and "before" not in values) or values["offset"] > 0

    def _next_link(self, request, values, page):
        """By key, at any depth in constant time; the offset stays as the page's position, for `previous`."""
        if not page.has_more:
            return None
        url = remove_query_param(request.build_absolute_uri(), "before")
        if self._position_known(request, values):
            url = replace_query_param(url, "offset", values["offset"] + values["limit"])
        else:
            url = remove_query_param(url, "offset")
        return replace_query_param(url, "after", page.samples[-1].pk)

    def _previous_link(self, request, values, page):
        if page.has_previous is False or (values["offset"] == 0 and page.has_previous is None):
            return None
        url = remove_query_param(request.build_absolute_uri(), "after")
        if not self._position_known(request, values):
            return replace_query_param(remove_query_param(url, "offset"), "before", page.samples[0].pk)
        previous = values["offset"] - values["limit"]
        if previous <= 0 or not page.samples:
            first = remove_query_param(remove_query_param(url, "before"), "offset")
            # Only the rows before this page: a full limit from 0 would repeat some of this page's.
            return replace_query_param(first, "limit", values["offset"]) if 0 < values["offset"] < values["limit"] \
                and page.samples else first
        if "after" not in values and "before" not in values:
            return replace_query_param(url, "offset", previous)  # came by offset: within MAX_OFFSET
        return replace_query_param(replace_query_param(url, "offset", previous), "before", page.samples[0].pk)

    def _detail(self, request, sample_id):
        """The image view's payload, with the ETag of what it shows (a PATCH's If-Match)."""
        sample = self.sample(sample_id)
        data = self._represent(request, sample_id)
        return etagged(data, edit_etag(_sample_edit_state(sample), data))

    def _represent(self, request, sample_id):
        query = validated_query(SampleDetailQuerySerializer, request)
        sample = self.sample(sample_id, prefetch=["tags", "comments__author", ground_truth_prefetch(with_history=True)])
        model = None
        if "model" in query:
            model = ready_model(dataset=self.dataset, model_id=query["model"])
            if model is None:
                raise ValidationError({"model": [f"The dataset has no trained model {query['model']}."]})
        rows = (model_predictions(model=model, sample_id=sample.id) if model
                else sample_predictions(dataset=self.dataset, sample_id=sample.id))
        context = {"request": request, "model": model, "predictions": rows, "votes": sample_votes(sample=sample)}
        return SampleDetailSerializer(sample, context=context).data

    @extend_schema(parameters=[SampleDetailQuerySerializer], responses={200: SampleDetailSerializer})
    def retrieve(self, request, dataset_id=None, sample_id=None):
        return self._detail(request, sample_id)

    @extend_schema(request=SampleUpdateSerializer, parameters=[SampleDetailQuerySerializer, IF_MATCH_CURRENT],
                   responses={200: SampleDetailSerializer})
    def partial_update(self, request, dataset_id=None, sample_id=None):
        sample = self.sample(sample_id)
        serializer = SampleUpdateSerializer(data=request.data, partial=True)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        @retry_transient  # a deadlock victim runs again: inside this transaction sample_update could not
        def edit():
            with row_locked(sample, SAMPLE_EDIT_FIELDS) as stored:  # checked and written with no write between
                if_match_edit(request, stored, lambda: self._detail(request, sample_id)["ETag"])
                services.sample_update(sample=sample, user=request.user, **serializer.validated_data)

        edit()
        return self._detail(request, sample_id)

    def get_content_negotiator(self):
        # Asked before the action is set too (when the request is wrapped): only the file routes differ.
        if getattr(self, "action", None) in FILE_SIZES:
            return FileContentNegotiation()
        return super().get_content_negotiator()

    def _file(self, request, sample_id, size):
        # With credentials; a signed URL is answered before the viewset (signed_first).
        response = _file_response(request, self.sample(sample_id), size, IMMUTABLE_CACHE)
        if response is None:
            raise NotFound("The stored file is missing.")
        return response

    @extend_schema(parameters=SIGNED_URL_PARAMETERS, auth=TOKEN_OR_SIGNATURE, responses={
        (200, "image/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The original bytes."),
        304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
        403: SIGNED_URL_REFUSED})
    @action(detail=True, methods=["get"])
    def image(self, request, dataset_id=None, sample_id=None):
        return self._file(request, sample_id, ImageSize.ORIGINAL)

    @extend_schema(parameters=SIGNED_URL_PARAMETERS, auth=TOKEN_OR_SIGNATURE, responses={
        (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="A JPEG thumbnail."),
        304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
        403: SIGNED_URL_REFUSED})
    @action(detail=True, methods=["get"])
    def thumbnail(self, request, dataset_id=None, sample_id=None):
        return self._file(request, sample_id, ImageSize.THUMBNAIL)


class ResampleView(DatasetScopedMixin, APIView):
    """The active sample of a split: choose it (POST), read it (GET ?split=) or drop it (DELETE ?split=)."""

    required_roles = {"GET": Role.VIEWER, "POST": Role.ANNOTATOR, "DELETE": Role.ANNOTATOR}

    @extend_schema(request=ResampleParamsSerializer, responses={200: ResampleSerializer})
    def post(self, request, dataset_id=None):
        serializer = ResampleParamsSerializer(data=request.data)
        refuse_unknown_keys(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        resample, _ = resample_create(dataset=self.dataset, user=request.user, **serializer.validated_data)
        return Response(ResampleSerializer(resample_with_counts_now(resample)).data)

    def _split(self, request):
        refuse_unknown_query_keys(("split",), request.query_params)  # before a DELETE acts, not after it
        mark_query_checked(request)
        split = request.query_params.get("split")
        if split not in Split.values:
            raise ValidationError({"split": [f"Give ?split= one of {', '.join(Split.values)}."]})
        return split

    @extend_schema(parameters=[OpenApiParameter("split", str, enum=Split.values, required=True)],
                   responses={200: ResampleSerializer})
    def get(self, request, dataset_id=None):
        resample = resample_get(dataset=self.dataset, split=self._split(request))
        if resample is None:
            raise NotFound("This split has no active resample.")
        return Response(ResampleSerializer(resample_with_counts_now(resample)).data)

    @extend_schema(parameters=[OpenApiParameter("split", str, enum=Split.values, required=True)],
                   responses={204: None})
    def delete(self, request, dataset_id=None):
        if not resample_clear(dataset=self.dataset, split=self._split(request)):
            raise NotFound("This split has no active resample.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImportView(DatasetScopedMixin, APIView):
    """Ingest images: uploaded files, an archive (zip / tar, optional manifest) or a server-side path.

    Answers 202 with the import Job; its result lists created, duplicate and refused files with reasons. A server
    `path` must lie, with no link on the way, inside an import source an operator granted to this dataset or to you
    (as an editor of it); any other path, existing or not, answers the same 400 on `path`. A form key the request
    does not take is a 400.
    """

    parser_classes = [MultiPartParser, FormParser]
    write_role = Role.EDITOR

    @extend_schema(request={"multipart/form-data": ImportSerializer},
                   responses={202: JOB_VARIANTS[JobKind.IMPORT]})
    def post(self, request, dataset_id=None):
        # A plain dict, not QueryDict.copy(): that deep-copies, and large uploads are open temp files.
        data = {key: value for key, value in request.data.items() if key not in ("files", "files[]")}
        files = request.FILES.getlist("files") + request.FILES.getlist("files[]")  # either spelling, or both
        if files:
            data["files"] = files
        serializer = ImportSerializer(data=data)
        refuse_unknown_keys(serializer, data)  # `spilt=dev` imported into train
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        job = import_start(dataset=self.dataset, user=request.user, **values)
        job.refresh_from_db()
        return accepted(request, job)
