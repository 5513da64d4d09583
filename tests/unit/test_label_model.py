"""The label model on synthetic votes with known LF accuracies and class balance."""

import numpy as np
import pytest

from imagestudio.labeling.label_model import DawidSkene, MajorityVote, accuracy_on, choose_label_model


def synthetic(n=20_000, accuracies=(0.95, 0.9, 0.85, 0.7, 0.6, 0.55, 0.55), coverage=0.6, balance=0.2, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.where(rng.random(n) < balance, 1, -1).astype(np.int8)
    votes = np.zeros((n, len(accuracies)), dtype=np.int8)
    for j, accuracy in enumerate(accuracies):
        voting = rng.random(n) < coverage
        right = rng.random(n) < accuracy
        votes[:, j] = np.where(voting, np.where(right, truth, -truth), 0)
    return votes, truth


def bayes_optimal(votes, truth, accuracies, coverage, balance):
    """Posterior with the true parameters: the best any aggregation can do."""
    log_odds = np.full(len(votes), np.log(balance / (1 - balance)))
    for j, a in enumerate(accuracies):
        log_odds += np.where(votes[:, j] == 1, np.log(a / (1 - a)), np.where(votes[:, j] == -1, np.log((1 - a) / a), 0))
    covered = (votes != 0).any(axis=1)
    return float((np.where(log_odds >= 0, 1, -1)[covered] == truth[covered]).mean())


def test_dawid_skene_beats_majority_vote_and_nears_bayes_optimal():
    accuracies = (0.95, 0.9, 0.85, 0.7, 0.6, 0.55, 0.55)
    votes, truth = synthetic(accuracies=accuracies)
    model = DawidSkene().fit(votes)
    ds = accuracy_on(model.predict(votes), truth)["accuracy"]
    mv = accuracy_on(MajorityVote().predict(votes), truth)["accuracy"]
    best = bayes_optimal(votes, truth, accuracies, 0.6, 0.2)
    assert ds > mv + 0.02
    assert ds >= best - 0.01
    assert model.prior == pytest.approx(0.2, abs=0.02)
    assert np.allclose(model.lf_accuracies(), accuracies, atol=0.03)


def test_probabilities_and_abstentions():
    votes = np.array([[1, 1, 0], [0, 0, 0], [-1, -1, -1], [1, -1, 0]], dtype=np.int8)
    labels = DawidSkene().fit(np.repeat(votes, 50, axis=0)).predict(votes)
    assert np.isnan(labels.probability[1]) and labels.label[1] == 0
    assert labels.label[0] == 1 and labels.label[2] == -1
    assert ((labels.probability[[0, 2, 3]] >= 0) & (labels.probability[[0, 2, 3]] <= 1)).all()
    majority = MajorityVote().predict(votes)
    assert majority.label.tolist() == [1, 0, -1, 0] and majority.probability[3] == 0.5


def test_choice_on_dev_reports_both_scores():
    votes, truth = synthetic(n=5000)
    model, report = choose_label_model(votes, votes[:1000], truth[:1000])
    assert report["chosen"] == model.name == "dawid_skene"
    assert set(report["dev"]) == {"dawid_skene", "majority_vote"}
    assert report["dev"]["dawid_skene"]["accuracy"] >= report["dev"]["majority_vote"]["accuracy"]
    _, without_dev = choose_label_model(votes)
    assert without_dev == {"chosen": "dawid_skene", "dev": None}


def test_adversarial_dev_picks_majority_when_it_scores_better():
    votes, truth = synthetic(n=3000, accuracies=(0.8, 0.8, 0.8))
    rigged = np.where((votes == 0).all(axis=1), truth, MajorityVote().predict(votes).label)  # majority is "right"
    model, report = choose_label_model(votes, votes, rigged)
    ds, mv = report["dev"]["dawid_skene"]["accuracy"], report["dev"]["majority_vote"]["accuracy"]
    assert report["chosen"] == ("majority_vote" if mv > ds else "dawid_skene")
