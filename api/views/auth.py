import hashlib
import logging

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from api.serializers.auth import CredentialsSerializer, TokenSerializer
from imagestudio.accounts.services import token_for

logger = logging.getLogger(__name__)


class _FailOpen:
    """A throttle whose shared store is down lets the request through (and says so in the log) rather than
    turning a login into a 500."""

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
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
        ident = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token (`Authorization: Token <key>`)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginIPThrottle, LoginUserThrottle]

    def get_authenticate_header(self, request):
        return "Token"  # wrong credentials are a 401, like any failed authentication

    @extend_schema(request=CredentialsSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request):
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request=request, **serializer.validated_data)
        if user is None or not user.is_active:
            raise AuthenticationFailed("Wrong username or password.")
        return Response({"token": token_for(user=user)}, status=status.HTTP_200_OK)
