from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.scoping import DatasetScopedMixin
from api.serializers.catalogues import (
    FieldQuerySerializer,
    LFTypeCatalogueSerializer,
    MetadataFieldSerializer,
)
from api.validation import validated_query
from imagestudio.datasets.selectors import field_catalogue
from imagestudio.labeling.services import lf_type_catalogue


class FieldCatalogueView(DatasetScopedMixin, GenericAPIView):
    """The dataset's metadata fields, by name: inferred type, fill rate, distinct count and examples (a field
    picker's or a pattern LF's field menu). Follows every import and metadata edit."""

    serializer_class = MetadataFieldSerializer

    @extend_schema(parameters=[FieldQuerySerializer], responses={200: MetadataFieldSerializer(many=True)})
    def get(self, request, dataset_id=None):
        query = validated_query(FieldQuerySerializer, request)
        page = self.paginate_queryset(field_catalogue(dataset=self.dataset, split=query.get("split")))
        return self.get_paginated_response(MetadataFieldSerializer(page, many=True).data)


class LFTypeCatalogueView(APIView):
    """The LF composer's menu: LF types and pattern builders with their config's JSON Schema."""

    @extend_schema(responses={200: LFTypeCatalogueSerializer})
    def get(self, request):
        return Response(lf_type_catalogue())
