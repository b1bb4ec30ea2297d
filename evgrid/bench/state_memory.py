"""Bytes of station-side state per connector, measured with tracemalloc.

    python -m evgrid.bench.state_memory [connectors] [--connectors-per-station N]

Builds the state the station side holds — StationState per station: each connector's latest
reading, its open windows, the last closed window stats, the station's clock — by feeding
every connector a reading a minute for 8 minutes (readings built fresh, as the decoder builds
them), then prints the traced bytes per connector. A figure, not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from evgrid.core.station import StationState
from evgrid.core.types import ConnectorReading

T0 = 1_800_000_000.0
TYPES = ("CCS", "Type2", "CHAdeMO", "Type2")


def apply(state: StationState, reading: ConnectorReading, arrival_ts: float) -> None:
    try:
        state.apply(reading, arrival_ts)
    except TypeError:  # an earlier StationState (no arrival time), to measure "before"
        state.apply(reading)


def build(connectors: int, per_station: int, readings: int, step_s: float) -> dict:
    stations: dict[str, StationState] = {}
    n_stations = connectors // per_station
    for k in range(readings):
        for s in range(n_stations):
            station_id = f"ST{s:07d}"
            state = stations.get(station_id)
            if state is None:
                state = stations[station_id] = StationState()
            for c in range(1, per_station + 1):
                ts = T0 + k * step_s + (s % 29) + c * 0.25
                reading = ConnectorReading(
                    c, "".join(TYPES[(c - 1) % 4]), 7.0 + (s % 40) + 0.1 * k,
                    ts, f"session-{s}-{c}", 16.0 + 0.01 * k, 230.0 + 0.1 * c,
                    1.5 + 0.05 * k, None,
                )
                apply(state, reading, ts + 0.4)
    return stations


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("connectors", type=int, nargs="?", default=100_000)
    p.add_argument("--connectors-per-station", type=int, default=4)
    p.add_argument("--readings", type=int, default=8, help="per connector, a minute apart")
    args = p.parse_args(argv)
    print(f"building {args.connectors:,} connectors, {args.readings} readings each ...",
          flush=True)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    stations = build(args.connectors, args.connectors_per_station, args.readings, 60.0)
    elapsed = time.perf_counter() - started
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    n = len(stations) * args.connectors_per_station
    print(f"{n:,} connectors in {len(stations):,} stations: {used / 1e6:.1f} MB traced, "
          f"{used / n:.0f} bytes per connector (built in {elapsed:.1f} s under tracemalloc)")


if __name__ == "__main__":
    main()
