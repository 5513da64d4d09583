import pytest

from imagestudio.datasets.models import Role
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db


def test_token_endpoint(owner):
    anonymous = client_for(None)
    response = anonymous.post("/api/auth/token/", {"username": "olivia", "password": "olivia-password-123"})
    assert response.status_code == 200 and response.json()["token"].startswith("ist_")
    wrong = anonymous.post("/api/auth/token/", {"username": "olivia", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "authentication_failed"
    missing = anonymous.post("/api/auth/token/", {"username": "olivia"})
    assert missing.status_code == 400 and "password" in missing.json()


def test_unauthenticated_is_401_everywhere(dataset):
    anonymous = client_for(None)
    for path in ("/api/datasets/", f"/api/datasets/{dataset.id}/", f"/api/datasets/{dataset.id}/samples/",
                 "/api/jobs/"):
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "not_authenticated"


def test_bad_token_is_401(dataset):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get("/api/datasets/").status_code == 401


def test_create_dataset_makes_creator_owner_with_classes(api):
    response = api.post("/api/datasets/", {"name": "Birds", "description": "d", "classes": ["owl", "crow", "owl"]},
                        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["role"] == "owner"
    assert [c["name"] for c in body["classes"]] == ["owl", "crow"]
    assert body["split_counts"] == {"train": 0, "dev": 0, "valid": 0, "test": 0}
    listed = api.get("/api/datasets/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]


@pytest.mark.parametrize("payload, field", [
    ({}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "ok", "classes": "cat"}, "classes"),
    ({"name": "ok", "classes": ["x" * 101]}, "classes"),
])
def test_create_dataset_bad_input(api, payload, field):
    response = api.post("/api/datasets/", payload, format="json")
    assert response.status_code == 400 and field in response.json()


def test_strangers_get_404_members_see_and_roles_gate_writes(dataset, stranger, member_client):
    other = client_for(stranger)
    assert other.get(f"/api/datasets/{dataset.id}/").status_code == 404
    assert other.patch(f"/api/datasets/{dataset.id}/", {"name": "mine"}, format="json").status_code == 404
    assert other.get(f"/api/datasets/{dataset.id}/classes/").status_code == 404
    assert other.get("/api/datasets/").json()["count"] == 0

    viewer = member_client(Role.VIEWER)
    assert viewer.get(f"/api/datasets/{dataset.id}/").json()["role"] == "viewer"
    denied = viewer.patch(f"/api/datasets/{dataset.id}/", {"name": "v"}, format="json")
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    assert viewer.post(f"/api/datasets/{dataset.id}/classes/", {"name": "bird"}, format="json").status_code == 403

    editor = member_client(Role.EDITOR)
    assert editor.patch(f"/api/datasets/{dataset.id}/", {"name": "Pets 2"}, format="json").json()["name"] == "Pets 2"
    assert editor.delete(f"/api/datasets/{dataset.id}/").status_code == 403


def test_owner_deletes_dataset(api, dataset):
    assert api.delete(f"/api/datasets/{dataset.id}/").status_code == 204
    assert api.get(f"/api/datasets/{dataset.id}/").status_code == 404


def test_classes_crud_and_duplicate_name(api, dataset):
    base = f"/api/datasets/{dataset.id}/classes/"
    assert [c["name"] for c in api.get(base).json()["results"]] == ["cat", "dog"]
    created = api.post(base, {"name": "bird"}, format="json")
    assert created.status_code == 201
    duplicate = api.post(base, {"name": "cat"}, format="json")
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_name"
    renamed = api.patch(f"{base}{created.json()['id']}/", {"name": "dog"}, format="json")
    assert renamed.status_code == 409
    assert api.patch(f"{base}{created.json()['id']}/", {"name": "owl"}, format="json").json()["name"] == "owl"
    assert api.delete(f"{base}{created.json()['id']}/").status_code == 204
    assert api.get(f"{base}999999/").status_code == 404


def test_descriptions_of_datasets_and_classes_are_bounded_alike(api, dataset):
    cat = f"/api/datasets/{dataset.id}/classes/{dataset.classes.get(name='cat').id}/"
    for method, url, body in (("post", f"/api/datasets/{dataset.id}/classes/", {"name": "owl"}), ("patch", cat, {}),
                              ("post", "/api/datasets/", {"name": "d"}), ("patch", f"/api/datasets/{dataset.id}/", {})):
        refused = getattr(api, method)(url, {**body, "description": "a" * 10_001}, format="json")
        assert refused.status_code == 400 and "description" in refused.json(), (method, url)
        assert getattr(api, method)(url, {**body, "description": "a" * 10_000}, format="json").status_code in (200, 201)


def test_class_of_another_dataset_is_404(api, owner, dataset):
    from imagestudio.datasets.services import dataset_create

    other = dataset_create(user=owner, name="Other", classes=["x"])
    class_id = other.classes.get().id
    assert api.get(f"/api/datasets/{dataset.id}/classes/{class_id}/").status_code == 404
    assert api.patch(f"/api/datasets/{dataset.id}/classes/{class_id}/", {"name": "y"}, format="json").status_code == 404


def test_members_are_managed_by_owners_and_last_owner_stays(api, dataset, owner, member_client):
    base = f"/api/datasets/{dataset.id}/members/"
    make_user("newbie")
    added = api.post(base, {"username": "newbie", "role": "annotator"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "annotator"
    assert api.post(base, {"username": "ghost", "role": "viewer"}, format="json").status_code == 400
    assert api.post(base, {"username": "newbie", "role": "king"}, format="json").status_code == 400
    promoted = api.patch(f"{base}{added.json()['id']}/", {"role": "editor"}, format="json")
    assert promoted.json()["role"] == "editor"

    editor = member_client(Role.EDITOR)
    assert editor.get(base).status_code == 200
    assert editor.post(base, {"username": "newbie", "role": "owner"}, format="json").status_code == 403

    owner_membership = next(m for m in api.get(base).json()["results"] if m["username"] == owner.username)
    last = api.delete(f"{base}{owner_membership['id']}/")
    assert last.status_code == 409 and last.json()["code"] == "last_owner"
    demote = api.patch(f"{base}{owner_membership['id']}/", {"role": "viewer"}, format="json")
    assert demote.status_code == 409
    assert api.delete(f"{base}{added.json()['id']}/").status_code == 204


def test_pagination_is_capped_and_ordered(api):
    for index in range(7):
        api.post("/api/datasets/", {"name": f"d{index}"}, format="json")
    page = api.get("/api/datasets/?limit=3&offset=3").json()
    assert page["count"] == 7 and [d["name"] for d in page["results"]] == ["d3", "d4", "d5"]
    assert page["next"] and page["previous"]
    huge = api.get("/api/datasets/?limit=100000").json()
    assert len(huge["results"]) == 7
    assert api.get("/api/datasets/?limit=abc").status_code == 400
    assert api.get("/api/datasets/?offset=-1").status_code == 400
