from django.conf import settings
from django.urls import URLPattern, reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.fields import StrictCharField
from api.links import absolute_url

ApiRootSerializer = inline_serializer("ApiRoot", {
    "version": StrictCharField(help_text="The API's version (the OpenAPI schema's info.version)."),
    "resources": serializers.DictField(child=serializers.URLField(),
                                       help_text="Each top-level resource (its path) -> its URL."),
})


class ApiRootView(APIView):
    """The API's entry point: its version and the URL of every top-level resource. Public, like the schema."""

    authentication_classes = []
    permission_classes = [AllowAny]
    patterns = ()  # the API's URL patterns, given by api/urls.py: every one without a parameter is listed

    @extend_schema(auth=[], tags=["root"], responses={200: ApiRootSerializer})
    def get(self, request):
        resources = {}
        for pattern in self.patterns:
            route = str(pattern.pattern).removeprefix("^").removesuffix("$")
            if isinstance(pattern, URLPattern) and pattern.name and route and "<" not in route and "(" not in route:
                resources[route.rstrip("/")] = absolute_url(request, reverse(pattern.name))
        return Response({"version": settings.SPECTACULAR_SETTINGS["VERSION"], "resources": resources})
