from rest_framework import serializers

from api.fields import AsciiIntegerField, StrictCharField, StrictModelSerializer
from imagestudio.accounts.models import ApiToken
from imagestudio.accounts.services import NAME_MAX_LENGTH

MAX_LIFETIME_DAYS = 3650


class CredentialsSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, style={"input_type": "password"}, trim_whitespace=False)


class IssuedTokenSerializer(serializers.Serializer):
    """A token as issued (login, create, rotate): the only answer that carries the secret key."""

    token = StrictCharField(source="key", help_text="The secret key, shown this once (only a digest is "
                                                          "stored): send it as `Authorization: Token <key>`.")
    id = AsciiIntegerField(source="token.id")
    name = StrictCharField(source="token.name")
    prefix = StrictCharField(source="token.prefix", help_text="The key's first characters, as listed.")
    created_at = serializers.DateTimeField(source="token.created_at")
    expires_at = serializers.DateTimeField(source="token.expires_at", allow_null=True,
                                           help_text="When the key stops working; null: never.")


class ApiTokenSerializer(StrictModelSerializer):
    """A token as listed: never its key nor its digest."""

    current = serializers.SerializerMethodField(help_text="True for the token this request was made with.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "current"]
        read_only_fields = fields

    def get_current(self, token) -> bool:
        return isinstance(self.context.get("auth"), ApiToken) and self.context["auth"].pk == token.pk


class ApiTokenCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, help_text="What the token is for, e.g. `nightly-export`.")
    expires_in_days = AsciiIntegerField(
        min_value=1, max_value=MAX_LIFETIME_DAYS, required=False, allow_null=True,
        help_text="Lifetime in days. Omitted: the server's default (TOKEN_TTL_DAYS); null: never expires.")
