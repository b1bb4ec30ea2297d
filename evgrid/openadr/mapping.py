"""OpenADR targets -> evgrid zones, from a small YAML or JSON file the operator writes.

An event names its targets by `ven_id`, `group_id`, `resource_id` or `party_id`; only the
operator knows which charging zones each one means, so nothing is guessed: a target that is not
in the file makes the VEN opt out of the event with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TARGET_TYPES = ("ven_id", "group_id", "resource_id", "party_id")


class MappingError(ValueError):
    """The mapping file is unreadable or malformed; the message says what to fix."""


@dataclass(frozen=True)
class Resolution:
    """Which zones an event's targets name, and the targets that name none."""

    zones: tuple[str, ...]
    unmapped: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str | None:
        if self.unmapped:
            return "targets map to no evgrid zone: " + ", ".join(self.unmapped)
        if not self.zones:
            return "the event names no target"
        return None


@dataclass(frozen=True)
class TargetMap:
    """`{target type: {target value: [zone_id, ...]}}`."""

    table: Mapping[str, Mapping[str, tuple[str, ...]]]

    @classmethod
    def from_dict(cls, raw: object) -> TargetMap:
        if not isinstance(raw, Mapping):
            raise MappingError("the target mapping must be an object of target types "
                               f"({', '.join(TARGET_TYPES)})")
        table: dict[str, dict[str, tuple[str, ...]]] = {}
        for target_type, entries in raw.items():
            if target_type not in TARGET_TYPES:
                raise MappingError(f"unknown target type {target_type!r}; use one of "
                                   f"{', '.join(TARGET_TYPES)}")
            if not isinstance(entries, Mapping):
                raise MappingError(f"{target_type}: expected an object of value -> zone(s)")
            table[target_type] = {
                str(value): _zones(f"{target_type}.{value}", zones)
                for value, zones in entries.items()
            }
        return cls(table)

    @classmethod
    def load(cls, path: Path) -> TargetMap:
        """Read `path`: YAML for .yaml/.yml, JSON otherwise."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingError(f"cannot read the target mapping {path}: {exc.strerror}") from None
        try:
            if Path(path).suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError: words for the operator
            kind = "YAML" if Path(path).suffix.lower() in (".yaml", ".yml") else "JSON"
            raise MappingError(f"{path} is not valid {kind}: {exc}") from None
        return cls.from_dict(raw or {})

    def zones(self) -> tuple[str, ...]:
        """Every zone the file names: the VEN reports on each of them."""
        found = {z for entries in self.table.values() for zs in entries.values() for z in zs}
        return tuple(sorted(found))

    def resolve(self, targets: Iterable[Mapping[str, object]]) -> Resolution:
        """Map an event's targets (openleadr's list of one-key dicts) to zones."""
        zones: list[str] = []
        unmapped: list[str] = []
        for target in targets:
            named = False
            for target_type, value in target.items():
                if value is None:
                    continue
                if target_type not in TARGET_TYPES:
                    unmapped.append(f"{target_type}={value}")
                    named = True
                    continue
                named = True
                mapped = self.table.get(target_type, {}).get(str(value))
                if mapped is None:
                    unmapped.append(f"{target_type}={value}")
                else:
                    zones.extend(z for z in mapped if z not in zones)
            if not named:
                unmapped.append("an empty target")
        return Resolution(tuple(zones), tuple(unmapped))


def _zones(where: str, zones: object) -> tuple[str, ...]:
    if isinstance(zones, str):
        zones = [zones]
    if not isinstance(zones, list) or not zones or not all(
        isinstance(z, str) and z for z in zones
    ):
        raise MappingError(f"{where}: expected a zone id or a non-empty list of zone ids")
    return tuple(zones)
