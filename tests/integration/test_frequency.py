"""Frequency response on the real broker: a zone of 20 stations that apply a limit 2 s after
they receive it; a dip to 49.70 Hz (half of an FCR-D-like program) then to 49.50 Hz (full);
recovery and a spread restore; a source falling silent mid-activation; bad input."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from evgrid.reports import read_activations, write_activations
from evgrid.timeutil import iso
from tests.integration.harness import (
    Collector,
    WorkerProcess,
    isolated_settings,
    jdump,
    produce,
)

pytestmark = pytest.mark.integration

N, KW = 20, 50.0
APPLY_S = 2.0  # the chargers apply a limit this long after it reaches them
ROUND_S = 0.5  # meter readings every half second
SILENCE_S = 3.0
PROGRAM = {"zone_id": "Z1", "area_id": "NO1", "product": "linear", "committed_kw": 400.0,
           "start_hz": 49.9, "full_hz": 49.5, "deadband_hz": 0.0, "full_activation_s": 30.0,
           "half_activation_s": 5.0, "min_hold_s": 2.0, "recovery_s": 2.0,
           "restore_spread_s": 6.0}


@pytest.fixture
async def freq_worker(kafka_broker, unique_prefix, tmp_path):
    settings = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                                 frequency_silence_s=SILENCE_S)
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    await w.wait_ready()
    yield w
    assert w.alive(), w.log_tail()
    w.stop()


class Fleet:
    """Twenty 50 kW DC sessions; a command takes effect APPLY_S after it was seen."""

    def __init__(self, bootstrap: str, topics) -> None:
        self.b, self.t = bootstrap, topics
        self.ids = [f"F{i:02d}" for i in range(N)]
        self.limit: dict[str, float | None] = dict.fromkeys(self.ids)
        self.applied = 0
        self.metered: list[tuple[float, float]] = []  # (time, zone load the meters report)

    def draw(self, sid: str) -> float:
        lim = self.limit[sid]
        return KW if lim is None else min(KW, lim)

    def apply(self, commands: list[dict], now: float) -> None:
        while self.applied < len(commands) and commands[self.applied]["_seen"] + APPLY_S <= now:
            c = commands[self.applied]
            self.limit[c["station_id"]] = c["target_power_kw"] if c["action"] == "SET" else None
            self.applied += 1

    async def report(self, seen: Collector) -> None:
        now = time.time()
        self.apply(seen.messages[self.t.commands], now)
        await produce(self.b, self.t.meter_values, [(sid.encode(), jdump({
            "station_id": sid, "connector_id": 1, "connector_type": "CCS",
            "session_id": f"s-{sid}", "power_kw": round(self.draw(sid), 3),
            "event_ts": iso(now)})) for sid in self.ids])
        self.metered.append((now, sum(self.draw(s) for s in self.ids)))


async def play(b: str, topic: str, fleet: Fleet, seen: Collector, hz_of, seconds: float,
               rate_hz: float = 10.0) -> None:
    """Measurements at `rate_hz` (hz_of(elapsed) -> Hz, None: silent) and meter readings
    every ROUND_S, for `seconds`."""
    start = time.monotonic()
    next_report = 0.0
    while (elapsed := time.monotonic() - start) < seconds:
        hz = hz_of(elapsed)
        if hz is not None:
            await produce(b, topic, [(b"NO1", jdump({
                "area_id": "NO1", "frequency_hz": hz, "ts": iso(time.time()),
                "source": "pmu-1"}))])
        if elapsed >= next_report:
            await fleet.report(seen)
            next_report += ROUND_S
        await asyncio.sleep(1.0 / rate_hz)


async def setup_zone(w: WorkerProcess, seen: Collector, fleet: Fleet,
                     publish: bool = True) -> None:
    """The program and the mappings (unless already published), then readings until the
    zone's picture is whole and it knows its program."""
    b, t = w.settings.bootstrap_servers, w.settings.topics
    if publish:
        await produce(b, t.frequency_programs, [(b"Z1", jdump(PROGRAM))])
        await produce(b, t.station_zones, [(sid.encode(), jdump({
            "station_id": sid, "zone_id": "Z1", "max_station_kw": 150.0,
            "contract_max_kw": 150.0})) for sid in fleet.ids])
    # Readings until the zone's picture is whole: the view shows every station drawing.
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        await fleet.report(seen)
        status, body = await w.get("/zones/Z1")
        if status == 200 and body.get("zone_total_power_kw") == pytest.approx(N * KW) \
                and (body.get("frequency") or {}).get("area_id") == "NO1":
            return
        await asyncio.sleep(ROUND_S)
    raise AssertionError(f"zone Z1 never complete: {body}")


