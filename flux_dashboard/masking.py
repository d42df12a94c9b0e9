"""Identifier masking for customer demos.

``Masker(secret)`` replaces IPs, MACs, device/custom/netbios names and
vendors with pseudonyms. Every alias is a pure function of (kind, value,
secret): the same original gets the same alias in every frame, page, rerun,
session and process that uses the same secret, whatever other values share
the frame. That is what keeps findings identical under masking: an analysis
run on masked frames (first-seen remotes, the digest against a baseline
loaded separately) sees exactly the equalities the real identifiers have.

Alias shapes (``IP`` aliases never equal a real host or a real LAN address):

==========  ===========================================  ==========================
kind        alias                                        distinct originals
==========  ===========================================  ==========================
local_ip    ``240-243.a.b.c`` (reserved class E)         keyed permutation: never
            for private/CGNAT/link-local IPv4;           two originals share one
            ``fdxx:xxxx:xxxx:xxxx::1`` (ULA) otherwise   (ULA: 64-bit hash)
public_ip   ``2001:db8::xxxx:xxxx:xxxx:xxxx``            64-bit keyed hash
            (IPv6 documentation prefix)
mac         ``02:xx:xx:xx:xx:xx`` (locally administered)  40-bit keyed hash
name        ``Device-xxxxxxxx``                          32-bit keyed hash
vendor      ``Vendor-xxxxxx``                            24-bit keyed hash
==========  ===========================================  ==========================

Private IPv4 addresses (10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16)
are numbered into one index below 2^26 and sent through a keyed Feistel
permutation of 26 bits, so two local IPs can never share an alias, and the
alias lies in 240.0.0.0/6, which no host or LAN uses. Hash-based aliases are
collision-free in practice for IPs (64 bits; ``aliases`` raises rather than
merge two IPs); a name or vendor collision would only merge two labels, never
two devices, since analyses key on IPs. Countries and owners (the ASN's
organisation) are derived before masking and are left alone, as are flags
such as ``is_critical`` and ``device_category``; the owner's network
(``owner_net``, e.g. 8.8.8.0/24) would narrow a masked IP down, so it is
emptied (``HIDDEN_WHEN_MASKED``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import polars as pl

KINDS = ("local_ip", "public_ip", "mac", "name", "vendor", "sensor", "finding")

# Private IPv4 blocks, numbered one after the other into an index below 2^26.
_PRIVATE = [ipaddress.IPv4Network(n) for n in
            ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
             "169.254.0.0/16")]
_OFFSETS = [sum(n.num_addresses for n in _PRIVATE[:i]) for i in range(len(_PRIVATE))]
_INDEX_BITS = 26
_CLASS_E = int(ipaddress.IPv4Address("240.0.0.0"))


def _private_index(value: str) -> int | None:
    try:
        ip = ipaddress.IPv4Address(value)
    except ValueError:
        return None
    for net, offset in zip(_PRIVATE, _OFFSETS, strict=True):
        if ip in net:
            return offset + int(ip) - int(net.network_address)
    return None

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

# Columns that are not identifiers themselves but would narrow one down: emptied.
HIDDEN_WHEN_MASKED = ("owner_net",)


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

    def _permute(self, x: int, bits: int = _INDEX_BITS) -> int:
        """A keyed permutation of ``bits``-bit integers (4-round balanced Feistel)."""
        half = bits // 2
        mask = (1 << half) - 1
        left, right = x >> half, x & mask
        for rnd in range(4):
            h = hashlib.blake2b(digest_size=8, key=self._key, person=b"flux-mask-fst")
            h.update(bytes([rnd]) + right.to_bytes(4, "big"))
            left, right = right, left ^ (int.from_bytes(h.digest(), "big") & mask)
        return (left << half) | right

    def _alias(self, kind: str, value: str) -> str:
        d = self._digest(kind, value)
        if kind == "local_ip":
            index = _private_index(value)
            if index is not None:
                return str(ipaddress.IPv4Address(_CLASS_E + self._permute(index)))
            return f"fd{d[0]:02x}:{d[1:3].hex()}:{d[3:5].hex()}:{d[5:7].hex()}::1"
        if kind == "public_ip":
            return "2001:db8::" + ":".join(d[i : i + 2].hex() for i in range(0, 8, 2))
        if kind == "mac":
            return "02:" + ":".join(f"{b:02x}" for b in d[:5])
        if kind == "name":
            return f"Device-{d[:4].hex()}"
        if kind == "vendor":
            return f"Vendor-{d[:3].hex()}"
        if kind == "sensor":
            return f"Sensor-{d[:3].hex()}"
        if kind == "finding":  # a finding's key hashes real identifiers: a guess could
            return f"f-{d[:9].hex()}"  # be checked against it, an alias cannot
        raise ValueError(f"Unknown masking kind {kind!r}; expected one of {KINDS}.")

    def mask_value(self, kind: str, value: str | None) -> str | None:
        """The alias of one value (None stays None); the same as in any frame."""
        if value is None:
            return None
        return self._alias(kind, str(value))

    def aliases(self, kind: str, values: Iterable[str | None]) -> dict[str, str]:
        """Aliases for a set of distinct values of one kind."""
        out = {v: self._alias(kind, v) for v in {str(v) for v in values if v is not None}}
        if kind in ("local_ip", "public_ip") and len(set(out.values())) != len(out):
            # Needs a 64-bit hash collision: refuse rather than merge two hosts.
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
        hidden = [c for c in HIDDEN_WHEN_MASKED if c in df.columns]
        if hidden:
            df = df.with_columns(pl.lit(None, df.schema[c]).alias(c) for c in hidden)
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
                out[key] = self._alias("sensor", str(out[key]))
        if out.get("mac_address") is not None:
            out["mac_address"] = self._alias("mac", str(out["mac_address"]))
        if out.get("public_ip") is not None:
            out["public_ip"] = self._alias("public_ip", str(out["public_ip"]))
        if out.get("local_ip") is not None:
            out["local_ip"] = self._alias("local_ip", str(out["local_ip"]))
        for key in ("latitude", "longitude"):
            if key in out:
                out[key] = None
        return out


MIN_SECRET_BYTES = 16


def load_secret(path: Path, env_value: str | None = None) -> bytes:
    """The masking secret: ``env_value`` if set, else the file at ``path``.

    Stable across restarts so masked links keep working, and never in the repo.
    A missing, empty or short file (a crash or a full disk while writing it) is
    treated as absent: a new random secret is written atomically (temp file,
    then rename), and what is on disk afterwards is used, so concurrent
    processes agree.
    """
    if env_value:
        return env_value.encode()

    def read() -> bytes | None:
        try:
            value = path.read_bytes()
        except OSError:
            return None
        return value if len(value) >= MIN_SECRET_BYTES else None

    value = read()
    if value is not None:
        return value
    fresh = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mask-secret-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(fresh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            if path.exists():
                os.replace(tmp, path)  # a short or empty file: replace it
            else:
                try:
                    os.link(tmp, path)  # never clobber a secret another process just wrote
                except FileExistsError:
                    pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:  # read-only or full disk: this process still masks consistently
        return fresh
    return read() or fresh


def settings_masker(cache_dir: Path) -> Masker:
    """The deployment's masker: the secret of ``FLUX_MASK_SECRET``, else the one kept in
    the cache directory; the dashboard and the notifier alias alike."""
    return Masker(load_secret(Path(cache_dir) / "mask-secret", os.environ.get("FLUX_MASK_SECRET")))
