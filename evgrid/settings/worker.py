"""`evgrid worker`'s settings: the control loop's knobs, its state and its web port.

The core's knobs take their defaults from `evgrid.core.types.Tunables`, so each default is
stated once, in the pure core that reads it; this class adds what the environment needs on
top: the variable, its bounds and its documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from evgrid.core.types import Tunables
from evgrid.settings.base import ConsumerGroupSettings, TopicNames, WebHost

_T = Tunables()


#: The topics only evgrid's workers read and write: field -> (name after the app id, what it
#: holds). Not settable: their names derive from `EVGRID_APP_ID`, like Faust's changelogs.
INTERNAL_TOPICS: dict[str, tuple[str, str]] = {
    "meter_repartition": ("meter-values-repartition",
                          "Readings whose Kafka key or partition did not match their "
                          "station_id, re-routed."),
    "station_zones_repartition": ("station-zones-repartition",
                                  "Zone mappings whose key or partition was wrong, re-routed."),
    "dr_repartition": ("dr-repartition",
                       "DR signals whose key or partition was wrong, re-routed."),
    "outcomes_repartition": ("outcomes-repartition",
                             "Command outcomes whose key or partition was wrong, re-routed."),
    "station_rows": ("station-rows",
                     "Each station's row (zone, limits, latest loads, last outcome), keyed by "
                     "station_id, in its zone's partition, compacted: the zone side's picture "
                     "as a log."),
    "assignment": ("assignment",
                   "Never written: Faust's assignment of its partitions drives every "
                   "consumer."),
}


@dataclass(frozen=True, slots=True)
class InternalTopics:
    """The worker's internal topics for one app id (see `INTERNAL_TOPICS`)."""

    meter_repartition: str
    station_zones_repartition: str
    dr_repartition: str
    outcomes_repartition: str
    station_rows: str
    assignment: str

    @classmethod
    def of(cls, app_id: str) -> InternalTopics:
        return cls(**{field: f"{app_id}-{suffix}"
                      for field, (suffix, _holds) in INTERNAL_TOPICS.items()})


