"""The monitoring configuration: alert rules pass promtool, and the rules and the Grafana
dashboard only query metrics evgrid actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import evgrid.metrics  # registers the worker's metrics
import evgrid.sql.metrics  # noqa: F401  (and the SQL sink's)

CONFIG = Path(__file__).resolve().parents[2] / "config"
PROMQL_WORDS = {"sum", "max", "min", "avg", "rate", "by", "le", "histogram_quantile",
                "printf", "value", "labels", "zone", "topic", "reason", "action",
                "alert_type", "without", "increase"}


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("evgrid_"):
            continue
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
    return names


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bevgrid_[a-z_]+\b", text))


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make system-deps`")
    result = subprocess.run([promtool, "check", "rules", str(CONFIG / "evgrid-alerts.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    exported = exported_names()
    rules = metric_names((CONFIG / "evgrid-alerts.yml").read_text())
    dashboard = json.loads((CONFIG / "grafana" / "evgrid-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = rules | metric_names("\n".join(exprs))
    assert used, "no evgrid metric referenced at all"
    assert used <= exported, f"not exported by evgrid: {sorted(used - exported)}"
    # Every alert family an operator needs is covered.
    for needed in ("utilization", "shortfall", "noncompliant", "deadletter", "consumer_lag"):
        assert any(needed in name for name in rules), needed
