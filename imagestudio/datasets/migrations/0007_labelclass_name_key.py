"""Class names compared as names.class_name_key does. Existing classes whose keys collide (`cat` and `Cat`) keep
apart with their id appended to the key, so nothing is merged behind the owners' backs; renaming one of them
settles it."""

import unicodedata

from django.db import migrations, models


def _key(name):
    visible = "".join(ch for ch in unicodedata.normalize("NFKC", name) if unicodedata.category(ch) != "Cf").strip()
    return visible.casefold()


def fill_keys(apps, schema_editor):
    LabelClass = apps.get_model("datasets", "LabelClass")
    seen = set()
    for label_class in LabelClass.objects.order_by("id").iterator():
        key = _key(label_class.name)
        if (label_class.dataset_id, key) in seen:
            key = f"{key}#{label_class.id}"
        seen.add((label_class.dataset_id, key))
        label_class.name_key = key
        label_class.save(update_fields=["name_key"])


class Migration(migrations.Migration):
    dependencies = [("datasets", "0006_dataset_auto_train")]

    operations = [
        migrations.AddField(model_name="labelclass", name="name_key", field=models.CharField(default="", max_length=200),
                            preserve_default=False),
        migrations.RunPython(fill_keys, migrations.RunPython.noop),
        migrations.AddConstraint(model_name="labelclass",
                                 constraint=models.UniqueConstraint(fields=("dataset", "name_key"),
                                                                    name="unique_class_name_key")),
    ]
