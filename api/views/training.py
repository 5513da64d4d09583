from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from api.links import dataset_analysis_with_links
from api.responses import accepted
from api.scoping import DatasetScopedMixin
from api.serializers.charts import ModelChartsQuerySerializer, ModelChartsSerializer
from api.serializers.jobs import JOB_VARIANTS, JobByKindSerializer
from api.serializers.training import (
    AnalysisQuerySerializer,
    AnalysisSerializer,
    FastModelCreateSerializer,
    FastModelSerializer,
    PredictionQuerySerializer,
    PredictionSerializer,
    TrainingLabelQuerySerializer,
    TrainingLabelSerializer,
    TrainingSetCreateSerializer,
    TrainingSetSerializer,
)
from api.validation import refuse_body, validated, validated_query
from imagestudio.datasets.models import Role
from imagestudio.jobs.models import JobKind
from imagestudio.training import charts, selectors, services
from imagestudio.training.models import FastModel, TrainingSet


class TrainingSetViewSet(DatasetScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         viewsets.GenericViewSet):
    """Label-model output of the active LFs, as immutable content-hashed snapshots."""

    serializer_class = TrainingSetSerializer
    scoped_model = TrainingSet
    lookup_url_kwarg = "training_set_id"
    scoped_selector = staticmethod(selectors.training_set_list)
    not_found = "No such training set in this dataset."
    write_role = Role.ANNOTATOR

    @extend_schema(request=TrainingSetCreateSerializer, responses={202: JobByKindSerializer, 200: TrainingSetSerializer})
    def create(self, request, dataset_id=None):
        """202 with the building job; 200 with the existing snapshot when the same inputs were built before."""
        data = validated(TrainingSetCreateSerializer, request.data, known_keys_only=True)
        training_set, created = services.training_set_start(dataset=self.dataset, user=request.user, **data)
        if created or not training_set.ready:
            return accepted(request, training_set.job)
        return Response(TrainingSetSerializer(training_set).data, status=status.HTTP_200_OK)

    @extend_schema(request=None, responses={202: JobByKindSerializer, 200: TrainingSetSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request, dataset_id=None, training_set_id=None):
        """The same splits and seed from the current inputs: 202 with the job, or 200 with the set when nothing
        changed."""
        refuse_body(request)
        training_set, created = services.training_set_rebuild(training_set=self.get_object(), user=request.user)
        if created or not training_set.ready:
            return accepted(request, training_set.job)
        return Response(TrainingSetSerializer(training_set).data, status=status.HTTP_200_OK)

    @extend_schema(parameters=[TrainingLabelQuerySerializer], responses={200: TrainingLabelSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def labels(self, request, dataset_id=None, training_set_id=None):
        """Per sample and class: probability, label (ABSTAIN where no LF voted) and provenance."""
        query = validated_query(TrainingLabelQuerySerializer, request)
        training_set = self.get_object()
        rows = self.paginator.paginate_counted(request, lambda offset, limit: selectors.training_labels_page(
            training_set=training_set, split=query.get("split"), offset=offset, limit=limit))
        return self.get_paginated_response(rows)


class FastModelViewSet(DatasetScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       viewsets.GenericViewSet):
    """Fast models: a logistic regression per class on the embeddings, trained as a job on the training queue."""

    serializer_class = FastModelSerializer
    scoped_model = FastModel
    lookup_url_kwarg = "model_id"
    scoped_selector = staticmethod(selectors.model_list)
    not_found = "No such model in this dataset."
    write_role = Role.ANNOTATOR

    @extend_schema(request=FastModelCreateSerializer, responses={202: JOB_VARIANTS[JobKind.FAST_MODEL]})
    def create(self, request, dataset_id=None):
        data = validated(FastModelCreateSerializer, request.data, known_keys_only=True)
        if "classes" in data:
            data["classes"] = [self.label_class(ref, field="classes") for ref in data["classes"]]
        if "training_set" in data:
            training_set = selectors.training_set_get(dataset=self.dataset, training_set_id=data["training_set"])
            if training_set is None:
                raise ValidationError({"training_set": ["No such training set in this dataset."]})
            data["training_set"] = training_set
        model = services.model_start(dataset=self.dataset, user=request.user, **data)
        return accepted(request, model.job)

    @extend_schema(request=None, responses={202: JOB_VARIANTS[JobKind.FAST_MODEL]})
    @action(detail=True, methods=["post"])
    def retrain(self, request, dataset_id=None, model_id=None):
        """A new version with this model's parameters on the current inputs."""
        refuse_body(request)
        return accepted(request, services.model_retrain(model=self.get_object(), user=request.user).job)

    @extend_schema(parameters=[PredictionQuerySerializer], responses={200: PredictionSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def predictions(self, request, dataset_id=None, model_id=None):
        """Score, probability and label per sample and class (sample ascending, then class)."""
        model = self.get_object()
        query = validated_query(PredictionQuerySerializer, request)
        rows = selectors.model_predictions(model=model, label_class=self.optional_class(query),
                                           sample_id=query.get("sample"))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(PredictionSerializer(page, many=True).data)

    @extend_schema(parameters=[ModelChartsQuerySerializer], responses={200: ModelChartsSerializer})
    @action(detail=True, methods=["get"])
    def charts(self, request, dataset_id=None, model_id=None):
        """One chart screen per request: per class on a split (default valid), PR and ROC points, the score
        histogram by ground truth, calibration bins and the confusion at the model's threshold, against the
        current ground truth. 409 while the model is not ready."""
        query = validated_query(ModelChartsQuerySerializer, request)
        return Response(charts.model_charts(model=self.get_object(), label_class=self.optional_class(query),
                                            split=query["split"], points=query["points"], bins=query["bins"],
                                            calibration_bins=query["calibration_bins"]))


class AnalysisView(DatasetScopedMixin, GenericAPIView):
    """Per class: LF coverage and conflicts, label model against majority vote on dev, model metrics on valid,
    guidance with the samples-list filter of each case, and the samples to annotate next."""

    serializer_class = AnalysisSerializer

    @extend_schema(parameters=[AnalysisQuerySerializer], responses={200: AnalysisSerializer})
    def get(self, request, dataset_id=None):
        query = validated_query(AnalysisQuerySerializer, request)
        return Response(dataset_analysis_with_links(request=request, dataset=self.dataset,
                                                    label_class=self.optional_class(query), split=query["split"],
                                                    model=query.get("model"), training_set=query.get("training_set")))
