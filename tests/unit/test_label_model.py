"""The label model on synthetic votes drawn from known class-conditional LF parameters."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from imagestudio.labeling import label_choice
from imagestudio.labeling.calibration import calibration_table
from imagestudio.labeling.label_choice import CANDIDATES, f1_standard_errors, label_class_votes, paired_bootstrap_f1
from imagestudio.labeling.label_model import (
    LABELED_DEPENDENCE_ROWS,
    DawidSkene,
    MajorityVote,
    dependent_groups,
    labeled_dependent_groups,
    merge_groups,
)

# theta rows: P(ABSENT, PRESENT, ABSTAIN | class absent) and P(... | class present)
OUTCOMES = np.array([-1, 1, 0], dtype=np.int8)


def symmetric(accuracy, coverage):
    return [[coverage * accuracy, coverage * (1 - accuracy), 1 - coverage],
            [coverage * (1 - accuracy), coverage * accuracy, 1 - coverage]]


def draw(theta, truth, rng):
    """One LF's votes: per row an outcome drawn from its class's row of theta (2 x 3)."""
    cumulative = np.cumsum(np.asarray(theta, dtype=np.float64), axis=1)[(truth == 1).astype(int)]
    return OUTCOMES[(rng.random(len(truth))[:, None] > cumulative[:, :2]).sum(axis=1)]


def generate(thetas, balance, n, seed):
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < balance, 1, -1).astype(np.int8)
    return np.stack([draw(theta, truth, rng) for theta in thetas], axis=1), truth


def bayes_labels(votes, thetas, balance):
    """The posterior decision from the true parameters: the best any aggregation can do."""
    log_odds = np.full(len(votes), np.log(balance / (1 - balance)))
    with np.errstate(divide="ignore"):  # one-sided LFs: an outcome that never happens, never indexed below
        log_thetas = np.log(np.asarray(thetas, dtype=np.float64))
    for j, theta in enumerate(log_thetas):
        outcome = np.select([votes[:, j] == -1, votes[:, j] == 1], [0, 1], 2)
        log_odds += theta[1, outcome] - theta[0, outcome]
    return np.where(log_odds >= 0, 1, -1)


MIXED = [
    [[0.6, 0.1, 0.3], [0.2, 0.5, 0.3]],  # two-sided, asymmetric: votes more often when the class is absent
    [[0.3, 0.05, 0.65], [0.05, 0.7, 0.25]],  # asymmetric coverage
    symmetric(0.7, 0.5),
    [[0.0, 0.01, 0.99], [0.0, 0.45, 0.55]],  # one-sided keyword: precise PRESENT, silent otherwise
    [[0.0, 0.03, 0.97], [0.0, 0.3, 0.7]],
    [[0.0, 0.005, 0.995], [0.0, 0.25, 0.75]],
    [[0.5, 0.0, 0.5], [0.15, 0.0, 0.85]],  # one-sided loose ABSENT voter
    [[0.4, 0.0, 0.6], [0.2, 0.0, 0.8]],
]


def test_class_conditional_and_one_sided_lfs_reach_bayes_optimal_without_the_balance():
    votes, truth = generate(MIXED, 0.25, 100_000, seed=1)
    model = DawidSkene().fit(votes)
    ours = (model.predict(votes).label == truth).mean()
    best = (bayes_labels(votes, MIXED, 0.25) == truth).mean()
    majority = MajorityVote().predict(votes).label
    assert ours >= best - 0.005
    assert ours > (majority == truth).mean() + 0.05  # majority vote cannot read one-sided silence
    assert model.prior == pytest.approx(0.25, abs=0.01)
    learned = model.theta.transpose(1, 0, 2)  # (m, class, outcome) like MIXED
    assert np.abs(learned - np.asarray(MIXED)).max() < 0.02
    assert model.groups == []


def family_votes(n, seed, copy_rate=0.9):
    """One good LF, a family of 5 copies of one mediocre latent LF (each copy says the latent vote or abstains),
    and two more independent LFs; with the Bayes decision that models the family as one source."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < 0.3, 1, -1).astype(np.int8)
    good, mediocre, others = symmetric(0.9, 0.5), symmetric(0.65, 0.8), [symmetric(0.75, 0.3), symmetric(0.7, 0.3)]
    latent = draw(mediocre, truth, rng)
    copies = [np.where(rng.random(n) < copy_rate, latent, 0) for _ in range(5)]
    votes = np.stack([draw(good, truth, rng), *copies, *(draw(t, truth, rng) for t in others)], axis=1)
    # P(copies' votes | class) = sum over the latent vote z of P(z | class) P(copies | z)
    said = (votes[:, 1:6] != 0).sum(axis=1)
    vote = np.sign(votes[:, 1:6].sum(axis=1))
    copies_given = {}
    for c, row in ((0, mediocre[0]), (1, mediocre[1])):
        from_vote = np.where(vote == -1, row[0], row[1]) * copy_rate ** said * (1 - copy_rate) ** (5 - said)
        silent = row[2] + (row[0] + row[1]) * (1 - copy_rate) ** 5
        copies_given[c] = np.where(said > 0, from_vote, silent)
    log_odds = np.log(0.3 / 0.7) + np.log(copies_given[1] / copies_given[0])
    for j, theta in ((0, good), (6, others[0]), (7, others[1])):
        outcome = np.select([votes[:, j] == -1, votes[:, j] == 1], [0, 1], 2)
        log_odds += np.log(np.asarray(theta)[1, outcome] / np.asarray(theta)[0, outcome])
    return votes, truth, np.where(log_odds >= 0, 1, -1)


