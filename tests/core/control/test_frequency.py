"""A zone's frequency response inside its controller, pure: a dip, the fleet's answer, the
restore, silence, noise, and how it combines with a DR event."""

from __future__ import annotations

import orjson
import pytest

from evgrid.core.control import ZoneController
from evgrid.core.frequency.program import LINEAR, FrequencyProgram
from evgrid.core.lifecycle import DRSignal
from evgrid.core.types import ConnectorReading, StationConfig, StationRow, Tunables

T0 = 1_800_000_000.0
TUN = Tunables(frequency_silence_s=3.0)
N, KW = 20, 50.0  # 20 DC stations at 50 kW: 1,000 kW
FCRD = FrequencyProgram(zone_id="Z1", area_id="NO1", product=LINEAR, committed_kw=400.0,
                        start_hz=49.9, full_hz=49.5, full_activation_s=30.0,
                        half_activation_s=5.0, recovery_s=10.0, restore_spread_s=60.0)


class Fleet:
    """Stations that apply a limit `delay_s` after they receive it and report every second."""

    def __init__(self, delay_s: float = 2.0, program: FrequencyProgram = FCRD) -> None:
        self.delay_s = delay_s
        self.limit: dict[str, float | None] = {f"S{i:02d}": None for i in range(N)}
        self.pending: list[tuple[float, str, float | None]] = []
        self.ctl = ZoneController("Z1", TUN)
        self.ctl.set_frequency_program(program, None, T0 - 100)
        self.commands: list = []
        self.activations: list[dict] = []
        self.alerts: list[dict] = []

    def load(self, station_id: str) -> float:
        limit = self.limit[station_id]
        return KW if limit is None else min(KW, limit)

    def rows(self, now: float) -> dict[str, StationRow]:
        for _at, sid, limit in [p for p in self.pending if p[0] <= now]:
            self.limit[sid] = limit
        self.pending = [p for p in self.pending if p[0] > now]
        return {sid: StationRow(StationConfig(sid, "Z1", 150.0, 150.0),
                                (ConnectorReading(1, "CCS", self.load(sid), now - 0.5, "s",
                                                  arrival_ts=now - 0.5),))
                for sid in self.limit}

    def take(self, d, now: float) -> None:
        for c in d.commands:
            self.commands.append((now, c))
            self.pending.append((now + self.delay_s, c.station_id, c.target_power_kw))
        self.activations.extend(d.activations)
        self.alerts.extend(d.signal_alerts)

    def run(self, trace, start: float, end: float, rate_hz: float = 10.0) -> None:
        """`trace(t)` -> Hz (None: silent) from `start` to `end` s after T0, measurements at
        `rate_hz` and controller steps whenever due."""
        steps = int((end - start) * rate_hz)
        for i in range(steps):
            now = T0 + start + i / rate_hz
            hz = trace(now - T0)
            if hz is not None:
                self.take(self.ctl.on_frequency(hz, now, self.rows(now), now), now)
            due = self.ctl.next_deadline(now)
            if due is not None and due <= now:
                self.take(self.ctl.on_tick(self.rows(now), now), now)

    def zone_load(self) -> float:
        return sum(self.load(s) for s in self.limit)


def dip(t: float) -> float:
    """50 Hz; 49.70 (half of FCRD) from t=2 s; 49.50 (full) from 20 s; back at 50 from 50 s."""
    if t < 2.0:
        return 50.0
    if t < 20.0:
        return 49.70
    if t < 50.0:
        return 49.50
    return 50.0


def test_dip_sheds_half_then_full_then_restores_spread() -> None:
    f = Fleet()
    f.run(dip, 0.0, 19.0)
    sets = [(t, c) for t, c in f.commands if c.action == "SET"]
    assert len(sets) == N  # one command per station for the half activation, no more
    assert {c.reason for _, c in sets} == {"FREQUENCY"}
    assert {c.priority for _, c in sets} == {1}
    assert sum(c.target_power_kw for _, c in sets) == pytest.approx(1000.0 - 200.0, abs=0.1)
    assert f.zone_load() == pytest.approx(800.0, abs=0.1)
    f.run(dip, 19.0, 49.0)
    assert f.zone_load() == pytest.approx(600.0, abs=0.1)  # full: 400 kW shed
    f.run(dip, 49.0, 150.0)
    clears = [(t, c) for t, c in f.commands if c.action == "CLEAR"]
    assert len(clears) == N and all(v is None for v in f.limit.values())
    times = sorted(t for t, _ in clears)
    # recovered at 50 s, restore after recovery_s (10 s), spread over 60 s, never all at once
    assert times[0] >= T0 + 60.0 - 0.01 and times[-1] <= T0 + 60.0 + 60.0 + 1.01
    assert times[-1] - times[0] >= 60.0 * (N - 1) / N - 1.0
    assert len(set(times)) >= N // 2
    [record] = f.activations
    assert record["ended_by"] == "RECOVERED"
    assert record["peak_required_kw"] == pytest.approx(400.0)
    assert record["nadir_hz"] == pytest.approx(49.5)
    assert record["time_to_50_s"] <= 5.0 and record["half_met"]
    assert record["time_to_100_s"] <= 30.0 and record["full_met"]
    assert record["timing_met"] is True


