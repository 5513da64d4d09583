from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.fields import StrictCharField
from api.validation import validated_query
from imagestudio.jobs.health import service_health

HealthSerializer = inline_serializer("Health", {
    "database": StrictCharField(help_text="ok, or why not."),
    "broker": StrictCharField(help_text="ok, or unavailable (in-process tasks count as ok)."),
    "workers": serializers.IntegerField(required=False, allow_null=True,
                                        help_text="Workers answering a ping (with ?workers=1); null: tasks run "
                                                  "in-process."),
})


class HealthQuerySerializer(serializers.Serializer):
    workers = serializers.BooleanField(required=False, default=False,
                                       help_text="Also require a worker to answer a ping.")


class HealthView(APIView):
    """For load balancers and healthchecks: 200 when the service can work, 503 with the report otherwise."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(auth=[], parameters=[HealthQuerySerializer],
                   responses={200: HealthSerializer, 503: HealthSerializer})
    def get(self, request):
        query = validated_query(HealthQuerySerializer, request)
        healthy, report = service_health(with_workers=query["workers"])
        return Response(report, status=200 if healthy else 503)