def test_near_duplicate_lfs_count_as_one_source():
    votes, truth, best = family_votes(60_000, seed=2)
    grouped = DawidSkene().fit(votes)
    independent = DawidSkene(dependence=False).fit(votes)
    assert grouped.groups == [[1, 2, 3, 4, 5]]
    assert grouped.weights.tolist() == [1, 0.2, 0.2, 0.2, 0.2, 0.2, 1, 1]
    with_groups = (grouped.predict(votes).label == truth).mean()
    without = (independent.predict(votes).label == truth).mean()
    assert with_groups > without + 0.02  # five copies of a mediocre LF outvote the good one otherwise
    assert with_groups >= (best == truth).mean() - 0.01
    # where the good LF and the family disagree, the good LF must win (it is right 90 % of the time)
    disagree = (votes[:, 0] != 0) & (np.sign(votes[:, 1:6].sum(axis=1)) == -votes[:, 0]) & (votes[:, 6:] == 0).all(axis=1)
    assert (grouped.predict(votes).label[disagree] == votes[disagree, 0]).mean() > 0.9


def test_dependence_groups_leave_independent_accurate_lfs_apart():
    votes, _ = generate([symmetric(0.9, 0.7)] * 6, 0.4, 40_000, seed=3)
    model = DawidSkene().fit(votes)
    assert dependent_groups(votes, model.predict(votes).probability, model.prior) == []
    assert dependent_groups(np.concatenate([votes, votes[:, :1]], axis=1)) == [[0, 6]]


def dev_mask_of(n, size, seed):
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size, replace=False)] = True
    return mask


