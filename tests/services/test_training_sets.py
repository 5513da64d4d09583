"""Training sets asked for by concurrent requests: one snapshot per content, whoever commits it first; a set is
built from the inputs it was asked for, or not at all."""

import threading

import pytest
from django.db import connections

from imagestudio.labeling.services import lf_create
from imagestudio.training.models import TrainingSet
from imagestudio.training.services import training_set_start
from tests.factories import make_samples

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_snapshot_committed_by_a_concurrent_request_is_answered_not_a_500(dataset, owner, monkeypatch):
    make_samples(dataset, [{"metadata": {"caption": c}, "split": s} for c, s in (("cat", "train"), ("dog", "dev"))])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    create = TrainingSet.objects.create

    def a_concurrent_request_commits_first(**fields):
        monkeypatch.undo()

        def other_request():
            try:
                training_set_start(dataset=dataset, user=owner)
            finally:
                connections.close_all()

        other = threading.Thread(target=other_request)
        other.start()
        other.join()
        return create(**fields)

    monkeypatch.setattr(TrainingSet.objects, "create", a_concurrent_request_commits_first)
    training_set, created = training_set_start(dataset=dataset, user=owner)
    assert not created
    assert list(TrainingSet.objects.filter(dataset=dataset).values_list("id", flat=True)) == [training_set.id]


def test_a_set_whose_inputs_changed_while_it_was_queued_follows_them_or_names_its_twin(dataset, owner):
    from imagestudio.annotations.services import annotation_set
    from imagestudio.common.errors import Conflict
    from imagestudio.training.selectors import training_snapshot
    from imagestudio.training.set_build import training_set_build

    samples = make_samples(dataset, [{"metadata": {"caption": c}, "split": "dev", "gt": {"cat": value}}
                                     for c, value in (("cat", "PRESENT"), ("cat", "PRESENT"), ("dog", "ABSENT"),
                                                      ("bird", "ABSENT"))])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    splits, cat = ["train", "dev", "valid", "test"], dataset.classes.get(name="cat")

    def queued():
        snapshot, content_hash = training_snapshot(dataset, splits, 0)
        return TrainingSet.objects.create(dataset=dataset, content_hash=content_hash, snapshot=snapshot,
                                          created_by=owner)

    first = queued()
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="PRESENT")
    twin = queued()  # asked for after the label: the inputs the first set will read
    with pytest.raises(Conflict, match=f"to those of training set {twin.id}"):
        training_set_build(first, lambda fraction, message: None)
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="ABSENT")
    twin.delete()
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="PRESENT")
    result = training_set_build(first, lambda fraction, message: None)  # built from the inputs it read
    first.refresh_from_db()
    assert (first.snapshot, first.content_hash) == training_snapshot(dataset, splits, 0)
    dev = result["classes"]["cat"]["candidates"]["majority_vote"]["dev"]
    assert dev["scored"] == 4 and dev["tp"] + dev["fn"] == 3  # with the label written while it was queued

    # Its inputs back to those of a set already built: that set is the answer, and this copy goes.
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="ABSENT")
    copy = queued()  # asked for while its inputs were those of the ready `first`... under another hash
    TrainingSet.objects.filter(pk=copy.pk).update(content_hash="pending-0")
    annotation_set(dataset=dataset, user=owner, sample=samples[2], label_class=cat, value="PRESENT")
    copy.refresh_from_db()
    answer = training_set_build(copy, lambda fraction, message: None)
    assert answer["reused"] and answer["training_set"] == first.id and answer["classes"] == first.report
    assert not TrainingSet.objects.filter(pk=copy.pk).exists()


def test_a_set_asked_for_while_the_votes_are_refreshed_is_a_new_one_that_waits(dataset, owner, monkeypatch):
    """With a vote refresh queued for a worker, the existing set of the votes as they are is no answer (it would be
    stale as soon as the refresh ran): a provisional set is, and asking again gives it again."""
    from imagestudio.celery import app as celery_app
    from imagestudio.jobs.models import Job

    make_samples(dataset, [{"metadata": {"caption": c}, "split": "train"} for c in ("cat", "dog")])
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw", type="pattern",
              config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    built, _ = training_set_start(dataset=dataset, user=owner)
    assert TrainingSet.objects.get(pk=built.pk).ready
    monkeypatch.setattr("imagestudio.jobs.services._send", lambda *args, **kwargs: None)  # no worker takes them
    celery_app.conf.task_always_eager = False
    try:
        Job.objects.create(kind="lf_votes", dataset=dataset, status="queued")  # an edit's refresh
        provisional, created = training_set_start(dataset=dataset, user=owner)
        again, created_again = training_set_start(dataset=dataset, user=owner)
        other_seed, _ = training_set_start(dataset=dataset, user=owner, seed=1)
    finally:
        celery_app.conf.task_always_eager = True
    assert created and provisional.id != built.id and provisional.content_hash.startswith("pending-")
    assert (again.id, created_again) == (provisional.id, False) and other_seed.id not in (built.id, provisional.id)


