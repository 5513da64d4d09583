from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from api.exceptions import PreconditionFailed
from api.headers import IF_MATCH, etagged, if_match_precondition, if_match_version, representation_etag
from api.responses import LocatedCreatesMixin
from api.scoping import DatasetScopedMixin
from api.serializers.labeling import (
    LFByTypeSerializer,
    LFCreateByTypeSerializer,
    LFQuerySerializer,
    LFSerializer,
    LFUpdateSerializer,
    PreviewByTypeSerializer,
    PreviewResultSerializer,
    SummaryQuerySerializer,
    SummarySerializer,
)
from api.validation import validated, validated_query
from imagestudio.datasets.models import Role
from imagestudio.labeling import selectors, services
from imagestudio.labeling.models import LabelingFunction
from imagestudio.training.selectors import lf_summary_with_learned


class LabelingFunctionViewSet(LocatedCreatesMixin, DatasetScopedMixin, viewsets.ModelViewSet):
    """Labeling functions: tune one on `preview`, save it (its votes are materialized), activate or
    deactivate it with PATCH `active`, compare them on `summary`."""

    serializer_class = LFSerializer
    scoped_model = LabelingFunction
    lookup_url_kwarg = "lf_id"
    scoped_selector = staticmethod(selectors.lf_list)
    not_found = "No such LF in this dataset."
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    write_role = Role.ANNOTATOR
    required_roles = {"preview": Role.VIEWER}

    @extend_schema(parameters=[LFQuerySerializer], responses={200: LFByTypeSerializer(many=True)})
    def list(self, request, dataset_id=None):
        query = validated_query(LFQuerySerializer, request)
        queryset = selectors.lf_list(dataset=self.dataset, label_class=self.optional_class(query),
                                     active=query.get("active"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(LFSerializer(page, many=True).data)

    @staticmethod
    def _represented(lf):
        """The LF's payload and its ETag."""
        data = LFSerializer(lf).data
        return data, representation_etag(lf.version, data)

    @extend_schema(request=LFCreateByTypeSerializer, responses={201: LFByTypeSerializer})
    def create(self, request, dataset_id=None):
        data = validated(LFCreateByTypeSerializer, request.data)
        data["label_class"] = self.label_class(data["label_class"])
        lf = services.lf_create(dataset=self.dataset, user=request.user, **data)
        return etagged(*self._represented(lf), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: LFByTypeSerializer})
    def retrieve(self, request, dataset_id=None, lf_id=None):
        """The LF, with its ETag: send it back as If-Match to edit, or as If-None-Match to get a 304."""
        return etagged(*self._represented(self.get_object()))

    @extend_schema(request=LFUpdateSerializer, parameters=[IF_MATCH], responses={200: LFByTypeSerializer})
    def partial_update(self, request, dataset_id=None, lf_id=None):
        lf = self.get_object()
        data = validated(LFUpdateSerializer, request.data, known_keys_only=True)
        expected = data.pop("version", None)
        if (header := if_match_version(request, current=lf.version)) is not None:
            expected = header
        if "label_class" in data:
            data["label_class"] = self.label_class(data["label_class"])
        with if_match_precondition(request, lambda: self._represented(self.get_object())[1]):
            lf = services.lf_update(lf=lf, user=request.user, expected_version=expected, **data)
        return etagged(*self._represented(lf))

    @extend_schema(parameters=[IF_MATCH], responses={204: None})
    def destroy(self, request, dataset_id=None, lf_id=None):
        lf = self.get_object()
        expected = if_match_version(request, current=lf.version)
        if expected is not None and expected != lf.version:
            raise PreconditionFailed(f"The LF is at version {lf.version}, not {expected}: read it again.",
                                     version=lf.version, etag=self._represented(lf)[1])
        services.lf_delete(lf=lf, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PreviewByTypeSerializer, responses={200: PreviewResultSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request, dataset_id=None):
        """Score a rule on a split: histogram by ground truth, the figures of both sides' rules at every bin
        edge (`sweep`: move the thresholds locally), precision / recall with Wilson intervals and coverage at the
        given thresholds, suggested thresholds and the top samples. Thresholds are optional. Nothing is saved."""
        data = validated(PreviewByTypeSerializer, request.data)
        label_class = self.label_class(data.pop("label_class"))
        config = services.validate_rule(dataset=self.dataset, label_class=label_class, type=data["type"],
                                        config=data["config"], low=data["low"], high=data["high"],
                                        thresholds_required=False)
        rule = services.Rule(label_class=label_class, type=data["type"], config=config, low=data["low"],
                             high=data["high"], invert=data["invert"])
        return Response(services.lf_preview(dataset=self.dataset, rule=rule, split=data["split"],
                                            in_sample=data["in_sample"], bins=data["bins"], top=data["top"],
                                            min_precision=data["min_precision"]))

    @extend_schema(parameters=[SummaryQuerySerializer], responses={200: SummarySerializer})
    @action(detail=False, methods=["get"])
    def summary(self, request, dataset_id=None):
        """Per LF: polarity, coverage, overlaps, conflicts and precision against ground truth, on a split, and what
        the latest training set's label model learned of it."""
        query = validated_query(SummaryQuerySerializer, request)
        return Response(lf_summary_with_learned(dataset=self.dataset, split=query.get("split"),
                                                label_class=self.optional_class(query), active_only=query["active"]))
