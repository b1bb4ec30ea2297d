"""Recovery: kill -9 the worker while readings arrive at a steady rate, start it again on the
same data directory (as a supervisor would), and time how long until it is ready, until it
applies readings again, and until its lag is back under a few seconds of input."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from evgrid.bench.harness import Bench, LagProbe, Phase, say
from evgrid.bench.load import produce_mappings, stream_readings
from evgrid.process import WorkerProcess
from evgrid.topics import ensure_topics

#: "Caught up" means the worker's own lag gauge under this many seconds of offered input.
LAG_THRESHOLD_S = 5.0
#: How often the restarted worker is looked at while it recovers (brief: a few seconds only).
WATCH_S = 0.25
HOLD_S = 1.0


async def ready(worker: WorkerProcess) -> bool:
    try:
        status, body = await worker.get("/health")
    except (aiohttp.ClientError, OSError):
        return False
    return status == 200 and body.get("active_partitions", 0) > 0 and not body.get(
        "rebalancing", True)


async def observe(bench: Bench, worker: WorkerProcess) -> tuple[float, float | None]:
    """(readings taken, lag) of a worker that may not be listening yet: (0, None) then."""
    try:
        return await bench.observe([worker])
    except (aiohttp.ClientError, OSError):
        return 0.0, None


async def run(bench: Bench) -> dict[str, Any]:
    s = bench.sizes
    settings = bench.settings("rec")
    await ensure_topics(settings)
    await produce_mappings(settings, s.recovery_stations, s.zones)
    first = await bench.worker(settings, "rec-1")
    started = [first]
    threshold = int(s.recovery_rate * LAG_THRESHOLD_S)
    stop = asyncio.Event()
    load = asyncio.create_task(stream_readings(settings, s.recovery_rate, s.recovery_stations,
                                               stop))
    out: dict[str, Any] = {"rate": s.recovery_rate, "lag_threshold": threshold,
                           "session_timeout_s": settings.broker_session_timeout_s}
    try:
        async with LagProbe(settings) as probe:
            say(f"  {s.recovery_rate:,.0f} readings/s for {s.recovery_warmup_s:.0f} s, "
                "then kill -9")
            await asyncio.sleep(s.recovery_warmup_s)
            out["applied_before_kill"], out["lag_before_kill"] = await bench.observe([first])
            out["committed_lag_before_kill"] = await probe.lag()
            killed = time.monotonic()
            first.kill()
            second = bench.spawn(settings, "rec-2")
            started.append(second)
            marks: dict[str, float] = {}
            lag_now = out["lag_before_kill"]
            next_print = 10.0
            below_since: float | None = None
            while time.monotonic() - killed < s.recovery_timeout_s:
                now = time.monotonic() - killed
                if now >= next_print:
                    say(f"    {now:.0f} s after the kill: {', '.join(marks) or 'starting'}; "
                        f"lag {lag_now:,.0f}")
                    next_print += 10.0
                if "ready_s" not in marks and await ready(second):
                    marks["ready_s"] = now
                taken, lag = await observe(bench, second)
                if "first_applied_s" not in marks and taken > 0:
                    marks["first_applied_s"] = now
                if "first_applied_s" in marks and lag is not None:
                    # Under the bound for a whole second: a fresh worker's gauge covers only
                    # the partitions its first batches came from.
                    lag_now = lag
                    below_since = (below_since or now) if lag_now < threshold else None
                    if below_since is not None and now - below_since >= HOLD_S:
                        marks["caught_up_s"] = below_since
                        break
                await asyncio.sleep(WATCH_S)
            out.update(marks, lag_end=lag_now, committed_lag_end=await probe.lag())
    finally:
        stop.set()
        offered = await load
        for worker in started:
            worker.terminate()
    out["offered_rate"] = offered["offered_rate"]
    say("    ready {} s, applying {} s, lag < {:,} after {} s".format(
        *(f"{out[k]:.1f}" if k in out else "n/a" for k in ("ready_s", "first_applied_s")),
        threshold, f"{out['caught_up_s']:.1f}" if "caught_up_s" in out else
        f"(not within {s.recovery_timeout_s:.0f}; lag {out['lag_end']:,.0f})"))
    return out


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    def secs(key: str) -> str:
        return f"{r[key]:.1f} s" if key in r else "not reached"

    caught = secs("caught_up_s") if "caught_up_s" in r else (
        f"not within the run (lag {r['lag_end']:,.0f} at the end)")
    return [
        (f"after kill -9 at {r['offered_rate']:,.0f} readings/s offered: ready again",
         secs("ready_s")),
        ("  … applying readings again", secs("first_applied_s")),
        (f"  … lag under {r['lag_threshold']:,} ({LAG_THRESHOLD_S:.0f} s of input)", caught),
        ("  lag when killed (committed) / session timeout",
         f"{r['lag_before_kill']:,.0f} ({r['committed_lag_before_kill']:,}) / "
         f"{r['session_timeout_s']:.0f} s"),
    ]


PHASE = Phase("recovery", "kill -9 under load: time to ready, to applying, to lag caught up",
              run, rows)
