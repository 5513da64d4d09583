"""Similarity LFs saved before vector spaces existed scored in the joint space: say so in their config, so that
they keep their votes while new image and patch LFs default to the visual space."""

from django.db import migrations

SIMILARITY_TYPES = ("similarity_text", "similarity_image", "similarity_patch")


def joint_space(apps, schema_editor):
    LabelingFunction = apps.get_model("labeling", "LabelingFunction")
    for lf in LabelingFunction.objects.filter(type__in=SIMILARITY_TYPES).iterator():
        if "space" not in lf.config:
            lf.config = {**lf.config, "space": "joint"}
            lf.save(update_fields=["config"])


class Migration(migrations.Migration):
    dependencies = [("labeling", "0002_alter_lfvote_lf_alter_lfvote_sample")]

    operations = [migrations.RunPython(joint_space, migrations.RunPython.noop)]