def test_a_set_of_train_alone_learns_from_the_dev_labels(dataset, owner):
    """Found from outside: a set of splits without dev ignored every dev label ("fewer than 2 labeled dev samples")
    and, fitted unsupervised, labelled a class backwards where its LF was written so. The dev labels orient, choose
    and calibrate its label model; its labels and samples are those of its splits."""
    from imagestudio.datasets.models import Sample
    from imagestudio.training.selectors import training_labels_page, training_set_staleness

    # The LF says "cat" where the caption says cat, and the captions are wrong: cats are captioned "dog".
    specs = [{"split": split, "metadata": {"caption": "a dog" if index % 2 else "a cat"},
              **({"gt": {"cat": "PRESENT" if index % 2 else "ABSENT"}} if split == "dev" else {})}
             for split in ("train", "dev") for index in range(40)]
    make_samples(dataset, specs)
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="says cat",
              type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]}, low=0, high=1)
    training_set, _ = training_set_start(dataset=dataset, user=owner, splits=["train"])
    training_set.refresh_from_db()
    report = training_set.report["cat"]
    assert "(40 dev samples" in report["reason"] and report["candidates"]["majority_vote"]["dev"]["scored"] == 40
    count, rows = training_labels_page(training_set=training_set, limit=100)
    captions = dict(Sample.objects.filter(dataset=dataset).values_list("id", "metadata__caption"))
    assert count == training_set.samples == 40  # the set's samples: train only
    assert all((row["classes"]["cat"]["label"] == "PRESENT") == (captions[row["sample_id"]] == "a dog") for row in rows)
    assert training_set_staleness(training_set) == []
    from imagestudio.datasets.services import sample_update

    unlabeled_dev = make_samples(dataset, [{"split": "train"}])[0]
    sample_update(sample=Sample.objects.get(pk=unlabeled_dev.pk), split="dev", user=owner)
    assert "samples were added to or moved into or out of dev (its label model reads them)" in \
        training_set_staleness(TrainingSet.objects.get(pk=training_set.pk))


def test_valid_figures_describe_the_labels_the_set_gives_where_no_dev_label_scores(dataset, owner):
    """Found from outside: one keyword LF (PRESENT or silent), no dev label: the set's labels abstain where it is
    silent, yet the report scored those rows PRESENT (the unsupervised EM's balance, 0.518) on valid: tp 18 fp 42
    where the labels gave tp 10 fp 1. Now the figures are those of the labels given, abstentions left out."""
    from imagestudio.training.selectors import training_labels_page

    specs = [{"split": split, "metadata": {"caption": "a cat" if index % 3 == 0 else "an animal"},
              **({"gt": {"cat": "PRESENT" if index % 2 == 0 else "ABSENT"}} if split == "valid" else {})}
             for split in ("train", "valid") for index in range(30)]
    samples = make_samples(dataset, specs)
    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="says cat",
              type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=1)
    training_set, _ = training_set_start(dataset=dataset, user=owner)
    training_set.refresh_from_db()
    report = training_set.report["cat"]
    _, rows = training_labels_page(training_set=training_set, split="valid", limit=100)
    truth = {s.id: s_spec["gt"]["cat"] for s, s_spec in zip(samples, specs, strict=True) if "gt" in s_spec}
    given = [(row["classes"]["cat"]["label"], truth[row["sample_id"]]) for row in rows
             if row["classes"]["cat"]["label"] != "ABSTAIN"]
    figures = report["candidates"][report["chosen"]]["valid"]
    assert given and figures["scored"] == len(given) < len(rows)
    assert (figures["tp"], figures["fp"]) == (sum(g == ("PRESENT", "PRESENT") for g in given),
                                              sum(g == ("PRESENT", "ABSENT") for g in given))
    assert figures["fn"] + figures["tn"] == sum(label == "ABSENT" for label, _ in given)
    assert report["calibration"]["valid"]["count"] == len(given)


def test_the_analysis_says_when_no_lf_votes_on_a_labeled_dev_sample(dataset, owner):
    """Found from outside: the LFs never voted on dev; every candidate tied at dev F1 0 and the set was chosen and
    calibrated on the class balance alone, with no word of it. The tip's samples are the dev samples the LFs miss."""
    from imagestudio.datasets.filters import samples_select
    from imagestudio.training.analysis import dataset_analysis

    specs = [{"split": "train", "metadata": {"caption": "a cat" if index % 2 else "a dog"}} for index in range(20)]
    specs += [{"split": "dev", "metadata": {"caption": "an animal"}, "gt": {"cat": "PRESENT" if index % 3 else "ABSENT"}}
              for index in range(12)]
    make_samples(dataset, specs)
    lf = lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="says cat",
                   type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=1)
    training_set_start(dataset=dataset, user=owner)
    [cat] = [c for c in dataset_analysis(dataset=dataset)["classes"] if c["label_class"] == "cat"]
    [tip] = [tip for tip in cat["guidance"] if tip["kind"] == "dev_without_votes"]
    assert "any of the 12 labeled dev samples" in tip["message"]
    assert tip["samples"] == {"split": "dev", "lf_vote": [f"{lf.id}:ABSTAIN"]}
    assert samples_select(dataset=dataset, filter_values=tip["samples"]).count() == 12

    lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="says animal",
              type="pattern", config={"field": "caption", "builder": "keyword", "words": ["animal"]}, high=1)
    training_set_start(dataset=dataset, user=owner)
    [cat] = [c for c in dataset_analysis(dataset=dataset)["classes"] if c["label_class"] == "cat"]
    assert "dev_without_votes" not in {tip["kind"] for tip in cat["guidance"]}
