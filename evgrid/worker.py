"""`evgrid worker`: create the topics, then run the Faust worker until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os

from evgrid.heap import tune_gc
from evgrid.logs import broker_connected, install_broker_log
from evgrid.settings import WorkerSettings
from evgrid.topics import ensure_topics

#: A SIGTERM while the broker is away ends the worker within this long. Faust flushes its
#: producer as it stops, and aiokafka waits for what it holds until the messages expire
#: (Faust's producer request timeout, 20 minutes); under the usual 30 s grace period.
STOP_AWAY_S = 25.0


def prepare(settings: WorkerSettings) -> None:
    """Topics must exist with the right partition counts before agents subscribe: a topic
    auto-created by the broker would get its default count and break co-partitioning."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(ensure_topics(settings))
    finally:
        loop.close()
    asyncio.set_event_loop(asyncio.new_event_loop())


def run_worker(settings: WorkerSettings) -> int:
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

        def _on_sigterm(self) -> None:
            if broker_connected() is False:
                self.loop.call_later(STOP_AWAY_S, self._exit_while_away)
            super()._on_sigterm()

        async def _sentinel_task(self) -> None:
            # The last turn of the loop before it closes, for callbacks the stop scheduled:
            # mode sleeps a second here, which every stop and restart would wait.
            await asyncio.sleep(0.05)

        def _exit_while_away(self) -> None:
            if broker_connected() is False:
                self.log.warning("evgrid: stopped %.0f s after SIGTERM with the broker still "
                                 "away; what Kafka had not acknowledged is not sent",
                                 STOP_AWAY_S)
                logging.shutdown()
                os._exit(0)

    logging.basicConfig(level=level)
    prepare(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    tune_gc()
    worker = EvgridWorker(app, loglevel=level)
    worker.execute_from_commandline()
    return 0
