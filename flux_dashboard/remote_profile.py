"""Remote-host profile: everything the loaded flows say about one public IP.

Pure polars functions over the prepared flow frame (countries and owners
already looked up, masking already applied), so a profile costs no request:

- ``check_remote``: is a value (a link's ``?remote=``, a search box) a public
  IP a profile can be opened for? A plain message when it is not.
- ``remote_summary``: owner, network, country, flows and bytes, threat
  categories, how many toxic flows the sensor blocked, first and last contact.
- ``remote_devices``: every local device that talked to it, with directions,
  flows, bytes, ports and protocols.
- ``remote_regularity``: the storyline regularity of each device's contacts.
- ``same_owner_remotes``: the other IPs of the same organisation in the range.
- ``first_contacts``: the first hour each remote appears in the disk cache.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime

import polars as pl

from flux_dashboard.analytics import critical_expr, remote_hosts
from flux_dashboard.geo import PRIVATE_OWNER, RESERVED_OWNER, UNKNOWN_OWNER
from flux_dashboard.hunting import storylines
from flux_dashboard.schema import THREAT_FLAGS, THREATS, UTC_US

# Masked public IPs are aliases in the IPv6 documentation prefix (see masking.py).
_MASKED_PREFIX = ipaddress.ip_network("2001:db8::/32")
NOT_AN_ORGANISATION = (PRIVATE_OWNER, RESERVED_OWNER, UNKNOWN_OWNER)

DEVICE_COLUMNS = pl.Schema({
    "device_name": pl.String, "ip0": pl.String, "dirs": pl.String, "flows": pl.UInt32,
    "bytes_out": pl.Int64, "bytes_in": pl.Int64, "bytes": pl.Int64, "ports": pl.String,
    "protocols": pl.String, "toxic_flows": pl.UInt32, "blocked_flows": pl.UInt32,
    "first_contact": UTC_US, "last_contact": UTC_US,
})
REGULARITY_COLUMNS = ("device_name", "ip0", "dirs", "contacts", "hours_active", "regularity",
                      "regularity_note")
SAME_OWNER_COLUMNS = ("ip1", "country", "flows", "bytes", "devices", "toxic_flows", "threats")


def check_remote(value: str | None, masked: bool) -> tuple[str | None, str | None]:
    """(the IP, None) when ``value`` can have a profile, else (None, a plain message).

    Unmasked, only public (globally routable) addresses: a profile of a LAN or
    reserved address would be meaningless. Masked, the tables show aliases in
    2001:db8::/32 instead, and only those can match the loaded flows.
    """
    raw = (value or "").strip()
    if not raw:
        return None, "Enter a public IP address (example: 91.92.248.153)."
    # Masked, what was typed is never echoed: it may be an original address.
    shown = "That" if masked else f"“{raw[:60]}”"
    try:
        addr = ipaddress.ip_address(raw)
    except ValueError:
        return None, f"{shown} is not an IP address (example: 91.92.248.153)."
    # The value as written, not normalised: it is compared with ip1 as the API (or the
    # masker, whose aliases keep leading zeros: 2001:db8::0a5e:...) spells it.
    if masked:
        if addr.version == 6 and addr in _MASKED_PREFIX:
            return raw, None
        return None, (f"{shown} is not a masked remote address: with masking on, open a "
                      "profile from a table or a masked link.")
    if not addr.is_global:
        return None, (f"{shown} is not a public IP address (it is private or reserved): "
                      "a remote-host profile is for public addresses.")
    return raw, None


def _one(df: pl.DataFrame, ip: str) -> pl.DataFrame:
    return df.filter(pl.col("ip1") == ip)


def _contact_first() -> pl.Expr:
    return pl.coalesce("first_seen", "start_of_hour")


def _contact_last() -> pl.Expr:
    return pl.coalesce("last_seen", "start_of_hour")


def remote_summary(df: pl.DataFrame, ip: str) -> dict:
    """What the range says about ``ip``; ``flows`` is 0 when it does not appear.

    Keys: ip, owner, owner_net, country_code, country, flows, bytes_in,
    bytes_out, devices, toxic_flows, blocked_flows (toxic flows the sensor
    filtered), threats (labels, most dangerous first), critical,
    first_contact, last_contact (UTC).
    """
    one = _one(df, ip)
    out: dict = {"ip": ip, "flows": one.height}
    if one.height == 0:
        return out | {"owner": None, "owner_net": None, "country_code": None, "country": None,
                      "bytes_in": 0, "bytes_out": 0, "devices": 0, "toxic_flows": 0,
                      "blocked_flows": 0, "threats": [], "critical": False,
                      "first_contact": None, "last_contact": None}
    toxic = pl.col("toxic").fill_null(False)
    row = one.select(
        *(pl.col(c).drop_nulls().first().alias(c) if c in one.columns else
          pl.lit(None, pl.String).alias(c)
          for c in ("owner", "owner_net", "country_code", "country")),
        pl.col("in_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_in"),
        pl.col("out_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_out"),
        pl.col("ip0").n_unique().cast(pl.Int64).alias("devices"),
        toxic.sum().cast(pl.Int64).alias("toxic_flows"),
        (toxic & pl.col("filtered").fill_null(False)).sum().cast(pl.Int64)
        .alias("blocked_flows"),
        _contact_first().min().alias("first_contact"),
        _contact_last().max().alias("last_contact"),
        *(pl.col(f).fill_null(False).any().alias(f) for f in THREAT_FLAGS),
    ).row(0, named=True)
    threats = [THREATS[f]["label"] for f in THREAT_FLAGS if row.pop(f)]
    if row["toxic_flows"] and not threats:
        threats = ["Unqualified"]
    critical = bool(one.select(critical_expr().any()).item())
    return out | row | {"threats": threats, "critical": critical}


def blocked_text(summary: dict) -> str:
    """Whether the sensor blocked this host's toxic flows, in words."""
    toxic, blocked = summary["toxic_flows"], summary["blocked_flows"]
    if not toxic:
        return "not toxic in this range: nothing to block"
    if blocked == toxic:
        return f"blocked by the sensor (all {toxic:,} toxic flows)"
    if blocked == 0:
        return f"not blocked by the sensor (0 of {toxic:,} toxic flows)"
    return f"partly blocked by the sensor ({blocked:,} of {toxic:,} toxic flows)"


