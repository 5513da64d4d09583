"""Class names: one class per name up to case, width and invisible characters; no name that reads as an id or
breaks a filter."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagestudio.common.errors import Conflict, ValidationFailed
from imagestudio.datasets.filters import filter_parse
from imagestudio.datasets.names import NameError_, class_name_clean, class_name_key
from imagestudio.datasets.selectors import label_class_by_ref
from imagestudio.datasets.services import label_class_create, label_class_update


@pytest.mark.django_db
@pytest.mark.parametrize("twin", ["Cat", "CAT", "cat\u200b", "\u200bcat ", "ｃａｔ", "Ｃat"])
def test_names_that_look_the_same_are_one_class(dataset, twin):
    with pytest.raises(Conflict):
        label_class_create(dataset=dataset, name=twin)
    cat = dataset.classes.get(name="cat")
    assert label_class_by_ref(dataset=dataset, ref=twin) == cat
    assert filter_parse(dataset=dataset, values={"gt": [f"{twin}:PRESENT"]}).terms == [("gt", (cat.id, "PRESENT"))]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["4", "４２", "  ", "\u200b", "x,y", "a\x00b", "a" * 101])
def test_names_that_would_break_references_are_refused(dataset, name):
    with pytest.raises(ValidationFailed) as refused:
        label_class_create(dataset=dataset, name=name)
    assert refused.value.field == "name"
    with pytest.raises(ValidationFailed):
        label_class_update(label_class=dataset.classes.get(name="dog"), name=name)


@pytest.mark.django_db
def test_a_rename_onto_another_class_is_a_conflict_and_digits_are_ids(dataset):
    dog = dataset.classes.get(name="dog")
    with pytest.raises(Conflict):
        label_class_update(label_class=dog, name="CAT")
    assert label_class_update(label_class=dog, name="Dog ").name == "Dog"
    assert label_class_by_ref(dataset=dataset, ref=str(dog.id)) == dog


SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.django_db
@pytest.mark.parametrize("spell", [lambda i: str(i).translate(SUPERSCRIPT), lambda i: str(i).translate(FULL_WIDTH),
                                   lambda i: f" {i}", lambda i: f"{i}\u200b"], ids=["superscript", "full-width",
                                                                                    "space", "zero-width space"])
def test_an_id_in_other_digits_names_no_class(dataset, spell):
    """Their name key is the id in ASCII digits; ids are looked up only as ASCII digits (`¹` selected the class
    whose id is 1 in filters)."""
    for label_class in dataset.classes.all():
        ref = spell(label_class.id)
        assert label_class_by_ref(dataset=dataset, ref=ref) is None
        with pytest.raises(ValidationFailed):
            filter_parse(dataset=dataset, values={"gt": [f"{ref}:PRESENT"]})
        with pytest.raises(ValidationFailed):
            filter_parse(dataset=dataset, values={"lf_conflict": [ref]})
        assert filter_parse(dataset=dataset, values={"gt": [f"{label_class.id}:PRESENT"]}).terms == [
            ("gt", (label_class.id, "PRESENT"))]


@given(st.text(max_size=30))
def test_clean_names_hold_no_separator_and_keep_their_key(name):
    try:
        clean = class_name_clean(name)
    except NameError_:
        return
    assert clean and "," not in clean and not clean.isdigit() and clean == clean.strip()
    assert class_name_key(clean) == class_name_key(name)
