"""Authentication by a signed `?access=` token (imagestudio.common.access) for the one resource it was issued for:
a job's events stream, an export's CSV."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from imagestudio.accounts.models import ApiToken
from imagestudio.accounts.selectors import token_get
from imagestudio.exports.access import export_access_grant, export_access_user
from imagestudio.jobs.access import job_access_grant, job_access_user

ACCESS_PARAM = "access"


def request_grant(request):
    """The API token a request was made with (its id), which a signed URL issued to it dies with; None for a
    session (the browsable API)."""
    return request.auth.pk if isinstance(request.auth, ApiToken) else None


class SignedAccessAuthentication(BaseAuthentication):
    """`?access=<token>`: the user it was issued to, for the object the view's URL names only, while the API token
    it was issued under is live (a sign-out or a rotation ends the links handed out under it)."""

    refusal = ""

    def user_for(self, token, object_id):
        raise NotImplementedError

    def grant_for(self, token, object_id):
        raise NotImplementedError

    def authenticate(self, request):
        token = request.query_params.get(ACCESS_PARAM)
        if token is None:
            return None
        view = request.parser_context["view"]
        object_id = view.kwargs.get(view.lookup_url_kwarg or view.lookup_field, "")
        user = self.user_for(token, object_id)
        if user is None:
            raise AuthenticationFailed(self.refusal)
        grant = self.grant_for(token, object_id)
        if grant is not None and token_get(user=user, token_id=str(grant)) is None:
            raise AuthenticationFailed("The sign-in this URL was issued under has ended (signed out, rotated or "
                                       "expired): sign in and take a fresh URL.")
        return user, None

    def authenticate_header(self, request):
        return "Token"


class JobAccessAuthentication(SignedAccessAuthentication):
    """The `access` of a Job payload's `events_url`: that user, for that job's events only."""

    refusal = "This events URL is not valid for this job or has expired: take a fresh `events_url` from the job."

    def user_for(self, token, object_id):
        return job_access_user(token=token, job_id=object_id)

    def grant_for(self, token, object_id):
        return job_access_grant(token=token, job_id=object_id)


class ExportAccessAuthentication(SignedAccessAuthentication):
    """The `access` of an Export payload's `download_url`: that user, for that export's CSV only."""

    refusal = ("This download URL is not valid for this export or has expired: take a fresh `download_url` from the "
               "export.")

    def user_for(self, token, object_id):
        return export_access_user(token=token, export_id=object_id)

    def grant_for(self, token, object_id):
        return export_access_grant(token=token, export_id=object_id)


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
