"""`evgrid kafka`: the local broker as a command — foreground until Ctrl-C / SIGTERM, or
detached with a pid file that `evgrid kafka stop` reads."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from evgrid.broker.local import KAFKA_VERSION, LocalKafka, ensure_jars, port_open, say


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "kafka", help="run a local single-node Apache Kafka (KRaft) on 127.0.0.1"
    )
    p.add_argument("action", nargs="?", choices=["start", "stop"], default="start")
    p.add_argument("--port", type=int, default=9092, help="0 picks a free port (default 9092)")
    p.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--pid-file", type=Path, default=None)
    p.add_argument("--prefetch", action="store_true", help="only resolve the jars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.prefetch:
        ensure_jars()
        return 0
    pid_file = args.pid_file or args.data_dir / "kafka.pid"
    if args.action == "stop":
        return stop_detached(pid_file)
    if args.port and port_open(args.port):
        raise SystemExit(
            f"evgrid: port {args.port} is taken; stop what runs there or use --port 0"
        )
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    if not args.detach:  # before anything is printed: a SIGTERM right after must stop cleanly
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    kafka = LocalKafka(data_dir=args.data_dir, port=args.port)
    started = time.monotonic()
    say(f"starting Apache Kafka {KAFKA_VERSION} (data in {kafka.data_dir}) ...")
    kafka.start()
    say(f"accepting connections after {time.monotonic() - started:.1f}s")
    print(f"bootstrap: {kafka.bootstrap}", flush=True)
    if args.detach:
        assert kafka.proc is not None
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{kafka.proc.pid}\n")
        (pid_file.parent / "bootstrap").write_text(kafka.bootstrap + "\n")
        say(f"running in the background (pid {kafka.proc.pid}); stop with `evgrid kafka stop`")
        return 0
    try:
        while not stop and kafka.proc is not None and kafka.proc.poll() is None:
            time.sleep(0.3)
    finally:
        say("stopping ...")
        kafka.stop()
    return 0


def stop_detached(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        say(f"no broker pid file at {pid_file}; nothing to stop")
        return 1
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    say(f"stopped broker {pid}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m evgrid.broker.cli")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["kafka", *sys.argv[1:]])
    sys.exit(ns.func(ns))
