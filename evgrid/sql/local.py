"""A local PostgreSQL on 127.0.0.1 for the tests and the demo: Debian's own server binaries
(`postgresql-15`), a cluster made by `initdb` in a temporary directory, the Unix socket in that
directory too, so nothing of the machine's own PostgreSQL (if any runs) is touched.

PostgreSQL refuses to run as root. When we are root (CI, containers), the cluster directory is
handed to the `postgres` system user the Debian package creates and the server runs as that
user; otherwise it runs as us.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Where Debian (and Ubuntu) put the server binaries; the newest version present wins.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
READY_TIMEOUT_S = 30.0
#: The superuser of a local cluster (the sink connects as it) and its database.
USER = "evgrid"
DATABASE = "evgrid"


def binaries() -> Path:
    """The newest PostgreSQL server install: `EVGRID_PG_BIN`, Debian's layout, or PATH."""
    explicit = os.environ.get("EVGRID_PG_BIN")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob(DEBIAN_BINARIES), key=lambda p: int(Path(p).parent.name)
                   if Path(p).parent.name.isdigit() else 0)
    for candidate in reversed(found):
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SystemExit("evgrid: PostgreSQL's server binaries (initdb, postgres) are not installed; "
                     "`make postgres` installs Debian's `postgresql` package (or: sudo apt-get "
                     "install postgresql), or set EVGRID_PG_BIN to their directory")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None (us) unless we are root, then the `postgres` user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SystemExit("evgrid: running as root, and there is no `postgres` (or `nobody`) user "
                     "to run PostgreSQL as")


class LocalPostgres:
    """One throw-away cluster: `start()`, `stop()`, `restart()`, `dsn()`, `destroy()`.

    `fsync` is off: the cluster is disposable, and a power cut is not what its tests inject
    (a server crash still recovers from its write-ahead log, which reached the OS at each
    commit). `synchronous_commit` stays on: off, a crash loses transactions that had already
    reported committed — and the sink commits Kafka offsets on that report."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.bin = binaries()
        self.user = _server_user()
        # Its own directory in /tmp, not under the caller's: a root-owned 0700 parent
        # (pytest's tmp_path) would keep the `postgres` user out.
        self.root = Path(tempfile.mkdtemp(prefix="evgrid-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    # -- processes ---------------------------------------------------------------------------

    def _run_as(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": str(self.root)}}

    def _initdb(self) -> None:
        out = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, check=False, cwd=self.root, **self._run_as())
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stdout[-1500:]}{out.stderr[-1500:]}")

    def start(self) -> LocalPostgres:
        if not (self.data / "PG_VERSION").is_file():
            self._initdb()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off",
             "-c", "full_page_writes=off",
             "-c", "max_connections=50", "-c", "shared_buffers=32MB",
             "-c", "log_min_messages=warning", "-c", "log_min_error_statement=panic"],
            stdout=log, stderr=log, cwd=self.root, start_new_session=True, **self._run_as())
        self._wait_ready()
        self._ensure_database()
        return self

    def psql(self, database: str, sql: str) -> str:
        """One statement as the cluster's superuser; its output, unaligned."""
        out = subprocess.run(
            [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            capture_output=True, text=True, check=False, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr.strip()}")
        return out.stdout.strip()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready in {READY_TIMEOUT_S:.0f}s: {self.log_tail()}")

    def _ensure_database(self) -> None:
        if not self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
            self.psql("postgres", f"CREATE DATABASE {DATABASE}")

    def dsn(self, database: str = DATABASE, user: str = USER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        """`fast` (SIGINT: a clean shutdown) or `immediate` (SIGQUIT: a crash, recovered from
        the write-ahead log at the next start)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        """Stop, stay down `down_s`, start again on the same port and data."""
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""
