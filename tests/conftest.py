import io
import socket
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from PIL import Image
from rest_framework.test import APIClient

from imagestudio.accounts.services import token_for
from imagestudio.celery import app as celery_app
from imagestudio.datasets.models import Role
from imagestudio.datasets.services import dataset_create, membership_set
from tests.conformance import response_problems


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_ROOT = None
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed, tests only


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Process caches key on database ids and versions, which a rolled-back test database reuses."""
    from django.core.cache import cache

    from imagestudio.common.cache import clear_database_caches

    clear_database_caches()
    cache.clear()  # throttle counters


@pytest.fixture(autouse=True)
def _tasks_in_process():
    """Unit and API tests run tasks in-process; the integration tests switch to a real worker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def png_bytes(colour=(200, 30, 30), size=(64, 48), mode="RGB", image_format="PNG", **save_args):
    image = Image.new(mode, size, colour)
    out = io.BytesIO()
    image.save(out, format=image_format, **save_args)
    return out.getvalue()


def zip_bytes(members):
    """members: {name: bytes}."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def free_port():
    """A TCP port nobody listens on now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_user(username):
    return get_user_model().objects.create_user(username=username, password=f"{username}-password-123")


class CheckedClient(APIClient):
    """An API client that checks every JSON answer against the committed schema (tests/conformance.py)."""

    def request(self, **kwargs):
        response = super().request(**kwargs)
        problems = response_problems(kwargs["REQUEST_METHOD"], kwargs["PATH_INFO"], response.status_code,
                                     response.get("Content-Type", ""), getattr(response, "content", b""))
        assert not problems, (f"{kwargs['REQUEST_METHOD']} {kwargs['PATH_INFO']} answered {response.status_code} "
                              "off the schema:\n" + "\n".join(problems))
        return response


def client_for(user):
    client = CheckedClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user=user, name='tests')}")
    return client


@pytest.fixture
def owner(db):
    return make_user("olivia")


@pytest.fixture
def stranger(db):
    return make_user("sam")


@pytest.fixture
def api(owner):
    return client_for(owner)


@pytest.fixture
def dataset(owner):
    return dataset_create(user=owner, name="Pets", classes=["cat", "dog"])


@pytest.fixture
def member_client(dataset):
    """A client for a new member of `dataset` with the given role."""

    def make(role):
        user = make_user(f"user-{role}")
        membership_set(dataset=dataset, user=user, role=role)
        return client_for(user)

    return make


ROLES = [Role.VIEWER, Role.ANNOTATOR, Role.EDITOR, Role.OWNER]


TINY_CLIP_CONFIG = Path(__file__).resolve().parent / "fixtures" / "tiny-clip.json"


def save_random_clip(path, seed):
    """A randomly initialised tiny open_clip model saved as a checkpoint file (the real loading path)."""
    import open_clip
    import torch

    open_clip.add_model_config(str(TINY_CLIP_CONFIG))
    torch.manual_seed(seed)
    model = open_clip.create_model("tiny-clip")
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory):
    return save_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip.pt", seed=0)


@pytest.fixture
def tiny_clip(settings, tiny_clip_checkpoint):
    """Make the tiny random CLIP the default encoder (fast; real open_clip code path)."""
    settings.EMBEDDING_DEFAULT_ENCODER = "open_clip"
    settings.CLIP_MODEL = "tiny-clip"
    settings.CLIP_MODEL_CONFIG = str(TINY_CLIP_CONFIG)
    settings.CLIP_CHECKPOINT = tiny_clip_checkpoint
    settings.EMBEDDING_DEVICE = "cpu"
    return tiny_clip_checkpoint
