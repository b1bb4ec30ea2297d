"""The record of one frequency activation, as an aggregator shows it to a TSO.

Accumulated sample by sample (`observe`), so it costs a few numbers and a bounded list however
long the activation lasts. The definitions (time to 50 %/100 %, verdicts, resolution, thinning)
are in docs/frequency.md.
"""

from __future__ import annotations

import math

from evgrid.core.frequency.program import FrequencyProgram

#: A record shows at most this many samples.
MAX_SAMPLES = 120
#: Samples kept while an activation runs before the unflagged ones are halved.
_BUFFER = 4 * MAX_SAMPLES
HALF_SHARE, FULL_SHARE = 0.5, 0.95


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _spread(items: list, m: int) -> list:
    """m items of a list, evenly spaced by position, the first included."""
    if m <= 0:
        return []
    if len(items) <= m:
        return list(items)
    if m == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (m - 1))] for i in range(m)]


class ActivationEvidence:
    """The record an aggregator shows a TSO, accumulated per activation."""

    def __init__(self, activation_id: str, program: FrequencyProgram, start_ts: float,
                 baseline_kw: float) -> None:
        self.activation_id = activation_id
        self.program = program
        self.start_ts = float(start_ts)
        self.baseline_kw = float(baseline_kw)
        self.nadir_hz: float | None = None
        self.nadir_ts: float | None = None
        self.peak_required_kw = 0.0
        self.peak_at: float | None = None  # first sample where required reached the peak
        self.delivered_kw = 0.0
        self.time_to_50_s: float | None = None
        self.time_to_100_s: float | None = None
        self.last_required: float | None = None
        self.count = 0
        self.ages: dict[float, int] = {}  # reading age (to 1 ms) -> samples
        self.max_age: float | None = None
        # [t, required_kw, measured_kw, kept]: `kept` marks the first sample, every change of
        # required, and the samples that reached 50 % / 100 %: thinning never drops these.
        self.samples: list[list] = []

    def observe(self, now: float, hz: float | None, required_kw: float, load_kw: float,
                reading_age_s: float) -> None:
        """One sample at `now`: the reduction measured is baseline_kw - load_kw (>= 0); hz (if
        any) updates the nadir; reading_age_s is how old the freshest meter data behind
        load_kw was."""
        measured = max(0.0, self.baseline_kw - load_kw)
        if hz is not None and math.isfinite(hz) and (self.nadir_hz is None or hz < self.nadir_hz):
            self.nadir_hz, self.nadir_ts = hz, now
        self.delivered_kw = max(self.delivered_kw, measured)
        if required_kw > self.peak_required_kw:
            self.peak_required_kw, self.peak_at, self.time_to_100_s = required_kw, now, None
        kept = self.last_required is None or required_kw != self.last_required
        if (self.time_to_50_s is None and required_kw > 0
                and measured >= HALF_SHARE * required_kw):
            self.time_to_50_s, kept = now - self.start_ts, True
        if (self.time_to_100_s is None and self.peak_at is not None
                and measured >= FULL_SHARE * self.peak_required_kw):
            self.time_to_100_s, kept = now - self.peak_at, True
        self.last_required = required_kw
        self.count += 1
        if math.isfinite(reading_age_s):
            age = round(max(0.0, reading_age_s), 3)
            self.ages[age] = self.ages.get(age, 0) + 1
            self.max_age = age if self.max_age is None else max(self.max_age, age)
        self.samples.append([now, required_kw, measured, kept])
        if len(self.samples) > _BUFFER:
            self._compact()

    def finish(self, end_ts: float) -> dict:
        """The record: plain data, every figure rounded to 3 decimals."""
        return self._record(end_ts, end_ts, final=True)

    def snapshot(self, now: float) -> dict:
        """The same figures so far (end_ts None; a verdict still in time is None)."""
        return self._record(None, now, final=False)

    def to_dict(self) -> dict:
        return {
            "activation_id": self.activation_id, "program": self.program.to_dict(),
            "start_ts": self.start_ts, "baseline_kw": self.baseline_kw,
            "nadir_hz": self.nadir_hz, "nadir_ts": self.nadir_ts,
            "peak_required_kw": self.peak_required_kw, "peak_at": self.peak_at,
            "delivered_kw": self.delivered_kw, "time_to_50_s": self.time_to_50_s,
            "time_to_100_s": self.time_to_100_s, "last_required": self.last_required,
            "count": self.count, "ages": [[a, n] for a, n in sorted(self.ages.items())],
            "max_age": self.max_age, "samples": [list(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ActivationEvidence:
        e = cls(d["activation_id"], FrequencyProgram.from_dict(d["program"]), d["start_ts"],
                d["baseline_kw"])
        e.nadir_hz, e.nadir_ts = d["nadir_hz"], d["nadir_ts"]
        e.peak_required_kw, e.peak_at = float(d["peak_required_kw"]), d["peak_at"]
        e.delivered_kw = float(d["delivered_kw"])
        e.time_to_50_s, e.time_to_100_s = d["time_to_50_s"], d["time_to_100_s"]
        e.last_required, e.count = d["last_required"], int(d["count"])
        e.ages = {float(a): int(n) for a, n in d["ages"]}
        e.max_age = d["max_age"]
        e.samples = [[float(t), float(q), float(m), bool(k)] for t, q, m, k in d["samples"]]
        return e

    # -- figures --------------------------------------------------------------------------

    def median_age(self) -> float | None:
        """The median reading age (the mean of the middle two for an even count)."""
        n = sum(self.ages.values())
        if n == 0:
            return None
        wanted = [(n - 1) // 2, n // 2]
        found: list[float] = []
        seen = 0
        for age in sorted(self.ages):
            count = self.ages[age]
            found.extend(age for w in wanted if seen <= w < seen + count)
            seen += count
        return sum(found) / 2

    def _verdict(self, took: float | None, limit: float, now: float, final: bool) -> bool | None:
        if took is not None:
            return took <= limit
        if final or now - self.start_ts > limit:
            return False
        return None

    def _record(self, end_ts: float | None, now: float, final: bool) -> dict:
        p = self.program
        half = self._verdict(self.time_to_50_s, p.half_s, now, final)
        full = self._verdict(self.time_to_100_s, p.full_activation_s, now, final)
        timing = None if half is None or full is None else half and full
        return {
            "activation_id": self.activation_id, "zone_id": p.zone_id, "area_id": p.area_id,
            "product": p.product, "committed_kw": _r(p.committed_kw),
            "baseline_kw": _r(self.baseline_kw), "start_ts": _r(self.start_ts),
            "end_ts": _r(end_ts), "nadir_hz": _r(self.nadir_hz), "nadir_ts": _r(self.nadir_ts),
            "peak_required_kw": _r(self.peak_required_kw), "delivered_kw": _r(self.delivered_kw),
            "time_to_50_s": _r(self.time_to_50_s), "time_to_100_s": _r(self.time_to_100_s),
            "half_activation_s": _r(p.half_s), "full_activation_s": _r(p.full_activation_s),
            "half_met": half, "full_met": full, "timing_met": timing,
            "meter_resolution_s": _r(self.median_age()), "max_reading_age_s": _r(self.max_age),
            "sample_count": self.count,
            "samples": [[_r(t), _r(q), _r(m)] for t, q, m, _ in self._thinned()],
        }

    # -- thinning -------------------------------------------------------------------------

    def _thinned(self) -> list[list]:
        """At most MAX_SAMPLES: the first, the last and every kept sample (a change of
        required, the 50 % and 100 % marks), the rest filled with evenly spaced others. Kept
        samples beyond the limit are themselves evenly thinned (the first and last stay)."""
        s = self.samples
        if len(s) <= MAX_SAMPLES:
            return s
        must = [i for i, x in enumerate(s) if x[3] or i in (0, len(s) - 1)]
        if len(must) >= MAX_SAMPLES:
            chosen = _spread(must, MAX_SAMPLES)
        else:
            others = [i for i in range(len(s)) if not (s[i][3] or i in (0, len(s) - 1))]
            chosen = must + _spread(others, MAX_SAMPLES - len(must))
        return [s[i] for i in sorted(chosen)]

    def _compact(self) -> None:
        """Halves the unmarked samples (every other one goes, the newest stays); when the
        marked ones alone fill the buffer, every other one of those loses its mark."""
        s = self.samples
        marked = [x for x in s[1:-1] if x[3]]
        if len(marked) > _BUFFER // 2:
            for x in marked[::2]:
                x[3] = False
        keep, flip = [], False
        for i, x in enumerate(s):
            if x[3] or i in (0, len(s) - 1):
                keep.append(x)
                continue
            flip = not flip
            if not flip:
                keep.append(x)
        self.samples = keep
