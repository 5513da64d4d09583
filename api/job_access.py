"""Authentication by a job's signed `?access=` token (see imagestudio/jobs/access.py), for its events stream."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from imagestudio.jobs.access import job_access_user

ACCESS_PARAM = "access"


class JobAccessAuthentication(BaseAuthentication):
    """`?access=<token>` from a Job payload's `events_url`: that user, for that job only."""

    def authenticate(self, request):
        token = request.query_params.get(ACCESS_PARAM)
        if token is None:
            return None
        view = request.parser_context["view"]
        job_id = view.kwargs.get(view.lookup_url_kwarg or view.lookup_field, "")
        user = job_access_user(token=token, job_id=job_id)
        if user is None:
            raise AuthenticationFailed("This events URL is not valid for this job or has expired: "
                                       "take a fresh `events_url` from the job.")
        return user, None

    def authenticate_header(self, request):
        return "Token"


class JobAccessScheme(OpenApiAuthenticationExtension):
    target_class = JobAccessAuthentication
    name = "jobAccess"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "query", "name": ACCESS_PARAM,
                "description": "The signed, short-lived token in a Job's `events_url` (EventSource sends no headers)."}
