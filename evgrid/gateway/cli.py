"""`evgrid gateway`: run the OCPP endpoint; `evgrid gateway hash-password ID` for profile 1/2."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import signal
import sys
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from evgrid.settings import GatewaySettings

    p = subparsers.add_parser(
        "gateway", help="OCPP 1.6J + 2.0.1 endpoint: chargers' meter values in, commands out",
        **GatewaySettings.help_args())
    p.add_argument("--port", type=int, default=None, help="overrides EVGRID_GATEWAY_PORT")
    p.add_argument("--host", default=None, help="overrides EVGRID_GATEWAY_HOST")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="gateway_command")
    hp = sub.add_parser("hash-password",
                        help="print a passwords-file line for a charger (password from stdin)")
    hp.add_argument("charge_point_id")
    hp.set_defaults(func=hash_password)


def hash_password(args: argparse.Namespace) -> int:
    from evgrid.gateway.auth import hash_password as make

    password = (getpass.getpass(f"password for {args.charge_point_id}: ")
                if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n"))
    if not password:
        raise SystemExit("evgrid: empty password")
    print(f"{args.charge_point_id}:{make(password)}")
    return 0


def _log_long_collections() -> None:
    """A full garbage collection over thousands of connections stalls every charger at once;
    say so when one takes long, so a latency tail can be told from the network's."""
    started: list[float] = [0.0]
    log = logging.getLogger("evgrid.gateway.gc")

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2 and (took := time.perf_counter() - started[0]) > 0.05:
            log.warning("full garbage collection took %.0f ms", took * 1000)

    gc.callbacks.append(watch)


def run(args: argparse.Namespace) -> int:
    import ocpp.messages

    from evgrid.gateway.server import Gateway, raise_fd_limit
    from evgrid.logs import install_broker_log
    from evgrid.settings import GatewaySettings
    from evgrid.topics import ensure_topics

    overrides: dict[str, object] = {}
    if args.port is not None:
        overrides["gateway_port"] = args.port
    if args.host is not None:
        overrides["gateway_host"] = args.host
    settings = GatewaySettings.from_env(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    install_broker_log(settings.bootstrap_servers)  # quiet, useful logs while Kafka is away
    # Schema validation of a small frame takes microseconds: a thread hop per frame (the
    # package's default) costs more than it saves with thousands of chargers.
    ocpp.messages.ASYNC_VALIDATION = False
    raise_fd_limit()
    _log_long_collections()
    logging.getLogger("websockets").setLevel(logging.WARNING)

    async def main() -> None:
        await ensure_topics(settings)
        gateway = Gateway(settings)
        await gateway.start()
        await gateway.feeds.ready.wait()
        print(f"evgrid gateway {settings.gateway_instance_id}: ready on port {gateway.port}",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await gateway.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0