def test_noise_inside_the_droop_commands_once_per_step() -> None:
    """10 Hz around 49.95 Hz on a Continental-FCR-like program (25 % activation): noise of
    ±3 mHz does not re-command stations per sample."""
    fcr = FrequencyProgram(zone_id="Z1", area_id="CE", product=LINEAR, committed_kw=400.0,
                           start_hz=50.0, full_hz=49.8, deadband_hz=0.01)
    f = Fleet(program=fcr)
    noise = [0.003, -0.002, 0.001, -0.003, 0.002, 0.0, -0.001, 0.003, -0.002, 0.001]
    f.run(lambda t: 49.95 + noise[int(t * 10) % 10], 0.0, 60.0)
    per_station: dict[str, int] = {}
    for _, c in f.commands:
        per_station[c.station_id] = per_station.get(c.station_id, 0) + 1
    assert per_station and max(per_station.values()) <= 2, per_station


def test_silence_releases_the_zone_and_alerts() -> None:
    f = Fleet()
    f.run(lambda t: 49.5 if t < 10.0 else None, 0.0, 10.0)
    assert f.zone_load() == pytest.approx(600.0, abs=0.1)
    f.run(lambda t: None, 10.0, 10.0 + TUN.frequency_silence_s + 1.0)
    clears = [t for t, c in f.commands if c.action == "CLEAR"]
    assert len(clears) == N
    assert max(clears) <= T0 + 10.0 + TUN.frequency_silence_s + 0.2
    [alert] = f.alerts
    assert alert["alert_type"] == "FREQUENCY_SILENT"
    [record] = f.activations
    assert record["ended_by"] == "SILENCE"


def test_lowest_cap_wins_against_a_dr_event() -> None:
    f = Fleet()
    rows = f.rows(T0)
    # A DR cap of 700 kW: below the frequency's half activation (800), above its full (600).
    sig = DRSignal("DR1", "Z1", "CURTAIL", None, T0, T0 + 3600, 2, T0, cap_kw=700.0)
    f.take(f.ctl.on_signal(sig, rows, T0), T0)
    f.run(dip, 0.0, 19.0)
    last = {c.station_id: c for _, c in f.commands}
    assert {c.signal_id for c in last.values()} == {"DR1"}
    assert sum(c.target_power_kw for c in last.values()) == pytest.approx(700.0, abs=0.1)
    f.run(dip, 19.0, 30.0)
    last = {c.station_id: c for _, c in f.commands}
    assert {c.reason for c in last.values()} == {"FREQUENCY"}
    assert sum(c.target_power_kw for c in last.values()) == pytest.approx(600.0, abs=0.1)


def test_state_round_trips_mid_activation() -> None:
    a, b = Fleet(), Fleet()
    a.run(dip, 0.0, 25.0)
    b.run(dip, 0.0, 25.0)
    state = orjson.loads(orjson.dumps(b.ctl.to_dict()))
    b.ctl = ZoneController.from_dict(state, TUN)
    a.run(dip, 25.0, 130.0)
    b.run(dip, 25.0, 130.0)
    assert [(t, c.command_id) for t, c in a.commands] == \
        [(t, c.command_id) for t, c in b.commands]
    assert a.activations == b.activations


def test_removed_program_releases_and_ends_the_record() -> None:
    f = Fleet()
    f.run(dip, 0.0, 10.0)
    now = T0 + 10.0
    f.take(f.ctl.set_frequency_program(None, f.rows(now), now), now)
    assert sum(1 for _, c in f.commands if c.action == "CLEAR") == N
    f.take(f.ctl.on_tick(f.rows(now + 1), now + 1), now + 1)
    [record] = f.activations
    assert record["ended_by"] == "PROGRAM"
