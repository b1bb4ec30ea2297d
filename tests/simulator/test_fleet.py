"""The simulated fleet's depots: every station of a site in the site's zone, limits a busy
depot exceeds, and each mapping naming its site."""

from __future__ import annotations

from evgrid.models.inputs import SiteRecord, StationZone
from evgrid.simulator.fleet import Fleet


def test_sites_group_each_zones_stations_behind_a_limit_a_busy_depot_exceeds() -> None:
    fleet = Fleet(60, 2, seed=4, site_size=10, initial_occupancy=1.0)
    assert len(fleet.sites) == 6
    for site_id, record in fleet.sites.items():
        site = SiteRecord.model_validate(record)
        members = [st for st in fleet.stations.values() if st.site_id == site_id]
        assert len(members) == 10
        assert {st.zone_id for st in members} == {site.zone_id}
        assert site.max_kw < sum(st.max_station_kw for st in members)
    for st in fleet.stations.values():
        mapping = StationZone.model_validate(fleet.station_config(st))
        assert mapping.site_id == st.site_id is not None


def test_no_sites_unless_asked() -> None:
    fleet = Fleet(20, 2, seed=4)
    assert fleet.sites == {}
    assert all("site_id" not in fleet.station_config(st) for st in fleet.stations.values())
