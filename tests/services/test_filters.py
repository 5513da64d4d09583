"""The samples filter language, called directly: parse against a dataset, then filter."""

import pytest

from imagestudio.annotations.services import annotation_set
from imagestudio.common.errors import ValidationFailed
from imagestudio.datasets.filters import filter_parse, sample_filter, samples_select
from imagestudio.datasets.selectors import sample_count
from imagestudio.datasets.services import tag_apply, tag_create
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def samples(dataset):
    return make_samples(dataset, [
        {"split": "train", "metadata": {"caption": "A Tabby cat"}, "gt": {"cat": "PRESENT"}},
        {"split": "train", "metadata": {"caption": "a dog"}, "gt": {"cat": "ABSENT", "dog": "PRESENT"}},
        {"split": "dev", "metadata": {"caption": "two cats"}},
    ])


def ids_of(dataset, values):
    spec = filter_parse(dataset=dataset, values=values)
    return sorted(sample_filter(dataset=dataset, spec=spec).values_list("id", flat=True))


def test_conditions_combine(dataset, samples):
    cat, dog, unlabeled = (s.id for s in samples)
    assert ids_of(dataset, {"gt": ["cat:PRESENT"]}) == [cat]
    assert ids_of(dataset, {"gt": ["cat:LABELED"]}) == [cat, dog]
    assert ids_of(dataset, {"gt": ["cat:ABSTAIN"]}) == [unlabeled]
    assert ids_of(dataset, {"search": "cat"}) == [cat, unlabeled]
    assert ids_of(dataset, {"search": "cat", "split": "dev"}) == [unlabeled]
    tag = tag_create(dataset=dataset, name="blurry")
    tag_apply(tag=tag, samples=samples_select(dataset=dataset, sample_ids=[dog]))
    assert ids_of(dataset, {"tag": ["blurry"]}) == ids_of(dataset, {"tag": [str(tag.id)]}) == [dog]


def test_counts_come_from_counters_and_stay_exact(dataset, samples, owner):
    spec = filter_parse(dataset=dataset, values={"gt": ["cat:PRESENT"]})
    assert sample_count(dataset=dataset, spec=spec) == (1, True)
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=dataset.classes.get(name="cat"),
                   value="PRESENT")
    dataset.refresh_from_db()
    assert sample_count(dataset=dataset, spec=spec) == (2, True)


@pytest.mark.parametrize(("values", "field"), [
    ({"gt": ["unicorn:PRESENT"]}, "gt"),
    ({"gt": ["cat:MAYBE"]}, "gt"),
    ({"tag": ["nope"]}, "tag"),
    ({"lf_vote": ["¹:PRESENT"]}, "lf_vote"),  # passes str.isdigit(), is no id
    ({"lf_vote": ["999999:PRESENT"]}, "lf_vote"),
    ({"prediction": ["1:cat"]}, "prediction"),
    ({"lf_conflict": ["unicorn"]}, "lf_conflict"),
])
def test_what_names_nothing_is_refused_on_its_field(dataset, samples, values, field):
    with pytest.raises(ValidationFailed) as refused:
        filter_parse(dataset=dataset, values=values)
    assert refused.value.field == field


def test_selection_by_ids_refuses_other_datasets_samples(dataset, samples, owner):
    from imagestudio.datasets.services import dataset_create

    other = make_samples(dataset_create(user=owner, name="Other", classes=["cat"]), [{}])[0]
    with pytest.raises(ValidationFailed) as refused:
        samples_select(dataset=dataset, sample_ids=[samples[0].id, other.id])
    assert str(other.id) in refused.value.message
