"""Ground truth through the HTTP API: one label, bulk, history, undo, versions, counts, tags, comments."""

import pytest

from imagestudio.annotations.models import Annotation, AnnotationEvent, GroundTruthCount
from imagestudio.annotations.services import counts_rebuild
from imagestudio.datasets.models import LabelClass, Role
from imagestudio.datasets.services import dataset_create
from tests.conftest import client_for
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def samples(dataset):
    specs = [{"split": "train"}] * 6 + [{"split": "dev", "tags": ["blurry"]}] * 3 + [{"split": "test"}]
    made = make_samples(dataset, specs)
    return made


def put(client, dataset, sample, label_class, value, **extra):
    body = {"sample": sample.id, "label_class": label_class, "value": value}
    headers = {}
    if "if_match" in extra:
        headers["HTTP_IF_MATCH"] = extra.pop("if_match")
    body.update(extra)
    return client.put(f"/api/datasets/{dataset.id}/annotations/", body, format="json", **headers)


def counts(client, dataset):
    return {c["name"]: c["counts"] for c in client.get(f"/api/datasets/{dataset.id}/classes/").json()["results"]}


def assert_counts_exact(dataset):
    live = {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()
            if c.present or c.absent}
    counts_rebuild(dataset=dataset)
    rebuilt = {(c.label_class_id, c.split): (c.present, c.absent) for c in GroundTruthCount.objects.all()}
    assert live == rebuilt


def test_set_change_and_clear_one_label_with_history(api, dataset, samples, owner):
    sample = samples[0]
    first = put(api, dataset, sample, "cat", "PRESENT")
    assert first.status_code == 200 and first.json()["changed"] is True
    assert first.json()["annotation"]["version"] == 1 and first["ETag"].startswith('"1.')
    assert put(api, dataset, sample, "cat", "PRESENT").json()["changed"] is False
    assert put(api, dataset, sample, "cat", "ABSENT").json()["annotation"]["version"] == 2
    cleared = put(api, dataset, sample, "cat", "ABSTAIN")
    assert cleared.json()["annotation"]["value"] == "ABSTAIN" and cleared.json()["annotation"]["version"] == 3
    detail = api.get(f"/api/datasets/{dataset.id}/samples/{sample.id}/").json()
    assert detail["ground_truth"] == {}
    listed = lambda query: [(a["sample"], a["value"], a["version"])  # noqa: E731
                            for a in api.get(f"/api/datasets/{dataset.id}/annotations/{query}").json()["results"]]
    assert listed("") == listed("?value=ABSTAIN") == [(sample.id, "ABSTAIN", 3)]  # documented: kept, with its version
    assert listed("?value=PRESENT") == listed("?value=ABSENT") == []
    history = api.get(f"/api/datasets/{dataset.id}/annotations/history/?sample={sample.id}").json()["results"]
    assert [(e["old_value"], e["new_value"]) for e in history] == [
        ("ABSENT", "ABSTAIN"), ("PRESENT", "ABSENT"), ("ABSTAIN", "PRESENT")]
    assert {e["user"] for e in history} == {owner.username} and {e["source"] for e in history} == {"api"}
    assert put(api, dataset, samples[1], "dog", "ABSTAIN").json() == {
        "changed": False, "annotation": {"id": None, "sample": samples[1].id, "class_id": dataset.classes.get(
            name="dog").id, "class_name": "dog", "value": "ABSTAIN", "version": 0, "updated_by": None,
            "updated_at": None}}


