"""`evgrid bench` and its load helpers speak the worker's security settings: at tiny size
against a broker's TLS listener, where a plaintext client gets nowhere. Throughput covers the
batch producers, both baselines (aiokafka and a Faust app) and the worker; latency covers the
paced stream, the signal producer, the command consumer and the lag probe (admin client)."""

from __future__ import annotations

import asyncio
import json

import pytest

from evgrid.broker.local import LocalKafka, TlsListener
from tests.bench.test_bench_smoke import run_bench
from tests.chaos.test_security import PASSWORD, reachable, self_signed

pytestmark = pytest.mark.integration


async def test_bench_over_tls(tmp_path) -> None:
    store, ca = self_signed(tmp_path)
    broker = LocalKafka(data_dir=tmp_path / "kafka", tls=TlsListener(store, PASSWORD))
    await asyncio.to_thread(broker.start)
    try:
        assert not await reachable(broker.ssl_bootstrap)  # plaintext on the TLS port: no
        out = tmp_path / "results"
        run = await asyncio.to_thread(run_bench, {
            "EVGRID_BROKER": broker.ssl_bootstrap, "EVGRID_BROKER_SECURITY_PROTOCOL": "SSL",
            "EVGRID_BROKER_SSL_CAFILE": str(ca),
        }, str(out), "--phases", "throughput,latency")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "(SSL)" in run.stdout.splitlines()[0]
        [result] = out.glob("*.json")
        r = json.loads(result.read_text())
        assert r["security_protocol"] == "SSL" and r["phases"] == ["throughput", "latency"]
        t = r["throughput"]
        assert t["raw_rate"] > 0 and t["faust_noop_rate"] > 0 and t["worker_rate"] > 0
        for name in ("quiet", "loaded", "saturated"):
            assert r["latency"][name]["events"] > 0, r["latency"][name]
    finally:
        await asyncio.to_thread(broker.cleanup)
