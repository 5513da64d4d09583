"""accounts 0002: keys of DRF's authtoken table (plain text) become hashed tokens that still sign in, and the
table is gone."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from rest_framework.test import APIClient

from imagestudio.accounts.keys import key_digest
from imagestudio.accounts.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("accounts", "0001_api_tokens")
LEGACY_KEY = "0123456789abcdef0123456789abcdef01234567"


def create_legacy_table(user):
    """authtoken_token as rest_framework.authtoken 0003 left it, with one key, and its migration records."""
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamp with time zone '
                       'NOT NULL, user_id integer NOT NULL UNIQUE)' if connection.vendor == "postgresql" else
                       'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created datetime NOT NULL, '
                       'user_id integer NOT NULL UNIQUE)')
        cursor.execute('INSERT INTO authtoken_token ("key", created, user_id) VALUES (%s, %s, %s)',
                       [LEGACY_KEY, timezone.now(), user.pk])
    MigrationRecorder(connection).record_applied("authtoken", "0003_tokenproxy")


def test_legacy_keys_keep_working_hashed_and_their_table_goes(owner):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        create_legacy_table(owner)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    imported = ApiToken.objects.get(user=owner)
    assert imported.digest == key_digest(LEGACY_KEY) and imported.prefix == LEGACY_KEY[:12]
    assert imported.expires_at is None and imported.name == "authtoken (imported)"
    assert "authtoken_token" not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {LEGACY_KEY}")
    assert client.get("/api/datasets/").status_code == 200
