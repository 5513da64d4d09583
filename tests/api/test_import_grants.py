"""Server-side import sources granted per dataset or per user, attacked through the HTTP API: a path is importable
only inside a grant that applies, reached without a link, and every other path, existing or not, answers one
identical 400, so nobody probes for files outside their grants."""

import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagestudio.datasets.imports.grants import NOT_GRANTED, import_grant_create
from imagestudio.datasets.models import ImportGrant, Role, Sample
from imagestudio.datasets.services import dataset_create, membership_set
from imagestudio.jobs.models import Job
from tests.conftest import client_for, make_user, png_bytes

REFUSED = {"path": [NOT_GRANTED]}
MANIFEST = "file,caption\na.png,from the manifest\n"


@pytest.fixture
def tree(tmp_path, settings):
    """IMPORT_ROOT with a grant for the dataset (team-a), one for another dataset (team-b), one for a user
    (users/uma), an ungranted folder (secret), and links from inside team-a to places inside and outside it."""
    root = tmp_path / "root"
    for folder, files in {"team-a/sub": {"b.png": png_bytes((2, 0, 0))},
                          "team-a": {"a.png": png_bytes((1, 0, 0)), "list.csv": MANIFEST, "notes.txt": "x"},
                          "team-b": {"c.png": png_bytes((3, 0, 0))},
                          "secret": {"s.png": png_bytes((4, 0, 0)), "list.csv": "file\ns.png\n"},
                          "users/uma": {"u.png": png_bytes((5, 0, 0))}}.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (root / folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(png_bytes((6, 0, 0)))
    links = {"team-a/inner": "sub", "team-a/escape": "../secret", "team-a/leak.csv": "../secret/list.csv",
             "team-a/out": str(outside), "team-a/loop": "loop", "team-a/sibling": "../team-b"}
    for link, target in links.items():
        os.symlink(target, root / link)
    settings.IMPORT_ROOT = str(root)
    return root


@pytest.fixture
def granted(tree, dataset, owner):
    other = dataset_create(user=owner, name="Other", classes=[])
    import_grant_create(dataset=dataset, path="team-a")
    import_grant_create(dataset=other, path="team-b")
    return other


def import_path(client, dataset, path):
    return client.post(f"/api/datasets/{dataset.id}/imports/", {"path": path}, format="multipart")


@pytest.mark.django_db(transaction=True)
def test_a_granted_directory_or_manifest_imports_and_nothing_is_read_outside_the_grant(api, dataset, granted):
    by_manifest = import_path(api, dataset, "team-a/list.csv")
    assert by_manifest.status_code == 202, by_manifest.content
    job = api.get(by_manifest["Location"]).json()
    assert job["status"] == "succeeded" and job["result"]["created"] == 1, job
    whole = api.get(import_path(api, dataset, "/team-a")["Location"]).json()["result"]  # '/' is IMPORT_ROOT too
    # a.png again (a duplicate) and sub/b.png; the links to elsewhere are refused, never followed
    assert (whole["created"], whole["duplicates"]) == (1, 1), whole
    refused = {entry["file"] for entry in whole["error_files"]}
    assert {"leak.csv", "notes.txt"} <= refused
    assert set(Sample.objects.filter(dataset=dataset).values_list("file_name", flat=True)) == {"a.png", "b.png"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "nothing-here", "team-a/missing", "team-a/missing.csv",  # missing
    "secret", "secret/list.csv", "secret/s.png", ".", "/", "users", "users/uma",  # outside every grant that applies
    "..", "../", "../../etc/passwd", "team-a/..", "team-a/../secret", "team-a/sub/../../secret/list.csv",
    "/etc", "/etc/passwd", "//etc/passwd",  # absolute paths are below IMPORT_ROOT, where they do not exist
    "team-b", "team-b/c.png",  # another dataset's grant
    "team-a/escape", "team-a/escape/list.csv", "team-a/leak.csv", "team-a/sibling",  # links out of the grant
    "team-a/out", "team-a/out/o.png", "team-a/loop",  # a link out of IMPORT_ROOT, a link loop
])
def test_every_path_outside_the_grants_answers_the_same_400(api, dataset, granted, path):
    response = import_path(api, dataset, path)
    assert (response.status_code, response.json()) == (400, REFUSED), path
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_absolute_path_of_an_existing_folder_is_refused_like_a_missing_one(api, dataset, granted, tree):
    assert import_path(api, dataset, str(tree / "secret")).json() == import_path(api, dataset, "nope").json() == REFUSED


@pytest.mark.django_db
def test_a_file_that_is_no_manifest_inside_the_grant_is_named_as_such(api, dataset, granted):
    response = import_path(api, dataset, "team-a/notes.txt")
    assert response.status_code == 400 and response.json() != REFUSED and "manifest" in response.json()["path"][0]


@pytest.mark.django_db(transaction=True)
def test_a_user_grant_serves_its_user_as_editor_only(dataset, granted):
    uma, eve = make_user("uma"), make_user("eve")
    import_grant_create(user=uma, path="users/uma")
    uma_client, eve_client = client_for(uma), client_for(eve)
    assert import_path(uma_client, dataset, "users/uma").status_code == 404  # not a member: the dataset is hidden
    for role in (Role.VIEWER, Role.ANNOTATOR):
        membership_set(dataset=dataset, user=uma, role=role)
        assert import_path(uma_client, dataset, "users/uma").status_code == 403, role
    membership_set(dataset=dataset, user=eve, role=Role.EDITOR)
    assert import_path(eve_client, dataset, "users/uma").json() == REFUSED  # uma's grant is uma's alone
    assert import_path(eve_client, dataset, "team-a").status_code == 202  # the dataset's grant serves every editor
    membership_set(dataset=dataset, user=uma, role=Role.EDITOR)
    response = import_path(uma_client, dataset, "users/uma")
    assert response.status_code == 202 and uma_client.get(response["Location"]).json()["status"] == "succeeded"
    assert import_path(uma_client, granted, "users/uma").status_code == 404  # other datasets: membership first


