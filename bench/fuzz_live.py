"""The long schemathesis profile against a live server (run by bench/fuzz_api.sh).

Recreates a throwaway Postgres database (the bench database's name + `_fuzz`), migrates it, seeds the fuzzers'
user, dataset and token (tests/fuzz_world.py, as the CI profile does), grants the dataset an import source in a
scratch IMPORT_ROOT, and starts gunicorn on a free port plus a Celery worker (when CELERY_BROKER_URL is set; else
tasks run eagerly inside gunicorn, said in the output). Then runs the schemathesis CLI with the token, every phase:
examples, coverage and fuzzing per operation (stateless), and stateful chains along the links schemathesis infers
from the schema. The CI profile's checks: all but negative_data_rejection and positive_data_acceptance.

Prints per run and in total: generated cases, requests, responses with a 5xx status, responses whose status the
schema does not document for the operation (each listed by operation and status), the failure groups schemathesis
reports, and the wall time. Exits 1 when any 5xx or undocumented status was seen. Each run's JSON report, HAR (every
request and response) and console log stay in --out (bench/out/fuzz/).

    .venv/bin/python bench/fuzz_live.py                     # ~8,000 cases: 25 examples, 300 scenarios
    .venv/bin/python bench/fuzz_live.py --examples 5 --scenarios 20 --seed 1
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

EXCLUDED_CHECKS = "negative_data_rejection,positive_data_acceptance"  # as tests/api/test_fuzz_schema.py
RUNS = {"stateless": "examples,coverage,fuzzing", "stateful": "stateful"}  # run: schemathesis phases
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=25,
                        help="stateless run: max examples per operation and phase (the coverage phase adds ~4,000)")
    parser.add_argument("--scenarios", type=int, default=300, help="stateful run: chains of linked calls")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--out", type=Path, default=_common.REPO / "bench" / "out" / "fuzz")
    parser.add_argument("--max-time", type=int, default=None, help="a time budget in seconds for schemathesis")
    return parser.parse_args()


def fuzz_environment(scratch: Path) -> dict:
    """The server's and worker's environment: the bench database's name + `_fuzz`, scratch media and imports."""
    base = os.environ.get("DATABASE_URL", _common.DEFAULT_DATABASE_URL)
    parts = urlsplit(base)
    fuzz_url = parts._replace(path=parts.path.rstrip("/") + "_fuzz").geturl()
    env = {**os.environ, "DATABASE_URL": fuzz_url, "IMAGESTUDIO_DATA_DIR": str(scratch),
           "MEDIA_ROOT": str(scratch / "media"), "IMPORT_ROOT": str(scratch / "imports"),
           "DJANGO_SETTINGS_MODULE": "imagestudio.settings", "LOG_LEVEL": "WARNING", "DEBUG": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO), os.environ.get("PYTHONPATH")]))}
    (scratch / "imports" / "granted").mkdir(parents=True)
    return env


SEED_SCRIPT = """
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from imagestudio.datasets.imports.grants import import_grant_create
from imagestudio.datasets.models import Dataset
from tests.fuzz_world import fuzz_world
token = fuzz_world()
import_grant_create(dataset=Dataset.objects.get(name="Fuzzed"), path="granted")
print(token)
"""


