"""`evgrid report`: the settlement reports of `grid.dr_reports` as CSV, for the utility, or
with `--frequency` the frequency activations of `grid.frequency_activations`, for the TSO.

Reads the topic from the first record at or after `--since` to its end (it does not wait for
new ones), optionally for one zone; one row per event, or per event and station with
`--stations`; one row per activation, or per activation and sample with `--samples`. Records
are at-least-once with a stable id (`report_id`, `activation_id`): a duplicate is written once.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer

from evgrid import codec
from evgrid.codec import DecodeError
from evgrid.models import DRReport
from evgrid.models.frequency import FrequencyActivation
from evgrid.settings import KafkaSettings

EVENT_COLUMNS = (
    "zone_id", "signal_id", "signal_type", "priority", "planned_start_ts", "planned_end_ts",
    "actual_start_ts", "actual_end_ts", "ended_by", "baseline_kw", "cap_kw",
    "baseline_energy_kwh", "drawn_energy_kwh", "delivered_kwh", "target_kwh",
    "delivered_pct_of_target", "time_to_cap_s", "peak_overshoot_kw", "max_shortfall_kw",
)
STATION_COLUMNS = ("station_id", "average_target_kw", "measured_avg_kw", "energy_kwh",
                   "seconds_noncompliant", "seconds_uncontrollable")


ACTIVATION_COLUMNS = (
    "zone_id", "activation_id", "area_id", "product", "start_ts", "end_ts", "ended_by",
    "nadir_hz", "nadir_ts", "committed_kw", "baseline_kw", "peak_required_kw", "delivered_kw",
    "time_to_50_s", "half_activation_s", "half_met", "time_to_100_s", "full_activation_s",
    "full_met", "timing_met", "meter_resolution_s", "max_reading_age_s",
)
SAMPLE_COLUMNS = ("t", "required_kw", "measured_kw")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time, or a duration back from now: `30m`, `12h`, `7d`."""
    now = now or datetime.now(UTC)
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(**{units[text[-1]]: float(text[:-1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"evgrid report: --since {text!r} is neither an ISO-8601 time nor a "
                         "duration like 12h or 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def rows(reports: list[DRReport], stations: bool) -> Iterator[dict[str, Any]]:
    for report in reports:
        event = {name: _cell(getattr(report, name)) for name in EVENT_COLUMNS}
        if not stations:
            event["stations_noncompliant"] = sum(
                1 for s in report.stations if s.seconds_noncompliant > 0)
            yield event
            continue
        for station in report.stations:
            yield {**event, **{name: _cell(getattr(station, name)) for name in STATION_COLUMNS}}


def _cell(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def write_csv(out: TextIO, reports: list[DRReport], stations: bool) -> int:
    columns = [*EVENT_COLUMNS, *(STATION_COLUMNS if stations else ("stations_noncompliant",))]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    n = 0
    for row in rows(reports, stations):
        writer.writerow(row)
        n += 1
    return n


def write_activations(out: TextIO, activations: list[FrequencyActivation],
                      samples: bool) -> int:
    columns = [*ACTIVATION_COLUMNS, *(SAMPLE_COLUMNS if samples else ())]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    n = 0
    for a in activations:
        row = {name: _cell(getattr(a, name)) for name in ACTIVATION_COLUMNS}
        for sample in a.samples if samples else [None]:
            extra = {} if sample is None else sample.model_dump()
            writer.writerow({**row, **extra})
            n += 1
    return n


async def read_reports(settings: KafkaSettings, since: datetime,
                       zone_id: str | None) -> list[DRReport]:
    found = await read_records(settings, settings.topics.dr_reports, DRReport, since, zone_id,
                               lambda r: r.report_id)
    return sorted(found, key=lambda r: (r.planned_start_ts, r.signal_id))


async def read_activations(settings: KafkaSettings, since: datetime,
                           zone_id: str | None) -> list[FrequencyActivation]:
    found = await read_records(settings, settings.topics.frequency_activations,
                               FrequencyActivation, since, zone_id, lambda a: a.activation_id)
    return sorted(found, key=lambda a: (a.start_ts, a.zone_id))


async def read_records(settings: KafkaSettings, topic: str, model: type[Any], since: datetime,
                       zone_id: str | None, id_of: Any) -> list[Any]:
    """Every record of `topic` from `since` to the end seen at start, decoded, one per id."""
    # Subscribed without a group: the consumer takes every partition of the topic itself.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, **settings.kafka_client_kwargs())
    await consumer.start()
    try:
        for _ in range(50):
            if consumer.assignment():
                break
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        if not tps:
            return []
        starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000)
                                                   for tp in tps})
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp].offset if starts.get(tp) else ends[tp])
        seen: dict[str, Any] = {}
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    try:
                        found = codec.decode(model, record.value)
                    except DecodeError as err:
                        print(f"evgrid report: skipped {tp.topic}[{tp.partition}]@"
                              f"{record.offset}: {err}", file=sys.stderr)
                        continue
                    if zone_id is None or found.zone_id == zone_id:
                        seen.setdefault(id_of(found), found)
        return list(seen.values())
    finally:
        await consumer.stop()


def _run(args: argparse.Namespace) -> int:
    settings = KafkaSettings.from_env()
    since = parse_since(args.since)
    if args.frequency:
        found: list[Any] = asyncio.run(read_activations(settings, since, args.zone))
        what = "activation(s)"

        def write(out: TextIO) -> int:
            return write_activations(out, found, args.samples)
    else:
        found = asyncio.run(read_reports(settings, since, args.zone))
        what = "event(s)"

        def write(out: TextIO) -> int:
            return write_csv(out, found, args.stations)
    if args.out in (None, "-"):
        n = write(sys.stdout)
    else:
        with open(args.out, "w", newline="") as out:
            n = write(out)
    print(f"evgrid report: {len(found)} {what}, {n} row(s) since {since.isoformat()}",
          file=sys.stderr)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="DR settlement reports (grid.dr_reports) as CSV",
                              **KafkaSettings.help_args())
    p.add_argument("--since", default="7d", help="ISO-8601 time or a duration back (7d)")
    p.add_argument("--zone", default=None, help="only this zone")
    p.add_argument("--stations", action="store_true", help="one row per event and station")
    p.add_argument("--frequency", action="store_true",
                   help="frequency activations (grid.frequency_activations) instead")
    p.add_argument("--samples", action="store_true",
                   help="with --frequency: one row per activation and sample")
    p.add_argument("--out", default=None, help="file to write (default: standard output)")
    p.set_defaults(func=_run)