def cluster_family_votes(n, seed):
    """A caption-like LF (0.8 right, always votes), a sparser good LF and, between them, two LFs that follow a
    visual cluster only weakly tied to the class (P(cluster | present) 0.6, | absent 0.4; each says it, 90 % right):
    their votes correlate at about 0.64 overall, under the near-duplicate rule, and an unlabeled fit can take the
    cluster for the class."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
    cluster = np.where(rng.random(n) < np.where(truth == 1, 0.6, 0.4), 1, -1)
    family = [np.where(rng.random(n) < 0.9, cluster, -cluster) for _ in range(2)]
    votes = np.stack([draw(symmetric(0.8, 1.0), truth, rng), *family, draw(symmetric(0.85, 0.6), truth, rng)], axis=1)
    return votes.astype(np.int8), truth


@pytest.mark.parametrize("seed", [0, 1])
def test_dependence_the_dev_labels_show_is_down_weighted_in_the_semi_supervised_fit(seed):
    votes, truth = cluster_family_votes(20_000, seed)
    dev = dev_mask_of(len(truth), 200, seed)
    clamp = np.where(dev, truth, 0).astype(np.int8)
    assert DawidSkene().fit(votes).groups == []  # the unlabeled rules miss the family
    assert labeled_dependent_groups(votes[dev], truth[dev] == 1) == [[1, 2]]
    grouped = DawidSkene().fit(votes, clamp)
    assert grouped.groups == [[1, 2]] and grouped.weights.tolist() == [1, 0.5, 0.5, 1]
    independent = DawidSkene(dependence=False).fit(votes, clamp)
    accuracy = {name: (model.predict(votes).label == truth)[~dev].mean()
                for name, model in (("grouped", grouped), ("independent", independent))}
    assert accuracy["grouped"] > accuracy["independent"] + 0.1  # counted twice, the cluster wins over the class
    # kept through a warm start from the unsupervised fit (how label_class_votes fits it)
    warm = DawidSkene().fit(votes, clamp, warm_start=DawidSkene().fit(votes))
    assert warm.groups == [[1, 2]]


def test_too_few_labeled_rows_of_a_class_give_no_labeled_dependence():
    votes, truth = cluster_family_votes(20_000, 0)
    present = np.flatnonzero(truth == 1)[:LABELED_DEPENDENCE_ROWS - 1]
    absent = np.flatnonzero(truth == -1)[:500]
    rows = np.concatenate([present, absent])
    assert labeled_dependent_groups(votes[rows], truth[rows] == 1) == []
    rows = np.concatenate([np.flatnonzero(truth == 1)[:500], absent])
    assert labeled_dependent_groups(votes[rows], truth[rows] == 1) == [[1, 2]]
    assert labeled_dependent_groups(votes[:0], None) == []


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12).flatmap(lambda m: st.tuples(
    st.just(m), st.lists(st.lists(st.lists(st.integers(0, m - 1), min_size=2, max_size=4, unique=True),
                                  max_size=4), max_size=3))))
def test_merge_groups_is_the_connected_components_of_the_union(case):
    m, group_lists = case
    merged = merge_groups(m, *group_lists)
    reach = np.eye(m, dtype=bool)  # the transitive closure of the links, by brute force
    for groups in group_lists:
        for group in groups:
            reach[np.ix_(group, group)] = True
    for k in range(m):
        reach |= reach[:, [k]] & reach[[k], :]
    expected = sorted({tuple(np.flatnonzero(row)) for row in reach if row.sum() > 1})
    assert sorted(tuple(group) for group in merged) == expected


def test_without_rows_there_are_no_dependent_groups():
    """A dataset with no samples yet and two LFs of a class: no rows to correlate (it raised 'slice step cannot
    be zero'), and EM on no rows still answers."""
    empty = np.zeros((0, 2), dtype=np.int8)
    assert dependent_groups(empty) == []
    assert len(label_class_votes(empty, np.zeros(0, np.int8), np.zeros(0, bool)).labels.probability) == 0


def test_dev_labels_fix_the_orientation_of_few_inverted_lfs():
    # Three LFs written the wrong way round: each votes PRESENT mostly when the class is absent.
    inverted = [symmetric(0.25, 0.7), symmetric(0.3, 0.6), symmetric(0.2, 0.5)]
    votes, truth = generate(inverted, 0.3, 20_000, seed=4)
    dev = dev_mask_of(len(truth), 300, seed=4)
    result = label_class_votes(votes, truth, dev)
    rest = ~dev
    unsupervised = result.candidate_probability["em_unsupervised"]
    assert ((unsupervised[rest] > 0.5) == (truth[rest] == 1)).mean() < 0.5  # "LFs beat chance" gets it backwards
    assert result.chosen in ("em_semi_supervised", "logistic_regression")
    best = (bayes_labels(votes, inverted, 0.3)[rest] == truth[rest]).mean()
    assert (result.labels.label[rest] == truth[rest]).mean() >= best - 0.01
    assert result.candidates[result.chosen]["f1"] > result.candidates["majority_vote"]["f1"] + 0.3
    # the semi-supervised EM starts from the mirrored unsupervised fit and must turn it round, in every fold too
    assert result.candidates["em_semi_supervised"]["f1"] > result.candidates["majority_vote"]["f1"] + 0.3
    semi_supervised = result.candidate_probability["em_semi_supervised"]
    assert ((semi_supervised[rest] > 0.5) == (truth[rest] == 1)).mean() >= best - 0.01
    semi = DawidSkene().fit(votes, np.where(dev, truth, 0))
    assert (semi.predict(votes).label[rest] == truth[rest]).mean() >= best - 0.01
    assert semi.theta[0, 0, 1] > semi.theta[1, 0, 1]  # learned: LF 0 says PRESENT more often when absent


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6), balance=st.floats(0.05, 0.6), dev_size=st.integers(0, 120))
def test_candidates_on_equal_terms_and_never_below_majority_vote(seed, m, balance, dev_size):
    rng = np.random.default_rng(seed)
    thetas = [symmetric(rng.uniform(0.3, 0.95), rng.uniform(0.1, 0.9)) for _ in range(m)]
    votes, truth = generate(thetas, balance, 1500, seed)
    truth[rng.random(len(truth)) < 0.1] = 0  # some rows without ground truth, dev ones included
    dev = dev_mask_of(len(truth), dev_size, seed)
    result = label_class_votes(votes, truth, dev, seed=seed)
    labeled = int((dev & (truth != 0)).sum())
    sides = len(set(truth[dev & (truth != 0)].tolist()))
    probability, label = result.labels.probability, result.labels.label
    assert probability.dtype == np.float32 and label.dtype == np.int8
    assert np.isfinite(probability).all() and ((probability >= 0) & (probability <= 1)).all()
    assert set(np.unique(label)) <= {-1, 0, 1}
    assert (label[probability > 0.5] != -1).all() and (label[probability < 0.5] != 1).all()
    assert set(result.candidates) == set(CANDIDATES)
    json.dumps(result.report())  # JSON-serializable as is
    if labeled < 2 or sides < 2:
        assert result.chosen in ("em_unsupervised", "majority_vote") and result.calibration is None
        return
    for scores in result.candidates.values():
        assert scores["scored"] == labeled == scores["tp"] + scores["fp"] + scores["fn"] + scores["tn"]
    chosen, scores = result.candidates[result.chosen], result.candidates
    dev_truth = truth[dev & (truth != 0)]
    if min((dev_truth == 1).sum(), (dev_truth == -1).sum()) < label_choice.MIN_LEARNING_LABELS:
        assert result.chosen not in label_choice.FITTED_ON_DEV and "to learn from" in result.reason
        scores = {name: scores[name] for name in CANDIDATES if name not in label_choice.FITTED_ON_DEV}
    prior_accuracy = result.candidates["prior_only"]["accuracy"]
    accurate = [s for s in scores.values() if s["accuracy"] >= prior_accuracy]
    pool = accurate if any(s["f1"] >= scores["majority_vote"]["f1"] for s in accurate) else list(scores.values())
    best = max(pool, key=lambda s: s["f1"])
    assert chosen["f1"] >= scores["majority_vote"]["f1"]
    assert chosen in pool  # no less accurate than prior_only, where some such candidate reaches majority vote's F1
    assert chosen["brier"] <= best["brier"]  # the best-F1 candidate is always eligible; the Brier score decides
    assert result.calibration["count"] == labeled


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), permutation_seed=st.integers(0, 10_000))
def test_invariant_to_lf_column_order(seed, permutation_seed):
    votes, truth = generate(MIXED, 0.3, 3000, seed)
    dev = dev_mask_of(len(truth), 200, seed)
    order = np.random.default_rng(permutation_seed).permutation(votes.shape[1])
    first, second = label_class_votes(votes, truth, dev), label_class_votes(votes[:, order], truth, dev)
    assert first.chosen == second.chosen
    assert np.allclose(first.labels.probability, second.labels.probability, atol=1e-4)
    clear = np.abs(first.labels.probability - 0.5) > 1e-3
    assert (first.labels.label[clear] == second.labels.label[clear]).all()
    for name in CANDIDATES:
        assert first.candidates[name]["scored"] == second.candidates[name]["scored"]
        assert first.candidates[name]["accuracy"] == pytest.approx(second.candidates[name]["accuracy"], abs=0.01)


