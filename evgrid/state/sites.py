"""Every site of `config.sites`, on every worker: the log is small (one record per grid
connection) and read whole, so any worker can check a station's site and any zone's new owner
has its zone's sites at once, whatever was assigned where.

A site lies within one zone, so its zone's owner is its one writer. A record that would break
that changes nothing and says why (the caller dead-letters it): a known site named in another
zone (`site:two_zones`; tombstone it first to move it), a tombstone of a site nobody published
(`site:unknown`), a key that is not the site's id (`site:key_mismatch`: a tombstone names the
site by its key alone).
"""

from __future__ import annotations

from collections.abc import Mapping

from evgrid.core.sites import SiteConfig
from evgrid.models.inputs import SiteRecord

TWO_ZONES, UNKNOWN, KEY_MISMATCH = "site:two_zones", "site:unknown", "site:key_mismatch"
STATION_UNKNOWN, STATION_OTHER_ZONE = "site_id:unknown", "site_id:other_zone"


class Refused(Exception):
    """A site record or station mapping that would break the one-zone rule."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class SiteBook:
    def __init__(self) -> None:
        self.sites: dict[str, SiteConfig] = {}
        #: zone_id -> its sites; each zone's controller reads its own dict, kept up to date.
        self.by_zone: dict[str, dict[str, SiteConfig]] = {}

    def of_zone(self, zone_id: str) -> Mapping[str, SiteConfig]:
        return self.by_zone.setdefault(zone_id, {})

    def apply(self, site: SiteRecord | None, key: str) -> SiteConfig | None:
        """Take one record (None: a tombstone of `key`); returns the site removed or
        changed, or raises `Refused` and changes nothing."""
        if site is None:
            gone = self.sites.pop(key, None)
            if gone is None:
                raise Refused(UNKNOWN, f"tombstone of site {key!r}, which is not known")
            self.by_zone.get(gone.zone_id, {}).pop(key, None)
            return gone
        if key != site.site_id:
            raise Refused(KEY_MISMATCH, f"key {key!r} is not the site_id {site.site_id!r}")
        known = self.sites.get(site.site_id)
        if known is not None and known.zone_id != site.zone_id:
            raise Refused(TWO_ZONES, (
                f"site {site.site_id!r} lies in zone {known.zone_id!r}, not {site.zone_id!r}: "
                "a site lies within one zone (tombstone it first to move it)"))
        config = SiteConfig(site.site_id, site.zone_id, site.max_kw, site.max_current_a,
                            site.margin_pct)
        self.sites[site.site_id] = config
        self.by_zone.setdefault(site.zone_id, {})[site.site_id] = config
        return config

    def check_station(self, station_id: str, zone_id: str, site_id: str | None) -> None:
        """A station may name a site only of its own zone; raises `Refused` otherwise."""
        if site_id is None:
            return
        site = self.sites.get(site_id)
        if site is None:
            raise Refused(STATION_UNKNOWN, (
                f"station {station_id!r} names site {site_id!r}, which is not known "
                "(publish the site on config.sites before its stations)"))
        if site.zone_id != zone_id:
            raise Refused(STATION_OTHER_ZONE, (
                f"station {station_id!r} of zone {zone_id!r} names site {site_id!r} of zone "
                f"{site.zone_id!r}: a site's stations are in its zone"))
