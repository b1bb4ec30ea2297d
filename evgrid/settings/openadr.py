"""`evgrid openadr`'s settings: the OpenADR 2.0b VEN between a utility's VTN and evgrid."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from evgrid.openadr.signals import Levels
from evgrid.settings.base import KafkaSettings, WebHost

_LEVELS = Levels()  # the SIMPLE levels' defaults are stated once, where they are read


class VenSettings(WebHost, KafkaSettings):
    """Runtime configuration of `evgrid openadr`."""

    command: ClassVar[str] = "openadr"
    topics_used: ClassVar[tuple[str, ...]] = ("demand_response", "dr_status", "zone_load")

    openadr_vtn_url: str | None = None
    """The utility's VTN (required for `evgrid openadr`)."""
    openadr_ven_name: str = "evgrid"
    """The VEN name registered at the VTN."""
    openadr_ven_id: str | None = None
    """The VEN id, when the utility assigned one beforehand (else the VTN assigns it)."""
    openadr_cert: Path | None = None
    """The VEN's certificate, PEM (required while signatures are on)."""
    openadr_key: Path | None = None
    """The VEN's private key, PEM (required while signatures are on)."""
    openadr_key_passphrase: str | None = None
    """Passphrase of the VEN's key, if it has one."""
    openadr_ca_file: Path | None = None
    """CA bundle for an `https://` VTN (default: the system roots)."""
    openadr_vtn_fingerprint: str | None = None
    """Fingerprint of the VTN's certificate (required while signatures are on)."""
    openadr_signatures: bool = True
    """XML signatures on messages; off only when set explicitly (tests)."""
    openadr_poll_interval_s: float | None = Field(None, gt=0)
    """How often the VEN polls (default: as often as the VTN asks at registration)."""
    openadr_targets_file: Path | None = None
    """YAML or JSON file mapping OpenADR targets to evgrid zones (required)."""
    openadr_simple_level1_pct: float = Field(_LEVELS.level1_pct, ge=0, le=100)
    """SIMPLE level 1 as a reduction of the zone's baseline, in percent."""
    openadr_simple_level2_pct: float = Field(_LEVELS.level2_pct, ge=0, le=100)
    """SIMPLE level 2 as a reduction of the zone's baseline, in percent."""
    openadr_simple_level3_pct: float = Field(_LEVELS.level3_pct, ge=0, le=100)
    """SIMPLE level 3 as a reduction of the zone's baseline, in percent (a SHED)."""
    openadr_shortfall_optout_kw: float = Field(1.0, ge=0)
    """A zone shortfall above this is one the engine cannot close: the VEN opts out."""
    openadr_report_stale_s: float = Field(30.0, gt=0)
    """Zone load older than this is not reported to the VTN."""
    openadr_retry_max_s: float = Field(30.0, gt=0)
    """Longest wait between registration attempts while the VTN is unreachable."""
    openadr_web_port: int = Field(6067, ge=0, le=65535)
    """The VEN's `/health` and `/metrics` port."""
