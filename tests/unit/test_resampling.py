import numpy as np
import pytest

from imagestudio.datasets.resampling import ResampleError, ResampleRequest, choose_sample, realized_counts


def population(n=1000, classes=3, labeled_fraction=0.3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(10, 10 + n))
    labeled = rng.random(n) < labeled_fraction
    present = (rng.random((n, classes)) < 0.2) & labeled[:, None]
    return ids, labeled, present


def test_same_inputs_same_ids_and_input_order_does_not_matter():
    ids, labeled, present = population()
    request = ResampleRequest(sample_size=100, max_labeled=20, min_per_class=3, seed=42)
    first = choose_sample(ids, labeled, present, request)
    order = np.random.default_rng(1).permutation(len(ids))
    again = choose_sample(ids[order], labeled[order], present[order], request)
    assert np.array_equal(first, again)
    other_seed = choose_sample(ids, labeled, present, ResampleRequest(100, 20, 3, 43))
    assert not np.array_equal(first, other_seed)


def test_size_labeled_cap_and_class_minimum_hold():
    ids, labeled, present = population()
    chosen = choose_sample(ids, labeled, present, ResampleRequest(200, 25, 5, 7))
    mask = np.isin(ids, chosen)
    assert mask.sum() == 200
    assert (mask & labeled).sum() <= 25
    assert ((mask[:, None] & present).sum(axis=0) >= 5).all()


def test_no_cap_takes_labeled_at_random_and_small_split_takes_all():
    ids, labeled, present = population(n=50)
    chosen = choose_sample(ids, labeled, present, ResampleRequest(500, None, 0, 1))
    assert sorted(chosen) == sorted(ids)


def test_class_minimum_beyond_cap_is_an_error():
    ids, labeled, present = population()
    with pytest.raises(ResampleError, match="min_per_class"):
        choose_sample(ids, labeled, present, ResampleRequest(100, 4, 5, 0))


def test_rare_class_gets_what_exists():
    ids, labeled, present = population()
    present[:, 2] = False
    present[:2, 2] = True
    labeled[:2] = True
    chosen = choose_sample(ids, labeled, present, ResampleRequest(50, None, 10, 0))
    assert set(ids[:2]) <= set(chosen)


def test_realized_counts():
    labeled = np.array([True, True, False, True])
    present = np.array([[True], [False], [False], [True]])
    absent = np.array([[False], [True], [False], [False]])
    chosen = np.array([True, True, True, False])
    assert realized_counts(chosen, labeled, present, absent, ["cat"]) == {
        "total": 3, "labeled": 2, "unlabeled": 1, "per_class": {"cat": {"present": 1, "absent": 1}},
    }