def first_at_or_above(samples: list[tuple[float, float]], since: float,
                      wanted_reduction: float) -> float | None:
    for ts, load in samples:
        if ts >= since and N * KW - load >= wanted_reduction - 1e-6:
            return ts - since
    return None


async def test_dip_half_then_full_then_spread_restore(freq_worker, kafka_broker):
    w, b = freq_worker, kafka_broker.bootstrap
    t = w.settings.topics
    async with Collector(b, t.commands, t.frequency_activations) as seen:
        fleet = Fleet(b, t)
        await setup_zone(w, seen, fleet)
        # 49.70 Hz: half activation (200 kW) for 8 s; 49.50 Hz: full (400 kW) for 10 s.
        half_at = time.time()
        await play(b, t.frequency, fleet, seen, lambda s: 49.70, 8.0)
        full_at = time.time()
        await play(b, t.frequency, fleet, seen, lambda s: 49.50, 10.0)
        recovered_at = time.time()
        n_sets = len(seen.messages[t.commands])
        await play(b, t.frequency, fleet, seen, lambda s: 50.0,
                   PROGRAM["recovery_s"] + PROGRAM["restore_spread_s"] + 3.0)

        # Metered reduction: >= 50 % of the required 200 kW within 5 s, all 400 kW (within
        # 5 %) within 30 s of the full dip.
        to_half = first_at_or_above(fleet.metered, half_at, 0.5 * 200.0)
        to_full = first_at_or_above(fleet.metered, full_at, 0.95 * 400.0)
        assert to_half is not None and to_half <= 5.0, fleet.metered
        assert to_full is not None and to_full <= 30.0, fleet.metered
        sets = seen.messages[t.commands][:n_sets]
        assert {c["action"] for c in sets} == {"SET"}
        assert {c["reason"] for c in sets} == {"FREQUENCY"}
        # One command per station per level: half, then full (the noise-free trace).
        assert len(sets) <= 2 * N

        # Restore: every station released, spread over restore_spread_s, after recovery_s.
        clears = [c for c in seen.messages[t.commands][n_sets:] if c["action"] == "CLEAR"]
        assert sorted(c["station_id"] for c in clears) == fleet.ids
        seen_at = sorted(c["_seen"] for c in clears)
        assert seen_at[0] - recovered_at >= PROGRAM["recovery_s"] - 0.5
        assert seen_at[-1] - seen_at[0] >= PROGRAM["restore_spread_s"] * (N - 1) / N - 1.5

        [record] = await seen.wait(t.frequency_activations, lambda r: len(r) == 1)
        # The record against a hand computation from what was produced and metered.
        assert record["ended_by"] == "RECOVERED"
        assert record["baseline_kw"] == pytest.approx(N * KW, rel=0.01)
        assert record["peak_required_kw"] == pytest.approx(400.0, rel=0.01)
        assert record["delivered_kw"] == pytest.approx(
            max(N * KW - load for _, load in fleet.metered), rel=0.01)
        assert record["nadir_hz"] == pytest.approx(49.50, rel=0.01)
        # Times: the worker samples each second on readings up to ROUND_S old.
        resolution = 1.0 + ROUND_S + 0.5
        assert record["time_to_50_s"] == pytest.approx(to_half, abs=resolution)
        assert record["time_to_100_s"] == pytest.approx(to_full, abs=resolution)
        assert record["timing_met"] is True
        assert record["meter_resolution_s"] is not None
        # `evgrid report --frequency --samples`: the same record, one CSV row per sample.
        found = await read_activations(w.settings, datetime.now(UTC) - timedelta(hours=1),
                                       "Z1")
        out = io.StringIO()
        rows = write_activations(out, found, samples=True)
        assert [a.activation_id for a in found] == [record["activation_id"]]
        assert rows == len(record["samples"]) == len(out.getvalue().splitlines()) - 1


