"""`evgrid worker`: create the topics, then run the Faust worker until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

from evgrid.heap import tune_gc
from evgrid.logs import install_broker_log
from evgrid.settings import Settings
from evgrid.topics import ensure_topics


def prepare(settings: Settings) -> None:
    """Topics must exist with the right partition counts before agents subscribe: a topic
    auto-created by the broker would get its default count and break co-partitioning."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_worker(settings: Settings) -> int:
    from faust import Worker

    from evgrid.app import create_app

    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise SystemExit(f"evgrid: EVGRID_LOG_LEVEL={settings.log_level!r} is not a log level")

    class EvgridWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, _level: int) -> None:
            # aiokafka and faust log at DEBUG on every message; building those records
            # costs hot-path time even when nothing prints them.
            logger.setLevel(level)
            for name in ("aiokafka", "faust", "mode", "kafka"):
                logging.getLogger(name).setLevel(max(level, logging.INFO))
            super().on_setup_root_logger(logger, _level)
            install_broker_log(settings.bootstrap_servers)

    logging.basicConfig(level=level)
    prepare(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    tune_gc()
    worker = EvgridWorker(app, loglevel=level)
    worker.execute_from_commandline()
    return 0
