"""Who may connect: the allow-list and OCPP security profiles 1/2 (HTTP Basic auth with a
per-charger password, stored only as a salted scrypt hash).

The passwords file has one `charge_point_id:scrypt$salt$hash` line per charger (`#` starts a
comment); `evgrid gateway hash-password` prints such a line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return hmac.compare_digest(digest, expected)


def load_passwords(path: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        station_id, sep, stored = line.rpartition(":")
        if not sep or not stored.startswith("scrypt$"):
            raise SystemExit(f"evgrid: {path}:{number}: expected charge_point_id:scrypt$..., "
                             "made by `evgrid gateway hash-password`")
        hashes[station_id] = stored
    return hashes


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """`Authorization: Basic base64(id:password)` -> (id, password), or None."""
    if not header or not header.startswith("Basic "):
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


@dataclass(frozen=True)
class Gatekeeper:
    """Decides whether a charge point may open its connection; a reason when it may not."""

    allowed: frozenset[str]
    passwords: dict[str, str] | None  # None: no authentication (security profile 0)

    def refuse(self, station_id: str, authorization: str | None) -> str | None:
        if not station_id or "/" in station_id or len(station_id) > 256:
            return "bad_charge_point_id"
        if self.allowed and station_id not in self.allowed:
            return "not_allowed"
        if self.passwords is None:
            return None
        creds = basic_credentials(authorization)
        if creds is None:
            return "no_credentials"
        user, password = creds
        stored = self.passwords.get(station_id)
        if user != station_id or stored is None or not verify_password(password, stored):
            return "bad_credentials"
        return None
