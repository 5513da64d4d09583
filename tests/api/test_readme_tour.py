"""README's API tour runs as pasted: the block under "## API tour" is executed with bash (-e: any failing
command fails the test) against a live `runserver` on the embedded default (SQLite, tasks in-process), from a
scratch directory that has the repository's `manage.py` and `.venv`, so every user, id and file it uses must
come from the tour itself."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def tour_block():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## API tour\n"):]
    return re.search(r"```sh\n(.*?)```\n", section, re.S).group(1)


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "IMAGESTUDIO_PRODUCTION"}}
    env.update(IMAGESTUDIO_DATA_DIR=str(tmp_path / "data"), PYTHONUNBUFFERED="1", DEBUG="0")
    work = tmp_path / "work"
    work.mkdir()
    (work / "manage.py").symlink_to(ROOT / "manage.py")
    venv = ROOT / ".venv"
    if venv.exists():
        (work / ".venv").symlink_to(venv)
    else:  # the suite runs under some other interpreter: give the tour that one as .venv/bin/python
        (work / ".venv" / "bin").mkdir(parents=True)
        (work / ".venv" / "bin" / "python").symlink_to(sys.executable)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=work, env=env, check=True,
                   capture_output=True, timeout=300)
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115  (closed below)
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                               cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield {"base": f"http://127.0.0.1:{port}/api", "work": work, "env": env, "log": tmp_path / "web.log"}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="the tour is curl commands")
def test_the_readme_tour_runs_as_pasted(server):
    done = subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-c", tour_block()], cwd=server["work"],
                          env={**server["env"], "B": server["base"]}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n"
                                  f"{done.stderr[-4000:]}\n--- server\n{server['log'].read_text()[-3000:]}")
    work = server["work"]
    assert (work / "thumb.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG, not a JSON error saved as one
    header = (work / "export.csv").read_text().splitlines()[0]
    assert header.startswith("id,external_id,split")
