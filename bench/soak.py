#!/usr/bin/env python
"""A randomized soak of the whole service: a live web server, a real Celery worker SIGKILLed and restarted at
random moments, and several client threads doing random interleavings of everything a user does, over HTTP.

Each client thread loops over weighted random actions: imports (multipart files with a manifest; byte-identical
twins within an import, across imports and across its 32-file batches; bad manifest rows and corrupt files),
PUT annotations, bulk by ids and by filter, undo, split moves, metadata PATCH (some refused), pattern LFs
(keyword, regex, numeric) and similarity LFs once vectors exist: create, update, toggle, delete, preview;
training sets and rebuilds, fast models, exports and their download, classes created, labeled and deleted,
scratch datasets deleted while their import runs, and reads (lists with filters, the image view, analysis).
The dataset auto-embeds (a tiny random open_clip, so vectors cost little) and auto-trains.

At the end it waits for every job to finish (a job whose worker was killed is delivered again once the broker's
visibility timeout has passed), checks that every import accounted for each file it was sent in exactly one
bucket and that exact list counts are exact, runs `manage.py check_integrity`, and prints requests per kind,
status codes, jobs by final status, the integrity report, wall time and load average. Exit status 1 on any 5xx
or transport error, an unsettled job, an import whose buckets do not add up, a wrong count or integrity drift.

    .venv/bin/python bench/soak.py --minutes 10
    .venv/bin/python bench/soak.py --minutes 1 --kills 1 --clients 4

Needs Postgres (DATABASE_URL, default imagestudio_soak, dropped and created afresh each run) and Redis
(CELERY_BROKER_URL, required). Serves with gunicorn when installed (the `prod` extra), else `manage.py runserver`.
"""

from __future__ import annotations

import argparse
import collections
import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/imagestudio_soak"
DEFAULT_DATA_DIR = "/tmp/imagestudio-soak"
CLASSES = ["cat", "dog", "bird"]
SPLITS = ["train", "dev", "valid", "test"]
VALUES = ["PRESENT", "ABSENT", "ABSTAIN"]
WORDS = ["cat", "dog", "bird", "red", "blue", "tabby", "puppy"]
IMAGE_SEEDS = 400  # distinct images; imports draw from them, so twins keep meeting
BAD_TEXTS = {"csv": ["a NUL \u0000 inside"], "jsonl": ["a NUL \u0000 inside", "a lone \ud800 surrogate"]}
MAX_LFS = 8
ACTIVE_JOB_STATUSES = ("queued", "running")


# ---------------------------------------------------------------- what the clients saw


