"""LF vote rows keyed (sample, lf) with no other index and, on Postgres, partitioned by LF (one partition per LF,
see labeling/vote_rows.py). Django cannot move a table to a composite primary key, so the rows wait in a side
table while the table is created again; rows of LFs that no longer exist are left behind."""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "labeling_lfvote"


def partitioned_table(apps, schema_editor):
    """Postgres: the table Django created, created again partitioned by LF, one partition per existing LF, filled
    as lf_create fills one (rows without an index, then the index in one pass at ATTACH)."""
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"INSERT INTO {TABLE} (sample_id, lf_id, vote) SELECT s.sample_id, s.lf_id, s.vote "
                              f"FROM {TABLE}_saved s JOIN labeling_labelingfunction lf ON lf.id = s.lf_id")
        return
    schema_editor.execute(f"DROP TABLE {TABLE}")
    schema_editor.execute(f"CREATE TABLE {TABLE} (sample_id bigint NOT NULL, lf_id bigint NOT NULL, vote smallint "
                          f"NOT NULL, CONSTRAINT {TABLE}_pkey PRIMARY KEY (sample_id, lf_id)) PARTITION BY LIST (lf_id)")
    LabelingFunction = apps.get_model("labeling", "LabelingFunction")
    for lf_id in LabelingFunction.objects.order_by("id").values_list("id", flat=True):
        partition = f"{TABLE}_{int(lf_id)}"
        schema_editor.execute(f"CREATE TABLE {partition} (LIKE {TABLE}, CHECK (lf_id = {int(lf_id)}))")
        schema_editor.execute(f"INSERT INTO {partition} (sample_id, lf_id, vote) SELECT sample_id, lf_id, vote "
                              f"FROM {TABLE}_saved WHERE lf_id = %s ORDER BY sample_id", [lf_id])
        schema_editor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {partition} FOR VALUES IN ({int(lf_id)})")
        schema_editor.execute(f"ANALYZE {partition}")


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0006_dataset_auto_train"),
        ("labeling", "0003_similarity_space"),
    ]

    operations = [
        migrations.RunSQL(f"CREATE TABLE {TABLE}_saved AS SELECT lf_id, sample_id, vote FROM {TABLE}",
                          migrations.RunSQL.noop),
        migrations.DeleteModel(name="LFVote"),
        migrations.CreateModel(
            name="LFVote",
            fields=[
                ("pk", models.CompositePrimaryKey("sample", "lf", blank=True, editable=False, primary_key=True,
                                                  serialize=False)),
                ("sample", models.ForeignKey(db_constraint=False, db_index=False,
                                             on_delete=django.db.models.deletion.CASCADE, related_name="lf_votes",
                                             to="datasets.sample")),
                ("lf", models.ForeignKey(db_constraint=False, db_index=False,
                                         on_delete=django.db.models.deletion.CASCADE, related_name="vote_rows",
                                         to="labeling.labelingfunction")),
                ("vote", models.SmallIntegerField()),
            ],
        ),
        migrations.RunPython(partitioned_table, migrations.RunPython.noop),
        migrations.RunSQL(f"DROP TABLE {TABLE}_saved", migrations.RunSQL.noop),
    ]
