"""Authentication by a signed `?access=` token (imagestudio.common.access) for the one resource it was issued for:
a job's events stream, an export's CSV."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from imagestudio.exports.access import export_access_user
from imagestudio.jobs.access import job_access_user

ACCESS_PARAM = "access"


class SignedAccessAuthentication(BaseAuthentication):
    """`?access=<token>`: the user it was issued to, for the object the view's URL names only."""

    refusal = ""

    def user_for(self, token, object_id):
        raise NotImplementedError

    def authenticate(self, request):
        token = request.query_params.get(ACCESS_PARAM)
        if token is None:
            return None
        view = request.parser_context["view"]
        user = self.user_for(token, view.kwargs.get(view.lookup_url_kwarg or view.lookup_field, ""))
        if user is None:
            raise AuthenticationFailed(self.refusal)
        return user, None

    def authenticate_header(self, request):
        return "Token"


class JobAccessAuthentication(SignedAccessAuthentication):
    """The `access` of a Job payload's `events_url`: that user, for that job's events only."""

    refusal = "This events URL is not valid for this job or has expired: take a fresh `events_url` from the job."

    def user_for(self, token, object_id):
        return job_access_user(token=token, job_id=object_id)


class ExportAccessAuthentication(SignedAccessAuthentication):
    """The `access` of an Export payload's `download_url`: that user, for that export's CSV only."""

    refusal = ("This download URL is not valid for this export or has expired: take a fresh `download_url` from the "
               "export.")

    def user_for(self, token, object_id):
        return export_access_user(token=token, export_id=object_id)


class JobAccessScheme(OpenApiAuthenticationExtension):
    target_class = JobAccessAuthentication
    name = "jobAccess"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "query", "name": ACCESS_PARAM,
                "description": "The signed, short-lived token in a Job's `events_url` (EventSource sends no headers)."}


class ExportAccessScheme(OpenApiAuthenticationExtension):
    target_class = ExportAccessAuthentication
    name = "exportAccess"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "query", "name": ACCESS_PARAM,
                "description": "The signed, short-lived token in an Export's `download_url` (a link sends no "
                               "headers)."}
