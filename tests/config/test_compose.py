"""The compose file against the Compose Specification's JSON schema (the copy check-jsonschema
ships, so nothing is downloaded), and against what evgrid reads."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from evgrid.settings import (
    GatewaySettings,
    KafkaSettings,
    SqlSettings,
    VenSettings,
    WorkerSettings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "config" / "docker-compose.yml"


def compose_schema() -> dict:
    """The schema file check-jsonschema vendors, read as data (`check-jsonschema
    --builtin-schema vendor.compose-spec config/docker-compose.yml` does the same by hand)."""
    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "pip install check-jsonschema"
    package = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_schema(compose: dict) -> None:
    jsonschema.validate(compose, compose_schema())


def test_the_schema_check_catches_mistakes(compose: dict) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["evgrid"]["depends_on"]["kafka"] = {"condition": "service_ready"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, compose_schema())


def test_services_use_the_image_and_real_settings(compose: dict) -> None:
    services = compose["services"]
    assert (COMPOSE.parent / services["evgrid"]["build"] / "Dockerfile").is_file()
    built = services["evgrid"]["image"]
    roles = {}
    for name, svc in services.items():
        if svc.get("image") == built:
            roles[name] = svc["command"][0]
    assert {"worker", "gateway", "openadr", "simulate"} <= set(roles.values())
    process = {"worker": WorkerSettings, "gateway": GatewaySettings, "openadr": VenSettings,
               "sql": SqlSettings, "simulate": KafkaSettings}
    for name, command in roles.items():
        cls = process[command]
        known = {f"EVGRID_{n.upper()}" for n in cls.model_fields}
        role_env = services[name].get("environment", {})
        # Every variable a service sets is one its process reads.
        assert set(role_env) <= known, (name, set(role_env) - known)
    worker_env = services["evgrid"]["environment"]
    env = {k: v for k, v in worker_env.items() if not str(v).startswith("${")}
    assert WorkerSettings.from_env(env).partitions == int(worker_env["EVGRID_PARTITIONS"])
