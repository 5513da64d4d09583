import pytest

from imagestudio.datasets.manifest import ManifestError, ground_truth_classes, parse_manifest

SPLITS = ["train", "dev", "valid", "test"]


def parse(text, name="manifest.csv", max_rows=100):
    return parse_manifest(text.encode(), file_name=name, valid_splits=SPLITS, max_rows=max_rows)


def test_csv_columns_become_split_ids_metadata_and_ground_truth():
    rows = parse("file,split,external_id,caption,score,gt:cat,gt:dog\n"
                 "a.png,dev,A,a cat,0.5,PRESENT,absent\n"
                 "b.png,,,,3,,ABSTAIN\n")
    a, b = rows
    assert (a.file, a.split, a.external_id) == ("a.png", "dev", "A")
    assert a.metadata == {"caption": "a cat", "score": 0.5}
    assert a.ground_truth == {"cat": "PRESENT", "dog": "ABSENT"}
    assert (b.split, b.external_id, b.metadata, b.ground_truth) == (None, None, {"score": 3}, {})
    assert ground_truth_classes(rows) == {"cat", "dog"}


def test_jsonl_with_nested_metadata_and_ground_truth():
    rows = parse('{"file": "x.jpg", "metadata": {"caption": "hi"}, "ground_truth": {"cat": "PRESENT"}, "n": 2}\n\n',
                 name="m.jsonl")
    assert rows[0].metadata == {"caption": "hi", "n": 2}
    assert rows[0].ground_truth == {"cat": "PRESENT"}


@pytest.mark.parametrize("text, message", [
    ("name,split\na.png,train\n", "'file' column"),
    ("file,file\na,b\n", "repeats"),
])
def test_unusable_csv_header(text, message):
    with pytest.raises(ManifestError, match=message):
        parse(text)


def test_bad_rows_are_reported_per_row():
    rows = parse("file,split,gt:cat\na.png,holdout,\nb.png,train,maybe\n,train,\nc.png,train,PRESENT\nc.png,dev,\n")
    errors = [row.error for row in rows]
    assert "holdout" in errors[0]
    assert "maybe" in errors[1]
    assert "no file" in errors[2]
    assert errors[3] is None
    assert "listed twice" in errors[4]


def test_jsonl_that_is_not_json_is_refused():
    with pytest.raises(ManifestError, match="line 2"):
        parse('{"file": "a"}\n{oops\n', name="m.jsonl")


def test_row_limit_and_format():
    with pytest.raises(ManifestError, match="limit"):
        parse("file\na\nb\nc\n", max_rows=2)
    with pytest.raises(ManifestError, match=".csv or .jsonl"):
        parse("file\na\n", name="manifest.txt")
    with pytest.raises(ManifestError, match="UTF-8"):
        parse_manifest(b"\xff\xfe\x00bad", file_name="m.csv", valid_splits=SPLITS, max_rows=10)
