"""A trigram index for the metadata substring search, on Postgres only (SQLite scans, which is fine small)."""

from django.db import migrations


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS sample_search_trgm ON datasets_sample USING gin (search_text gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS sample_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("datasets", "0002_initial")]
    operations = [migrations.RunPython(create_index, drop_index)]
