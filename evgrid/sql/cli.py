"""`evgrid sql` (the sink) and `evgrid sql migrate` (the schema alone, then exit)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evgrid.settings import SqlSettings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from evgrid.settings import SqlSettings

    p = subparsers.add_parser(
        "sql", help="sink evgrid's outputs into PostgreSQL (EVGRID_SQL_DSN) for NOC dashboards",
        **SqlSettings.help_args())
    p.add_argument("--web-port", type=int, default=None,
                   help="overrides EVGRID_SQL_WEB_PORT (/health, /metrics)")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="sql_command")
    m = sub.add_parser("migrate", help="apply the schema's migrations to EVGRID_SQL_DSN, then exit")
    m.set_defaults(func=migrate)


def _settings(args: argparse.Namespace) -> SqlSettings:
    from evgrid.settings import SqlSettings

    overrides: dict[str, object] = {}
    if getattr(args, "web_port", None) is not None:
        overrides["sql_web_port"] = args.web_port
    settings = SqlSettings.from_env(**overrides)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return settings


def run(args: argparse.Namespace) -> int:
    from evgrid.logs import install_broker_log
    from evgrid.sql.sink import serve

    settings = _settings(args)
    install_broker_log(settings.bootstrap_servers)  # quiet, useful logs while Kafka is away
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


def migrate(args: argparse.Namespace) -> int:
    from evgrid.sql.database import Database, redacted

    settings = _settings(args)
    db = Database(settings.sql_dsn, settings.sql_retention_days)

    async def main() -> list[int] | None:
        try:
            return await asyncio.wait_for(db.migrate(), timeout=60)
        finally:
            await db.close()

    try:
        applied = asyncio.run(main())
    except TimeoutError:
        raise SystemExit(f"evgrid sql migrate: PostgreSQL at {redacted(settings.sql_dsn)} "
                         "unreachable for 60 s") from None
    print(f"evgrid sql migrate: {redacted(settings.sql_dsn)}: "
          + (f"applied {', '.join(map(str, applied))}" if applied else "up to date"))
    return 0
