"""Faust's own per-event ceiling: an app with one agent that does nothing, over the meter
value topic, with the consumer settings evgrid's worker uses (fetch size, offset reset,
at-least-once). Run by the bench as `python -m evgrid.bench.faust_noop COUNT RESULT_PATH`
with the run's `EVGRID_*` settings; it writes {"rate": events/s} once COUNT events are seen."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import faust
import orjson

from evgrid.settings import WorkerSettings


def create_app(settings: WorkerSettings, count: int, result: Path) -> faust.App:
    app = faust.App(
        settings.app_id, broker=settings.broker_url,
        broker_credentials=settings.faust_credentials(), store="memory://",
        datadir=str(settings.data_dir / "noop"), web_enabled=False,
        topic_partitions=settings.partitions, consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once", consumer_max_fetch_size=4 * 1024 * 1024,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
    )
    topic = app.topic(settings.topics.meter_values, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="noop")
    async def noop(stream: faust.StreamT) -> None:
        seen = 0
        started = 0.0
        async for _event in stream.events():
            if seen == 0:
                started = time.monotonic()
            seen += 1
            if seen == count:
                rate = (count - 1) / max(time.monotonic() - started, 1e-9)
                partial = result.with_suffix(".part")
                partial.write_bytes(orjson.dumps({"rate": rate, "events": count}))
                partial.rename(result)  # the bench sees the whole file or none

    return app


def main(argv: list[str]) -> int:
    count, result = int(argv[0]), Path(argv[1])
    settings = WorkerSettings.from_env()
    (settings.data_dir / "noop").mkdir(parents=True, exist_ok=True)
    app = create_app(settings, count, result)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