class WorkerSettings(WebHost, ConsumerGroupSettings):
    """Runtime configuration of `evgrid worker`; the simulator's fleet, the demo and the
    bench start workers from one of these."""

    command: ClassVar[str] = "worker"
    topics_used: ClassVar[tuple[str, ...]] = tuple(
        name for name in TopicNames.model_fields if name != "station_status")
    advanced: ClassVar[frozenset[str]] = frozenset({"store", "checkpoint_interval_s",
                                                    "history_step_s"})

    store: str = "rocksdb://"
    """Faust table store: `rocksdb://`, or `memory://` for tests."""
    data_dir: Path = Path("var/data")
    """Where the worker keeps its RocksDB tables."""
    web_port: int = Field(6066, ge=0, le=65535)
    """The worker's web port: dashboard, `/metrics`, `/health`, JSON views."""
    api_token: str | None = None
    """When set, the JSON views and the dashboard require `Authorization: Bearer <token>`."""

    stale_after_s: float = Field(_T.stale_after_s, gt=0)
    """A connector not heard from for this long counts as 0 kW."""
    dead_band_kw: float = Field(_T.dead_band_kw, ge=0)
    """A station's target change smaller than this is not re-sent."""
    compliance_tolerance_pct: float = Field(_T.compliance_tolerance_pct, ge=0)
    """A station may exceed its target by this share (or the kW below, whichever is larger)."""
    compliance_tolerance_kw: float = Field(_T.compliance_tolerance_kw, ge=0)
    """A station may exceed its target by this many kW (or the share above)."""
    compliance_grace_s: float = Field(_T.compliance_grace_s, ge=0)
    """How long a station may stay above its target before it is non-compliant."""
    window_s: float = Field(_T.window_s, gt=0)
    """Length of the tumbling windows of station statistics."""
    allowed_lateness_s: float = Field(_T.allowed_lateness_s, ge=0)
    """How late a reading may arrive and still count in its window."""
    dc_min_kw: float = Field(_T.dc_min_kw, ge=0)
    """The smallest limit a DC connector is given other than 0."""
    ac_min_current_a: float = Field(_T.ac_min_current_a, ge=0)
    """The smallest AC limit per phase other than 0 (IEC 61851-1: 6 A)."""
    ac_voltage_v: float = Field(_T.ac_voltage_v, gt=0)
    """Phase voltage for turning AC limits into amperes."""
    ac_phases: int = Field(_T.ac_phases, ge=1, le=3)
    """Phases assumed for AC connectors."""
    overload_hysteresis_pct: float = Field(_T.overload_hysteresis_pct, ge=0, lt=100)
    """An overload episode ends only this far below the limit."""
    event_retention_s: float = Field(_T.event_retention_s, ge=0)
    """Ended DR events are kept this long for the views, then removed."""
    connector_forget_s: float = Field(_T.connector_forget_s, gt=0)
    """A connector without readings for this long is forgotten."""
    max_events_per_zone: int = Field(_T.max_events_per_zone, ge=1)
    """Scheduled or active DR events a zone holds at most; a signal beyond is refused."""
    future_tolerance_s: float = Field(_T.future_tolerance_s, ge=0)
    """A reading stamped more than this ahead of its arrival is dead-lettered; an older stamp
    heard this much later is a clock that jumped back, and is taken."""
    clock_skew_alert_s: float = Field(_T.clock_skew_alert_s, gt=0)
    """A station whose measured clock offset exceeds this raises one CLOCK_SKEW per episode."""
    suspend_rotation_s: float = Field(_T.suspend_rotation_s, gt=0)
    """Under SHED or priority 1, who is suspended to meet the cap rotates this often."""
    site_hold_s: float = Field(_T.site_hold_s, ge=0)
    """A limited site is released once its demand has stayed under the release level this
    long."""
    site_release_hysteresis_pct: float = Field(_T.site_release_hysteresis_pct, ge=0, lt=100)
    """A limited site's release level: this far below its threshold (its limit less its
    margin)."""
    site_profile_valid_s: float = Field(_T.site_profile_valid_s, gt=0)
    """A site limit's profile is valid this long (`validTo`); it is re-sent at half of it."""
    site_step_s: float = Field(_T.site_step_s, gt=0)
    """A zone with sites and no DR event is re-evaluated this often (compliance, release);
    a row that changes a site's demand re-evaluates it at once."""
    frequency_silence_s: float = Field(_T.frequency_silence_s, gt=0)
    """An area with no frequency measurement for this long is disarmed: its zones' response
    is released at once and a FREQUENCY_SILENT alert raised."""

    checkpoint_interval_s: float = Field(30.0, gt=0)
    """How often station state is checkpointed and the ingest's offsets committed: the most
    a recovering worker replays."""
    history_step_s: float = Field(5.0, gt=0)
    """How often each zone's load is sampled for the dashboard and `grid.zone_load`."""

    @property
    def internal_topics(self) -> InternalTopics:
        """The worker's internal topics, named after the app id."""
        return InternalTopics.of(self.app_id)

    @property
    def ingest_group(self) -> str:
        """The consumer group the meter-value ingest commits under (and lag is measured on)."""
        return f"{self.app_id}-meter-ingest"

    @property
    def dr_signals_group(self) -> str:
        return f"{self.app_id}-dr-signals"

    @property
    def station_config_group(self) -> str:
        """The consumer group of zone mappings and command outcomes."""
        return f"{self.app_id}-station-config"

    def replay_bound_s(self) -> float:
        """How far back a recovering worker replays meter values at most: older readings
        are stale and their windows closed (stale + window + lateness)."""
        return self.stale_after_s + self.window_s + self.allowed_lateness_s

    def tunables(self) -> Tunables:
        """The subset the pure core needs, as a plain frozen dataclass."""
        names = Tunables.__dataclass_fields__.keys()
        return Tunables(**{name: getattr(self, name) for name in names})
