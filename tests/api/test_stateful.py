"""A stateful property test of the HTTP API: random interleavings of imports (with byte-identical duplicates and
bad rows, some across the import job's batches), single and bulk labels, undo, split moves, metadata edits, keyword
LFs and training sets (an LF turned off and on again gives back the same one), with the invariants of issue
"Nothing lost, nothing stale" checked after every step:

- check_integrity finds no drift (counters equal a recount, stored votes equal the rules applied to the data);
- an exact `count` of the samples list equals a direct count (LF votes counted from the test's own keyword rule);
- replaying the annotation history from empty gives the current labels, each event starting where the last ended;
- every import accounts for each file sent in exactly one bucket;
- no response is a 5xx.

Short in CI; STATEFUL_EXAMPLES / STATEFUL_STEPS run it longer (bench/stateful_long.sh). Fast models are left out:
they need embeddings, which cost more per step than the rest together.
"""

import csv
import io
import itertools
import json
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from imagestudio.annotations.models import LABEL_VALUES, Annotation
from imagestudio.datasets.imports.run import BATCH_SIZE
from imagestudio.datasets.models import Sample
from imagestudio.datasets.services import dataset_create
from imagestudio.demo.integrity import integrity_check
from tests.conftest import client_for, make_user
from tests.factories import sample_png

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "10"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "10"))

CLASSES = ["cat", "dog"]
SPLITS = ["train", "dev", "valid", "test"]
WORDS = ["cat", "dog", "bird", "red"]
VALUES = ["PRESENT", "ABSENT", "ABSTAIN"]
IMAGE_SEEDS = 12  # few distinct images, so imports keep meeting byte-identical twins
BAD_TEXTS = {"csv": ["a NUL \u0000 inside"], "jsonl": ["a NUL \u0000 inside", "a lone \ud800 surrogate"]}
MAX_LFS = 3

captions = st.lists(st.sampled_from(WORDS), max_size=3).map(" ".join)
labels = st.dictionaries(st.sampled_from(CLASSES), st.sampled_from(VALUES), max_size=2)
rows = st.fixed_dictionaries({"seed": st.integers(0, IMAGE_SEEDS - 1), "split": st.sampled_from(SPLITS),
                              "caption": captions, "gt": labels})
_names = itertools.count()


def manifest_bytes(entries, manifest_format):
    if manifest_format == "jsonl":
        return "\n".join(json.dumps({"file": e["file"], "split": e["split"], "metadata": {"caption": e["caption"]},
                                     "ground_truth": e["gt"]}) for e in entries).encode()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "split", "caption", *(f"gt:{name}" for name in CLASSES)])
    for e in entries:
        writer.writerow([e["file"], e["split"], e["caption"], *(e["gt"].get(name, "") for name in CLASSES)])
    return out.getvalue().encode()


def keyword_votes(caption, lf):
    """The test's own reading of a keyword LF: score 1 when a word of the caption is one of the LF's words."""
    score = 1.0 if isinstance(caption, str) and set(caption.lower().split()) & set(lf["words"]) else 0.0
    vote = "ABSTAIN"
    if lf["high"] is not None and score >= lf["high"]:
        vote = "ABSENT" if lf["invert"] else "PRESENT"
    if lf["low"] is not None and score <= lf["low"]:
        vote = "PRESENT" if lf["invert"] else "ABSENT"
    return vote


