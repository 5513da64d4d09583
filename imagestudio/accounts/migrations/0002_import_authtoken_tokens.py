"""Move DRF authtoken keys (stored in plain text) into hashed API tokens, then drop their table.

Scripts that hold such a key keep working: its digest and prefix are stored as for any token, with no expiry.
rest_framework.authtoken is no longer installed, so its table is read with SQL where it exists (databases made
before this migration); its migration records go too, so that installing that app again would create it afresh.
"""

import hashlib
from datetime import UTC

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder

LEGACY_TABLE = "authtoken_token"
PREFIX_LENGTH = 12


def import_authtoken_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    table = schema_editor.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {schema_editor.quote_name('key')}, user_id, created FROM {table}")  # noqa: S608
        rows = cursor.fetchall()
    ApiToken = apps.get_model("accounts", "ApiToken")
    ApiToken.objects.bulk_create(
        ApiToken(user_id=user_id, name="authtoken (imported)", prefix=key[:PREFIX_LENGTH],
                 digest=hashlib.sha256(key.encode()).hexdigest(), created_at=_aware(created), expires_at=None)
        for key, user_id, created in rows)
    schema_editor.execute(f"DROP TABLE {table}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


def _aware(stamp):
    """Raw SQL on SQLite reads datetimes without a zone; Django stored them in UTC."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_api_tokens")]

    operations = [migrations.RunPython(import_authtoken_tokens, migrations.RunPython.noop, elidable=True)]
