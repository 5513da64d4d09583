import io
import shutil
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.servers.basehttp import ThreadedWSGIServer
from django.test.testcases import LiveServerThread
from PIL import Image
from rest_framework.test import APIClient

from imagestudio.accounts.services import token_for
from imagestudio.celery import app as celery_app
from imagestudio.datasets.models import Role
from imagestudio.datasets.services import dataset_create, membership_set
from tests.conformance import response_problems


class _NoDelayWSGIServer(ThreadedWSGIServer):
    """The live server with TCP_NODELAY on its connections, as gunicorn sets it. Django's server writes a response's
    status line, headers and body separately: with Nagle's algorithm on, a small body waits for the browser's delayed
    ACK (40 ms on Linux), a cost per small response (a thumbnail) that the production server does not have."""

    def get_request(self):
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


@pytest.fixture(scope="session", autouse=True)
def _live_server_without_nagle():
    """Before pytest-django's `live_server` (session-scoped too, and not autouse) starts its server thread."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LiveServerThread, "server_class", _NoDelayWSGIServer)
        yield


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.VECTOR_ROOT = tmp_path / "vectors"
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


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@pytest.fixture
def no_network(monkeypatch):
    """Refuses, and records, every name lookup and connection beyond this machine (Postgres and Redis are local)."""
    attempts = []
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_lookup(host, *args, **kwargs):
        if host is not None and host not in LOCAL_HOSTS:
            attempts.append(host)
            raise socket.gaierror(f"no network in this test ({host!r})")
        return lookup(host, *args, **kwargs)

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            attempts.append(address)
            raise OSError(f"no network in this test ({address!r})")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


TINY_CLIP_HUB_REPO = "imagestudio-tests/tiny-clip"
TINY_CLIP_URL_FILE = "tiny-clip-url.pt"


@pytest.fixture
def clip_caches(monkeypatch, tmp_path):
    """Empty open_clip weight caches (Hugging Face's, and ~/.cache/clip for URL-hosted weights), two pretrained
    tags of tiny-clip (`hub`: on the Hugging Face Hub, `url`: at a URL) and no encoder loaded in this process."""
    import huggingface_hub.constants
    import open_clip

    from imagestudio.embeddings import encoders

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    # Read from the environment once, at import: a test that imported it with HF_HUB_OFFLINE=1 set (test_conse)
    # would leave the hub offline for every later test of this process.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-clip", {
        "hub": {"hf_hub": f"{TINY_CLIP_HUB_REPO}/", "url": ""},
        "url": {"hf_hub": "", "url": f"https://weights.invalid/{TINY_CLIP_URL_FILE}"},
    })
    for cache in (encoders._encoders, encoders._failed):
        cache.clear()
    yield
    for cache in (encoders._encoders, encoders._failed):
        cache.clear()


def put_in_hub_cache(checkpoint, repo_id=TINY_CLIP_HUB_REPO, filename="open_clip_pytorch_model.bin"):
    """Place a file where huggingface_hub's cache finds it: refs/main names the snapshot folder holding it."""
    import huggingface_hub.constants

    commit = "0" * 40
    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    shutil.copy(checkpoint, repo / "snapshots" / commit / filename)


def put_in_url_cache(checkpoint):
    """Place a file where open_clip looks for URL-hosted weights it downloaded before."""
    cache = Path("~/.cache/clip").expanduser()
    cache.mkdir(parents=True)
    shutil.copy(checkpoint, cache / TINY_CLIP_URL_FILE)


@pytest.fixture
def local_hub(monkeypatch, clip_caches, tiny_clip_checkpoint):
    """A Hugging Face Hub on this machine serving tiny-clip's weights as TINY_CLIP_HUB_REPO; returns the list of
    requests it answered, as "METHOD path"."""
    import huggingface_hub.constants

    weights = Path(tiny_clip_checkpoint).read_bytes()
    served = f"/{TINY_CLIP_HUB_REPO}/resolve/main/open_clip_pytorch_model.bin"
    requests = []

    class Hub(BaseHTTPRequestHandler):
        def answer(self, with_body):
            requests.append(f"{self.command} {self.path}")
            if self.path != served:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", "1" * 40)
            self.send_header("ETag", '"tiny-clip-weights"')
            self.send_header("Content-Length", str(len(weights)))
            self.end_headers()
            if with_body:
                self.wfile.write(weights)

        def do_HEAD(self):
            self.answer(with_body=False)

        def do_GET(self):
            self.answer(with_body=True)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", endpoint)  # its other calls (agent registry) too
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        f"{endpoint}/{{repo_id}}/resolve/{{revision}}/{{filename}}")
    yield requests
    server.shutdown()
    server.server_close()