@dataclass
class Stats:
    """Everything the client threads observed, shared between them under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_kind: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    server_errors: list = field(default_factory=list)  # (kind, method, path, status, body excerpt)
    transport_errors: list = field(default_factory=list)  # (kind, method, path, error)
    client_bugs: list = field(default_factory=list)  # exceptions in the soak's own code
    imports: dict = field(default_factory=dict)  # job url -> files sent

    def record(self, kind, method, path, status, body):
        with self.lock:
            self.by_kind[kind][status] += 1
            if isinstance(status, int) and status >= 500:
                self.server_errors.append((kind, method, path, status, body[:400]))

    def transport(self, kind, method, path, error):
        with self.lock:
            self.by_kind[kind]["transport error"] += 1
            self.transport_errors.append((kind, method, path, repr(error)[:300]))

    def status_counts(self):
        total = collections.Counter()
        for counts in self.by_kind.values():
            total.update(counts)
        return total


@dataclass
class Target:
    """The service under soak: where it answers, the dataset the clients share, a token per role."""

    base_url: str
    dataset_id: int
    tokens: dict  # role -> token key


# ---------------------------------------------------------------- one client thread


def _manifest(entries, manifest_format):
    if manifest_format == "jsonl":
        return "\n".join(json.dumps({"file": e["file"], "split": e["split"], "metadata": e["metadata"],
                                     "ground_truth": e["gt"]}) for e in entries).encode()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "split", "caption", "score", *(f"gt:{name}" for name in CLASSES)])
    for e in entries:
        writer.writerow([e["file"], e["split"], e["metadata"]["caption"], e["metadata"]["score"],
                         *(e["gt"].get(name, "") for name in CLASSES)])
    return out.getvalue().encode()


class Client(threading.Thread):
    """Loops over weighted random actions until `stop` is set; every answer goes to `stats`."""

    def __init__(self, index, target, role, stats, stop, seed, images):
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.index, self.target, self.role, self.stats, self.stop = index, target, role, stats, stop
        self.rng = random.Random(seed)
        self.images = images
        self.base = f"/api/datasets/{target.dataset_id}"
        self.names = iter(range(1_000_000))
        self.actions = self._actions()

    def _actions(self):
        label = {self.put_annotation: 10, self.bulk_by_ids: 4, self.bulk_by_filter: 2, self.undo: 3, self.read: 6}
        if self.role == "annotator":  # may label, may not edit samples or rules
            return label
        return {**label, self.import_images: 5, self.move_split: 6, self.edit_metadata: 6, self.lf_create: 2,
                self.lf_update: 3, self.lf_toggle: 3, self.lf_delete: 1, self.lf_preview: 2, self.training_set: 2,
                self.training_set_rebuild: 1, self.model: 1, self.export: 1, self.class_churn: 1,
                self.scratch_dataset: 1, self.embeddings: 1}

    def run(self):
        import httpx
        from django.db import connections

        self.http = httpx.Client(base_url=self.target.base_url, timeout=120,
                                 headers={"Authorization": f"Token {self.target.tokens[self.role]}"})
        actions, weights = zip(*self.actions.items(), strict=True)
        try:
            while not self.stop.is_set():
                action = self.rng.choices(actions, weights)[0]
                try:
                    action()
                except Exception:  # noqa: BLE001  (a bug of the soak itself: reported, the run goes on)
                    with self.stats.lock:
                        self.stats.client_bugs.append(f"{action.__name__}: {traceback.format_exc(limit=3)}")
        finally:
            self.http.close()
            connections.close_all()

    # --- plumbing ------------------------------------------------------------------------------------------------

    def call(self, kind, method, path, **kwargs):
        """One request; returns the response, or None when the transport failed (recorded)."""
        import httpx

        url = path if path.startswith("/api/") else f"{self.base}{path}"
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            self.stats.transport(kind, method, url, exc)
            return None
        self.stats.record(kind, method, url, response.status_code, response.text if response.status_code >= 500 else "")
        return response

    def json(self, kind, method, path, body):
        # The body is sent as text with \\u escapes, as any client can send a lone surrogate.
        return self.call(kind, method, path, content=json.dumps(body), headers={"Content-Type": "application/json"})

    def sample_ids(self):
        from imagestudio.datasets.models import Sample

        return list(Sample.objects.filter(dataset_id=self.target.dataset_id).values_list("id", flat=True))

    def some_samples(self, most):
        ids = self.sample_ids()
        return self.rng.sample(ids, min(len(ids), self.rng.randint(1, most))) if ids else []

    def listed(self, kind, path):
        response = self.call(kind, "GET", path)
        return response.json()["results"] if response is not None and response.status_code == 200 else []

    def caption(self):
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(0, 3)))

    # --- imports -------------------------------------------------------------------------------------------------

    def import_files(self, kind, dataset_base, count):
        """A multipart import of `count` files drawn from the image pool (twins included), maybe a bad manifest row
        and a corrupt file. Returns the response."""
        manifest_format = self.rng.choice(["csv", "jsonl"])
        prefix = f"c{self.index}-{next(self.names)}"
        entries = [{"file": f"{prefix}-{i}.png", "seed": self.rng.randrange(IMAGE_SEEDS), "split": self.rng.choice(SPLITS),
                    "metadata": {"caption": self.caption(), "score": round(self.rng.random(), 3)},
                    "gt": {name: self.rng.choice(VALUES[:2]) for name in self.rng.sample(CLASSES, self.rng.randint(0, 2))}}
                   for i in range(count)]
        if self.rng.random() < 0.2:
            entries[self.rng.randrange(count)]["metadata"]["caption"] = self.rng.choice(BAD_TEXTS[manifest_format])
        files = [("files", (e["file"], self.images[e["seed"]], "image/png")) for e in entries]
        if self.rng.random() < 0.1:
            victim = self.rng.randrange(count)
            files[victim] = ("files", (entries[victim]["file"], self.images[entries[victim]["seed"]][:40], "image/png"))
        files.append(("manifest", (f"manifest.{manifest_format}", _manifest(entries, manifest_format),
                                   "application/octet-stream")))
        data = {"duplicates": self.rng.choice(["keep_first", "merge", "refuse"])}
        return self.call(kind, "POST", f"{dataset_base}/imports/", files=files, data=data), count

    def import_images(self):
        count = self.rng.choice([self.rng.randint(1, 8), self.rng.randint(30, 70)])  # small, or across batches
        response, sent = self.import_files("import", self.base, count)
        if response is not None and response.status_code == 202:
            with self.stats.lock:
                self.stats.imports[response.headers["Location"]] = sent

    def embeddings(self):
        self.json("embeddings", "POST", "/embeddings/", {})

    def scratch_dataset(self):
        """A dataset deleted while its import may still run: 204, or 409 while the job keeps writing."""
        response = self.json("scratch dataset", "POST", "/api/datasets/",
                             {"name": f"scratch {self.index}-{next(self.names)}", "classes": ["a"]})
        if response is None or response.status_code != 201:
            return
        scratch = f"/api/datasets/{response.json()['id']}"
        self.import_files("scratch dataset", scratch, self.rng.randint(5, 40))
        time.sleep(self.rng.uniform(0, 1.5))
        self.call("scratch dataset", "DELETE", f"{scratch}/")

    # --- ground truth --------------------------------------------------------------------------------------------

    def put_annotation(self):
        for sample in self.some_samples(1):
            self.json("annotation PUT", "PUT", "/annotations/", {"sample": sample, "label_class": self.rng.choice(CLASSES),
                                                                 "value": self.rng.choice(VALUES)})

    def bulk_by_ids(self):
        samples = self.some_samples(40)
        if samples:
            self.json("bulk", "POST", "/annotations/bulk/", {"sample_ids": samples, "value": self.rng.choice(VALUES),
                                                             "classes": self.rng.sample(CLASSES, self.rng.randint(1, 2))})

    def bulk_by_filter(self):
        selection = self.rng.choice([{"split": self.rng.choice(SPLITS)}, {"search": self.rng.choice(WORDS)},
                                     {"gt": [f"{self.rng.choice(CLASSES)}:{self.rng.choice(VALUES)}"]}])
        self.json("bulk", "POST", "/annotations/bulk/", {"filter": selection, "classes": [self.rng.choice(CLASSES)],
                                                         "value": self.rng.choice(VALUES)})

    def undo(self):
        self.call("undo", "POST", "/annotations/bulk/undo/")

    # --- samples -------------------------------------------------------------------------------------------------

    def move_split(self):
        for sample in self.some_samples(1):
            self.json("split move", "PATCH", f"/samples/{sample}/", {"split": self.rng.choice(SPLITS)})

    def edit_metadata(self):
        for sample in self.some_samples(1):
            metadata = self.rng.choice([{"caption": self.caption(), "score": round(self.rng.random(), 3)},
                                        {"caption": self.caption()}, {}, {"caption": self.rng.choice(BAD_TEXTS["jsonl"])}])
            self.json("metadata PATCH", "PATCH", f"/samples/{sample}/", {"metadata": metadata})

    # --- labeling functions --------------------------------------------------------------------------------------

    def rule(self):
        """A random rule: a pattern on the caption or score, or a text similarity (400 while no vectors exist)."""
        kind = self.rng.choice(["keyword", "keyword", "regex", "numeric", "similarity"])
        if kind == "similarity":
            return {"type": "similarity_text", "config": {"text": f"a photo of a {self.rng.choice(WORDS)}"},
                    "low": round(self.rng.uniform(-0.3, 0), 2), "high": round(self.rng.uniform(0.01, 0.3), 2)}
        config = {"keyword": {"field": "caption", "builder": "keyword", "words": self.rng.sample(WORDS, 2)},
                  "regex": {"field": "caption", "builder": "regex", "pattern": f"^{self.rng.choice(WORDS)}"},
                  "numeric": {"field": "score", "builder": "numeric", "op": ">=", "value": round(self.rng.random(), 2)},
                  }[kind]
        low, high = self.rng.choice([(0, 1), (None, 1), (0, None)])
        return {"type": "pattern", "config": config, "low": low, "high": high, "invert": self.rng.random() < 0.2}

    def lfs(self):
        return self.listed("LF list", "/lfs/?limit=100")

    def lf_create(self):
        if len(self.lfs()) < MAX_LFS:
            self.json("LF create", "POST", "/lfs/", {"name": f"lf {self.index}-{next(self.names)}",
                                                    "label_class": self.rng.choice(CLASSES), **self.rule()})

    def _some_lf(self):
        lfs = self.lfs()
        return self.rng.choice(lfs) if lfs else None

    def lf_update(self):
        if lf := self._some_lf():
            rule = self.rule()
            change = self.rng.choice([{k: rule[k] for k in ("low", "high")}, rule])
            self.json("LF update", "PATCH", f"/lfs/{lf['id']}/", change)

    def lf_toggle(self):
        if lf := self._some_lf():
            self.json("LF toggle", "PATCH", f"/lfs/{lf['id']}/", {"active": not lf["active"]})

    def lf_delete(self):
        lfs = self.lfs()
        if len(lfs) > MAX_LFS // 2:
            self.call("LF delete", "DELETE", f"/lfs/{self.rng.choice(lfs)['id']}/")

    def lf_preview(self):
        self.json("LF preview", "POST", "/lfs/preview/", {"label_class": self.rng.choice(CLASSES), **self.rule(),
                                                          "split": self.rng.choice([None, *SPLITS])})

    # --- products ------------------------------------------------------------------------------------------------

    def training_set(self):
        body = self.rng.choice([{}, {"splits": self.rng.sample(SPLITS, 2)}, {"seed": self.rng.randint(0, 3)}])
        self.json("training set", "POST", "/training-sets/", body)

    def training_set_rebuild(self):
        sets = self.listed("training set", "/training-sets/?limit=10")
        if sets:
            self.call("training set", "POST", f"/training-sets/{self.rng.choice(sets)['id']}/rebuild/")

    def model(self):
        self.json("model", "POST", "/models/", self.rng.choice([{}, {"label_source": "ground_truth"},
                                                                 {"negative_ratio": 3}]))
        models = self.listed("model", "/models/?limit=10")
        if models:
            self.call("model", "GET", f"/models/{self.rng.choice(models)['id']}/predictions/?limit=20")

    def export(self):
        self.json("export", "POST", "/exports/", self.rng.choice([{"kind": "dataset", "fields": ["caption"]},
                                                                  {"kind": "training_labels"}]))
        exports = self.listed("export", "/exports/?limit=10")
        if exports:
            self.call("export", "GET", f"/exports/{self.rng.choice(exports)['id']}/download/")

    def class_churn(self):
        """A class created, labeled on a few samples, then deleted with its labels."""
        response = self.json("class churn", "POST", "/classes/", {"name": f"tmp {self.index}-{next(self.names)}"})
        if response is None or response.status_code != 201:
            return
        created = response.json()
        for sample in self.some_samples(3):
            self.json("class churn", "PUT", "/annotations/", {"sample": sample, "label_class": created["name"],
                                                              "value": self.rng.choice(VALUES[:2])})
        self.call("class churn", "DELETE", f"/classes/{created['id']}/")

    # --- reads ---------------------------------------------------------------------------------------------------

    def read(self):
        choice = self.rng.randrange(6)
        if choice == 0:
            query = self.rng.choice([f"split={self.rng.choice(SPLITS)}", f"search={self.rng.choice(WORDS)}",
                                     f"gt={self.rng.choice(CLASSES)}:{self.rng.choice(VALUES)}", "ordering=-created_at"])
            self.call("read: samples", "GET", f"/samples/?{query}&limit=50")
        elif choice == 1:
            for sample in self.some_samples(1):
                self.call("read: sample", "GET", f"/samples/{sample}/")
        elif choice == 2:
            self.call("read: classes", "GET", "/classes/")
        elif choice == 3:
            self.call("read: analysis", "GET", f"/analysis/?label_class={self.rng.choice(CLASSES)}")
        elif choice == 4:
            self.call("read: LF summary", "GET", "/lfs/summary/")
        else:
            self.call("read: jobs", "GET", "/api/jobs/?limit=20")


# ---------------------------------------------------------------- the worker, killed and restarted


class WorkerKiller(threading.Thread):
    """SIGKILLs the worker `kills` times at random moments of the run and starts a new one after `restart_delay`
    seconds (a callable: seconds for this kill)."""

    def __init__(self, start_worker, worker, seconds, kills, restart_delay, rng, stop):
        super().__init__(name="soak-worker-killer", daemon=True)
        self.start_worker, self.worker, self.rng, self.stop = start_worker, worker, rng, stop
        self.restart_delay = restart_delay
        self.moments = sorted(rng.uniform(0.1, 0.8) * seconds for _ in range(kills))
        self.events = []  # (seconds into the run, restart delay)
        self.error = None

    def run(self):
        started = time.monotonic()
        try:
            for moment in self.moments:
                if self.stop.wait(max(0.0, started + moment - time.monotonic())):
                    return
                self.worker.kill()
                delay = self.restart_delay(self.rng)
                time.sleep(delay)
                self.worker = self.start_worker()
                self.events.append((round(time.monotonic() - started, 1), round(delay, 1)))
        except Exception as exc:  # noqa: BLE001  (reported by the caller)
            self.error = exc


# ---------------------------------------------------------------- after the run


def settle(timeout, report_every=15.0):
    """Wait until no job is queued or running; returns the jobs still active when the time ran out."""
    from imagestudio.jobs.models import Job

    deadline, shown = time.monotonic() + timeout, time.monotonic()
    while True:
        active = list(Job.objects.filter(status__in=ACTIVE_JOB_STATUSES).values_list("kind", "status", "attempts"))
        if not active or time.monotonic() > deadline:
            return active
        if time.monotonic() - shown > report_every:
            print(f"  waiting for {len(active)} jobs: {collections.Counter((k, s) for k, s, _ in active)}")
            shown = time.monotonic()
        time.sleep(1)


def import_problems(stats):
    """Every import job the clients started: succeeded, and each file sent in exactly one bucket."""
    from imagestudio.jobs.models import Job

    problems = []
    for location, sent in stats.imports.items():
        job = Job.objects.filter(pk=location.rstrip("/").rsplit("/", 1)[-1]).first()
        if job is None or job.status != "succeeded":
            problems.append(f"import {location}: {job.status if job else 'missing'} {job.error if job else ''}")
            continue
        result = job.result
        buckets = result["created"] + result["duplicates"] + result["errors"]
        if not buckets == result["total"] == sent:
            problems.append(f"import {location}: {sent} files sent, total {result['total']}, created "
                            f"{result['created']} + duplicates {result['duplicates']} + errors {result['errors']}")
    return problems


def count_problems(http, dataset_id):
    """Exact list counts against a count of the rows, now that nothing writes."""
    from imagestudio.annotations.models import Annotation
    from imagestudio.datasets.models import Sample

    problems = []
    base = f"/api/datasets/{dataset_id}/samples/?limit=1"
    samples = Sample.objects.filter(dataset_id=dataset_id)
    cases = [(f"split={s}", samples.filter(split=s).count()) for s in SPLITS]
    cases += [(f"gt={c}:{v}", Annotation.objects.filter(sample__dataset_id=dataset_id, label_class__name=c,
                                                        value=v).count()) for c in CLASSES for v in VALUES[:2]]
    for query, expected in cases:
        body = http.get(f"{base}&{query}").json()
        if body["count_exact"] and body["count"] != expected:
            problems.append(f"samples?{query}: count {body['count']} (exact) != {expected} rows")
    return problems


def staging_leftovers(media_root, kills):
    """Staged upload folders left once every job is final: a worker killed between recording its job and removing
    the job's files may leave one (or one per process) for the daily sweep; more is a leak."""
    root = Path(media_root) / "staging"
    left = [p.name for p in root.iterdir()] if root.is_dir() else []
    print(f"staged upload folders left: {len(left)}")
    return [f"{len(left)} staged upload folders left: {left[:5]}"] if len(left) > 2 * kills else []


