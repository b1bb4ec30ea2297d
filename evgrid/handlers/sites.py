"""Site records in: every worker keeps every site (`SiteBook`); a zone's controller reads its
zone's sites from it at its next step, so a changed limit is applied and a removed site's
stations are released (CLEAR) by the zone's owner, the one writer of its zone.

Every worker reads `config.sites` whole, so a bad record is seen by all of them: only the
worker that owns the record's partition dead-letters it, and only when it arrives live (a
record read back at start was dead-lettered when it first came)."""

from __future__ import annotations

from collections.abc import Callable

from evgrid import metrics
from evgrid.codec import DecodeError
from evgrid.models.inputs import SiteRecord
from evgrid.publisher import Publisher, Record
from evgrid.state.sites import Refused, SiteBook


class SiteHandler:
    def __init__(self, book: SiteBook, publisher: Publisher,
                 reports: Callable[[Record], bool]) -> None:
        self.book = book
        self.out = publisher
        #: Whether this worker is the one to dead-letter this record.
        self.reports = reports

    def on_site(self, site: SiteRecord | None, record: Record) -> None:
        key = (record.key or b"").decode("utf-8", "replace")
        try:
            self.book.apply(site, key)
        except Refused as refused:
            if self.reports(record):
                self.out.deadletter(record, DecodeError(refused.reason, refused.detail))
            return
        metrics.SITES.set(len(self.book.sites))
