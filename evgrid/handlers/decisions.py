"""Publishing what a zone's controller decided: commands, statuses, alerts, reports and
frequency activations.

Every output but a command passes through its pydantic model, so a bug that would put a
malformed output on the wire fails here. Commands, thousands in one frequency activation, are
written by `evgrid.commands.command_json`, whose every shape the tests validate against
`ChargingCommand` and the official OCPP schemas (and the gateway validates each one again
before it reaches a charger).
"""

from __future__ import annotations

import time

from evgrid import codec, metrics
from evgrid.commands import command_json
from evgrid.core.control import Decisions
from evgrid.models import (
    ComplianceAlert,
    DRStatus,
    OverloadAlert,
    SignalRefusedAlert,
    dr_report_message,
)
from evgrid.models.frequency import frequency_activation
from evgrid.publisher import Publisher
from evgrid.state.zones import ZoneEntry
from evgrid.timeutil import from_epoch

_STATUS_TIMES = ("start_ts", "end_ts", "updated_ts")
_COMPLIANCE_TIMES = ("since", "detected_at")


def _with_times(d: dict, fields: tuple[str, ...]) -> dict:
    return {**d, **{f: from_epoch(d[f]) for f in fields if d.get(f) is not None}}


def publish_decisions(out: Publisher, zone: ZoneEntry, decisions: Decisions, now: float,
                      stale_after_s: float) -> None:
    """Commands, statuses, alerts and reports. A signal's reaction (`DR_REACTION`) is timed
    from its arrival to the ack of its first decision's last command, whichever step makes
    that decision: at the signal, or a later one when the zone had nothing to command yet."""
    last_of: dict[str, int] = {}
    for i, cmd in enumerate(decisions.commands):
        if cmd.signal_id in zone.reacting:
            last_of[cmd.signal_id] = i
    timed = {i: zone.reacting.pop(signal_id) for signal_id, i in last_of.items()}
    actions: dict[str, int] = {}
    for i, cmd in enumerate(decisions.commands):
        callback = None
        if i in timed:
            def callback(_fut: object, t0: float = timed[i]) -> None:
                metrics.DR_REACTION.observe(time.perf_counter() - t0)
        out.send(out.commands, cmd.station_id, command_json(cmd),
                 callback=callback, signal_id=cmd.signal_id)
        actions[cmd.action] = actions.get(cmd.action, 0) + 1
    for action, n in actions.items():  # counted once per decision, not per command
        metrics.COMMANDS.labels(action=action).inc(n)
    for signal_id in [s for s in zone.reacting if not zone.controller.is_live(s)]:
        del zone.reacting[signal_id]  # ended without a command to time: nothing to react to
    load_age_s = zone.load_age_s(now)
    picture = {
        "load_age_s": None if load_age_s is None else round(load_age_s, 3),
        "members": len(zone.load.stations),
        "members_reporting": zone.members_reporting(now, stale_after_s),
    } if decisions.statuses else {}
    for status in decisions.statuses:
        message = DRStatus.model_validate({**_with_times(status, _STATUS_TIMES), **picture})
        out.send(out.dr_status, zone.zone_id, codec.dumps(message),
                 signal_id=status["signal_id"])
    for alert in decisions.compliance:
        message = ComplianceAlert.model_validate(_with_times(alert, _COMPLIANCE_TIMES))
        out.alert(
            out.compliance_alerts, alert["station_id"], codec.dumps(message), alert["state"],
            f"{alert['measured_kw']:.1f} kW vs target {alert['target_power_kw']:.1f}",
        )
        metrics.ALERTS.labels(alert_type=f"DR_{alert['state']}").inc()
    for alert in decisions.site_alerts:
        message = OverloadAlert.model_validate(_with_times(alert, ("detected_at",)))
        out.alert(out.overload_alerts, alert["site_id"], codec.dumps(message),
                  alert["alert_type"],
                  f"site {alert['site_id']}: {alert['total_power_kw']:.1f} kW vs limit "
                  f"{alert['capacity_kw']:.1f}")
        metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
    for alert in decisions.signal_alerts:
        message = SignalRefusedAlert.model_validate(_with_times(alert, ("detected_at",)))
        out.alert(out.signal_alerts, alert["zone_id"], codec.dumps(message),
                  alert["alert_type"], alert["detail"])
        metrics.ALERTS.labels(alert_type=alert["alert_type"]).inc()
    for record in decisions.activations:
        activation = frequency_activation(record)
        zone.recent_activations.append(activation.model_dump(mode="json"))
        out.send(out.frequency_activations, zone.zone_id, codec.dumps(activation))
        metrics.FREQUENCY_ACTIVATIONS.labels(
            timing="met" if activation.timing_met else "missed").inc()
    for report in decisions.reports:
        message = dr_report_message(report)
        zone.recent_reports.append(message.model_dump(mode="json"))
        out.send(out.dr_reports, zone.zone_id, codec.dumps(message))
        metrics.DR_REPORTS.inc()
