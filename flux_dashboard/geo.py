"""Offline country and owner (ASN) lookup for public IPs (geoip2fast, no network).

The database is loaded once per process and lookups are memoised per IP: a
month of flows has a few thousand distinct remotes, not millions, so we look
up the distinct values and join back.

One database file serves both lookups: ``geoip2fast-asn-ipv6.dat.gz`` (bundled
with geoip2fast 1.2.2: MaxMind GeoLite2 Country + ASN, IPv4 and IPv6, June
2024). geoip2fast keeps its tables in module globals, so a second instance
with another file would replace the first one's data for the whole process:
the country-only file must not be loaded beside it. Its country answers are
the same as the country-only file's (checked on 20,000 random IPv4s); it takes
about 0.3 s longer to load and some 60 MiB more memory (0.46 s and 111 MiB
against 0.17 s and 49 MiB, measured on the 2-CPU dev machine).
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources

import polars as pl
from cachetools import LRUCache, cached

from flux_dashboard.schema import compact

GEO_SCHEMA = pl.Schema(
    {"ip": pl.String, "country_code": pl.String, "country": pl.String, "iso3": pl.String}
)
UNKNOWN = ("--", "Unknown", None)
# The organisation that owns the address (its ASN name) and the announced network.
OWNER_SCHEMA = pl.Schema({"ip": pl.String, "owner": pl.String, "owner_net": pl.String})
OWNER_COLUMNS = ("owner", "owner_net")
PRIVATE_OWNER = "Private network"
RESERVED_OWNER = "Reserved address"
UNKNOWN_OWNER = "Unknown owner"
DB_FILE = "geoip2fast-asn-ipv6.dat.gz"
_PRIVATE_NETS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10")]


@cache
def _db():
    from geoip2fast import GeoIP2Fast

    # Country + ASN, IPv4 + IPv6 (remote hosts may be IPv6). The only file loaded:
    # see the module docstring.
    return GeoIP2Fast(geoip2fast_data_file=DB_FILE)


@cache
def _iso3() -> dict[str, str]:
    return json.loads(resources.files("flux_dashboard").joinpath("data/iso3.json").read_text())


@cached(cache=LRUCache(maxsize=200_000), lock=threading.Lock())
def lookup(ip: str) -> tuple[str, str, str | None]:
    """(ISO alpha-2, English name, ISO alpha-3) of an IP; ('--', 'Unknown', None) if none."""
    try:
        r = _db().lookup(ip)
    except Exception:  # geoip2fast raises on some malformed input instead of its sentinel
        return UNKNOWN
    code = (r.country_code or "").upper()
    if len(code) != 2 or code == "--" or r.is_private:
        return UNKNOWN
    return code, r.country_name, _iso3().get(code)


def countries(ips: Iterable[str | None]) -> pl.DataFrame:
    """One row per distinct IP with its country (``GEO_SCHEMA``)."""
    distinct = sorted({ip for ip in ips if ip})
    rows = [(ip, *lookup(ip)) for ip in distinct]
    return pl.DataFrame(rows, schema=GEO_SCHEMA, orient="row")


def with_country(df: pl.DataFrame, ip_col: str = "ip1", prefix: str = "",
                 source: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add ``country_code``, ``country`` and ``iso3`` columns for ``ip_col``.

    When ``source`` (the flow frame ``df`` was aggregated from) already carries
    the country columns, they are reused: after demo masking ``ip1`` holds
    aliases that no database knows, but the countries were looked up before.
    """
    cols = [c for c in GEO_SCHEMA.names() if c != "ip"]
    if source is not None and set(cols) <= set(source.columns):
        geo = source.select(pl.col(ip_col).alias("ip"), *cols).unique("ip")
    else:
        ips = df.get_column(ip_col)
        geo = countries(ips.unique().cast(pl.String).to_list()).with_columns(
            pl.col("ip").cast(ips.dtype))  # a compact frame's IPs are categoricals
    geo = geo.rename({c: f"{prefix}{c}" for c in cols})
    return df.join(geo, left_on=ip_col, right_on="ip", how="left", maintain_order="left")


@cached(cache=LRUCache(maxsize=200_000), lock=threading.Lock())
def owner(ip: str) -> tuple[str, str | None]:
    """(organisation, network) owning an IP, from the bundled ASN data.

    ``("GOOGLE", "8.8.8.0/24")`` for 8.8.8.8. Addresses that no organisation
    announces say what they are instead: ``PRIVATE_OWNER`` (RFC 1918, CGNAT,
    link-local, ULA), ``RESERVED_OWNER`` (loopback, multicast, documentation,
    class E...) or ``UNKNOWN_OWNER`` (not in the data, or not an IP); their
    network is None.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return UNKNOWN_OWNER, None
    if any(addr in net for net in _PRIVATE_NETS if net.version == addr.version):
        return PRIVATE_OWNER, None
    try:
        r = _db().lookup(str(addr))
    except Exception:  # geoip2fast raises on some input instead of its sentinel
        return UNKNOWN_OWNER, None
    if r.is_private or not addr.is_global:
        return RESERVED_OWNER, None
    name = (r.asn_name or "").strip()
    if not name:
        return UNKNOWN_OWNER, None
    return name, (r.asn_cidr or None)


def owners(ips: Iterable[str | None]) -> pl.DataFrame:
    """One row per distinct IP with its owner (``OWNER_SCHEMA``)."""
    distinct = sorted({ip for ip in ips if ip})
    rows = [(ip, *owner(ip)) for ip in distinct]
    return pl.DataFrame(rows, schema=OWNER_SCHEMA, orient="row")


def with_owner(df: pl.DataFrame, ip_col: str = "ip1", source: pl.DataFrame | None = None
               ) -> pl.DataFrame:
    """Add ``owner`` and ``owner_net`` columns for ``ip_col`` (see ``with_country``).

    When ``df`` or ``source`` (the prepared flow frame) already carries them,
    they are reused: after masking ``ip1`` holds aliases, and ``owner_net`` was
    emptied by the masker (a network would narrow the masked IP down).
    Otherwise the distinct IPs are looked up.
    """
    if set(OWNER_COLUMNS) <= set(df.columns):
        return df
    if source is not None and set(OWNER_COLUMNS) <= set(source.columns):
        table = source.select(pl.col(ip_col).alias("ip"), *OWNER_COLUMNS).unique("ip")
    else:
        ips = df.get_column(ip_col)
        table = owners(ips.unique().cast(pl.String).to_list()).with_columns(
            pl.col("ip").cast(ips.dtype))
    return df.drop(OWNER_COLUMNS, strict=False).join(
        table, left_on=ip_col, right_on="ip", how="left", maintain_order="left")


def enrich(df: pl.DataFrame, ip_col: str = "ip1") -> pl.DataFrame:
    """``with_owner(with_country(df, ip_col), ip_col)``, compact and without a copy.

    The flows' own columns are shared with ``df``, not copied (a join would
    rebuild every one of them): the distinct IPs are looked up once, and only
    the five added columns are built, as categoricals, by one lookup per row
    of the small table. What the dashboard does to each loaded frame.
    """
    ips = df.get_column(ip_col)
    distinct = ips.unique().drop_nulls().cast(pl.String).to_list()
    table = countries(distinct).join(owners(distinct), on="ip", how="left")
    table = compact(table.with_columns(pl.col("ip").cast(ips.dtype)))
    added = (ips.alias("ip").to_frame()
             .join(table, on="ip", how="left", maintain_order="left").drop("ip"))
    return df.drop(*added.columns, strict=False).hstack(added)
