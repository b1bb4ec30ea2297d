"""Reliability: fuzzed input on all three input topics. Every message ends in state or in the
dead-letter topic, the worker never dies, and its memory stays flat over 100,000 bad ones.

Hypothesis generates the messages (mutations of valid ones, random JSON, raw bytes); the
worker's own codec, run here in-process, says which must be dead-lettered, and the test checks
that exactly those offsets — no more, no fewer — reached `evgrid.deadletter`."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evgrid import codec
from evgrid.models import DemandResponseSignal, MeterValue, StationZone
from tests.chaos.accounting import SAME_TS, connector_times
from tests.chaos.report import ChaosRow, record
from tests.integration.harness import WorkerProcess, drain, isolated_settings
from tests.integration.test_dr_loop import dr, mapping, meter

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

MAX_BYTES = 1_000_000
ROUNDS = 4
SIDS = [f"F{i}" for i in range(12)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)
huge = st.sampled_from([10**30, -(10**30), 2**64, 1e308, -1e308, float("nan"), float("inf"),
                        float("-inf")])


def valid_base(kind: str, sid: str, n: int) -> dict:
    now = time.time()
    if kind == "meter":
        return meter(sid, float(n % 150), now - (n % 50))
    if kind == "zone":
        return mapping(sid, f"FZ{n % 3}")
    return dr(f"FDR-{n}", f"FZ{n % 3}", "CURTAIL", 5.0 + n % 20, now + 3600, now + 7200)


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes | None, bytes | None]:
    """(kind, key, value): mostly mutations of a valid message, some pure noise."""
    kind = draw(st.sampled_from(["meter", "zone", "dr"]))
    sid = draw(st.sampled_from(SIDS))
    body = valid_base(kind, sid, draw(st.integers(0, 10_000)))
    key: bytes | None = (sid if kind != "dr" else body["zone_id"]).encode()
    how = draw(st.sampled_from(["valid", "drop", "retype", "huge", "nested", "utf8", "bytes",
                                "empty_key", "not_object", "empty"]))
    if how == "drop":
        body.pop(draw(st.sampled_from(sorted(body))))
    elif how == "retype":
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
    elif how == "huge":
        numeric = [k for k, v in body.items() if isinstance(v, int | float)]
        body[draw(st.sampled_from(numeric))] = draw(huge)
    elif how == "nested":
        depth = draw(st.integers(2, 5000))
        return kind, key, b'{"x": ' + b"[" * depth + b"]" * depth + b"}"
    elif how == "utf8":
        raw = json.dumps(body).encode()
        cut = draw(st.integers(1, len(raw) - 1))
        return kind, key, raw[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0"
                                                            b"\x80"])) + raw[cut:]
    elif how == "bytes":
        return kind, key, draw(st.binary(min_size=1, max_size=64))
    elif how == "empty_key":  # (the broker itself refuses keyless messages on a compacted topic)
        key = draw(st.sampled_from([b""] if kind == "zone" else [b"", None]))
    elif how == "not_object":
        return kind, key, json.dumps(draw(json_values)).encode()
    elif how == "empty":
        return kind, draw(st.sampled_from([key, b""])), draw(st.sampled_from([None, b""]))
    return kind, key, json.dumps(body).encode()  # stdlib: NaN, Infinity and 10**30 as written


def generate(n: int) -> list[tuple[str, bytes | None, bytes | None]]:
    out: list[tuple[str, bytes | None, bytes | None]] = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(messages())
    def collect(message: tuple[str, bytes | None, bytes | None]) -> None:
        out.append(message)

    collect()
    return out


def one_megabyte() -> list[tuple[str, bytes | None, bytes | None]]:
    """Values around the size limit: just under it (valid), just over and far over."""
    base = json.dumps(meter("F0", 10.0, time.time() - 30)).encode()[:-1]
    out = []
    for size in (MAX_BYTES - 10, MAX_BYTES + 1, 1_048_576, 1_500_000):
        pad = size - len(base) - len(b', "pad": ""}')
        out.append(("meter", b"F0", base + b', "pad": "' + b"x" * pad + b'"}'))
    return out


MODELS = {"meter": MeterValue, "zone": StationZone, "dr": DemandResponseSignal}


def rejected(kind: str, key: bytes | None, value: bytes | None) -> bool:
    """What the worker must dead-letter, by the codec's rules (unit-tested on their own)."""
    if kind == "zone" and not value:
        return not key  # a tombstone needs its key
    try:
        codec.decode(MODELS[kind], value, MAX_BYTES)
    except codec.DecodeError:
        return True
    return False