def seed(env) -> str:
    """Migrate the fresh database and create the fuzzers' world; returns the token."""
    _common._ensure_database(env["DATABASE_URL"], recreate=True)
    done = subprocess.run([sys.executable, "-c", SEED_SCRIPT], env={**env, "CELERY_TASK_ALWAYS_EAGER": "1"},
                          cwd=_common.REPO, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"seeding failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def start_worker(env, log):
    if not env.get("CELERY_BROKER_URL"):
        return None
    celery = str(Path(sys.executable).with_name("celery"))
    queues = "default,embeddings,training"
    subprocess.run([celery, "-A", "imagestudio", "purge", "-f", "-Q", queues], env=env, cwd=_common.REPO,
                   capture_output=True, check=False)
    return subprocess.Popen([celery, "-A", "imagestudio", "worker", "-Q", queues, "--concurrency", "1",
                             "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
                            env=env, cwd=_common.REPO, start_new_session=True, stdout=log, stderr=log)


def stop(process):
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def run_schemathesis(base_url, token, args, run) -> int:
    """One schemathesis CLI run (`run`: a key of RUNS); its reports go to --out as <run>.json and <run>.har."""
    command = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{base_url}/api/schema/",
               "-H", f"Authorization: Token {token}", "--phases", RUNS[run],
               "--max-examples", str(args.scenarios if run == "stateful" else args.examples),
               "--exclude-checks", EXCLUDED_CHECKS, "--seed", str(args.seed), "--workers", "2",
               "--continue-on-failure", "--request-timeout", "120", "--suppress-health-check", "all",
               "--generation-database", "none", "--report", "json,har",
               "--report-json-path", str(args.out / f"{run}.json"), "--report-har-path", str(args.out / f"{run}.har"),
               "--output-truncate", "true", "--no-color"]
    if args.max_time:
        command += ["--max-time", str(args.max_time)]
    print(f"\n== {run}: schemathesis", " ".join("Authorization: Token ***" if part.startswith("Authorization") else part
                                              for part in command[2:]), flush=True)
    with open(args.out / f"{run}.log", "w") as log:
        process = subprocess.Popen(command, cwd=_common.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
    return process.wait()


# ------------------------------------------------------------------------------------------ reading the reports


def documented_statuses(schema: dict):
    """[(path regex, template, {METHOD: documented status patterns})], literal paths before templated ones:
    /lfs/preview/ is its own path, not an {id} of /lfs/{id}/, as the URL router sees it."""
    paths = []
    for template, item in schema["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")
        methods = {method.upper(): set(operation.get("responses", {}))
                   for method, operation in item.items() if method in METHODS}
        paths.append((pattern, template, methods))
    return sorted(paths, key=lambda path: path[1].count("{"))


def is_documented(status: int, documented: set[str]) -> bool:
    return bool({str(status), f"{str(status)[0]}XX", "default"} & documented)


def read_har(path: Path, schema: dict) -> dict[str, Counter]:
    """Counters from the HAR of a run: requests per operation, 5xx and undocumented statuses per (operation,
    status), and the statuses of probes with a method the path does not declare (405 mostly)."""
    paths = documented_statuses(schema)
    counts = {"requests": Counter(), "5xx": Counter(), "undocumented": Counter(), "undeclared methods": Counter()}
    for entry in json.loads(path.read_text())["log"]["entries"]:
        method, url = entry["request"]["method"], urlsplit(entry["request"]["url"]).path
        status = entry["response"]["status"]
        template, methods = next(((t, m) for pattern, t, m in paths if pattern.match(url)), (url, {}))
        label = f"{method} {template}" + ("" if method in methods else " (a method the path does not declare)")
        if status >= 500:
            counts["5xx"][(label, status)] += 1
        if method not in methods:
            counts["undeclared methods"][status] += 1
            continue
        counts["requests"][label] += 1
        if not is_documented(status, methods[method]):
            counts["undocumented"][(label, status)] += 1
    return counts


def report(args, wall, exit_codes) -> bool:
    schema = json.loads((args.out / "schema.json").read_text())
    total = {"requests": Counter(), "5xx": Counter(), "undocumented": Counter(), "undeclared methods": Counter()}
    print(f"\n== schemathesis against a live server: {args.examples} examples per operation and stateless phase, "
          f"{args.scenarios} stateful scenarios")
    cases = 0
    for run in RUNS:
        summary = json.loads((args.out / f"{run}.json").read_text())
        counts = read_har(args.out / f"{run}.har", schema)
        for key, counter in counts.items():
            total[key].update(counter)
        cases += summary["test_cases"]["generated"]
        print(f"{run:<9} ({RUNS[run]}): {summary['test_cases']['generated']} cases, "
              f"{sum(counts['requests'].values()) + sum(counts['undeclared methods'].values())} requests, "
              f"{sum(counts['5xx'].values())} 5xx, {sum(counts['undocumented'].values())} undocumented statuses, "
              f"exit code {exit_codes[run]}")
        for group in summary["failures"]:
            print(f"    failure group: {group['count']} x {group['code']} {group['title']} "
                  f"({', '.join(group['operations'][:5])})")
    print(f"cases generated         {cases}")
    print(f"5xx responses           {sum(total['5xx'].values())}")
    for (label, status), count in sorted(total["5xx"].items()):
        print(f"    {count:>5} x {status} {label}")
    print(f"undocumented statuses   {sum(total['undocumented'].values())}")
    for (label, status), count in sorted(total["undocumented"].items()):
        print(f"    {count:>5} x {status} {label}")
    print("undeclared methods      " + ", ".join(f"{count} x {status}" for status, count in
                                              sorted(total["undeclared methods"].items())) +
          " (statuses of the probes with a method the path does not declare; no schema documents those)")
    print(f"wall time               {wall:.0f} s")
    return not total["5xx"] and not total["undocumented"]


def main():
    args = arguments()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in (*args.out.glob("*.har"), *args.out.glob("*.json"), *args.out.glob("*.log")):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="imagestudio-fuzz-") as scratch, \
            open(args.out / "server.log", "w") as server_log, open(args.out / "worker.log", "w") as worker_log:
        env = fuzz_environment(Path(scratch))
        token = seed(env)
        port = _common.free_port()
        server, command = _common.start_server(env, port, threads=2, log=server_log)
        worker = start_worker(env, worker_log)
        print(f"server  gunicorn {command}\nworker  {'celery, 1 process' if worker else 'none: tasks run eagerly'}"
              f"\nlogs    {args.out}/server.log, worker.log")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                _common.wait_ready(client, server)
                (args.out / "schema.json").write_text(client.get("/api/schema/?format=json").text)
            started = time.monotonic()
            exit_codes = {run: run_schemathesis(f"http://127.0.0.1:{port}", token, args, run) for run in RUNS}
            wall = time.monotonic() - started
        finally:
            _common.stop_server(server)
            stop(worker)
    clean = report(args, wall, exit_codes)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