async def test_silent_source_releases_the_zone_and_alerts(freq_worker, kafka_broker):
    w, b = freq_worker, kafka_broker.bootstrap
    t = w.settings.topics
    async with Collector(b, t.commands, t.signal_alerts, t.frequency_activations,
                         t.deadletter) as seen:
        fleet = Fleet(b, t)
        # Bad input first: dead-lettered with its reason, nothing applied.
        await produce(b, t.frequency_programs, [(b"Z1", jdump(
            {**PROGRAM, "full_hz": 49.95}))])
        await produce(b, t.frequency, [(b"NO1", jdump(
            {"area_id": "NO1", "frequency_hz": "49.5", "ts": iso(time.time()),
             "source": "pmu-1"}))])
        letters = await seen.wait(t.deadletter, lambda d: len(d) >= 2)
        assert sorted(d["reason"].split(":")[-1] for d in letters) == [
            "float_type", "impossible_program"]
        await setup_zone(w, seen, fleet)
        await play(b, t.frequency, fleet, seen, lambda s: 49.5, 5.0)
        assert {c["station_id"] for c in seen.messages[t.commands]} == set(fleet.ids)
        n = len(seen.messages[t.commands])
        silent_at = time.time()
        await play(b, t.frequency, fleet, seen, lambda s: None, SILENCE_S + 2.0)
        clears = [c for c in seen.messages[t.commands][n:] if c["action"] == "CLEAR"]
        assert sorted(c["station_id"] for c in clears) == fleet.ids
        assert max(c["_seen"] for c in clears) - silent_at <= SILENCE_S + 1.0
        alerts = await seen.wait(t.signal_alerts, lambda a: len(a) >= 1)
        assert [a["alert_type"] for a in alerts] == ["FREQUENCY_SILENT"]
        [record] = await seen.wait(t.frequency_activations, lambda r: len(r) == 1)
        assert record["ended_by"] == "SILENCE"


async def test_programs_published_before_the_worker_starts_are_read_back(
        kafka_broker, unique_prefix, tmp_path):
    """The programs are configuration: a worker (re)started on an existing log reads them
    back from the beginning, whatever else it reads from the end."""
    b = kafka_broker.bootstrap
    settings = isolated_settings(b, unique_prefix, tmp_path / "data",
                                 frequency_silence_s=SILENCE_S)
    t = settings.topics
    from evgrid.topics import ensure_topics
    await ensure_topics(settings)
    fleet = Fleet(b, t)
    await produce(b, t.frequency_programs, [(b"Z1", jdump(PROGRAM))])
    await produce(b, t.station_zones, [(sid.encode(), jdump({
        "station_id": sid, "zone_id": "Z1", "max_station_kw": 150.0,
        "contract_max_kw": 150.0})) for sid in fleet.ids])
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await w.wait_ready()
        async with Collector(b, t.commands) as seen:
            await setup_zone(w, seen, fleet, publish=False)  # the program read back
            await play(b, t.frequency, fleet, seen, lambda s: 49.5, 3.0)
            sets = await seen.wait(t.commands, lambda c: len(c) >= N)
            assert {c["reason"] for c in sets} == {"FREQUENCY"}
        assert w.alive(), w.log_tail()
    finally:
        w.stop()
