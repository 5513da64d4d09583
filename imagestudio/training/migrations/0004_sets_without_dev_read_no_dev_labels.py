"""A training set without the dev split learns from no dev label: its snapshot's dev digest becomes null, as new
sets of such splits have it, and its content hash follows, so that it does not read stale on the upgrade."""

import hashlib
import json

from django.db import IntegrityError, migrations, transaction


def dev_digest_null(apps, schema_editor):
    TrainingSet = apps.get_model("training", "TrainingSet")
    for training_set in TrainingSet.objects.all().iterator():
        snapshot = training_set.snapshot
        if not snapshot.get("dev_labels_sha256") or "dev" in snapshot.get("splits", []):
            continue
        snapshot["dev_labels_sha256"] = None
        # selectors.snapshot_hash, as of this migration
        content_hash = hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()
        try:
            with transaction.atomic():
                TrainingSet.objects.filter(pk=training_set.pk).update(snapshot=snapshot, content_hash=content_hash)
        except IntegrityError:  # a twin already holds that hash: this one keeps its own and reads as stale
            pass


class Migration(migrations.Migration):
    dependencies = [("training", "0003_predictions_present_only_and_scored_ranges")]

    operations = [migrations.RunPython(dev_digest_null, migrations.RunPython.noop)]
