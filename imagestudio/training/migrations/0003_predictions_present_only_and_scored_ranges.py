"""Predictions: the database keeps the PRESENT rows (keyed by model, class, sample) and the scored ranges; scores
live in the model artifacts. Django cannot move a table to a composite primary key, so the PRESENT rows wait
in a side table while the table is created again."""

import django.db.models.deletion
from django.db import migrations, models

from imagestudio.common.arrays import consecutive_runs


def scored_ranges(apps, schema_editor):
    """Existing models held a row per scored sample: those samples become their scored ranges."""
    FastModel = apps.get_model("training", "FastModel")
    Prediction = apps.get_model("training", "Prediction")
    Sample = apps.get_model("datasets", "Sample")
    ScoredRange = apps.get_model("training", "ScoredRange")
    for model in FastModel.objects.all().iterator():
        scored = sorted(set(Prediction.objects.filter(model=model).values_list("sample_id", flat=True)))
        if scored:
            dataset_ids = list(Sample.objects.filter(dataset_id=model.dataset_id).order_by("id")
                               .values_list("id", flat=True))
            lows, highs = consecutive_runs(dataset_ids, scored)
            ScoredRange.objects.bulk_create(ScoredRange(model=model, low=int(low), high=int(high))
                                            for low, high in zip(lows, highs, strict=True))


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0001_initial'),
        ('training', '0002_alter_prediction_label_class_alter_prediction_model_and_more'),
    ]

    operations = [
        migrations.CreateModel(
            name='ScoredRange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('low', models.BigIntegerField()),
                ('high', models.BigIntegerField()),
                ('model', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name='scored_ranges', to='training.fastmodel')),
            ],
            options={
                'indexes': [models.Index(fields=['model', 'low'], name='scored_range_model_low')],
            },
        ),
        migrations.RunPython(scored_ranges, migrations.RunPython.noop),
        migrations.RunSQL(
            "CREATE TABLE training_prediction_present AS SELECT model_id, label_class_id, sample_id "
            "FROM training_prediction WHERE label = 1",
            migrations.RunSQL.noop),
        migrations.DeleteModel(name='Prediction'),
        migrations.CreateModel(
            name='Prediction',
            fields=[
                ('pk', models.CompositePrimaryKey('model', 'label_class', 'sample', blank=True, editable=False,
                                                  primary_key=True, serialize=False)),
                ('model', models.ForeignKey(db_constraint=False, db_index=False,
                                            on_delete=django.db.models.deletion.CASCADE, related_name='predictions',
                                            to='training.fastmodel')),
                ('label_class', models.ForeignKey(db_constraint=False, db_index=False,
                                                  on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                                  to='datasets.labelclass')),
                ('sample', models.ForeignKey(db_constraint=False, db_index=False,
                                             on_delete=django.db.models.deletion.DO_NOTHING, related_name='+',
                                             to='datasets.sample')),
            ],
        ),
        migrations.RunSQL(
            "INSERT INTO training_prediction (model_id, label_class_id, sample_id) SELECT model_id, label_class_id, "
            "sample_id FROM training_prediction_present ORDER BY 1, 2, 3",
            migrations.RunSQL.noop),
        migrations.RunSQL("DROP TABLE training_prediction_present", migrations.RunSQL.noop),
    ]
