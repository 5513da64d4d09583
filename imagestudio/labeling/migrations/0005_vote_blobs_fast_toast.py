"""The LF's vote id blobs (4 MB at 500K samples) compressed with lz4 rather than pglz, which took ~0.5 s per save;
stored uncompressed where the server lacks lz4. Postgres only."""

from django.db import migrations

BLOBS = ("votes_present", "votes_absent")


def fast_toast(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        lz4 = cursor.fetchone()[0]
    setting = "SET COMPRESSION lz4" if lz4 else "SET STORAGE EXTERNAL"
    schema_editor.execute("ALTER TABLE labeling_labelingfunction " + ", ".join(f"ALTER {column} {setting}"
                                                                                for column in BLOBS))


class Migration(migrations.Migration):
    dependencies = [("labeling", "0004_lfvote_partitioned_by_lf")]

    operations = [migrations.RunPython(fast_toast, migrations.RunPython.noop)]
