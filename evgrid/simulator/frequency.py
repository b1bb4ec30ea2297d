"""The simulator's frequency source and programs: a trace (`t_s,frequency_hz` rows) played as
`grid.frequency` measurements at a fixed rate, and a frequency program for every zone.

Parsing and interpolation are pure (times are handed in); `play_frequency` is the thin loop
that publishes. The source keeps sending after the trace ends (its last value) and before it
starts (its first value): a source that fell silent would disarm the zones' response.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from evgrid import codec
from evgrid.models.frequency import FrequencyProgramRecord
from evgrid.settings import KafkaSettings
from evgrid.simulator.fleet import Fleet
from evgrid.timeutil import iso

Trace = list[tuple[float, float]]  # (seconds from the trace's start, Hz), times increasing

#: The demo's loss-of-infeed event: nominal for a second, down to 49.6 Hz over 4 s, back to
#: 50.0 Hz over a minute.
DIP: Trace = [(0.0, 50.0), (1.0, 50.0), (5.0, 49.6), (65.0, 50.0)]


def parse_trace(text: str) -> Trace:
    """CSV rows `t_s,frequency_hz` (a header row naming them is allowed, blank lines and
    `#` comments are skipped); times must increase strictly, every value be a finite number."""
    trace: Trace = []
    rows = csv.reader(io.StringIO(text))
    for line, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if line == 1 and cells[:2] == ["t_s", "frequency_hz"]:
            continue
        if len(cells) != 2:
            raise ValueError(f"line {line}: want t_s,frequency_hz, got {row!r}")
        try:
            t, hz = float(cells[0]), float(cells[1])
        except ValueError:
            raise ValueError(f"line {line}: not numbers: {row!r}") from None
        if not (math.isfinite(t) and math.isfinite(hz)) or t < 0:
            raise ValueError(f"line {line}: t_s must be ≥ 0 and both finite: {row!r}")
        if not 40.0 <= hz <= 70.0:
            raise ValueError(f"line {line}: {hz} Hz is outside 40–70 Hz")
        if trace and t <= trace[-1][0]:
            raise ValueError(f"line {line}: t_s {t} does not increase")
        trace.append((t, hz))
    if not trace:
        raise ValueError("the trace has no rows")
    return trace


def frequency_at(trace: Sequence[tuple[float, float]], t: float) -> float:
    """The trace at `t` seconds: linear between its points, its first value before it
    starts and its last after it ends."""
    times = [p[0] for p in trace]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return trace[0][1]
    if i == len(trace):
        return trace[-1][1]
    (t0, f0), (t1, f1) = trace[i - 1], trace[i]
    return f0 + (f1 - f0) * (t - t0) / (t1 - t0)


@dataclass(frozen=True)
class ProgramSpec:
    """`--frequency-program`: one program applied to every zone, its committed kW a share of
    the zone's load when it is published."""

    committed_pct: float
    fields: dict

    @classmethod
    def parse(cls, text: str) -> ProgramSpec:
        """`committed_pct=30,product=linear,start_hz=49.9,full_hz=49.5[,any program field]`;
        `committed_kw=` instead of `committed_pct=` sets the same kW for every zone."""
        try:
            parts = dict(p.split("=", 1) for p in text.split(",") if p.strip())
        except ValueError:
            raise ValueError(f"bad --frequency-program {text!r}: want key=value,...") from None
        parts = {k.strip(): v.strip() for k, v in parts.items()}
        pct = parts.pop("committed_pct", None)
        fields: dict = {"product": parts.pop("product", "linear")}
        for key, value in parts.items():
            if key not in FrequencyProgramRecord.model_fields or key in ("zone_id", "area_id"):
                raise ValueError(f"bad --frequency-program {text!r}: unknown field {key!r}")
            try:
                fields[key] = float(value)
            except ValueError:
                raise ValueError(f"bad --frequency-program {text!r}: {key}={value!r} is not "
                                 "a number") from None
        if (pct is None) == ("committed_kw" not in fields):
            raise ValueError(f"bad --frequency-program {text!r}: give committed_pct or "
                             "committed_kw (one of them)")
        spec = cls(float(pct) if pct is not None else 0.0, fields)
        spec.record("Z-check", "A-check", 100.0)  # an impossible program fails here, whole
        return spec

    def record(self, zone_id: str, area_id: str, zone_load_kw: float) -> dict:
        """The zone's program record (validated: raises ValueError with every reason)."""
        fields = dict(self.fields)
        if "committed_kw" not in fields:
            # A zone idle at publication still offers something: at least 1 kW.
            fields["committed_kw"] = max(1.0, round(zone_load_kw * self.committed_pct / 100, 1))
        record = {"zone_id": zone_id, "area_id": area_id, **fields}
        FrequencyProgramRecord.model_validate(record)
        return record


def zone_demand_kw(fleet: Fleet, zone_id: str) -> float:
    """What a zone's cars would draw now with no limit: the base of `committed_pct`."""
    return sum(c.wanted_kw() for st in fleet.stations.values() if st.zone_id == zone_id
               for c in st.connectors)


@dataclass(frozen=True)
class FrequencyPlan:
    """What `evgrid simulate` plays: a trace (shifted to start `at_s` into the run) at
    `rate_hz` for one area, and optionally a program for every zone of the fleet."""

    trace: Trace
    area_id: str = "A1"
    rate_hz: float = 10.0
    at_s: float = 0.0
    program: ProgramSpec | None = None


async def run_frequency(settings: KafkaSettings, fleet: Fleet, plan: FrequencyPlan,
                        duration_s: float, started: float,
                        sent: Callable[[float, float], None] | None = None) -> int:
    """Publish the programs (if any), then play the trace until `duration_s` after `started`;
    returns the measurements sent."""
    t = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0,
                                **settings.kafka_client_kwargs())
    await producer.start()
    try:
        if plan.program is not None:
            for zone_id in fleet.zone_ids:
                record = plan.program.record(zone_id, plan.area_id,
                                             zone_demand_kw(fleet, zone_id))
                await producer.send(t.frequency_programs, codec.dumps(record),
                                    key=zone_id.encode())
            await producer.flush()
        return await play_frequency(producer, t.frequency, plan.trace, area_id=plan.area_id,
                                    rate_hz=plan.rate_hz, at_s=plan.at_s,
                                    duration_s=duration_s, started=started, sent=sent)
    finally:
        await producer.stop()


async def play_frequency(producer: AIOKafkaProducer, topic: str, trace: Trace, *,
                         area_id: str, rate_hz: float, at_s: float, duration_s: float,
                         started: float, source: str = "sim",
                         sent: Callable[[float, float], None] | None = None) -> int:
    """Send the trace (shifted by `at_s` from `started`, a `time.time()`) at `rate_hz` until
    `duration_s` after `started`; each measurement is stamped with the wall time it is sent.
    A source that falls behind skips samples, never bursts them."""
    step = 1.0 / rate_hz
    k = count = 0
    while (elapsed := time.time() - started) < duration_s:
        due = k * step
        if due > elapsed:
            await asyncio.sleep(min(due - elapsed, duration_s - elapsed))
            continue
        k = max(k + 1, math.floor(elapsed / step) + 1)
        now = time.time()
        hz = round(frequency_at(trace, now - started - at_s), 3)
        await producer.send(topic, codec.dumps({
            "area_id": area_id, "frequency_hz": hz, "ts": iso(now), "source": source,
        }), key=area_id.encode())
        count += 1
        if sent is not None:
            sent(now - started, hz)
    await producer.flush()
    return count