def test_f1_standard_errors_are_paired():
    rng = np.random.default_rng(3)
    positive = rng.random(400) < 0.3
    good = positive ^ (rng.random(400) < 0.1)
    errors = f1_standard_errors({"same": good.copy(), "good": good, "noise": rng.random(400) < 0.3},
                                positive, "good", seed=0)
    assert errors["good"] == errors["same"] == 0  # the same predictions differ by nothing on any resample
    assert 0.01 < errors["noise"] < 0.2


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60))
def test_paired_bootstrap_f1_is_f1_on_each_resample(seed, n):
    """Each resample's figure is scikit-learn's F1 of the same drawn rows (it once counted the true positives
    three times in the denominator); a perfect prediction scores 1 wherever the resample holds a PRESENT."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(seed)
    positive, guess = rng.random(n) < 0.4, rng.random(n) < 0.5
    f1 = paired_bootstrap_f1({"guess": guess, "perfect": positive}, positive, seed, resamples=5)
    rows = np.random.default_rng(seed).integers(0, n, size=(5, n))  # the resamples it draws
    for resample, drawn in enumerate(rows):
        assert f1["guess"][resample] == pytest.approx(f1_score(positive[drawn], guess[drawn], zero_division=0))
        assert f1["perfect"][resample] == (1.0 if positive[drawn].any() else 0.0)


def test_a_dev_f1_lead_within_noise_goes_to_the_better_brier_score():
    """Candidates scored on 300 dev rows: the regression's small F1 lead on the asymmetric scenario of
    bench/label_quality.py is within one standard error, and the semi-supervised EM (the better probabilities)
    is chosen; the reason names both steps."""
    thetas = [[[0.6, 0.05, 0.35], [0.1, 0.7, 0.2]], [[0.3, 0.2, 0.5], [0.05, 0.9, 0.05]],
              [[0.7, 0.1, 0.2], [0.3, 0.4, 0.3]], [[0.2, 0.05, 0.75], [0.02, 0.5, 0.48]]]
    votes, truth = generate(thetas, 0.3, 20_000, seed=11)
    dev = dev_mask_of(len(truth), 300, seed=11)
    result = label_class_votes(votes, truth, dev, seed=11)
    assert "within one paired standard error" in result.reason and "lowest dev Brier" in result.reason
    eligible = result.reason.split("majority vote (")[1].split("): ", 1)[1].split("; lowest")[0].split(", ")
    assert set(eligible) <= set(CANDIDATES)
    assert result.chosen in eligible
    assert result.candidates[result.chosen]["brier"] == min(result.candidates[name]["brier"] for name in eligible)


@pytest.mark.parametrize(("thetas", "balance", "dev_size", "seed"), [
    # 3 PRESENT-only and 3 ABSENT-only LFs, 2 PRESENT among 20 dev labels: prior_only was chosen and labelled
    # the whole class ABSENT (F1 0 against majority vote's 0.81; every candidate scored dev F1 0, prior_only the
    # best Brier)
    ([[[0, .05, .95], [0, .5, .5]]] * 3 + [[[.4, 0, .6], [.1, 0, .9]]] * 3, 0.2, 20, 30),
    # 10 two-sided LFs, 13 PRESENT among 50 dev labels: a regression refit on them was chosen (F1 0.57 against
    # majority vote's 0.79)
    ([symmetric(a, 0.4) for a in np.random.default_rng(1000).uniform(0.65, 0.85, 10)], 0.3, 50, 13),
])
def test_a_handful_of_dev_labels_chooses_no_candidate_fitted_on_them_alone(
        thetas, balance, dev_size, seed):
    votes, truth = generate(thetas, balance, 6000 + dev_size, seed)
    dev = np.zeros(len(truth), dtype=bool)
    dev[:dev_size] = True
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev)
    assert result.chosen not in ("prior_only", "logistic_regression")
    assert "under 20 of a class to learn from" in result.reason
    assert "): prior_only" not in result.reason  # it said prior_only was less accurate than itself
    assert set(result.candidates) == set(CANDIDATES)  # the others are still scored and reported
    majority = MajorityVote().predict(votes).label
    f1 = {name: 2 * ((labels == 1) & (truth == 1))[~dev].sum() / ((labels == 1)[~dev].sum() + (truth == 1)[~dev].sum())
          for name, labels in (("chosen", result.labels.label), ("majority", majority))}
    assert f1["chosen"] >= f1["majority"] - 0.05, f1


def test_without_dev_labels_the_unsupervised_model_labels_every_row():
    votes, truth = generate(MIXED, 0.25, 5000, seed=5)
    result = label_class_votes(votes, truth, np.zeros(len(truth), dtype=bool))
    assert result.chosen == "em_unsupervised" and "fewer than 2" in result.reason
    assert all(scores["scored"] == 0 and scores["f1"] is None for scores in result.candidates.values())
    expected = DawidSkene().fit(votes).predict(votes)
    assert np.allclose(result.labels.probability, expected.probability, atol=1e-6)
    assert (result.labels.label != 0).all()  # silence of the one-sided LFs is evidence too


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.5), st.floats(0.3, 1.0))
@example(seed=2, balance=0.48, recall=0.45)  # majority vote chosen: it abstained on every silent row
def test_a_keyword_lf_alone_labels_its_silence_as_dev_says(seed, balance, recall):
    """One LF voting PRESENT or nothing: where it is silent, the labels say ABSENT as often as dev's silent rows are
    ABSENT (they abstained there, so a fast model on the set had no negative to fit). With dev labels the label is
    always its probability's side."""
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(2000) < balance, 1, -1).astype(np.int8)
    votes = np.where((truth == 1) & (rng.random(2000) < recall), 1, 0).astype(np.int8)[:, None]
    dev = np.arange(2000) < 300
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev, seed=seed % 1000)
    probability, label = result.labels.probability, result.labels.label
    if len(set(truth[dev].tolist())) < 2:
        return
    assert (label == np.where(probability > 0.5, 1, np.where(probability < 0.5, -1, 0))).all()
    silent = votes[:, 0] == 0
    if (dev & silent).any():
        assert (label[silent] != 0).all()
    if balance <= 0.3 and recall >= 0.5:  # PRESENT rare even among the silent rows: those are ABSENT
        assert (label[silent] == -1).all() and (label[~silent] == 1).all()
    if result.chosen == "majority_vote":  # it learns nothing from dev: its dev figures are its labels' there
        figures, positive, said = result.candidates["majority_vote"], truth[dev] == 1, label[dev] == 1
        assert (figures["tp"], figures["fp"], figures["fn"]) == (
            int((said & positive).sum()), int((said & ~positive).sum()), int((~said & positive).sum()))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_a_candidate_that_learns_nothing_from_dev_reports_its_own_labels_there(seed):
    """Majority vote and the unsupervised EM: their dev figures count the labels they give (label-less rows
    included, by the estimate their labels get; per fold, estimates near 0.5 fell on both sides of it)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 300))
    truth = np.where(rng.random(n) < rng.uniform(0.1, 0.6), 1, -1).astype(np.int8)
    votes = np.zeros((n, int(rng.integers(1, 5))), np.int8)
    for j in range(votes.shape[1]):
        said = np.where(rng.random(n) < rng.uniform(0.55, 0.95), truth, -truth)
        sides = ([1, -1], [1], [-1])[int(rng.integers(0, 3))]  # both ways, or one-sided
        voting = (rng.random(n) < rng.uniform(0.2, 0.9)) & np.isin(said, sides)
        votes[voting, j] = said[voting]
    dev = rng.random(n) < 0.35
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev, seed=seed % 1000)
    if result.chosen not in ("majority_vote", "em_unsupervised") or result.calibration is None:
        return
    figures, positive, said = result.candidates[result.chosen], truth[dev] == 1, result.labels.label[dev] == 1
    assert (figures["tp"], figures["fp"], figures["fn"], figures["tn"]) == (
        int((said & positive).sum()), int((said & ~positive).sum()), int((~said & positive).sum()),
        int((~said & ~positive).sum()))


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([1, -1]), st.integers(2, 60), st.integers(0, 2**31 - 1))
def test_dev_labels_of_one_class_choose_as_without_labels(side, labeled, seed):
    """Dev labels of one class score every candidate that says that class everywhere as perfect: prior_only won,
    labelling every row so against the LFs' votes. They choose as no labels do."""
    votes, truth = generate(MIXED, 0.25, 3000, seed=seed % 1000)
    dev = np.zeros(len(truth), dtype=bool)
    dev[np.flatnonzero(truth == side)[:labeled]] = True
    result = label_class_votes(votes, np.where(dev, truth, 0).astype(np.int8), dev)
    word = "PRESENT" if side == 1 else "ABSENT"
    assert result.chosen == "em_unsupervised" and f"dev labels of one class only ({labeled} {word})" in result.reason
    assert result.calibration is None and {row["learned_by"] for row in result.lfs} == {"em_unsupervised"}
    assert (result.labels.label == 1).any() and (result.labels.label == -1).any()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2), st.integers(0, 2**31 - 1), st.floats(0.05, 0.95))
