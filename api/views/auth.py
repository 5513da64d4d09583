import hashlib
import logging
import unicodedata
from datetime import timedelta

from django.contrib.auth import authenticate, logout
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, AuthenticationFailed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from api.responses import LocatedCreatesMixin
from api.scoping import schema_placeholder
from api.serializers.auth import (
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    CredentialsSerializer,
    IssuedTokenSerializer,
)
from api.validation import refuse_body, validated
from imagestudio.accounts.models import ApiToken
from imagestudio.accounts.selectors import token_get, token_list
from imagestudio.accounts.services import token_create, token_default_lifetime, token_login, token_revoke, token_rotate

logger = logging.getLogger(__name__)


class _FailOpen:
    """A throttle whose shared store is down lets the request through (and says so in the log) rather than
    turning a login into a 500."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except APIException:  # the request's own fault (a body that does not parse): answered as such
            raise
        except Exception as exc:  # the cache backend's connection errors
            logger.warning("login throttle unavailable (%s): not applied", exc)
            return True


class LoginIPThrottle(_FailOpen, AnonRateThrottle):
    """Attempts per client address (X-Forwarded-For only through TRUSTED_PROXIES proxies)."""

    scope = "login_ip"


class LoginUserThrottle(_FailOpen, SimpleRateThrottle):
    """Attempts per user name, whatever address they come from."""

    scope = "login_user"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        if not isinstance(username, str) or not username:
            return None
        # The name as authentication reads it (stripped), and then some: " mallory", "MALLORY" and "ｍａｌｌｏｒｙ"
        # spend one budget.
        name = unicodedata.normalize("NFKC", username.strip()).casefold()
        ident = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ObtainTokenView(APIView):
    """Exchange a username and password for a new API token (`Authorization: Token <key>`), named `login (<your
    User-Agent>)`, expiring after TOKEN_TTL_DAYS. Each login issues another token; POST auth/logout/ revokes it."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginIPThrottle, LoginUserThrottle]

    def get_authenticate_header(self, request):
        return "Token"  # wrong credentials are a 401, like any failed authentication

    @extend_schema(request=CredentialsSerializer, responses={200: IssuedTokenSerializer}, auth=[])
    def post(self, request):
        credentials = validated(CredentialsSerializer, request.data)
        user = authenticate(request=request, **credentials)
        if user is None or not user.is_active:
            raise AuthenticationFailed("Wrong username or password.")
        issued = token_login(user=user, user_agent=request.headers.get("User-Agent", ""))
        return Response(IssuedTokenSerializer(issued).data, status=status.HTTP_200_OK)


class LogoutView(APIView):
    """Revoke the token this request is made with (a browsable-API session is ended instead)."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Signed out: the token answers 401 "
                                                                              "from now on.")})
    def post(self, request):
        refuse_body(request)
        if isinstance(request.auth, ApiToken):
            token_revoke(token=request.auth)
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(LocatedCreatesMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                      viewsets.GenericViewSet):
    """Your live API tokens (neither revoked nor expired): named tokens for scripts, and one per login. Keys are
    shown once, when issued; a list shows each token's prefix. Another user's token id is a 404."""

    serializer_class = ApiTokenSerializer
    lookup_url_kwarg = "token_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return schema_placeholder(ApiToken)
        return token_list(user=self.request.user)

    def get_object(self):
        token = token_get(user=self.request.user, token_id=self.kwargs["token_id"])
        if token is None:
            raise NotFound("No live token of yours has this id.")
        return token

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "auth": getattr(self.request, "auth", None)}

    @extend_schema(request=ApiTokenCreateSerializer, responses={201: IssuedTokenSerializer})
    def create(self, request):
        """Issue a named token, e.g. for a script. The key is in this answer only."""
        fields = validated(ApiTokenCreateSerializer, request.data, known_keys_only=True)
        issued = token_create(user=request.user, name=fields["name"], lifetime=_lifetime(fields))
        return Response(IssuedTokenSerializer(issued).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, token):
        token_revoke(token=token)

    @extend_schema(request=None, responses={201: IssuedTokenSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request, token_id=None):
        """A new key for the token: a new token (new id) with the same name and lifetime; the old key answers
        401 from now on."""
        refuse_body(request)
        issued = token_rotate(token=self.get_object())
        return Response(IssuedTokenSerializer(issued).data, status=status.HTTP_201_CREATED)


def _lifetime(fields):
    """`expires_in_days` as a duration: omitted, the default; null, none (never expires)."""
    if "expires_in_days" not in fields:
        return token_default_lifetime()
    days = fields["expires_in_days"]
    return None if days is None else timedelta(days=days)
