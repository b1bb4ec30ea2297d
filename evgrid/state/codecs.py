"""Typed, versioned codecs for every table: the only place that turns state into bytes.

Each table value is one JSON object `{"v": <version>, ...named fields}` built from the core's
own plain-data form. A value written by a newer evgrid (a version this one does not know) is
refused with an error that says what to do, instead of being half-read into wrong state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from evgrid.core.overload import HysteresisAlarm
from evgrid.core.station import StationState
from evgrid.core.types import StationConfig
from evgrid.core.windows import WindowStat

T = TypeVar("T")


class StateVersionError(RuntimeError):
    """A stored value of a version this evgrid cannot read."""


@dataclass(frozen=True, slots=True)
class VersionedCodec(Generic[T]):
    table: str
    version: int
    to_data: Callable[[T], dict[str, Any]]
    from_data: Callable[[dict[str, Any]], T]

    def dumps(self, value: T) -> bytes:
        # A right-sized copy: orjson's own result keeps a 4 KB block however small the
        # record, and a checkpoint queues tens of thousands of them.
        return memoryview(orjson.dumps({"v": self.version, **self.to_data(value)})).tobytes()

    def loads(self, raw: bytes) -> T:
        data = orjson.loads(raw)
        version = data.get("v") if isinstance(data, dict) else None
        if version != self.version:
            raise StateVersionError(
                f"table {self.table!r} holds a value of version {version!r}; this evgrid reads "
                f"version {self.version}. Run the evgrid version that wrote it, or remove the "
                "worker's data dir and the table's changelog topic to rebuild it from the inputs."
            )
        return self.from_data(data)


@dataclass(slots=True)
class StationCheckpoint:
    """What a station's checkpoint holds: latest readings, open windows, contract alarm."""

    state: StationState
    alarm: HysteresisAlarm


@dataclass(slots=True)
class ZoneControlRecord:
    """A zone's durable control state: DR controller and zone overload alarm. (Its members
    are rows of their own in `zone-stations`: a join or leave writes one small row, not a
    record that grows with the zone.)"""

    controller: dict[str, Any]  # ZoneController.to_dict(): the core's own named layout
    alarm: HysteresisAlarm


STATION_CHECKPOINT: VersionedCodec[StationCheckpoint] = VersionedCodec(
    "station-state",
    1,
    lambda c: {"state": c.state.to_dict(), "alarm": c.alarm.to_dict()},
    lambda d: StationCheckpoint(
        StationState.from_dict(d["state"]), HysteresisAlarm.from_dict(d["alarm"])
    ),
)

STATION_CONFIG: VersionedCodec[StationConfig] = VersionedCodec(
    "station-config", 1, StationConfig.to_dict,
    lambda d: StationConfig.from_dict({k: v for k, v in d.items() if k != "v"}),
)

ZONE_CONTROL: VersionedCodec[ZoneControlRecord] = VersionedCodec(
    "zone-control",
    1,
    lambda z: {"controller": z.controller, "alarm": z.alarm.to_dict()},
    lambda d: ZoneControlRecord(d["controller"], HysteresisAlarm.from_dict(d["alarm"])),
)

WINDOW_STATS: VersionedCodec[list[WindowStat]] = VersionedCodec(
    "station-windows",
    1,
    lambda stats: {"windows": [w.to_dict() for w in stats]},
    lambda d: [WindowStat(**w) for w in d["windows"]],
)