def test_without_dev_labels_fewer_than_three_lfs_label_by_their_votes(m, seed, present_share):
    """One LF (or two) cannot identify an unsupervised EM: its votes decide, as majority vote says, never 0.5
    everywhere (the EM's fixed point where the votes say nothing of the class)."""
    rng = np.random.default_rng(seed)
    column = np.where(rng.random(300) < present_share, 1, -1).astype(np.int8)
    votes = np.column_stack([column] + [np.where(rng.random(300) < 0.3, 0, column) for _ in range(m - 1)])
    result = label_class_votes(votes, np.zeros(300, dtype=np.int8), np.zeros(300, dtype=bool))
    assert result.chosen == "majority_vote" and "do not identify an unsupervised EM" in result.reason
    assert (result.labels.label == column).all()


def test_majority_vote_gives_the_prior_where_no_lf_voted():
    votes = np.array([[1, 1, 0], [0, 0, 0], [-1, -1, -1], [1, -1, 0]], dtype=np.int8)
    majority = MajorityVote().predict(votes)
    assert majority.label.tolist() == [1, 0, -1, 0] and majority.probability[3] == 0.5
    assert np.isnan(majority.probability[1])


def test_dev_labels_of_one_class_check_no_lf_and_a_side_never_voted_implies_nothing():
    """Found from outside: with only PRESENT dev labels every good LF was flagged (a dev precision is then 1 or 0
    whatever the LF is worth), and a keyword LF that never votes ABSENT implied an ABSENT precision of 0.5."""
    votes, truth = generate(MIXED, 0.25, 20_000, seed=3)
    dev = dev_mask_of(len(truth), 400, seed=3)
    one_class = np.where(dev & (truth == 1), truth, 0).astype(np.int8)
    assert (one_class[dev] == 1).sum() >= 50
    assert all(row["check"] == [] and row["message"] is None for row in label_class_votes(votes, one_class, dev).lfs)
    keyword = np.where(votes[:, 3] == 1, 1, 0).astype(np.int8)  # PRESENT or silent
    silent = np.zeros(len(truth), dtype=np.int8)
    result = label_class_votes(np.column_stack([votes[:, :3], keyword, silent]), truth, dev)
    assert result.lfs[3]["implied_precision"]["absent"] is None
    assert result.lfs[3]["implied_precision"]["present"] is not None
    assert result.lfs[4]["implied_precision"] == {"present": None, "absent": None}
    assert all(value is not None for row in result.lfs[:3] for value in row["implied_precision"].values())


