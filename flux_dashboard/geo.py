"""Offline country lookup for public IPs (geoip2fast, no network at run time).

The database is loaded once per process (about 0.05 s, 27 MiB) and lookups are
memoised per IP: a month of flows has a few thousand distinct remotes, not
millions, so we look up the distinct values and join back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from functools import cache
from importlib import resources

import polars as pl
from cachetools import LRUCache, cached

GEO_SCHEMA = pl.Schema(
    {"ip": pl.String, "country_code": pl.String, "country": pl.String, "iso3": pl.String}
)
UNKNOWN = ("--", "Unknown", None)


@cache
def _db():
    from geoip2fast import GeoIP2Fast

    # The IPv4+IPv6 country file: remote hosts may be IPv6.
    return GeoIP2Fast(geoip2fast_data_file="geoip2fast-ipv6.dat.gz")


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
        geo = countries(df.get_column(ip_col).unique().to_list())
    geo = geo.rename({c: f"{prefix}{c}" for c in cols})
    return df.join(geo, left_on=ip_col, right_on="ip", how="left", maintain_order="left")
