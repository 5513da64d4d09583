"""A metadata field is read by its name whatever characters the name holds, on Postgres and on the embedded
default (SQLite, in a child process on a scratch data directory): its column for pattern LFs, whether the
dataset has it, and its export cells."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from imagestudio.datasets.models import LabelClass
from imagestudio.datasets.selectors import field_column, metadata_field_exists
from imagestudio.exports import services
from tests.factories import make_samples

ROOT = Path(__file__).resolve().parents[2]
# JSON-path syntax (quotes, backslashes, dots, brackets, $, *), SQL quoting, spaces, non-ASCII, and names int()
# reads as a number (Django's key transforms take those for array indexes: "-1" failed the query).
NAMES = ['say "hi"', 'a"b"c', "back\\slash", "dot.name", "[0]", "$", "*", "it's", "spaced key", "é ☃",
         "0", "-1", "00", " 1", "１"]


def check_every_name(dataset):
    """Two samples, each name holding a different string in each and null in a third; every reader sees them."""
    values = [{name: f"{index}:{name}" for name in NAMES} for index in range(2)]
    samples = make_samples(dataset, [{"metadata": values[0]}, {"metadata": values[1]},
                                     {"metadata": dict.fromkeys(NAMES)}])
    ids = [sample.id for sample in samples]
    params = {"columns": ["id"], "fields": NAMES, "splits": ["train"], "ground_truth": False, "raw": True}
    classes = list(LabelClass.objects.filter(dataset=dataset))
    stream = io.BytesIO()
    services._rows_by_python(stream, dataset, params, classes, (None, None), lambda n: None)
    exported = list(csv.reader(io.StringIO(stream.getvalue().decode("utf-8"), newline="")))
    assert exported == [[str(ids[0]), *values[0].values()], [str(ids[1]), *values[1].values()],
                        [str(ids[2]), *[""] * len(NAMES)]]
    for name in NAMES:
        assert metadata_field_exists(dataset=dataset, field=name), name
        column_ids, _, column = field_column(dataset=dataset, field=name)
        assert list(column_ids) == ids and list(column) == [values[0][name], values[1][name], None], name
    flags = make_samples(dataset, [{"metadata": {"flag": True}}, {"metadata": {"flag": False}}])
    assert list(field_column(dataset=dataset, field="flag")[2][-2:]) == ["true", "false"]  # SQLite said 1 / 0
    stream = io.BytesIO()
    services._rows_by_python(stream, dataset, {**params, "fields": ["flag"]}, classes, (None, None), lambda n: None)
    assert stream.getvalue().decode().splitlines()[-2:] == [f"{flags[0].id},true", f"{flags[1].id},false"]
    assert not metadata_field_exists(dataset=dataset, field="absent")
    assert np.all(field_column(dataset=dataset, field="absent")[2] == None)  # noqa: E711 (elementwise)


@pytest.mark.django_db
def test_every_name_on_postgres(dataset):
    check_every_name(dataset)


def embedded_main():
    """The child process (Django set up): migrate a fresh SQLite database, then the same checks."""
    from django.core.management import call_command

    assert connection.vendor == "sqlite"
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    from imagestudio.datasets.services import dataset_create

    owner = User.objects.create_user("owner")
    check_every_name(dataset_create(user=owner, name="Names", classes=["cat"]))
    print(json.dumps({"checked": len(NAMES)}))


def test_every_name_on_the_embedded_default(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "IMAGESTUDIO_PRODUCTION"}}
    env.update(IMAGESTUDIO_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="imagestudio.settings")
    child = "import django; django.setup(); from tests.services.test_metadata_field_names import embedded_main; embedded_main()"
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"checked": len(NAMES)}