@pytest.mark.django_db
def test_without_import_root_server_paths_are_disabled(api, dataset):
    response = import_path(api, dataset, "team-a")
    assert response.status_code == 400 and "IMPORT_ROOT" in response.json()["path"][0]


# ------------------------------------------------------------------------------ the property: accepted iff granted


SEGMENTS = ["team-a", "team-b", "secret", "users", "uma", "sub", "inner", "escape", "leak.csv", "sibling", "out",
            "loop", "list.csv", "a.png", "s.png", "o.png", "missing", "..", ".", ""]
paths = st.builds(lambda lead, parts: lead + "/".join(parts), st.sampled_from(["", "/"]),
                  st.lists(st.sampled_from(SEGMENTS) | st.text(alphabet="ab.-_", min_size=1, max_size=4),
                           min_size=1, max_size=6)).filter(lambda path: path.strip())


def importable_targets(root, granted_folder):
    """Every real directory and manifest inside the granted folder, found by walking it without following links:
    what a path may resolve to and be accepted (an oracle written apart from the code under test)."""
    top = os.path.realpath(os.path.join(root, granted_folder))
    targets = {top}
    for current, dirs, files in os.walk(top, followlinks=False):
        targets.update(os.path.join(current, d) for d in dirs if not os.path.islink(os.path.join(current, d)))
        targets.update(os.path.join(current, f) for f in files
                       if f.endswith((".csv", ".jsonl")) and not os.path.islink(os.path.join(current, f)))
    return targets


@pytest.mark.django_db  # no commit, so accepted imports stay queued: only the answer is under test
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths)
def test_a_path_is_accepted_iff_it_lies_inside_a_granted_folder_without_a_link(api, dataset, granted, tree, path):
    response = import_path(api, dataset, path)
    joined = os.path.join(tree, path.strip().lstrip("/"))
    resolved = os.path.realpath(joined)
    if resolved != os.path.normpath(joined):  # a link on the way: a grant names directories, not links
        assert (response.status_code, response.json()) == (400, REFUSED), path
    elif resolved in importable_targets(tree, "team-a"):
        assert response.status_code == 202, (path, response.content)
    elif os.path.isfile(resolved) and resolved.startswith(os.path.realpath(tree / "team-a") + os.sep):
        assert response.status_code == 400 and response.json() != REFUSED, path  # a granted file, not a manifest
    else:
        assert (response.status_code, response.json()) == (400, REFUSED), path


# ------------------------------------------------------------------------------------------------ the command


@pytest.mark.django_db
def test_the_command_grants_and_revokes(dataset, tree, capsys):
    uma = make_user("uma")
    call_command("grant_import_source", "--dataset", str(dataset.id), "team-a/")
    call_command("grant_import_source", "--user", "uma", "./users//uma")
    assert set(ImportGrant.objects.values_list("dataset_id", "user_id", "path")) == {
        (dataset.id, None, "team-a"), (None, uma.id, "users/uma")}
    for args, message in ((["--dataset", str(dataset.id), "team-a"], "already granted"),
                          (["--dataset", "999999", "team-a"], "No dataset"), (["--user", "nobody", "x"], "No user"),
                          (["--user", "uma", "../outside"], ".."), (["--user", "uma", "/etc"], "relative"),
                          (["--user", "uma", "secret/list.csv"], "not a directory"),
                          (["--user", "uma", "team-a/out"], "not a directory"),
                          (["--user", "uma", "--revoke", "team-a"], "No such grant")):
        with pytest.raises(CommandError, match=message):
            call_command("grant_import_source", *args)
    call_command("grant_import_source", "--dataset", str(dataset.id), "--revoke", "team-a")
    assert list(ImportGrant.objects.values_list("path", flat=True)) == ["users/uma"]
    assert "Revoked" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_grant_whose_folder_is_later_swapped_for_a_link_to_another_granted_folder_serves_nothing(
        api, dataset, tree):
    """Someone who may write beside a granted folder replaces it with a link to another team's: the grant names the
    folder, not where a link in its place points (found from outside: the import read the other team's files)."""
    import_grant_create(dataset=dataset, path="team-a/sub")
    assert import_path(api, dataset, "team-a/sub").status_code == 202
    (tree / "team-a" / "sub" / "b.png").unlink()
    (tree / "team-a" / "sub").rmdir()
    os.symlink(tree / "secret", tree / "team-a" / "sub")
    assert import_path(api, dataset, "team-a/sub").json() == REFUSED
    with pytest.raises(Exception, match="not a directory"):
        import_grant_create(dataset=dataset, path="team-a/inner")  # nor is a link granted in the first place


@pytest.mark.django_db
def test_a_grant_whose_folder_later_leads_out_of_import_root_serves_nothing(api, dataset, tree):
    import_grant_create(dataset=dataset, path="team-b")
    (tree / "team-b" / "c.png").unlink()
    (tree / "team-b").rmdir()
    os.symlink(tree.parent / "outside", tree / "team-b")
    assert import_path(api, dataset, "team-b").json() == REFUSED
