from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from api.scoping import DatasetScopedMixin
from api.serializers.embeddings import (
    EmbeddingComputeSerializer,
    EmbeddingCoverageSerializer,
    ResourceAllocateSerializer,
    ResourceSerializer,
    SimilaritySearchResultSerializer,
    SimilaritySearchSerializer,
)
from api.serializers.jobs import JobSerializer
from api.validation import validated
from api.views.jobs import accepted
from imagestudio.datasets.models import Role
from imagestudio.embeddings import services
from imagestudio.embeddings.models import EmbeddingSet, ResourceAllocation


class EmbeddingsView(DatasetScopedMixin, GenericAPIView):
    """Embedding coverage per encoder (GET); compute the missing vectors as a Job (POST, 202)."""

    serializer_class = EmbeddingCoverageSerializer
    queryset = EmbeddingSet.objects.none()
    required_roles = {"GET": Role.VIEWER, "POST": Role.EDITOR}

    @extend_schema(responses={200: EmbeddingCoverageSerializer(many=True)})
    def get(self, request, dataset_id=None):
        sets = EmbeddingSet.objects.filter(dataset=self.dataset).select_related("encoder", "dataset").order_by("id")
        page = self.paginate_queryset(sets)
        return self.get_paginated_response(EmbeddingCoverageSerializer(page, many=True).data)

    @extend_schema(request=EmbeddingComputeSerializer, responses={202: JobSerializer})
    def post(self, request, dataset_id=None):
        data = validated(EmbeddingComputeSerializer, request.data)
        return accepted(services.embeddings_start(dataset=self.dataset, user=request.user, **data))


class SimilaritySearchView(DatasetScopedMixin, GenericAPIView):
    """Samples most similar to a text, a dataset image or a crop of one, scored in one vector operation."""

    serializer_class = SimilaritySearchSerializer
    required_roles = {"POST": Role.VIEWER}

    @extend_schema(request=SimilaritySearchSerializer, responses={200: SimilaritySearchResultSerializer})
    def post(self, request, dataset_id=None):
        data = validated(SimilaritySearchSerializer, request.data)
        return Response(services.embeddings_search(dataset=self.dataset, **data))


class ResourcesView(DatasetScopedMixin, GenericAPIView):
    """Dedicated resources: pin the dataset's matrices in memory (POST), list (GET), release (DELETE)."""

    serializer_class = ResourceSerializer
    queryset = ResourceAllocation.objects.none()
    required_roles = {"GET": Role.VIEWER, "POST": Role.EDITOR, "DELETE": Role.EDITOR}

    @extend_schema(responses={200: ResourceSerializer(many=True)})
    def get(self, request, dataset_id=None):
        services.resources_expire()
        allocations = ResourceAllocation.objects.filter(dataset=self.dataset).select_related("encoder").order_by("id")
        page = self.paginate_queryset(allocations)
        return self.get_paginated_response(ResourceSerializer(page, many=True).data)

    @extend_schema(request=ResourceAllocateSerializer, responses={201: ResourceSerializer})
    def post(self, request, dataset_id=None):
        data = validated(ResourceAllocateSerializer, request.data)
        allocation = services.resource_allocate(dataset=self.dataset, user=request.user, **data)
        return Response(ResourceSerializer(allocation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request, dataset_id=None):
        services.resource_release(dataset=self.dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)