def _joined(col: str) -> pl.Expr:
    return pl.col(col).drop_nulls().cast(pl.String).unique().sort()


def remote_devices(df: pl.DataFrame, ip: str, tz: str | None = None) -> pl.DataFrame:
    """One row per local device that exchanged flows with ``ip`` (``DEVICE_COLUMNS``).

    ``dirs`` is "IN", "OUT" or "IN+OUT"; ``ports`` and ``protocols`` are the
    distinct values in ascending order; most bytes first. Contacts are shown in
    ``tz`` when given (UTC otherwise).
    """
    one = _one(df, ip)
    if one.height == 0:
        return _in_tz(pl.DataFrame(schema=DEVICE_COLUMNS), tz)
    toxic = pl.col("toxic").fill_null(False)
    out = (
        one.group_by("ip0")
        .agg(
            pl.col("device_name").sort_by("start_of_hour").last(),
            pl.col("dir").unique().sort().str.join("+").alias("dirs"),
            pl.len().cast(pl.UInt32).alias("flows"),
            pl.col("out_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_out"),
            pl.col("in_bytes").fill_null(0).sum().cast(pl.Int64).alias("bytes_in"),
            pl.col("port").drop_nulls().unique().sort().cast(pl.String).str.join(", ")
            .alias("ports"),
            _joined("protocol").str.join(", ").alias("protocols"),
            toxic.sum().cast(pl.UInt32).alias("toxic_flows"),
            (toxic & pl.col("filtered").fill_null(False)).sum().cast(pl.UInt32)
            .alias("blocked_flows"),
            _contact_first().min().alias("first_contact"),
            _contact_last().max().alias("last_contact"),
        )
        .with_columns((pl.col("bytes_out") + pl.col("bytes_in")).alias("bytes"))
        .sort(["bytes", "ip0"], descending=[True, False])
    )
    return _in_tz(out.select(DEVICE_COLUMNS.names()).cast(dict(DEVICE_COLUMNS)), tz)


def _in_tz(df: pl.DataFrame, tz: str | None) -> pl.DataFrame:
    if tz is None:
        return df
    return df.with_columns(pl.col("first_contact", "last_contact").dt.convert_time_zone(tz))


def remote_regularity(df: pl.DataFrame, ip: str) -> pl.DataFrame:
    """Per device, the storyline regularity of its contacts with ``ip`` (all flows,
    toxic or not): contacts, hours active, regularity and how it was computed."""
    one = _one(df, ip)
    if one.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in REGULARITY_COLUMNS})
    # storylines() reads toxic rows: here every flow with this host is a contact.
    return storylines(one.with_columns(pl.lit(True).alias("toxic"))).select(REGULARITY_COLUMNS)


def same_owner_remotes(df: pl.DataFrame, ip: str, owner: str | None) -> pl.DataFrame:
    """The other public IPs of ``owner`` contacted in ``df`` (most bytes first).

    Empty for no owner, or an owner that is no organisation (private, reserved,
    unknown): those share nothing.
    """
    if not owner or owner in NOT_AN_ORGANISATION or "owner" not in df.columns:
        return pl.DataFrame(schema={c: pl.String for c in SAME_OWNER_COLUMNS})
    peers = df.filter((pl.col("owner") == owner) & (pl.col("ip1") != ip))
    return remote_hosts(peers, sort_by="bytes").select(SAME_OWNER_COLUMNS)


def first_contacts(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """ip1 → the earliest ``start_of_hour`` it appears in, over ``frames`` (cache files)."""
    parts = [f.group_by("ip1").agg(pl.col("start_of_hour").min().alias("first_hour"))
             for f in frames if f.height]
    if not parts:
        return pl.DataFrame(schema={"ip1": pl.String, "first_hour": UTC_US})
    return (pl.concat(parts).group_by("ip1").agg(pl.col("first_hour").min())
            .sort("ip1").cast({"first_hour": UTC_US}))


def first_contact_of(table: pl.DataFrame, ip: str) -> datetime | None:
    hit = table.filter(pl.col("ip1") == ip)
    return hit["first_hour"].item() if hit.height else None


__all__ = ["blocked_text", "check_remote", "first_contact_of", "first_contacts",
           "remote_devices", "remote_regularity", "remote_summary", "same_owner_remotes"]
