"""Identifier masking for customer demos.

``Masker(secret)`` replaces IPs, MACs, device/custom/netbios names and
vendors with pseudonyms derived from a keyed hash
(``blake2b(kind || value, key=secret)``): the same original always gets the
same alias, on every page, rerun and session that uses the same secret, and
an alias cannot be traced back without the secret. Countries are derived
before masking and are left alone, as are flags such as ``is_critical`` and
``device_category``.

Alias shapes and collisions (birthday bound n² / 2^(bits+1)):

============  =======================  ====  ==============================
kind          primary alias            bits  odds of any collision
============  =======================  ====  ==============================
local_ip      ``10.a.b.c``              24   250 devices: 0.2 %
public_ip     ``240-255.a.b.c`` (E)     28   2,000 remotes: 0.7 %
mac           ``02:xx:xx:xx:xx:xx``     40   negligible
name          ``Device-xxxxxx``         24   250 names: 0.2 %
vendor        ``Vendor-xxxx``           16   40 vendors: 1.2 %
============  =======================  ====  ==============================

Public aliases use 240.0.0.0/4 (reserved "class E", never routable, so they
cannot point at a real host). Because these odds are not zero, ``mask_frame``
checks every kind for collisions among the distinct values it is masking (and
for aliases equal to an original value), and gives those values a long
fallback alias instead (``fd…`` ULA
IPv6 for local IPs, ``2001:db8:…`` documentation IPv6 for public IPs, 12 hex
digits for names and vendors; 64+ bits, collision-free in practice). A value
therefore only changes alias in the rare frame where a colliding partner is
present; ``mask_value`` always returns the primary alias.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import polars as pl

KINDS = ("local_ip", "public_ip", "mac", "name", "vendor", "sensor")

# Column -> kind for the flow frame and the frames derived from it.
DEFAULT_COLUMNS: dict[str, str] = {
    "ip0": "local_ip",
    "ip1": "public_ip",
    "mac_address": "mac",
    "device_name": "name",
    "custom_name": "name",
    "netbios": "name",
    "vendor": "vendor",
}


class Masker:
    """Deterministic, keyed pseudonyms for identifiers (see the module docstring)."""

    def __init__(self, secret: bytes | str):
        if isinstance(secret, str):
            secret = secret.encode()
        if not secret:
            raise ValueError("Masking needs a non-empty secret.")
        # blake2b keys are at most 64 bytes: longer secrets are hashed down.
        self._key = secret if len(secret) <= 64 else hashlib.blake2b(secret).digest()

    def _digest(self, kind: str, value: str, salt: bytes = b"") -> bytes:
        h = hashlib.blake2b(digest_size=16, key=self._key, person=b"flux-mask" + salt)
        h.update(kind.encode() + b"\x00" + value.encode("utf-8", "surrogatepass"))
        return h.digest()

    def _primary(self, kind: str, value: str) -> str:
        d = self._digest(kind, value)
        if kind == "local_ip":
            return f"10.{d[0]}.{d[1]}.{d[2]}"
        if kind == "public_ip":
            return f"{240 + (d[0] & 0x0F)}.{d[1]}.{d[2]}.{d[3]}"
        if kind == "mac":
            return "02:" + ":".join(f"{b:02x}" for b in d[:5])
        if kind == "name":
            return f"Device-{d[:3].hex()}"
        if kind == "vendor":
            return f"Vendor-{d[:2].hex()}"
        if kind == "sensor":
            return f"Sensor-{d[:3].hex()}"
        raise ValueError(f"Unknown masking kind {kind!r}; expected one of {KINDS}.")

    def _fallback(self, kind: str, value: str) -> str:
        d = self._digest(kind, value, salt=b"-fb")
        if kind == "local_ip":
            groups = ":".join(d[i : i + 2].hex() for i in range(1, 9, 2))
            return f"fd{d[0]:02x}:{groups}::1"
        if kind == "public_ip":
            return "2001:db8:" + ":".join(d[i : i + 2].hex() for i in range(0, 12, 2))
        if kind == "mac":
            return "06:" + ":".join(f"{b:02x}" for b in d[:5])
        prefix = {"name": "Device", "vendor": "Vendor", "sensor": "Sensor"}[kind]
        return f"{prefix}-{d[:6].hex()}"

    def mask_value(self, kind: str, value: str | None) -> str | None:
        """The primary alias of one value (None stays None)."""
        if value is None:
            return None
        return self._primary(kind, str(value))

    def aliases(self, kind: str, values: Iterable[str | None]) -> dict[str, str]:
        """Collision-checked aliases for a set of distinct values of one kind."""
        distinct = sorted({str(v) for v in values if v is not None})
        primary = {v: self._primary(kind, v) for v in distinct}
        seen: dict[str, int] = {}
        for alias in primary.values():
            seen[alias] = seen.get(alias, 0) + 1
        # An alias shared by two values, or equal to another original value (a
        # site whose LAN is 10.0.0.0/8), would mislead: use the long fallback.
        originals = set(distinct)
        out = {
            v: (a if seen[a] == 1 and a not in originals else self._fallback(kind, v))
            for v, a in primary.items()
        }
        if len(set(out.values())) != len(out):  # would need a 64-bit collision
            raise RuntimeError("Masking produced an ambiguous alias; use another secret.")
        return out

    def mask_frame(
        self, df: pl.DataFrame, columns: Mapping[str, str] | None = None
    ) -> pl.DataFrame:
        """Mask every identifier column present in ``df``.

        ``columns`` maps column name → kind (default ``DEFAULT_COLUMNS``); the
        columns that are absent are skipped, so derived frames (storylines,
        digests' tables…) can be masked too. Values are mapped through a
        dict of the distinct values (a few thousand), not per row. A
        ``device_name`` that is just the device's IP (no name known) becomes
        that IP's alias.
        """
        columns = dict(DEFAULT_COLUMNS if columns is None else columns)
        present = {c: k for c, k in columns.items() if c in df.columns}
        if not present:
            return df
        by_kind: dict[str, set[str]] = {}
        for col, kind in present.items():
            values = df.get_column(col).cast(pl.String).unique().drop_nulls().to_list()
            by_kind.setdefault(kind, set()).update(values)
        maps = {kind: self.aliases(kind, values) for kind, values in by_kind.items()}

        def mapped(col: str) -> pl.Expr:
            m = maps[present[col]]
            return pl.col(col).cast(pl.String).replace_strict(
                list(m), list(m.values()), return_dtype=pl.String
            )

        exprs = {col: mapped(col).alias(col) for col in present}
        if "device_name" in present and present.get("ip0") == "local_ip":
            exprs["device_name"] = (
                pl.when(pl.col("device_name").cast(pl.String) == pl.col("ip0").cast(pl.String))
                .then(mapped("ip0"))
                .otherwise(mapped("device_name"))
                .alias("device_name")
            )
        return df.with_columns(exprs.values())

    def mask_sensor(self, sensor: Mapping) -> dict:
        """A copy of a sensor object with its identifying fields masked.

        name/full_name → ``Sensor-xxxxxx``, MAC and IPs masked, coordinates
        dropped; the id, time zone, hno_hours and the rest are kept.
        """
        out = dict(sensor)
        for key in ("name", "full_name"):
            if out.get(key) is not None:
                out[key] = self._primary("sensor", str(out[key]))
        if out.get("mac_address") is not None:
            out["mac_address"] = self._primary("mac", str(out["mac_address"]))
        if out.get("public_ip") is not None:
            out["public_ip"] = self._primary("public_ip", str(out["public_ip"]))
        if out.get("local_ip") is not None:
            out["local_ip"] = self._primary("local_ip", str(out["local_ip"]))
        for key in ("latitude", "longitude"):
            if key in out:
                out[key] = None
        return out
