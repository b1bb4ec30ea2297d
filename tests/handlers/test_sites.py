"""Site configuration through the worker's route table: the site book, distinct dead-letter
reasons for every way a site breaks the one-zone rule (and nothing changed), station mappings
checked against their site, and the zone side's controllers seeing their zone's sites."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from evgrid.core.types import Tunables
from evgrid.handlers.sites import SiteHandler
from evgrid.handlers.stations import StationSide
from evgrid.runtime import input_path
from evgrid.state.sites import SiteBook
from evgrid.state.stations import StationStore
from evgrid.state.zones import ZoneStore
from tests.fakes import PARTITIONS, RecordingPublisher, memory_tables, record, settings


class Worker:
    """The station side and the sites of one worker; `dead_letters` says who reports."""

    def __init__(self, reports: bool = True) -> None:
        self.settings = settings()
        self.t = self.settings.topics
        self.i = self.settings.internal_topics
        self.out = RecordingPublisher(self.settings)
        self.book = SiteBook()
        self.tables = memory_tables()
        store = StationStore(self.tables, Tunables(), PARTITIONS, self.t.station_zones)
        self.side = StationSide(self.settings, store, self.out, self.book)
        self.handler = SiteHandler(self.book, self.out, lambda _r: reports)
        unused = SimpleNamespace(on_picture=None, on_signal=None)
        self.inputs = input_path(self.settings, self.out, self.side, unused, unused,
                                 self.handler)
        self.offset = 0

    def site(self, site_id: str, value: dict | None, key: str | None = None) -> None:
        self.offset += 1
        self.inputs.dispatch(record(self.t.sites, key or site_id, value, offset=self.offset))

    def map(self, station_id: str, zone_id: str, site_id: str | None) -> None:
        value = {"station_id": station_id, "zone_id": zone_id, "max_station_kw": 22.0,
                 "contract_max_kw": 22.0}
        if site_id is not None:
            value["site_id"] = site_id
        self.inputs.dispatch(record(self.t.station_zones, station_id, value))

    def reasons(self) -> list[str]:
        return [v["reason"] for _k, v in self.out.sent(self.t.deadletter)]

    def rows(self) -> list[dict]:
        return [v for _k, v in self.out.sent(self.i.station_rows)]


def depot(zone: str = "Z1", max_kw: float = 40.0, **extra: object) -> dict:
    return {"site_id": "depot", "zone_id": zone, "max_kw": max_kw, "margin_pct": 10.0, **extra}


def test_a_site_is_kept_with_its_zone() -> None:
    w = Worker()
    w.site("depot", depot(max_current_a=63.0))
    site = w.book.sites["depot"]
    assert (site.zone_id, site.max_kw, site.max_current_a, site.margin_pct) == \
        ("Z1", 40.0, 63.0, 10.0)
    assert dict(w.book.of_zone("Z1")) == {"depot": site}
    w.site("depot", depot(max_kw=50.0))  # an update in the same zone
    assert w.book.of_zone("Z1")["depot"].max_kw == 50.0
    assert w.reasons() == []


@pytest.mark.parametrize(("steps", "reason"), [
    ([("depot", depot()), ("depot", depot("Z2"))], "site:two_zones"),
    ([("depot", None)], "site:unknown"),
    ([("depot", depot(max_kw=-1.0))], "max_kw:greater_than_equal"),
    ([("other", depot())], "site:key_mismatch"),
    ([("depot", depot(margin_pct=150.0))], "margin_pct:less_than_equal"),
])
def test_bad_site_records_are_dead_lettered_with_their_reason(steps: list, reason: str
                                                              ) -> None:
    w = Worker()
    for key, value in steps[:-1]:
        w.site(key, value)
    before = {k: v.to_dict() for k, v in w.book.sites.items()}
    key, value = steps[-1]
    w.site(key, value)
    assert w.reasons() == [reason]
    assert {k: v.to_dict() for k, v in w.book.sites.items()} == before  # nothing changed


def test_only_the_reporting_worker_dead_letters() -> None:
    w = Worker(reports=False)
    w.site("depot", depot(max_kw=-1.0))
    w.site("depot", None)
    assert w.reasons() == []
    assert w.book.sites == {}


def test_a_tombstone_removes_the_site() -> None:
    w = Worker()
    w.site("depot", depot())
    w.site("depot", None)
    assert w.book.sites == {} and dict(w.book.of_zone("Z1")) == {}
    w.site("depot", depot("Z2"))  # moved: tombstoned first, then published in its new zone
    assert w.book.sites["depot"].zone_id == "Z2" and w.reasons() == []


@pytest.mark.parametrize(("zone", "site", "reason"), [
    ("Z1", "nowhere", "site_id:unknown"),
    ("Z2", "depot", "site_id:other_zone"),
])
def test_a_mapping_to_a_bad_site_changes_nothing(zone: str, site: str, reason: str) -> None:
    w = Worker()
    w.site("depot", depot())
    w.map("S1", "Z1", None)
    rows_before = len(w.rows())
    w.map("S1", zone, site)
    assert w.reasons() == [reason]
    assert len(w.rows()) == rows_before  # no new row, no tombstone
    assert w.side.store.get("S1").config.zone_id == "Z1"
    assert w.side.store.get("S1").config.site_id is None


def test_a_mapping_carries_its_site_in_the_row() -> None:
    w = Worker()
    w.site("depot", depot())
    w.map("S1", "Z1", "depot")
    assert w.rows()[-1]["site_id"] == "depot"
    assert w.reasons() == []


def test_zone_controllers_see_their_zones_sites_live() -> None:
    w = Worker()
    zones = ZoneStore(w.tables, Tunables(), PARTITIONS, w.i.station_rows, w.book)
    zone = zones.zone("Z1", 0.0)
    assert dict(zone.controller.sites) == {}
    w.site("depot", depot())
    assert set(zone.controller.sites) == {"depot"}
    w.site("depot", None)
    assert dict(zone.controller.sites) == {}
