from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.fields import StrictCharField
from imagestudio.jobs.health import service_health

HealthSerializer = inline_serializer("Health", {
    "database": StrictCharField(help_text="ok, or why not."),
    "broker": StrictCharField(help_text="ok, or unavailable (in-process tasks count as ok)."),
    "workers": serializers.IntegerField(required=False, allow_null=True,
                                        help_text="Workers answering a ping (with ?workers=1); null: tasks run "
                                                  "in-process."),
})


class HealthView(APIView):
    """For load balancers and healthchecks: 200 when the service can work, 503 with the report otherwise."""

    authentication_classes = []
    permission_classes = [AllowAny]
    query_parameters = ("workers",)  # api.middleware

    @extend_schema(auth=[], parameters=[OpenApiParameter("workers", bool, required=False,
                                                         description="Also require a worker to answer a ping.")],
                   responses={200: HealthSerializer, 503: HealthSerializer})
    def get(self, request):
        healthy, report = service_health(with_workers=request.query_params.get("workers") in ("1", "true"))
        return Response(report, status=200 if healthy else 503)
