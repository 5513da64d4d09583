"""The demo a newcomer sees first: its splits are independent of its classes, so its metrics mean something."""

import csv
import io
import zipfile
from collections import Counter

from imagestudio.demo.images import DEMO_CLASSES, demo_archive


def test_every_split_holds_every_class_present_and_absent():
    with zipfile.ZipFile(io.BytesIO(demo_archive())) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    seen = Counter((row["split"], name, row[f"gt:{name}"]) for row in rows for name in DEMO_CLASSES)
    for split in ("dev", "valid", "test"):
        for name in DEMO_CLASSES:
            assert seen[(split, name, "PRESENT")] > 0 and seen[(split, name, "ABSENT")] > 0, (split, name)
