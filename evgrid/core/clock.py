"""Chargers' clocks: future stamps, clock resets, each station's measured offset, skew alerts.

Chargers' clocks are wrong more often than not. The rules, as the core applies them:

* **Future stamps.** A reading whose `event_ts` is more than `future_tolerance_s` (60 s) ahead
  of its arrival is bad input (`event_ts_in_future`): `in_future` says so, the agent
  dead-letters it, and it never becomes state — so one such reading cannot freeze a connector.
* **Arrival time** is when evgrid heard the reading. Pass the Kafka record's timestamp (the
  broker's append time, or the gateway's send time): unlike the worker's clock it is the same on
  a redelivery or a replay, so a replayed partition rebuilds the same state. Liveness and
  staleness are judged by it, so a charger hours behind still counts at its real load.
* **Order.** `event_ts` orders a connector's readings; an older or equal one changes nothing —
  except a **clock reset**: a reading whose `event_ts` is older than the held one by more than
  the tolerance *and* that arrived more than the tolerance after it is taken as the charger's
  clock having jumped back (a reboot), not as a stale delivery. A connector is therefore frozen
  for at most the tolerance after its clock jumps back, and a redelivered reading (same
  arrival time) is never mistaken for a reset.
* **Offset** = arrival − event time, per station: the median of the last `SAMPLES` readings
  (future-stamped ones included, so a charger whose clock runs ahead — all its readings
  rejected — still shows its offset and alerts). One bad stamp moves the median by nothing.
* **Windows** place a reading at `event_ts + correction`. The correction is 0 while the offset
  is within the allowed lateness, and the measured offset once it exceeds it (off again under
  half of it; re-measured only when the offset moves by more than a quarter of it, so a
  connector's placed times do not jitter out of order). A clock reset restarts the estimate.
* **Skew alert**: one `CLOCK_SKEW` when |offset| exceeds `clock_skew_alert_s` (300 s), one
  `CLOCK_SKEW_CLEARED` when it is back under (with the overload alarms' hysteresis); judged
  once the estimate has 3 samples, so one wild stamp among the first never alerts.
"""

from __future__ import annotations

from array import array

from evgrid.core.overload import RAISED, HysteresisAlarm
from evgrid.core.types import DEFAULTS

#: Dead-letter reason for a reading stamped too far ahead of its arrival.
FUTURE_REASON = "event_ts_in_future"
CLOCK_SKEW = "CLOCK_SKEW"


def in_future(event_ts: float, arrival_ts: float, tolerance_s: float) -> bool:
    """True when the reading claims a time more than `tolerance_s` after it arrived."""
    return event_ts - arrival_ts > tolerance_s


def is_clock_reset(
    held_event_ts: float, held_arrival_ts: float, event_ts: float, arrival_ts: float,
    tolerance_s: float,
) -> bool:
    """An older-stamped reading that is nevertheless new: the charger's clock jumped back."""
    return held_event_ts - event_ts > tolerance_s and arrival_ts - held_arrival_ts > tolerance_s


class StationClock:
    """One station's clock as evgrid measures it: a fixed ring of recent offsets, their median,
    the correction windows use, and the skew alarm (created on first use)."""

    SAMPLES = 15
    #: Samples before the offset may raise an alert: one wild stamp among the first readings
    #: must not alert (nor clear) on its own.
    MIN_SAMPLES_TO_ALERT = 3

    __slots__ = ("_next", "_samples", "alarm", "correction_s", "offset_s")

    def __init__(self) -> None:
        self._samples = array("d")
        self._next = 0  # ring position once full
        self.offset_s: float | None = None
        self.correction_s = 0.0
        self.alarm: HysteresisAlarm | None = None

    def add(self, arrival_ts: float, event_ts: float, allowed_lateness_s: float) -> None:
        """Take one reading's offset; updates the median and the windows' correction."""
        sample = arrival_ts - event_ts
        samples = self._samples
        if len(samples) < self.SAMPLES:
            samples.append(sample)
        else:
            samples[self._next] = sample
            self._next = (self._next + 1) % self.SAMPLES
        ordered = sorted(samples)
        offset = ordered[len(ordered) // 2]
        self.offset_s = offset
        size = abs(offset)
        if self.correction_s == 0.0:
            if size > allowed_lateness_s:
                self.correction_s = offset
        elif size <= allowed_lateness_s / 2:
            self.correction_s = 0.0
        elif abs(offset - self.correction_s) > allowed_lateness_s / 4:
            self.correction_s = offset

    def restart(self) -> None:
        """Forget the estimate (the clock was reset); the alarm keeps its episode."""
        self._samples = array("d")
        self._next = 0
        self.offset_s = None
        self.correction_s = 0.0

    def place(self, event_ts: float) -> float:
        """Where a reading stamped `event_ts` belongs on the windows' time line."""
        # no correction: the reading's own float, not a new one held by the windows
        return event_ts if self.correction_s == 0.0 else event_ts + self.correction_s

    def skew_alert(
        self, station_id: str, now: float, limit_s: float,
        hysteresis_pct: float = DEFAULTS.overload_hysteresis_pct
    ) -> dict | None:
        """`alerts.stations` fields on an episode edge of |offset| against `limit_s`
        (CLOCK_SKEW / CLOCK_SKEW_CLEARED), else None. Call after readings and on a timer."""
        if len(self._samples) < self.MIN_SAMPLES_TO_ALERT:
            return None
        size = abs(self.offset_s) if self.offset_s is not None else 0.0
        if self.alarm is None:
            if size <= limit_s:
                return None
            self.alarm = HysteresisAlarm(hysteresis_pct=hysteresis_pct)
        edge = self.alarm.update(size, limit_s, now)
        if edge is None:
            return None
        return {
            "alert_type": CLOCK_SKEW if edge == RAISED else f"{CLOCK_SKEW}_CLEARED",
            "station_id": station_id,
            "clock_offset_s": round(self.offset_s or 0.0, 3),
            "clock_skew_alert_s": limit_s,
            "detected_at": now,
        }

    def to_dict(self) -> dict:
        # samples oldest first, so the ring restarts at position 0 after a load
        n = len(self._samples)
        samples = list(self._samples[self._next:]) + list(self._samples[: self._next]) if (
            n == self.SAMPLES) else list(self._samples)
        return {
            "offset_samples_s": samples,
            "correction_s": self.correction_s,
            "skew_alarm": self.alarm.to_dict() if self.alarm is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StationClock:
        c = cls()
        c._samples = array("d", d["offset_samples_s"][-cls.SAMPLES:])
        if c._samples:
            ordered = sorted(c._samples)
            c.offset_s = ordered[len(ordered) // 2]
        c.correction_s = d["correction_s"]
        if d.get("skew_alarm") is not None:
            c.alarm = HysteresisAlarm.from_dict(d["skew_alarm"])
        return c