def test_lf_the_dev_labels_contradict_is_flagged():
    votes, truth = generate(MIXED, 0.25, 30_000, seed=6)
    dev = dev_mask_of(len(truth), 400, seed=6)
    rigged = truth.copy()
    contradicted = dev & (votes[:, 3] == 1)  # the precise keyword LF 3: its dev PRESENT votes all "wrong"
    rigged[contradicted] = -1
    result = label_class_votes(votes, rigged, dev)
    diagnostics = result.lfs[3]
    assert contradicted.sum() >= 20
    assert "present" in diagnostics["check"] and diagnostics["message"].startswith("the model does not believe")
    assert diagnostics["dev"]["present"]["precision"]["value"] == 0
    assert diagnostics["implied_precision"]["present"] > 0.9
    assert {row["learned_by"] for row in result.lfs} == {"em_semi_supervised"}
    unlabeled = label_class_votes(votes, np.zeros_like(truth), dev)
    assert {row["learned_by"] for row in unlabeled.lfs} == {"em_unsupervised"}
    for row in result.lfs:
        learned = row["learned"]
        assert sum(learned[f"p_{o}_given_present"] for o in ("present", "absent", "abstain")) == pytest.approx(1)
        assert sum(learned[f"p_{o}_given_absent"] for o in ("present", "absent", "abstain")) == pytest.approx(1)


