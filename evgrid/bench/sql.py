"""The sql phase of `evgrid bench`: a worker under a steady stream of readings, DR events now
and then, and `evgrid sql` writing every output into a local PostgreSQL beside it.

Reported, never asserted: rows/s written, freshness from the worker publishing a record (its
Kafka timestamp) to its row being committed — zone load and DR status p50/p99, from the sink's
histogram, interpolated within its buckets —, whether the sink kept up (its lag at the end),
and two NOC queries timed on the data written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from evgrid.bench.harness import Bench, Phase, say
from evgrid.bench.load import produce_mappings, producer, stream_readings, zone_id
from evgrid.bench.stats import histogram_figures, metric_sum, parse_histogram, percentiles
from evgrid.broker.local import free_port
from evgrid.settings import SqlSettings, WorkerSettings
from evgrid.sql.local import LocalPostgres
from evgrid.sql.process import SinkProcess
from evgrid.timeutil import iso
from evgrid.topics import ensure_topics

#: Timed runs of each NOC query; how long the sink may take to catch up at the end.
QUERY_RUNS = 20
DRAIN_CAP_S = 60.0

NOC_QUERIES = {
    "zones above 80 % utilisation now":
        "SELECT zone_id, utilization_pct FROM zone_load_summary WHERE utilization_pct > 80",
    "commands of event X with outcomes":
        "SELECT c.station_id, c.action, c.target_power_kw, c.command_ts, o.status "
        "FROM commands c LEFT JOIN command_outcomes o "
        "ON o.command_id = c.command_id AND o.final WHERE c.signal_id = $1 "
        "ORDER BY c.command_ts",
    "zones above 80 % this week (history)":
        "SELECT zone_id, count(*) FROM zone_load WHERE ts > now() - interval '7 days' "
        "AND utilization_pct > 80 GROUP BY zone_id",
}


async def scrape(sink: SinkProcess) -> str:
    async with aiohttp.ClientSession() as http, http.get(sink.url + "/metrics") as resp:
        return await resp.text()


def freshness(text: str, topic: str) -> dict[str, Any]:
    only = "\n".join(line for line in text.splitlines() if f'topic="{topic}"' in line)
    return histogram_figures(parse_histogram(only, "evgrid_sql_freshness_seconds"))


async def fire_events(settings: WorkerSettings, zones: int, events: int,
                      every_s: float) -> list[str]:
    """CURTAIL signals on distinct zones, one every `every_s`; their ids."""
    out = producer(settings)
    await out.start()
    ids = []
    try:
        for i in range(events):
            zone = zone_id(i, zones)
            now = time.time()
            signal_id = f"sqlbench-{i}"
            await out.send_and_wait(settings.topics.demand_response, orjson.dumps({
                "signal_id": signal_id, "zone_id": zone, "signal_type": "CURTAIL",
                "target_reduction_pct": 20.0, "start_ts": iso(now), "end_ts": iso(now + 3600),
                "priority": 2, "received_ts": iso(now)}), key=zone.encode())
            ids.append(signal_id)
            await asyncio.sleep(every_s)
    finally:
        await out.stop()
    return ids


async def time_queries(dsn: str, signal_id: str, n: int) -> dict[str, dict[str, float]]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for name, sql in NOC_QUERIES.items():
            args = (signal_id,) if "$1" in sql else ()
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                await conn.fetch(sql, *args)
                samples.append((time.perf_counter() - started) * 1000)
            out[name] = percentiles(samples)
        return out
    finally:
        await conn.close()


async def run(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    zones = sizes.zones
    pg = await asyncio.to_thread(lambda: LocalPostgres().start())
    settings = bench.settings("sql")
    sink_settings = settings.derive(SqlSettings, sql_dsn=pg.dsn(), sql_web_port=free_port())
    sink: SinkProcess | None = None
    out: dict[str, Any] = {"stations": sizes.sql_stations, "zones": zones}
    try:
        await ensure_topics(settings)
        await produce_mappings(settings, sizes.sql_stations, zones)
        await bench.worker(settings, "sql-worker")
        sink = SinkProcess(sink_settings, bench.workdir / "sql-sink.log").start()
        await sink.wait_ready(timeout=120)
        say(f"  {sizes.sql_rate:,.0f} readings/s over {sizes.sql_stations:,} stations for "
            f"{sizes.sql_measure_s:.0f} s, {sizes.sql_events} DR events, evgrid sql into "
            "PostgreSQL")
        stop = asyncio.Event()
        load = asyncio.create_task(stream_readings(settings, sizes.sql_rate, sizes.sql_stations,
                                                   stop))
        before = metric_sum(await scrape(sink), "evgrid_sql_rows_total")
        started = time.monotonic()
        signals = await fire_events(settings, zones, sizes.sql_events,
                                    sizes.sql_measure_s / 2 / max(sizes.sql_events, 1))
        await asyncio.sleep(max(0.0, sizes.sql_measure_s - (time.monotonic() - started)))
        text = await scrape(sink)
        seconds = time.monotonic() - started
        stop.set()
        offered = await load
        rows = metric_sum(text, "evgrid_sql_rows_total") - before
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < DRAIN_CAP_S:
            lag = metric_sum(await scrape(sink), "evgrid_sql_consumer_lag")
            if lag == 0:
                break
            await asyncio.sleep(0.5)
        text = await scrape(sink)
        out.update(
            offered_rate=offered["offered_rate"], seconds=seconds,
            rows_per_s=rows / seconds, rows_total=metric_sum(text, "evgrid_sql_rows_total"),
            records_total=metric_sum(text, "evgrid_sql_records_total"),
            lag_end=metric_sum(text, "evgrid_sql_consumer_lag"),
            drain_s=time.monotonic() - drain_started,
            zone_load=freshness(text, settings.topics.zone_load),
            dr_status=freshness(text, settings.topics.dr_status),
            station_windows=freshness(text, settings.topics.station_windows),
            queries=await time_queries(sink_settings.sql_dsn, signals[0] if signals else "",
                                       QUERY_RUNS),
        )
        say("    {:,.0f} rows/s; freshness p99 zone load {} ms, DR status {} ms; lag at the "
            "end {:,.0f}".format(out["rows_per_s"], *(
                "n/a" if out[k].get("p99") is None else f"{out[k]['p99']:,.0f}"
                for k in ("zone_load", "dr_status")), out["lag_end"]))
    finally:
        if sink is not None:
            sink.stop()
        await asyncio.to_thread(pg.destroy)
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    def ms(figures: dict[str, Any], key: str) -> str:
        value = figures.get(key)
        return "n/a" if value is None else f"{value:,.0f} ms"

    lines = [
        (f"rows/s written ({r['offered_rate']:,.0f} readings/s offered to the worker)",
         f"{r['rows_per_s']:,.0f}"),
        ("records / rows written; sink lag at the end",
         f"{r['records_total']:,.0f} / {r['rows_total']:,.0f}; {r['lag_end']:,.0f}"),
    ]
    for key, label in (("zone_load", "zone load"), ("dr_status", "DR status"),
                       ("station_windows", "station windows")):
        f = r[key]
        lines.append((f"freshness {label} p50 / p99 ({f['count']:,} records)",
                      f"{ms(f, 'p50')} / {ms(f, 'p99')}"))
    for name, figures in r["queries"].items():
        lines.append((f"NOC query: {name} p50 / max",
                      f"{figures['p50']:.2f} / {figures['max']:.2f} ms"))
    return lines


PHASE = Phase("sql", "evgrid sql beside a loaded worker: rows/s, freshness, NOC queries",
              run, rows)
