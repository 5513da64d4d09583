import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagestudio.datasets.manifest import ManifestError, ground_truth_resolve, parse_manifest
from imagestudio.datasets.names import class_name_key

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
    with pytest.raises(ManifestError, match="line 1 of the manifest is nested too deeply"):
        parse('{"file": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", name="m.jsonl")


def test_jsonl_metadata_takes_lists_and_objects_as_uploads_and_patch_do():
    """A manifest refused them ("must be text, a number, a boolean or null") where an upload's metadata took them."""
    [row] = parse('{"file": "a.png", "tags": ["x", "y"], "box": {"w": 2}}\n', name="m.jsonl")
    assert row.error is None and row.metadata == {"tags": ["x", "y"], "box": {"w": 2}}


def test_row_limit_and_format():
    with pytest.raises(ManifestError, match="limit"):
        parse("file\na\nb\nc\n", max_rows=2)
    with pytest.raises(ManifestError, match=".csv or .jsonl"):
        parse("file\na\n", name="manifest.txt")
    with pytest.raises(ManifestError, match="UTF-8"):
        parse_manifest(b"\xff\xfe\x00bad", file_name="m.csv", valid_splits=SPLITS, max_rows=10)


def test_ground_truth_names_classes_by_key_and_a_row_naming_an_unknown_class_is_refused_alone():
    rows = parse("file,gt:Ｃａｔ,gt:DOG\u200b,gt:unicorn,gt:cat\n"
                 "a.png,PRESENT,absent,,\n"  # the unicorn column is empty here: no error
                 "b.png,,,PRESENT,\n"
                 "c.png,PRESENT,,,PRESENT\n"  # cat twice, one value: one label
                 "d.png,PRESENT,,,ABSENT\n")  # cat twice, two values
    ground_truth_resolve(rows, ["cat", "Dog"])
    a, b, c, d = rows
    assert (a.error, a.ground_truth) == (None, {"cat": "PRESENT", "Dog": "ABSENT"})
    assert "'unicorn': the dataset has no such class" in b.error
    assert (c.error, c.ground_truth) == (None, {"cat": "PRESENT"})
    assert "'cat' is given twice, as PRESENT and ABSENT" in d.error


FORMS = {"upper": str.upper, "title": str.title, "full width": lambda name: "".join(
    chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in name),
         "zero-width": lambda name: name[:1] + "\u200b" + name[1:] + "\u2060", "spaces": lambda name: f"  {name} "}
class_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäß-_ 0123456789", min_size=1, max_size=12).filter(
    lambda name: name.strip() and not name.strip().isdigit()).map(str.strip)


@given(classes=st.lists(class_names, min_size=1, max_size=5, unique_by=class_name_key), pick=st.data())
def test_any_spelling_of_a_class_with_its_key_resolves_to_it_and_no_other_name_does(classes, pick):
    name = pick.draw(st.sampled_from(classes))
    spelled = FORMS[pick.draw(st.sampled_from(sorted(FORMS)))](name)
    stranger = pick.draw(class_names)
    rows = parse(f'{{"file": "a.png", "ground_truth": {{"{spelled}": "PRESENT"}}}}\n'
                 f'{{"file": "b.png", "ground_truth": {{"{stranger}": "ABSENT"}}}}\n', name="m.jsonl")
    ground_truth_resolve(rows, classes)
    if class_name_key(spelled) == class_name_key(name):  # the form keeps the key (str.upper of ß is SS: it may not)
        assert (rows[0].error, rows[0].ground_truth) == (None, {name: "PRESENT"})
    else:
        assert "no such class" in rows[0].error
    by_key = {class_name_key(c): c for c in classes}
    if class_name_key(stranger) in by_key:
        assert rows[1].ground_truth == {by_key[class_name_key(stranger)]: "ABSENT"}
    else:
        assert rows[1].error and "no such class" in rows[1].error and rows[1].ground_truth == {stranger: "ABSENT"}


def test_a_csv_cell_becomes_a_number_only_where_the_number_writes_it_back():
    cells = ["007", "+1", "1_000", "1.50", "-0", "1e3", "12", "-4", "0.25", " 5 ", "2.0", "9007199254740993"]
    rows = parse("file," + ",".join(f"c{i}" for i in range(len(cells))) + "\na.png," + ",".join(cells) + "\n")
    assert list(rows[0].metadata.values()) == [
        "007", "+1", "1_000", "1.50", "-0", "1e3", 12, -4, 0.25, 5, 2.0, "9007199254740993"]


@given(st.integers(-(2**53) + 1, 2**53 - 1) | st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_written_as_python_writes_them_are_read_back_equal(number):
    text = str(number) if isinstance(number, int) else repr(number)
    assert parse(f"file,n\na.png,{text}\n")[0].metadata == {"n": number}