def test_calibration_table_by_hand_and_on_calibrated_probabilities():
    table = calibration_table([0.05, 0.15, 0.95, 0.95, np.nan, 0.5], [-1, 1, 1, -1, 1, 0], bins=10)
    assert table["count"] == 4
    assert [b["count"] for b in table["bins"]] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table["ece"] == pytest.approx(0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.45)
    rng = np.random.default_rng(7)
    p = rng.random(100_000)
    truth = np.where(rng.random(len(p)) < p, 1, -1)
    assert calibration_table(p, truth)["ece"] < 0.01
    assert calibration_table(p ** 3, truth)["ece"] > 0.1


def test_label_model_imports_neither_django_nor_service_code():
    """Imports of the modules, followed through the project's own modules they import (relative ones too)."""
    root = Path(label_choice.__file__).resolve().parents[2]
    pending, seen = ["imagestudio.labeling.label_choice"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        package = name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse((root / (name.replace(".", "/") + ".py")).read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = f"{package}.{node.module}" if node.level else node.module
                modules = [f"{base}.{alias.name}" if (root / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()
                           else base for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(("django", "rest_framework")), (name, module)
                if module.startswith("imagestudio") and module not in seen:
                    pending.append(module)
    assert seen == {"imagestudio.labeling.label_choice", "imagestudio.labeling.label_model", "imagestudio.labeling.calibration",
                    "imagestudio.labeling.lf_diagnostics", "imagestudio.labeling.metrics", "imagestudio.common.votes"}


def test_learned_accuracies_of_symmetric_lfs():
    votes, truth = generate([symmetric(a, 0.6) for a in (0.95, 0.9, 0.85, 0.7, 0.6, 0.55, 0.55)], 0.2, 5000, seed=8)
    assert np.allclose(DawidSkene().fit(votes).lf_accuracies(), (0.95, 0.9, 0.85, 0.7, 0.6, 0.55, 0.55), atol=0.04)


def test_calibration_fixes_overconfidence_and_a_shift_and_moves_no_label():
    from imagestudio.labeling.calibration import LabelPreservingCalibration

    rng = np.random.default_rng(3)
    logit = rng.uniform(-4, 4, 20_000)
    honest = 1 / (1 + np.exp(-(logit / 3 - 0.8)))  # the truth behind an overconfident, shifted score
    truth = np.where(rng.random(len(honest)) < honest, 1, -1).astype(np.int8)
    overconfident = (1 / (1 + np.exp(-logit))).astype(np.float32)
    calibration = LabelPreservingCalibration.fit(overconfident, truth, prior=float((truth == 1).mean()))
    assert calibration.slope == pytest.approx(1 / 3, rel=0.1) and calibration.intercept == pytest.approx(-0.8, abs=0.1)
    fixed = calibration.apply(overconfident)
    # The best a label-preserving map can do: the truth, held on each label's side of 0.5.
    ideal = np.where(overconfident > 0.5, np.maximum(honest, 0.501), np.minimum(honest, 0.499))
    assert calibration_table(fixed, truth)["ece"] < calibration_table(ideal, truth)["ece"] + 0.01
    assert calibration_table(ideal, truth)["ece"] + 0.1 < calibration_table(overconfident, truth)["ece"]
    assert np.array_equal(fixed > 0.5, overconfident > 0.5) and np.array_equal(fixed < 0.5, overconfident < 0.5)
    few = LabelPreservingCalibration.fit(overconfident[:5], truth[:5], prior=0.5)
    assert (few.slope, few.intercept, few.fitted_on) == (1.0, 0.0, 0)  # too few rows to tell


def test_calibration_of_majority_vote_shares_and_ties():
    """Vote shares recur on dev and elsewhere: each takes its dev frequency (shrunk towards the logistic map); a
    tie keeps label 0 and gets the frequency of the dev ties, not an even chance."""
    from imagestudio.labeling.calibration import LABEL_MARGIN, LabelPreservingCalibration

    shares = np.array([0.0, 1 / 3, 0.5, 2 / 3, 1.0], dtype=np.float32)
    present_rate = np.array([0.02, 0.1, 0.2, 0.45, 0.97])  # a 2/3 share is PRESENT less often than not
    rng = np.random.default_rng(4)
    level = rng.integers(0, len(shares), 4000)
    probability = shares[level]
    truth = np.where(rng.random(len(level)) < present_rate[level], 1, -1).astype(np.int8)
    fitted = LabelPreservingCalibration.fit(probability, truth, prior=float((truth == 1).mean()))
    fixed = fitted.apply(shares)
    assert fixed[2] == pytest.approx(0.2, abs=0.03)  # the ties
    assert fixed[[0, 1, 4]] == pytest.approx(present_rate[[0, 1, 4]], abs=0.03)
    assert fixed[3] == np.float32(0.5 + LABEL_MARGIN)  # as near its truth as its PRESENT label allows
    assert calibration_table(fitted.apply(probability), truth)["ece"] < 0.03


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(0, 1, width=32), st.sampled_from([0.0, 0.5, 1.0, float("nan")])),
                       min_size=1, max_size=60),
       seed=st.integers(0, 1000))
def test_calibration_never_moves_a_label(values, seed):
    from imagestudio.labeling.calibration import LabelPreservingCalibration
    from imagestudio.labeling.label_model import labels_from_probability

    probability = np.array(values, dtype=np.float32)
    truth = np.where(np.random.default_rng(seed).random(len(probability)) < 0.4, 1, -1).astype(np.int8)
    calibration = LabelPreservingCalibration.fit(probability, truth, prior=float((truth == 1).mean()))
    fixed = calibration.apply(probability)
    label = labels_from_probability(probability).label
    assert fixed.dtype == np.float32 and np.isfinite(fixed).all() and ((fixed >= 0) & (fixed <= 1)).all()
    assert (fixed[label == 1] > 0.5).all() and (fixed[label == -1] < 0.5).all()
    assert np.isfinite([calibration.slope, calibration.intercept]).all() and calibration.slope >= 0
    json.dumps(calibration.report())
