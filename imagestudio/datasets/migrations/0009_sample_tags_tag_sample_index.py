"""The samples of a tag in id order, from one index: the tag filter's page and count read it alone
(selectors.filter_members), index-only."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("datasets", "0008_importgrant")]
    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS sample_tags_tag_sample ON datasets_sample_tags (tag_id, sample_id)",
            "DROP INDEX IF EXISTS sample_tags_tag_sample",
        ),
    ]
