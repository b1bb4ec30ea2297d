"""Events shaped as openleadr's parser hands them to the VEN, for the pure tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def event(event_id: str = "e1", *, name: str = "SIMPLE", kind: str = "level",
          payloads: tuple[float, ...] = (2,), minutes: int = 10, start: datetime = T0,
          targets: list[dict[str, str]] | None = None, status: str = "far",
          modification: int = 0, priority: int = 0, measurement: dict | None = None,
          response_required: str = "always") -> dict[str, Any]:
    intervals = [
        {"dtstart": start + timedelta(minutes=minutes * i), "duration": timedelta(minutes=minutes),
         "signal_payload": float(p), "uid": i}
        for i, p in enumerate(payloads)
    ]
    signal: dict[str, Any] = {"signal_name": name, "signal_type": kind, "signal_id": "s",
                              "intervals": intervals}
    if measurement is not None:
        signal["measurement"] = measurement
    return {
        "event_descriptor": {"event_id": event_id, "modification_number": modification,
                             "event_status": status, "priority": priority},
        "active_period": {"dtstart": start, "duration": timedelta(minutes=minutes * len(payloads))},
        "event_signals": [signal],
        "targets": [{"ven_id": "ven-1"}] if targets is None else targets,
        "response_required": response_required,
    }
