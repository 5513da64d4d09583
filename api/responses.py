"""Response shapes shared by several views."""

from rest_framework.response import Response

from api.serializers.jobs import JobSerializer


def accepted(request, job):
    """202 with the job and its Location, the answer of every async endpoint."""
    data = JobSerializer(job, context={"request": request}).data
    return Response(data, status=202, headers={"Location": data["url"]})