def jobs_table():
    from django.db.models import Count

    from imagestudio.jobs.models import Job

    rows = Job.objects.values_list("kind", "status").annotate(n=Count("id")).order_by("kind", "status")
    table = collections.defaultdict(dict)
    for kind, status, n in rows:
        table[kind][status] = n
    redelivered = Job.objects.filter(attempts__gt=1).count()
    errors = collections.Counter((kind, re.sub(r"\d+", "N", error.splitlines()[0] if error else ""))
                                 for kind, error in Job.objects.filter(status="failed").values_list("kind", "error"))
    return table, redelivered, errors


def print_report(stats, seconds):
    print(f"\nrequests: {sum(stats.status_counts().values())} in {seconds:.0f} s")
    statuses = sorted({s for counts in stats.by_kind.values() for s in counts}, key=str)
    print(f"{'kind':<20}{'total':>7}" + "".join(f"{s!s:>8}" for s in statuses))
    for kind in sorted(stats.by_kind):
        counts = stats.by_kind[kind]
        print(f"{kind:<20}{sum(counts.values()):>7}" + "".join(f"{counts.get(s, 0):>8}" for s in statuses))
    print(f"status codes: {dict(sorted(stats.status_counts().items(), key=lambda kv: str(kv[0])))}")
    print(f"5xx: {len(stats.server_errors)}; transport errors: {len(stats.transport_errors)}")
    distinct = collections.Counter((kind, method, status, body) for kind, method, _, status, body in stats.server_errors)
    distinct.update((kind, method, "transport", error) for kind, method, _, error in stats.transport_errors)
    for (kind, method, status, body), n in distinct.most_common(10):
        print(f"  x{n} {kind} {method}: {status} {body[:200]}")
    for bug in stats.client_bugs[:5]:
        print(f"  soak client bug: {bug}")
    table, redelivered, errors = jobs_table()
    print(f"jobs by final status ({redelivered} delivered more than once):")
    for kind, statuses_of_kind in sorted(table.items()):
        print(f"  {kind:<14} {statuses_of_kind}")
    for (kind, error), n in sorted(errors.items(), key=lambda item: (item[0][0], -item[1])):
        print(f"  failed {kind} x{n}: {error[:200]}")


