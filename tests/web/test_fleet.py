"""The fleet dashboard merge, with peers faked: every zone once, events and alerts from
everyone, newest alerts first, a silent peer listed with its error."""

from __future__ import annotations

from types import SimpleNamespace

from evgrid.web.fleet import fleet_view, peer_urls


def part(worker: str, zones: list[str], alert_at: float) -> dict:
    return {"now": 1.0, "worker": worker,
            "zones": [{"zone_id": z, "load_kw": 1.0, "history": []} for z in zones],
            "events": [{"zone_id": zones[0], "signal_id": f"sig-{worker}"}] if zones else [],
            "alerts": [{"at": alert_at, "topic": "t", "subject": worker}]}


async def test_merges_every_peer_and_reports_the_silent_one() -> None:
    peers = {"http://w2:6066": part("http://w2:6066", ["Z3", "Z1"], 5.0),
             "http://w3:6066": None}

    async def fetch(url: str) -> dict:
        if peers[url] is None:
            raise TimeoutError("no answer in 2 s")
        return peers[url]

    merged = await fleet_view(part("http://w1:6066", ["Z2"], 3.0), sorted(peers), fetch)
    assert [z["zone_id"] for z in merged["zones"]] == ["Z1", "Z2", "Z3"]
    assert {e["signal_id"] for e in merged["events"]} == {"sig-http://w1:6066",
                                                          "sig-http://w2:6066"}
    assert [a["at"] for a in merged["alerts"]] == [5.0, 3.0]
    by_url = {w["url"]: w for w in merged["workers"]}
    assert by_url["http://w1:6066"]["zones"] == 1 and by_url["http://w2:6066"]["zones"] == 2
    assert "no answer" in by_url["http://w3:6066"]["error"]
    assert merged["worker"] == "http://w1:6066"


async def test_a_lone_worker_asks_nobody() -> None:
    async def fetch(url: str) -> dict:
        raise AssertionError(url)

    merged = await fleet_view(part("http://w1:6066", ["Z1"], 1.0), [], fetch)
    assert [z["zone_id"] for z in merged["zones"]] == ["Z1"]


def test_peers_are_the_assignments_other_hosts() -> None:
    app = SimpleNamespace(
        conf=SimpleNamespace(canonical_url="http://w1:6066"),
        assignor=SimpleNamespace(changelog_distribution={
            "http://w1:6066": {"t": [0]}, "http://w2:6066/": {"t": [1]},
            "http://w3:6066": {"t": [2]}}))
    assert peer_urls(app) == ["http://w2:6066", "http://w3:6066"]