def test_stale_version_is_409_stale_if_match_412_and_neither_changes_anything(api, dataset, samples):
    sample = samples[0]
    put(api, dataset, sample, "cat", "PRESENT")
    assert put(api, dataset, sample, "cat", "ABSENT", version=1).status_code == 200
    stale = put(api, dataset, sample, "cat", "PRESENT", version=1)
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict" and stale.json()["version"] == 2
    precondition = put(api, dataset, sample, "cat", "PRESENT", if_match='"1"')
    assert precondition.status_code == 412 and precondition.json()["version"] == 2
    assert put(api, dataset, sample, "cat", "PRESENT", if_match='"2"').status_code == 200
    never = put(api, dataset, samples[1], "cat", "PRESENT", version=3)
    assert never.status_code == 409
    assert put(api, dataset, samples[1], "cat", "PRESENT", version=0).status_code == 200
    assert put(api, dataset, sample, "cat", "ABSENT", if_match="abc").status_code == 400
    assert Annotation.objects.get(sample=sample).value == "PRESENT"


@pytest.mark.parametrize("body, field", [
    ({"label_class": "cat", "value": "PRESENT"}, "sample"),
    ({"sample": 999999, "label_class": "cat", "value": "PRESENT"}, "sample"),
    ({"sample": "SAMPLE", "label_class": "unicorn", "value": "PRESENT"}, "label_class"),
    ({"sample": "SAMPLE", "label_class": "cat", "value": "MAYBE"}, "value"),
    ({"sample": "SAMPLE", "label_class": "cat", "value": "PRESENT", "version": -1}, "version"),
])
def test_bad_single_writes(api, dataset, samples, body, field):
    body = {k: samples[0].id if v == "SAMPLE" else v for k, v in body.items()}
    response = api.put(f"/api/datasets/{dataset.id}/annotations/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not Annotation.objects.exists()


def test_sample_and_class_of_another_dataset_are_refused(api, owner, dataset, samples):
    other = dataset_create(user=owner, name="Other", classes=["zebra"])
    other_sample = make_samples(other, [{}])[0]
    assert put(api, dataset, other_sample, "cat", "PRESENT").status_code == 400
    assert put(api, dataset, samples[0], "zebra", "PRESENT").status_code == 400
    assert put(api, dataset, samples[0], str(other.classes.get().id), "PRESENT").status_code == 400
    bulk = api.post(f"/api/datasets/{dataset.id}/annotations/bulk/",
                    {"sample_ids": [samples[0].id, other_sample.id], "classes": ["cat"], "value": "PRESENT"},
                    format="json")
    assert bulk.status_code == 400 and "sample_ids" in bulk.json()
    assert not Annotation.objects.exists()


def test_bulk_by_ids_and_by_filter_counts_changed_and_unchanged(api, dataset, samples):
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    put(api, dataset, samples[0], "cat", "PRESENT")
    by_ids = api.post(url, {"sample_ids": [s.id for s in samples[:4]], "classes": ["cat", "dog"],
                            "value": "PRESENT"}, format="json").json()
    assert (by_ids["samples"], by_ids["changed"], by_ids["unchanged"]) == (4, 7, 1) and by_ids["batch"]
    by_filter = api.post(url, {"filter": {"split": "dev", "tag": ["blurry"]}, "classes": ["cat"],
                               "value": "ABSENT"}, format="json").json()
    assert (by_filter["samples"], by_filter["changed"]) == (3, 3)
    nothing = api.post(url, {"filter": {"search": "no-such-text"}, "classes": ["cat"], "value": "ABSENT"},
                       format="json").json()
    assert nothing == {"samples": 0, "changed": 0, "unchanged": 0, "batch": None}
    c = counts(api, dataset)
    assert c["cat"]["train"] == {"present": 4, "absent": 0, "unlabeled": 2}
    assert c["cat"]["dev"] == {"present": 0, "absent": 3, "unlabeled": 0}
    assert c["dog"]["train"] == {"present": 4, "absent": 0, "unlabeled": 2}
    listed = api.get(f"/api/datasets/{dataset.id}/samples/?gt=cat:ABSENT").json()
    assert listed["count"] == 3
    assert api.get(f"/api/datasets/{dataset.id}/annotations/history/?source=bulk").json()["count"] == 10
    assert_counts_exact(dataset)


@pytest.mark.parametrize("body, field", [
    ({"classes": ["cat"], "value": "PRESENT"}, "non_field_errors"),
    ({"sample_ids": [1], "filter": {}, "classes": ["cat"], "value": "PRESENT"}, "non_field_errors"),
    ({"sample_ids": [], "classes": ["cat"], "value": "PRESENT"}, "sample_ids"),
    ({"sample_ids": list(range(1, 10_002)), "classes": ["cat"], "value": "PRESENT"}, "sample_ids"),
    ({"sample_ids": ["x"], "classes": ["cat"], "value": "PRESENT"}, "sample_ids"),
    ({"filter": {"split": "dev"}, "classes": [], "value": "PRESENT"}, "classes"),
    ({"filter": {"split": "dev"}, "classes": ["cat", "unicorn"], "value": "PRESENT"}, "classes"),
    ({"filter": {"split": "dev"}, "classes": ["cat"], "value": "YES"}, "value"),
    ({"filter": {"split": "holdout"}, "classes": ["cat"], "value": "PRESENT"}, "filter"),
    ({"filter": {"gt": ["unicorn:PRESENT"]}, "classes": ["cat"], "value": "PRESENT"}, "gt"),
])
def test_bad_bulk_requests_write_nothing(api, dataset, samples, body, field):
    response = api.post(f"/api/datasets/{dataset.id}/annotations/bulk/", body, format="json")
    assert response.status_code == 400 and field in str(response.json()), response.content
    assert not Annotation.objects.exists() and not AnnotationEvent.objects.exists()


def test_undo_last_bulk_leaves_later_changes_alone(api, dataset, samples, member_client):
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    put(api, dataset, samples[0], "cat", "ABSENT")
    api.post(url, {"sample_ids": [s.id for s in samples[:3]], "classes": ["cat"], "value": "PRESENT"}, format="json")
    put(api, dataset, samples[2], "cat", "ABSENT")  # changed again after the bulk action
    other = member_client(Role.ANNOTATOR)
    assert other.post(f"{url}undo/").status_code == 404  # nothing of theirs to undo
    undone = api.post(f"{url}undo/")
    assert undone.status_code == 200 and (undone.json()["reverted"], undone.json()["skipped"]) == (2, 1)
    values = dict(Annotation.objects.values_list("sample_id", "value"))
    assert values == {samples[0].id: "ABSENT", samples[1].id: "ABSTAIN", samples[2].id: "ABSENT"}
    assert api.post(f"{url}undo/").json()["code"] == "nothing_to_undo"
    assert AnnotationEvent.objects.filter(source="undo").count() == 2
    assert counts(api, dataset)["cat"]["train"] == {"present": 0, "absent": 2, "unlabeled": 4}
    assert_counts_exact(dataset)


def test_undo_leaves_a_label_changed_back_since_and_walks_back_through_undone_batches(api, dataset, samples,
                                                                                   member_client):
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    first, second = samples[0], samples[1]
    api.post(url, {"sample_ids": [first.id, second.id], "classes": ["cat"], "value": "PRESENT"}, format="json")
    other = member_client(Role.ANNOTATOR)
    put(other, dataset, first, "cat", "ABSENT")
    put(other, dataset, first, "cat", "PRESENT")  # back to the batch's value: a change all the same
    undone = api.post(f"{url}undo/").json()
    assert (undone["reverted"], undone["skipped"]) == (1, 1)
    assert dict(Annotation.objects.values_list("sample_id", "value")) == {first.id: "PRESENT", second.id: "ABSTAIN"}
    # A later batch of one's own, undone, does not count as a change of the earlier one's labels.
    api.post(url, {"sample_ids": [second.id], "classes": ["cat"], "value": "ABSENT"}, format="json")
    api.post(url, {"sample_ids": [second.id], "classes": ["cat"], "value": "PRESENT"}, format="json")
    assert api.post(f"{url}undo/").json()["reverted"] == 1
    assert api.post(f"{url}undo/").json()["reverted"] == 1
    assert Annotation.objects.get(sample=second).value == "ABSTAIN"
    assert_counts_exact(dataset)


def test_a_class_named_twice_in_a_bulk_request_is_changed_once(api, dataset, samples):
    cat = LabelClass.objects.get(dataset=dataset, name="cat")
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    ids = [s.id for s in samples[:2]]
    for classes in (["cat", "CAT"], ["cat", str(cat.id)]):  # a new label, then an existing one
        value = "PRESENT" if classes[1] == "CAT" else "ABSENT"
        response = api.post(url, {"sample_ids": ids, "classes": classes, "value": value}, format="json")
        assert response.status_code == 200 and response.json()["changed"] == 2, response.content
    assert AnnotationEvent.objects.count() == 4 and set(Annotation.objects.values_list("version", flat=True)) == {2}
    assert_counts_exact(dataset)


def test_moving_a_sample_moves_its_counts(api, dataset, samples):
    put(api, dataset, samples[0], "cat", "PRESENT")
    api.patch(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/", {"split": "valid"}, format="json")
    c = counts(api, dataset)["cat"]
    assert c["train"]["present"] == 0 and c["valid"] == {"present": 1, "absent": 0, "unlabeled": 0}
    assert_counts_exact(dataset)


def test_roles_viewer_reads_annotator_writes(dataset, samples, member_client, stranger):
    viewer, annotator = member_client(Role.VIEWER), member_client(Role.ANNOTATOR)
    assert put(viewer, dataset, samples[0], "cat", "PRESENT").status_code == 403
    assert viewer.post(f"/api/datasets/{dataset.id}/annotations/bulk/",
                       {"sample_ids": [samples[0].id], "classes": ["cat"], "value": "PRESENT"},
                       format="json").status_code == 403
    assert put(annotator, dataset, samples[0], "cat", "PRESENT").status_code == 200
    assert viewer.get(f"/api/datasets/{dataset.id}/annotations/?label_class=cat").json()["count"] == 1
    assert viewer.get(f"/api/datasets/{dataset.id}/annotations/history/").json()["count"] == 1
    assert put(client_for(stranger), dataset, samples[0], "cat", "ABSENT").status_code == 404


def test_annotation_list_filters(api, dataset, samples):
    put(api, dataset, samples[0], "cat", "PRESENT")
    put(api, dataset, samples[1], "dog", "ABSENT")
    base = f"/api/datasets/{dataset.id}/annotations/"
    assert api.get(f"{base}?sample={samples[0].id}").json()["count"] == 1
    assert api.get(f"{base}?value=ABSENT").json()["results"][0]["class_name"] == "dog"
    assert api.get(f"{base}?label_class=unicorn").status_code == 400
    history = f"/api/datasets/{dataset.id}/annotations/history/"
    assert api.get(f"{history}?user=olivia").json()["count"] == 2
    # An unknown user name and a user who changed nothing answer alike: no oracle for which names exist.
    assert api.get(f"{history}?user=nobody").json()["count"] == 0


def test_tags_create_rename_apply_remove(api, dataset, samples, member_client):
    base = f"/api/datasets/{dataset.id}/tags/"
    existing = api.get(base).json()["results"]
    assert existing[0]["name"] == "blurry" and existing[0]["sample_count"] == 3
    created = api.post(base, {"name": "review"}, format="json")
    assert created.status_code == 201
    tag = created.json()["id"]
    assert api.post(base, {"name": "review"}, format="json").status_code == 409
    assert api.post(base, {"name": "ｒｅｖｉｅｗ"}, format="json").status_code == 409  # NFKC: the same name
    # filters take a tag by name or id, values separated by commas: such names would read as another tag
    for name in (str(tag), "19", "a,b", "bell\x07"):
        refused = api.post(base, {"name": name}, format="json")
        assert refused.status_code == 400 and refused.json()["name"], (name, refused.content)
    assert api.patch(f"{base}{tag}/", {"name": "7"}, format="json").status_code == 400
    applied = api.post(f"{base}{tag}/apply/", {"filter": {"split": "train"}}, format="json").json()
    assert applied == {"changed": 6}
    assert api.post(f"{base}{tag}/apply/", {"sample_ids": [samples[0].id, samples[9].id]},
                    format="json").json() == {"changed": 1}
    assert api.get(f"/api/datasets/{dataset.id}/samples/?tag=review").json()["count"] == 7
    removed = api.post(f"{base}{tag}/remove/", {"sample_ids": [samples[0].id, samples[1].id]}, format="json")
    assert removed.json() == {"changed": 2}
    assert api.patch(f"{base}{tag}/", {"name": "checked"}, format="json").json()["name"] == "checked"
    assert api.get(f"/api/datasets/{dataset.id}/samples/?tag=checked").json()["count"] == 5
    viewer = member_client(Role.VIEWER)
    assert viewer.post(f"{base}{tag}/apply/", {"sample_ids": [samples[0].id]}, format="json").status_code == 403
    assert api.post(f"{base}{tag}/apply/", {"sample_ids": [999999]}, format="json").status_code == 400
    assert api.delete(f"{base}{tag}/").status_code == 204
    assert api.get(f"/api/datasets/{dataset.id}/samples/?tag=checked").status_code == 400


def test_comments_author_or_owner_edits(api, dataset, samples, member_client):
    base = f"/api/datasets/{dataset.id}/samples/{samples[0].id}/comments/"
    annotator, other = member_client(Role.ANNOTATOR), member_client(Role.EDITOR)
    created = annotator.post(base, {"body": "looks blurry"}, format="json")
    assert created.status_code == 201 and created.json()["author"] == "user-annotator"
    comment = created.json()["id"]
    assert other.patch(f"{base}{comment}/", {"body": "no"}, format="json").status_code == 403
    assert other.delete(f"{base}{comment}/").status_code == 403
    assert annotator.patch(f"{base}{comment}/", {"body": "very blurry"}, format="json").json()["body"] == "very blurry"
    assert member_client(Role.VIEWER).post(base, {"body": "hi"}, format="json").status_code == 403
    assert api.get(f"/api/datasets/{dataset.id}/samples/{samples[0].id}/").json()["comments"][0]["body"] == "very blurry"
    assert api.post(base, {"body": ""}, format="json").status_code == 400
    assert api.delete(f"{base}{comment}/").status_code == 204  # the owner may delete
    assert api.get(f"/api/datasets/{dataset.id}/samples/999999/comments/").status_code == 404


def test_a_bulk_write_with_a_key_it_does_not_know_writes_nothing(api, dataset):
    samples = make_samples(dataset, [{"split": "train"}, {"split": "test"}])
    url = f"/api/datasets/{dataset.id}/annotations/bulk/"
    for body, key in (({"filter": {"splitt": "test"}, "classes": ["cat"], "value": "ABSENT"}, "splitt"),
                      ({"filter": {"split": "test"}, "classes": ["cat"], "value": "ABSENT", "dry_run": True}, "dry_run")):
        refused = api.post(url, body, format="json")
        assert refused.status_code == 400, refused.content
        assert key in str(refused.json()), refused.json()
    assert not Annotation.objects.exists()
    tag = api.post(f"/api/datasets/{dataset.id}/tags/", {"name": "t"}, format="json").json()["id"]
    refused = api.post(f"/api/datasets/{dataset.id}/tags/{tag}/apply/", {"filter": {"splt": "test"}}, format="json")
    assert refused.status_code == 400 and "splt" in str(refused.json())
    done = api.post(url, {"filter": {"split": "test"}, "classes": ["cat"], "value": "ABSENT"}, format="json")
    assert done.status_code == 200 and done.json()["changed"] == 1 and samples
    listed = api.get(f"/api/datasets/{dataset.id}/samples/?split=test&_=123")  # a query string may carry others
    assert listed.status_code == 200 and listed.json()["count"] == 1