def check_integrity(env):
    result = subprocess.run([sys.executable, "manage.py", "check_integrity"], cwd=_common.REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    return result.returncode, (result.stdout + result.stderr).strip()


# ---------------------------------------------------------------- the bench run


def configure(args):
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        raise SystemExit("the soak needs Redis: set CELERY_BROKER_URL=redis://host:6379/N (a database of its own)")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # 4xx are expected by the thousand; 5xx are logged at ERROR
    os.environ["CELERY_VISIBILITY_TIMEOUT"] = str(args.visibility_timeout)
    data_dir = Path(os.environ.setdefault("IMAGESTUDIO_DATA_DIR", DEFAULT_DATA_DIR))
    if str(data_dir) == DEFAULT_DATA_DIR:
        shutil.rmtree(data_dir / "media", ignore_errors=True)  # the database is new, so are its files
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update({"EMBEDDING_DEFAULT_ENCODER": "open_clip", "CLIP_MODEL": "tiny-clip",
                       "CLIP_MODEL_CONFIG": str(_common.REPO / "tests" / "fixtures" / "tiny-clip.json"),
                       "CLIP_CHECKPOINT": str(data_dir / "tiny-clip.pt"), "EMBEDDING_DEVICE": "cpu"})
    return _common.configure_environment(broker=True)


def make_target(base_url):
    """A user per role with a token, and the shared dataset (auto-embed and auto-train on)."""
    from django.contrib.auth import get_user_model

    from imagestudio.accounts.services import token_for
    from imagestudio.datasets.services import dataset_create, membership_set

    users = {role: get_user_model().objects.create_user(username=f"soak-{role}") for role in
             ("owner", "editor", "annotator")}
    dataset = dataset_create(user=users["owner"], name="soak", classes=CLASSES, auto_embed=True, auto_train=True)
    for role in ("editor", "annotator"):
        membership_set(dataset=dataset, user=users[role], role=role)
    tokens = {role: token_for(user=user, name="soak") for role, user in users.items()}
    return Target(base_url=base_url, dataset_id=dataset.id, tokens=tokens)


def start_web(env, port, workers):
    if Path(sys.executable).with_name("gunicorn").exists():
        process, command = _common.start_server(env, port, workers=workers, threads=4)
        return process, f"gunicorn {command}"
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    process = subprocess.Popen(command, env={**env, "DEBUG": "0"}, cwd=_common.REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL)
    return process, "manage.py runserver (gunicorn is not installed: pip install -e '.[prod]')"


def run(target, *, seconds, clients, kills, start_worker, restart_delay, seed):
    """The clients and the killer for `seconds`; returns (stats, killer, wall seconds of the clients)."""
    from tests.factories import sample_png

    images = [sample_png(i) for i in range(IMAGE_SEEDS)]
    stats, stop, rng = Stats(), threading.Event(), random.Random(seed)
    roles = ["owner", "editor", "annotator"]
    threads = [Client(i, target, roles[i % len(roles)], stats, stop, rng.random(), images) for i in range(clients)]
    killer = WorkerKiller(start_worker, start_worker(), seconds, kills, restart_delay, rng, stop)
    started = time.monotonic()
    for thread in [*threads, killer]:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(180)
    killer.join(120)
    return stats, killer, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the clients run (default 10)")
    parser.add_argument("--clients", type=int, default=6, help="client threads (default 6)")
    parser.add_argument("--kills", type=int, default=3, help="times the worker is SIGKILLed and restarted (default 3)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="the Celery worker's processes (default 2)")
    parser.add_argument("--visibility-timeout", type=int, default=60,
                        help="seconds before Redis hands a killed worker's job to another (default 60)")
    parser.add_argument("--settle", type=int, default=400, help="seconds to wait for the jobs at the end (default 400)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    env = configure(args)
    _common.setup_django(reset_db=True)
    from django.conf import settings
    from django.db import connection

    from imagestudio.demo.integrity import integrity_check  # noqa: F401  (fails early if the tree lacks it)
    from tests.conftest import save_random_clip
    from tests.integration.conftest import Worker

    save_random_clip(os.environ["CLIP_CHECKPOINT"], seed=0)
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    port = _common.free_port()
    target = make_target(f"http://127.0.0.1:{port}")
    connection.close()
    web, web_command = start_web(env, port, args.web_workers)
    logs = Path(os.environ["IMAGESTUDIO_DATA_DIR"]) / "logs"
    logs.mkdir(exist_ok=True)
    worker_count = iter(range(1000))
    queues = "default,embeddings,training"

    def start_worker():
        return Worker(settings.MEDIA_ROOT, logs / f"worker-{next(worker_count)}.log", queues=queues,
                      concurrency=args.concurrency)

    _common.print_environment("soak", {
        "web": web_command, "worker": f"celery worker -Q {queues} -c {args.concurrency} (logs in {logs})",
        "broker": f"{os.environ['CELERY_BROKER_URL']} (visibility timeout {args.visibility_timeout} s)",
        "run": f"{args.minutes} min, {args.clients} clients, {args.kills} worker kills, seed {seed}"})
    import httpx

    wall = time.monotonic()
    try:
        _common.wait_ready(httpx.Client(base_url=target.base_url), web)
        stats, killer, seconds = run(target, seconds=args.minutes * 60, clients=args.clients, kills=args.kills,
                                     start_worker=start_worker, seed=seed,
                                     restart_delay=lambda rng: rng.uniform(1, 20))
        print(f"clients stopped after {seconds:.0f} s; worker killed at (s into the run, restarted after s): "
              f"{killer.events}{f' KILLER FAILED: {killer.error!r}' if killer.error else ''}")
        print(f"settling (up to {args.settle} s)...")
        unsettled = settle(args.settle)
        problems = [f"{len(unsettled)} jobs never finished: {collections.Counter(unsettled)}"] if unsettled else []
        problems += import_problems(stats) + staging_leftovers(settings.MEDIA_ROOT, args.kills)
        with httpx.Client(base_url=target.base_url, headers={"Authorization": f"Token {target.tokens['owner']}"},
                          timeout=60) as http:
            problems += count_problems(http, target.dataset_id)
        killer.worker.stop()
    finally:
        _common.stop_server(web)
    print_report(stats, seconds)
    rc, output = check_integrity(env)
    print(f"check_integrity: exit {rc}\n  " + output.replace("\n", "\n  "))
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"wall time {time.monotonic() - wall:.0f} s (clients {seconds:.0f} s); seed {seed}")
    _common.print_load()
    failed = stats.server_errors or stats.transport_errors or problems or rc != 0 or killer.error
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