class ServiceMachine(RuleBasedStateMachine):
    """One fresh user and dataset per example; the test's model holds what the API cannot be asked for
    independently: the images stored, the LF rules, the bulk actions left to undo."""

    @initialize()
    def start(self):
        number = next(_names)
        self.user = make_user(f"stateful-{number}")
        self.client = client_for(self.user)
        self.dataset = dataset_create(user=self.user, name=f"stateful {number}", classes=CLASSES)
        self.base = f"/api/datasets/{self.dataset.id}"
        self.stored_seeds = set()
        self.lfs = {}  # id -> {"words", "low", "high", "invert", "active"}
        self.bulk_batches = []  # batch ids of this user's bulk actions not undone, oldest first

    def request(self, method, path, data=None, *, files=False):
        url = f"{self.base}{path}"
        if method == "get" or files:
            response = getattr(self.client, method)(url, data, format="multipart")
        else:  # JSON with \u escapes, as any client can send a lone surrogate
            response = getattr(self.client, method)(url, json.dumps(data), content_type="application/json")
        assert response.status_code < 500, (method, path, data, response.status_code, response.content[:2000])
        return response

    def sample_ids(self):
        return sorted(Sample.objects.filter(dataset=self.dataset).values_list("id", flat=True))

    def has_samples(self):
        return bool(self.stored_seeds)

    # --- imports -----------------------------------------------------------------------------------------------

    @rule(entries=st.lists(rows, min_size=1, max_size=5), manifest_format=st.sampled_from(["csv", "jsonl"]),
          policy=st.sampled_from(["keep_first", "merge", "refuse"]), data=st.data())
    def import_images(self, entries, manifest_format, policy, data):
        self._import(entries, manifest_format, policy, data)

    @rule(entries=st.lists(rows, min_size=BATCH_SIZE + 1, max_size=BATCH_SIZE + 8),
          manifest_format=st.sampled_from(["csv", "jsonl"]), data=st.data())
    def import_across_batches(self, entries, manifest_format, data):
        """More files than one batch of the import job: twins meet across its batches."""
        self._import(entries, manifest_format, "keep_first", data)

    def _import(self, entries, manifest_format, policy, data):
        prefix = f"i{next(_names)}"
        for index, entry in enumerate(entries):
            entry["file"] = f"{prefix}-{index}.png"
        bad = data.draw(st.none() | st.integers(0, len(entries) - 1), label="bad row")
        if bad is not None:
            entries[bad]["caption"] = data.draw(st.sampled_from(BAD_TEXTS[manifest_format]), label="bad text")
        files = [SimpleUploadedFile(e["file"], sample_png(e["seed"]), content_type="image/png") for e in entries]
        manifest = SimpleUploadedFile(f"manifest.{manifest_format}", manifest_bytes(entries, manifest_format))
        response = self.request("post", "/imports/", {"files": files, "manifest": manifest, "duplicates": policy},
                                files=True)
        assert response.status_code == 202, response.content
        job = self.client.get(response["Location"]).json()
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["created"] + result["duplicates"] + result["errors"] == result["total"] == len(files), result
        good_seeds = {e["seed"] for i, e in enumerate(entries) if i != bad}
        assert result["created"] == len(good_seeds - self.stored_seeds), (result, good_seeds, self.stored_seeds)
        if bad is not None:
            assert entries[bad]["file"] in {e["file"] for e in result["error_files"]}, result
        self.stored_seeds |= good_seeds

    # --- ground truth --------------------------------------------------------------------------------------------

    @precondition(has_samples)
    @rule(data=st.data(), label_class=st.sampled_from(CLASSES), value=st.sampled_from(VALUES))
    def put_annotation(self, data, label_class, value):
        sample = data.draw(st.sampled_from(self.sample_ids()), label="sample")
        response = self.request("put", "/annotations/", {"sample": sample, "label_class": label_class, "value": value})
        assert response.status_code == 200, response.content

    def _bulk(self, selection, classes, value):
        response = self.request("post", "/annotations/bulk/", {**selection, "classes": classes, "value": value})
        assert response.status_code == 200, response.content
        if response.json()["batch"] is not None:
            self.bulk_batches.append(response.json()["batch"])

    @precondition(has_samples)
    @rule(data=st.data(), classes=st.lists(st.sampled_from(CLASSES), min_size=1, unique=True),
          value=st.sampled_from(VALUES))
    def bulk_by_ids(self, data, classes, value):
        chosen = data.draw(st.lists(st.sampled_from(self.sample_ids()), min_size=1, unique=True), label="samples")
        self._bulk({"sample_ids": chosen}, classes, value)

    @rule(selection=st.one_of(
        st.builds(lambda split: {"split": split}, st.sampled_from(SPLITS)),
        st.builds(lambda name, value: {"gt": [f"{name}:{value}"]}, st.sampled_from(CLASSES), st.sampled_from(VALUES)),
        st.builds(lambda word: {"search": word}, st.sampled_from(WORDS)),
    ), classes=st.lists(st.sampled_from(CLASSES), min_size=1, unique=True), value=st.sampled_from(VALUES))
    def bulk_by_filter(self, selection, classes, value):
        self._bulk({"filter": selection}, classes, value)

    @rule()
    def undo_last_bulk(self):
        response = self.request("post", "/annotations/bulk/undo/")
        if not self.bulk_batches:
            assert response.status_code == 404, response.content
            return
        assert response.status_code == 200, response.content
        assert response.json()["batch"] == self.bulk_batches.pop()

    # --- samples -------------------------------------------------------------------------------------------------

    @precondition(has_samples)
    @rule(data=st.data(), split=st.sampled_from(SPLITS))
    def move_split(self, data, split):
        sample = data.draw(st.sampled_from(self.sample_ids()), label="sample")
        response = self.request("patch", f"/samples/{sample}/", {"split": split})
        assert response.status_code == 200 and response.json()["split"] == split, response.content

    @precondition(has_samples)
    @rule(data=st.data(), metadata=st.one_of(
        st.builds(lambda caption: {"caption": caption}, captions),
        st.just({}),
        st.builds(lambda text: {"caption": text}, st.sampled_from(BAD_TEXTS["jsonl"])),
    ))
    def edit_metadata(self, data, metadata):
        sample = data.draw(st.sampled_from(self.sample_ids()), label="sample")
        response = self.request("patch", f"/samples/{sample}/", {"metadata": metadata})
        if any(text in BAD_TEXTS["jsonl"] for text in metadata.values()):
            assert response.status_code == 400, response.content
        else:
            assert response.status_code == 200 and response.json()["metadata"] == metadata, response.content

    # --- labeling functions and training sets --------------------------------------------------------------------

    @precondition(lambda self: len(self.lfs) < MAX_LFS)
    @rule(label_class=st.sampled_from(CLASSES), words=st.lists(st.sampled_from(WORDS), min_size=1, unique=True),
          thresholds=st.sampled_from([(0, 1), (None, 1), (0, None)]), invert=st.booleans())
    def create_lf(self, label_class, words, thresholds, invert):
        low, high = thresholds
        response = self.request("post", "/lfs/", {
            "name": f"lf {next(_names)}", "label_class": label_class, "type": "pattern", "low": low, "high": high,
            "invert": invert, "config": {"field": "caption", "builder": "keyword", "words": words}})
        if self.caption_missing():
            assert response.status_code == 400 and "caption" in str(response.json()), response.content
            return
        assert response.status_code == 201, response.content
        self.lfs[response.json()["id"]] = {"words": words, "low": low, "high": high, "invert": invert, "active": True}

    def caption_missing(self):
        """Samples exist and none has a caption: rules on it are refused where they are written."""
        samples = Sample.objects.filter(dataset=self.dataset)
        return samples.exists() and not samples.filter(metadata__has_key="caption").exists()

    @precondition(lambda self: self.lfs)
    @rule(data=st.data(), change=st.one_of(
        st.builds(lambda t: {"low": t[0], "high": t[1]}, st.sampled_from([(0, 1), (None, 1), (0, None)])),
        st.builds(lambda words: {"config": {"field": "caption", "builder": "keyword", "words": words}},
                  st.lists(st.sampled_from(WORDS), min_size=1, unique=True)),
    ))
    def update_lf(self, data, change):
        lf_id = data.draw(st.sampled_from(sorted(self.lfs)), label="lf")
        response = self.request("patch", f"/lfs/{lf_id}/", change)
        if self.caption_missing():  # a rule is checked where it is written: its field must exist
            assert response.status_code == 400 and "caption" in str(response.json()), response.content
            return
        assert response.status_code == 200, response.content
        if "config" in change:
            self.lfs[lf_id]["words"] = change["config"]["words"]
        else:
            self.lfs[lf_id].update(change)

    @precondition(lambda self: self.lfs)
    @rule(data=st.data())
    def toggle_lf(self, data):
        lf_id = data.draw(st.sampled_from(sorted(self.lfs)), label="lf")
        active = not self.lfs[lf_id]["active"]
        response = self.request("patch", f"/lfs/{lf_id}/", {"active": active})
        assert response.status_code == 200 and response.json()["active"] is active, response.content
        self.lfs[lf_id]["active"] = active

    @rule()
    def build_training_set(self):
        response = self.request("post", "/training-sets/", {})
        if not any(lf["active"] for lf in self.lfs.values()):
            assert response.status_code == 400 and response.json()["code"] == "no_active_lfs", response.content
            return
        if not self.has_samples():
            assert response.status_code == 400 and "splits" in response.json(), response.content
            return
        assert response.status_code in (200, 202), response.content
        if response.status_code == 202:
            job = self.client.get(response["Location"]).json()
            assert job["status"] == "succeeded", job

    @precondition(lambda self: self.has_samples() and any(lf["active"] for lf in self.lfs.values()))
    @rule(data=st.data())
    def toggle_off_and_on_keeps_the_training_set(self, data):
        """An LF turned off and on again (same definition) leaves every input of a training set as it was: asking
        again answers the snapshot already built (200), not a new build."""
        built = self.request("post", "/training-sets/", {})
        assert built.status_code in (200, 202), built.content
        if built.status_code == 202:
            job = self.client.get(built["Location"]).json()
            assert job["status"] == "succeeded", job
        lf_id = data.draw(st.sampled_from(sorted(i for i, lf in self.lfs.items() if lf["active"])), label="lf")
        for active in (False, True):
            response = self.request("patch", f"/lfs/{lf_id}/", {"active": active})
            assert response.status_code == 200, response.content
        again = self.request("post", "/training-sets/", {})
        assert again.status_code == 200, (again.status_code, again.content[:500])

    # --- invariants ----------------------------------------------------------------------------------------------

    @invariant()
    def nothing_drifted(self):
        report = integrity_check(datasets=[self.dataset])
        assert report.clean, [str(drift) for drift in report.remaining]

    def _count(self, query):
        body = self.request("get", f"/samples/?{query}&limit=1").json()
        assert body["count_exact"], body
        return body["count"]

    @invariant()
    def exact_counts_are_exact(self):
        samples = Sample.objects.filter(dataset=self.dataset)
        for split in ("train", "dev"):
            assert self._count(f"split={split}") == samples.filter(split=split).count(), split
        for name, value in (("cat", "PRESENT"), ("dog", "ABSENT")):
            labeled = Annotation.objects.filter(sample__dataset=self.dataset, label_class__name=name, value=value)
            assert self._count(f"gt={name}:{value}") == labeled.count(), (name, value)
        metadata = list(samples.values_list("metadata", flat=True))
        for lf_id, lf in self.lfs.items():
            for vote in ("PRESENT", "ABSENT"):
                expected = sum(keyword_votes(m.get("caption"), lf) == vote for m in metadata)
                assert self._count(f"lf_vote={lf_id}:{vote}") == expected, (lf_id, lf, vote)

    def _all(self, path):
        items, url = [], f"{self.base}{path}?limit=500"
        while url:
            response = self.client.get(url)
            assert response.status_code == 200, response.content
            body = response.json()
            items += body["results"]
            url = body["next"]
        return items

    @invariant()
    def history_replays_to_the_labels(self):
        replayed = {}
        for event in reversed(self._all("/annotations/history/")):  # newest first on the wire
            key = (event["sample"], event["class_name"])
            assert replayed.get(key, "ABSTAIN") == event["old_value"], (event, replayed.get(key))
            replayed[key] = event["new_value"]
        current = {(a["sample"], a["class_name"]): a["value"] for a in self._all("/annotations/")}
        label_only = {key: value for key, value in current.items() if value in LABEL_VALUES}
        assert {key: value for key, value in replayed.items() if value in LABEL_VALUES} == label_only


def test_the_api_keeps_its_invariants_under_random_interleavings():
    run_state_machine_as_test(ServiceMachine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
