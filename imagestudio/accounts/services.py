"""API tokens of users."""

from rest_framework.authtoken.models import Token


def token_for(*, user) -> str:
    """The user's API token, created on first use."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
