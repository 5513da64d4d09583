"""Every API endpoint x every role, a stranger and no token, generated from the URL configuration so a
new endpoint cannot be forgotten: the expected status follows from the role each view requires."""

import re
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.urls import URLResolver, get_resolver

from imagestudio.accounts.models import ApiToken
from imagestudio.datasets.models import ROLE_RANK, Comment, Role, Tag
from imagestudio.datasets.services import membership_set
from imagestudio.jobs.models import Job
from imagestudio.labeling.services import lf_create
from tests.conftest import client_for, make_user
from tests.factories import make_samples

pytestmark = pytest.mark.django_db

PUBLIC = {"api/", "api/auth/token/", "api/schema/", "api/docs/", "api/health/"}  # public on purpose (health: probes)
SKIPPED = {"api/auth/login/"}  # Django's own session login page (auth/logout/ is the API's: it revokes the token)
# Object-level rules on top of the role: only a comment's author (here the owner) or an owner edits it.
OWNER_OR_AUTHOR = {("comment", "partial_update"), ("comment", "destroy")}
METHODS = ("get", "post", "put", "patch", "delete")


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def endpoints():
    found = []
    for route, callback in walk(get_resolver().url_patterns):
        if not route.startswith("api/") or route in SKIPPED:
            continue
        cls = getattr(callback, "cls", None)
        actions = getattr(callback, "actions", None)
        allowed = [m for m in METHODS if (m in actions if actions else hasattr(cls, m))]
        allowed = [m for m in allowed if m in getattr(cls, "http_method_names", METHODS)]
        for method in allowed:
            found.append((route, method, cls, callback.initkwargs, actions[method] if actions else None))
    return found


def required_role(cls, initkwargs, action, method):
    """The lowest role the view asks for (None: any authenticated user)."""
    view = cls(**initkwargs)
    view.action = action
    if hasattr(view, "required_role"):
        return view.required_role(SimpleNamespace(method=method.upper()))
    if cls.__name__ == "DatasetViewSet" and action not in ("list", "create"):
        return getattr(cls, "required_roles", {}).get(action, Role.VIEWER)
    if cls.__name__ == "JobViewSet" and action == "cancel":
        return Role.EDITOR
    return None


@pytest.fixture
def world(owner, dataset):
    sample = make_samples(dataset, [{"metadata": {"caption": "a cat"}, "gt": {"cat": "PRESENT"}, "tags": ["t"]}])[0]
    comment = Comment.objects.create(sample=sample, author=owner, body="hi")
    lf = lf_create(dataset=dataset, user=owner, label_class=dataset.classes.get(name="cat"), name="kw",
                   type="pattern", config={"field": "caption", "builder": "keyword", "words": ["cat"]}, high=1)
    job = Job.objects.create(kind="import", dataset=dataset, creator=owner)
    clients = {"anonymous": client_for(None), "stranger": client_for(make_user("stranger"))}
    for role in ROLE_RANK:
        user = owner if role == Role.OWNER else make_user(f"matrix-{role}")
        if role != Role.OWNER:
            membership_set(dataset=dataset, user=user, role=role)
        clients[role] = client_for(user)
    owner_membership = dataset.memberships.get(user=owner)
    ids = {"dataset_id": dataset.id, "sample_id": sample.id, "class_id": dataset.classes.first().id,
           "member_id": owner_membership.id, "comment_id": comment.id, "tag_id": Tag.objects.get().id,
           "lf_id": lf.id, "job_id": job.id,
           "token_id": ApiToken.objects.filter(user=owner).latest("id").id}
    return clients, ids


def concrete(route, ids):
    """The route with every `<resource>_id` filled in (0 for a resource the world has none of: a 404)."""
    path = re.sub(r"\(\?P<(\w+)>[^)]+\)|<int:(\w+)>", lambda m: str(ids.get(m[1] or m[2], 0)), route)
    return "/" + path.replace("^", "").replace("$", "")


def test_every_endpoint_for_every_role(world):
    clients, ids = world
    checked = 0
    for route, method, cls, initkwargs, action in endpoints():
        basename = initkwargs.get("basename")
        path = concrete(route, ids)
        needed = required_role(cls, initkwargs, action, method)
        if (basename, action) in OWNER_OR_AUTHOR:
            needed = Role.OWNER
        dataset_scoped = "datasets/" in route and "dataset_id" in route
        for who, client in clients.items():
            with transaction.atomic():
                response = getattr(client, method)(path, {}, format="json")
                transaction.set_rollback(True)
            status = response.status_code
            where = f"{method.upper()} {path} as {who}: {status} {str(getattr(response, 'data', ''))[:200]}"
            assert status < 500, where
            checked += 1
            if route in PUBLIC:
                continue
            if who == "anonymous":
                assert status == 401, where
            elif who == "stranger":
                owned_by_someone = basename in ("job", "token") and action not in ("list", "create")
                if dataset_scoped or owned_by_someone:
                    assert status == 404, where
                else:
                    assert status not in (401, 403, 404), where
            elif needed is not None and ROLE_RANK[who] < ROLE_RANK[needed]:
                assert status == 403, where
            else:
                assert status not in (401, 403), where
                assert not (status == 404 and "visible to you" in str(response.data)), where
    assert checked > 200


UNCHECKED_QUERY = {"api/schema/", "api/docs/"}  # drf-spectacular's own pages (?format=, ?lang=)


def test_every_read_refuses_a_query_parameter_it_does_not_take(world):
    """A misspelt parameter must not pass for one the read honoured: `jobs/1/?fields=id` answered the whole job,
    `?clas=cat` every row. Lists and filtered reads check their own; the rest, api.middleware."""
    clients, ids = world
    checked, passed_through = 0, []
    for route, method, _cls, _initkwargs, _action in endpoints():
        if method != "get" or route in UNCHECKED_QUERY:
            continue
        path = concrete(route, ids)
        response = clients["owner"].get(path, {"no_such_parameter": "1"})
        if response.status_code == 404:  # a resource the world has none of (id 0, a job without a report)
            continue
        if response.status_code != 400 or "no_such_parameter" not in response.json():
            passed_through.append((path, response.status_code))
        checked += 1
    assert not passed_through, "\n".join(map(str, passed_through))
    assert checked > 30
