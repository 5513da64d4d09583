"""Response shapes shared by several views."""

from django.urls import reverse
from rest_framework.response import Response

from api.links import absolute_url
from api.serializers.jobs import JobSerializer


def accepted(request, job):
    """202 with the job and its Location, the answer of every async endpoint."""
    data = JobSerializer(job, context={"request": request}).data
    return Response(data, status=202, headers={"Location": data["url"]})


class LocatedCreatesMixin:
    """A viewset's 201 says where the new resource lives: `Location`, its detail URL (the router's
    `<basename>-detail`, by the new `id`), as a 202 gives its job's."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == 201 and "Location" not in response:
            lookup = self.lookup_url_kwarg or self.lookup_field
            path = reverse(f"{self.basename}-detail", kwargs={**self.kwargs, lookup: response.data["id"]})
            response["Location"] = absolute_url(request, path)
        return response
