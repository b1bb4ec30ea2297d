"""The VEN client's handling of what a VTN sends, against a tiny HTTP server here (no
broker): which payloads are rejected, with which reason, and the connection state."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from openleadr.messaging import create_message

from evgrid.broker.local import free_port
from evgrid.openadr.client import EvgridClient
from evgrid.openadr.demo_vtn import make_cert


async def _nothing(events: list) -> list:
    return []


@pytest.fixture
async def vtn_answering(tmp_path: Path):
    """Serves whatever `answers` holds next, for any OpenADR service."""
    answers: list[str] = []

    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=answers.pop(0), content_type="application/xml")

    app = web.Application()
    app.router.add_post("/{service}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", answers
    await runner.cleanup()


async def test_rejections_are_classified_and_counted(vtn_answering, tmp_path: Path) -> None:
    url, answers = vtn_answering
    vtn, impostor, ven = (make_cert(tmp_path, n) for n in ("vtn", "impostor", "ven"))
    rejected: list[str] = []
    states: list[bool] = []
    client = EvgridClient("ven", url, cert=str(ven.cert), key=str(ven.key),
                          vtn_fingerprint=vtn.fingerprint, show_fingerprint=False, ven_id="v1",
                          on_distribution=_nothing, on_rejected=rejected.append,
                          on_connected=states.append)

    def signed_by(pair) -> str:
        return create_message("oadrResponse", cert=pair.cert.read_bytes(),
                              key=pair.key.read_bytes(), ven_id="v1",
                              response={"response_code": 200, "response_description": "OK",
                                        "request_id": "r"})

    good = signed_by(vtn)
    answers.extend([good, good, signed_by(impostor), create_message(
        "oadrResponse", ven_id="v1", response={"response_code": 200,
                                              "response_description": "OK", "request_id": "r"}),
        "<oadrPayload/>", "not xml at all"])
    try:
        assert (await client.poll())[0] == "oadrResponse"
        assert client.last_poll_monotonic is not None
        for _ in range(5):
            assert await client.poll() == (None, {})
    finally:
        await client.client_session.close()
    assert rejected == ["replay", "fingerprint_mismatch", "unsigned", "schema_invalid",
                        "schema_invalid"]
    assert set(states) == {True}  # the VTN answered every time: reachable, however bad


async def test_an_unreachable_vtn_is_a_state_not_an_error() -> None:
    states: list[bool] = []
    client = EvgridClient("ven", f"http://127.0.0.1:{free_port()}", show_fingerprint=False,
                          disable_signature=True, on_distribution=_nothing,
                          on_rejected=lambda reason: None, on_connected=states.append)
    try:
        assert await client.poll() == (None, {})
    finally:
        await client.client_session.close()
    assert states == [False]


async def test_an_error_answer_is_not_an_empty_distribution(vtn_answering, tmp_path: Path) -> None:
    """A VTN answers a failed request with an oadrDistributeEvent that has an error code and
    no events; read as a distribution, it would cancel every event."""
    url, answers = vtn_answering
    vtn = make_cert(tmp_path, "vtn")
    distributions: list[list] = []

    async def record(events: list) -> list:
        distributions.append(events)
        return []

    def distribution(code: int) -> str:
        return create_message("oadrDistributeEvent", cert=vtn.cert.read_bytes(),
                              key=vtn.key.read_bytes(), request_id="r", vtn_id="VTN",
                              response={"response_code": code, "request_id": "r",
                                        "response_description": "x"}, events=[])

    client = EvgridClient("ven", url, vtn_fingerprint=vtn.fingerprint, show_fingerprint=False,
                          disable_signature=True, ven_id="v1", on_distribution=record,
                          on_rejected=lambda reason: None, on_connected=lambda up: None)
    answers.extend([distribution(452), distribution(200)])
    try:
        assert (await client.poll())[0] == "oadrDistributeEvent"
        assert distributions == []
        assert (await client.poll())[0] == "oadrDistributeEvent"
        assert distributions == [[]]  # a real, empty distribution: every event is gone
    finally:
        await client.client_session.close()
