"""`evgrid worker`: create the topics, then run the Faust worker until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

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

    logging.basicConfig(level=settings.log_level.upper())
    prepare(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level)
    worker.execute_from_commandline()
    return 0