async def produce_all(bootstrap: str, topics: dict[str, str],
                      batch: list[tuple[str, bytes | None, bytes | None]]) -> list[tuple]:
    """Produce, returning (topic, partition, offset) of each message in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                                max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topics[k], key=key, value=value)
                   for k, key, value in batch]
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.topic, m.partition, m.offset) for m in metas]


async def wait_metric(worker: WorkerProcess, name: str, at_least: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        assert worker.alive(), worker.log_tail()
        value = await worker.metric(name)
        if value >= at_least:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} reached {value}, expected {at_least}:\n{worker.log_tail()}")


async def test_fuzzed_input_ends_in_state_or_dead_letters(
    kafka_broker, unique_prefix, tmp_path
) -> None:
    conf = isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data")
    t, b = conf.topics, kafka_broker.bootstrap
    topics = {"meter": t.meter_values, "zone": t.station_zones, "dr": t.demand_response}
    worker = WorkerProcess(conf, tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        fuzzed = generate(1500) + one_megabyte()
        where = await produce_all(b, topics, fuzzed)
        must_reject = {w for w, m in zip(where, fuzzed, strict=True) if rejected(*m)}
        kinds = {m[0] for w, m in zip(where, fuzzed, strict=True) if w not in must_reject}
        assert len(must_reject) > 500 and kinds == {"meter", "zone", "dr"}  # both outcomes

        await wait_metric(worker, "evgrid_deadletter_total", len(must_reject), 120)
        letters = await drain(b, t.deadletter, lambda m: {
            (x["source_topic"], x["partition"], x["offset"]) for x in m} >= must_reject, 120)
        # A valid signal beyond a zone's bound of live events is refused and dead-lettered
        # too (`too_many_events`): how many live at once depends on the order in which the
        # signal topic and its repartition topic are read, so those are accounted apart.
        dr_topics = {t.demand_response, conf.internal_topics.dr_repartition}
        refused = {(x["source_topic"], x["partition"], x["offset"]) for x in letters
                   if x["reason"] == "too_many_events" and x["source_topic"] in dr_topics}
        got = {(x["source_topic"], x["partition"], x["offset"]) for x in letters} - refused
        extra = [(x["source_topic"], x["offset"], x["reason"], x["error"][:200]) for x in letters
                 if (x["source_topic"], x["partition"], x["offset"]) not in must_reject | refused]
        assert got == must_reject, (extra[:5], sorted(must_reject - got)[:5])
        assert not any(x["reason"] == "internal_error" for x in letters), letters

        # Accepted readings are in state: each connector holds its newest accepted reading.
        newest: dict[tuple[str, int], float] = {}
        for w, (kind, _key, value) in zip(where, fuzzed, strict=True):
            if kind == "meter" and w not in must_reject:
                mv = codec.decode(MeterValue, value, MAX_BYTES)
                k = (mv.station_id, mv.connector_id)
                newest[k] = max(newest.get(k, 0.0), mv.event_ts.timestamp())
        for (sid, cid), ts in newest.items():
            held: dict[int, float] = {}
            for _ in range(40):  # re-keyed readings take one more hop
                held = await connector_times(worker, sid)
                if held.get(cid, 0.0) >= ts - SAME_TS:
                    break
                await asyncio.sleep(0.25)
            else:
                raise AssertionError(f"{sid}/{cid}: reading at {ts} not in state: {held}")

        # 100,000 bad messages: memory must level off, not grow with the count.
        bad = [m for w, m in zip(where, fuzzed, strict=True)
               if w in must_reject and len(m[2] or b"") < 10_000]
        rss, seen = [], len(must_reject)
        for _ in range(ROUNDS):
            flood = [bad[i % len(bad)] for i in range(25_000)]
            await produce_all(b, topics, flood)
            seen += len(flood)
            await wait_metric(worker, "evgrid_deadletter_total", seen, 180)
            rss.append(worker.rss_mb())
        print(f"\nfuzz: {len(fuzzed)} generated, {len(must_reject)} rejected; RSS after each "
              f"25k bad: {', '.join(f'{r:.0f}' for r in rss)} MB")
        assert rss[-1] - rss[1] < 25, f"RSS keeps growing with bad input: {rss} MB"
        assert worker.alive(), worker.log_tail()
        total = len(fuzzed) + 100_000
        record(ChaosRow("fuzzed input, 3 topics", f"{len(fuzzed):,} hypothesis messages + "
                        f"100,000 bad (RSS {rss[0]:.0f}->{rss[-1]:.0f} MB)", total,
                        total if got == must_reject else len(got)))
    finally:
        worker.stop()
