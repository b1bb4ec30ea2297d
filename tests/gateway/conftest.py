"""A gateway in the test's own event loop, on an isolated set of topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from evgrid.gateway.server import Gateway
from evgrid.settings import GatewaySettings
from evgrid.topics import ensure_topics
from tests.integration.harness import isolated_settings


async def start_gateway(settings: GatewaySettings) -> Gateway:
    gateway = Gateway(settings)
    await gateway.start()
    await asyncio.wait_for(gateway.feeds.ready.wait(), 30)
    return gateway


@pytest.fixture
def gateway_settings(kafka_broker, unique_prefix, tmp_path) -> GatewaySettings:
    return isolated_settings(kafka_broker.bootstrap, unique_prefix, tmp_path / "data",
                             cls=GatewaySettings, gateway_port=0,
                             gateway_response_timeout_s=5.0)


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings) -> AsyncIterator[Gateway]:
    await ensure_topics(gateway_settings)
    gw = await start_gateway(gateway_settings)
    yield gw
    await gw.stop()


def url(gw: Gateway, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{gw.port}"


def sample(d: dict, *keys: str) -> tuple[Any, ...]:
    return tuple(d.get(k) for k in keys)
