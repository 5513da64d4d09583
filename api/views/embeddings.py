from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from api.responses import accepted
from api.scoping import DatasetScopedMixin
from api.serializers.embeddings import (
    EmbeddingComputeSerializer,
    EmbeddingCoverageSerializer,
    ResourceAllocateSerializer,
    ResourceSerializer,
    SimilaritySearchResultSerializer,
    SimilaritySearchSerializer,
)
from api.serializers.jobs import JOB_VARIANTS
from api.validation import validated
from imagestudio.datasets.models import Role
from imagestudio.embeddings import selectors, services
from imagestudio.embeddings.models import EmbeddingSet, ResourceAllocation
from imagestudio.jobs.models import JobKind


class EmbeddingsView(DatasetScopedMixin, GenericAPIView):
    """Embedding coverage per encoder (GET); compute the missing vectors as a Job (POST, 202)."""

    serializer_class = EmbeddingCoverageSerializer
    scoped_model = EmbeddingSet
    scoped_selector = staticmethod(selectors.embedding_set_list)
    required_roles = {"GET": Role.VIEWER, "POST": Role.EDITOR}

    @extend_schema(responses={200: EmbeddingCoverageSerializer(many=True)})
    def get(self, request, dataset_id=None):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(EmbeddingCoverageSerializer(page, many=True).data)

    @extend_schema(request=EmbeddingComputeSerializer, responses={202: JOB_VARIANTS[JobKind.EMBEDDINGS]})
    def post(self, request, dataset_id=None):
        data = validated(EmbeddingComputeSerializer, request.data, known_keys_only=True)
        return accepted(request, services.embeddings_start(dataset=self.dataset, user=request.user, **data))


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
    scoped_model = ResourceAllocation
    scoped_selector = staticmethod(selectors.resource_list)
    required_roles = {"GET": Role.VIEWER, "POST": Role.EDITOR, "DELETE": Role.EDITOR}

    @extend_schema(responses={200: ResourceSerializer(many=True)})
    def get(self, request, dataset_id=None):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ResourceSerializer(page, many=True).data)

    @extend_schema(request=ResourceAllocateSerializer, responses={201: ResourceSerializer})
    def post(self, request, dataset_id=None):
        data = validated(ResourceAllocateSerializer, request.data, known_keys_only=True)
        allocation = services.resource_allocate(dataset=self.dataset, user=request.user, **data)
        return Response(ResourceSerializer(allocation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request, dataset_id=None):
        services.resource_release(dataset=self.dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)
