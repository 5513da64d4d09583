from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from api.headers import IF_MATCH, etagged, if_match_precondition, if_match_version, representation_etag
from api.scoping import DatasetScopedMixin
from api.serializers.annotations import (
    AnnotationEventSerializer,
    AnnotationQuerySerializer,
    AnnotationSerializer,
    AnnotationWriteResultSerializer,
    AnnotationWriteSerializer,
    BulkAnnotationSerializer,
    BulkResultSerializer,
    HistoryQuerySerializer,
    UndoResultSerializer,
)
from api.validation import refuse_body, validated, validated_query
from imagestudio.annotations import services
from imagestudio.annotations.models import Annotation, AnnotationEvent
from imagestudio.annotations.selectors import annotation_history, annotation_list
from imagestudio.datasets.models import Role
from imagestudio.datasets.selectors import sample_get


class AnnotationView(DatasetScopedMixin, GenericAPIView):
    """Ground truth per (sample, class). GET lists labels (filter by sample, class, value); PUT sets one.

    PUT with value ABSTAIN clears the label. A cleared label stays listed, with value ABSTAIN and its version (the
    one a later PUT names): filter by value=PRESENT or ABSENT to count the current labels. Send the `version` you
    last saw to get a 409, or its ETag as If-Match to get a 412, instead of overwriting someone else's change. A GET
    naming one sample and one class (and no value) carries that label's ETag.
    """

    serializer_class = AnnotationSerializer
    scoped_model = Annotation
    required_roles = {"GET": Role.VIEWER, "PUT": Role.ANNOTATOR}

    @staticmethod
    def _etag(rows):
        """The ETag of one (sample, class) label from its rows (none: never labeled, version 0)."""
        return representation_etag(rows[0]["version"] if rows else 0, rows)

    def _current_version(self, sample, label_class):
        rows = annotation_list(dataset=self.dataset, sample_id=sample.id, label_class=label_class)
        return next((row.version for row in rows), 0)

    def _current_etag(self, sample, label_class):
        rows = annotation_list(dataset=self.dataset, sample_id=sample.id, label_class=label_class)
        return self._etag(AnnotationSerializer(rows, many=True).data)

    @extend_schema(parameters=[AnnotationQuerySerializer], responses={200: AnnotationSerializer(many=True)})
    def get(self, request, dataset_id=None):
        query = validated_query(AnnotationQuerySerializer, request)
        label_class = self.optional_class(query)
        queryset = annotation_list(dataset=self.dataset, sample_id=query.get("sample"), label_class=label_class,
                                   value=query.get("value"))
        rows = AnnotationSerializer(self.paginate_queryset(queryset), many=True).data
        response = self.get_paginated_response(rows)
        if "sample" in query and label_class is not None and "value" not in query:
            response["ETag"] = self._etag(rows)  # one label: its version, for a PUT's If-Match
        return response

    @extend_schema(request=AnnotationWriteSerializer, parameters=[IF_MATCH],
                   responses={200: AnnotationWriteResultSerializer})
    def put(self, request, dataset_id=None):
        data = validated(AnnotationWriteSerializer, request.data, known_keys_only=True)
        sample = sample_get(dataset=self.dataset, sample_id=data["sample"])
        if sample is None:
            raise ValidationError({"sample": ["No sample with this id in this dataset."]})
        label_class = self.label_class(data["label_class"])
        listed = "," in request.headers.get("If-Match", "")  # a list: the tag naming the current version wins
        expected = if_match_version(request, current=self._current_version(sample, label_class) if listed else None)
        if expected is None:
            expected = data.get("version")
        with if_match_precondition(request, lambda: self._current_etag(sample, label_class)):
            annotation, changed = services.annotation_set(dataset=self.dataset, user=request.user, sample=sample,
                                                          label_class=label_class, value=data["value"],
                                                          expected_version=expected)
        if annotation is None:  # clearing a label that never existed
            rows = []
            annotation = Annotation(sample=sample, label_class=label_class, value=data["value"], version=0)
        else:
            rows = [AnnotationSerializer(annotation).data]
        return etagged({"changed": changed, "annotation": AnnotationSerializer(annotation).data}, self._etag(rows))


class AnnotationBulkView(DatasetScopedMixin, GenericAPIView):
    """One value for many (sample, class) pairs in one transaction: by sample ids or by a samples-list filter."""

    serializer_class = BulkAnnotationSerializer
    required_roles = {"POST": Role.ANNOTATOR}

    @extend_schema(request=BulkAnnotationSerializer, responses={200: BulkResultSerializer})
    def post(self, request, dataset_id=None):
        serializer = BulkAnnotationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        classes = [self.label_class(ref, field="classes") for ref in data["classes"]]
        result = services.annotations_bulk_set(dataset=self.dataset, user=request.user,
                                               samples=serializer.samples(self.dataset), classes=classes,
                                               value=data["value"])
        return Response(result)


class AnnotationUndoView(DatasetScopedMixin, GenericAPIView):
    """Undo your most recent bulk action on this dataset (labels changed since are left alone)."""

    required_roles = {"POST": Role.ANNOTATOR}

    @extend_schema(request=None, responses={200: UndoResultSerializer})
    def post(self, request, dataset_id=None):
        refuse_body(request)
        return Response(services.annotations_undo_last_bulk(dataset=self.dataset, user=request.user))


class AnnotationHistoryView(DatasetScopedMixin, GenericAPIView):
    """Every change of ground truth: who, when, old -> new, newest first. Filter by sample, class, user, source."""

    serializer_class = AnnotationEventSerializer
    scoped_model = AnnotationEvent

    @extend_schema(parameters=[HistoryQuerySerializer], responses={200: AnnotationEventSerializer(many=True)})
    def get(self, request, dataset_id=None):
        query = validated_query(HistoryQuerySerializer, request)
        queryset = annotation_history(dataset=self.dataset, sample_id=query.get("sample"),
                                      label_class=self.optional_class(query), username=query.get("user"),
                                      source=query.get("source"), batch=query.get("batch"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(AnnotationEventSerializer(page, many=True).data)

