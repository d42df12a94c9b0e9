"""The digest: "what changed" on one local day against another (normally the same
weekday a week before), as frames and as plain sentences.

``digest(...)`` cuts both frames to their local day, then finds, in this order:
the devices seen only on the day, the remote countries seen only on the day, the
toxic remotes seen only on the day, the devices whose traffic changed most, and
the toxic flow counts with their cyT. ``Digest.sentences`` say all of it in plain
text built from data values made single lines (``escaping.one_line``); render them
with ``st.text``, or use ``Digest.as_markdown()``, which escapes them.

Pure polars, no Streamlit. Bytes are out + in; a flow is one row of the flow
frame, as in the vendor's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from flux_dashboard.analytics import critical_expr, cyt_of, device_label, flag_aggs, human_bytes
from flux_dashboard.escaping import escape_markdown, one_line
from flux_dashboard.hunting import add_country, latest_name, threats_label_expr

NEW_DEVICES_COLUMNS = pl.Schema(
    {"ip0": pl.String, "device_name": pl.String, "flows": pl.UInt32, "bytes": pl.Int64}
)
NEW_COUNTRIES_COLUMNS = pl.Schema(
    {
        "country_code": pl.String,
        "country": pl.String,
        "remotes": pl.UInt32,
        "flows": pl.UInt32,
        "bytes": pl.Int64,
    }
)
NEW_TOXIC_COLUMNS = pl.Schema(
    {
        "ip1": pl.String,
        "owner": pl.String,
        "country_code": pl.String,
        "country": pl.String,
        "devices": pl.UInt32,
        "flows": pl.UInt32,
        "has_out": pl.Boolean,
        "threats": pl.String,
    }
)
DEVICE_CHANGES_COLUMNS = pl.Schema(
    {
        "ip0": pl.String,
        "device_name": pl.String,
        "bytes_before": pl.Int64,
        "bytes_after": pl.Int64,
        "change": pl.Int64,
        "change_pct": pl.Float64,
    }
)


@dataclass
class Digest:
    """What changed between ``previous_day`` and ``day`` (same weekday a week before).

    ``sentences`` are plain text built from data values (control characters
    removed, long names shortened); render them with ``st.text`` or use
    ``as_markdown()``, which escapes them. ``change_pct`` is null when the
    device had no traffic before.
    """

    day: date
    previous_day: date
    sentences: list[str]
    new_devices: pl.DataFrame
    new_countries: pl.DataFrame
    new_toxic_remotes: pl.DataFrame
    device_changes: pl.DataFrame
    toxic_in_before: int = 0
    toxic_out_before: int = 0
    toxic_in_after: int = 0
    toxic_out_after: int = 0
    cyt_before: int = 0
    cyt_after: int = 0
    previous_empty: bool = False

    @property
    def title(self) -> str:
        return f"What changed on {self.day:%a %Y-%m-%d} vs {self.previous_day:%a %Y-%m-%d}"

    def as_text(self) -> str:
        return "\n".join([self.title, "", *(f"- {s}" for s in self.sentences)]) + "\n"

    def as_markdown(self) -> str:
        body = "\n".join(f"- {escape_markdown(s)}" for s in self.sentences)
        return f"**{escape_markdown(self.title)}**\n\n{body}\n"


def digest(
    day_df: pl.DataFrame,
    previous_df: pl.DataFrame,
    tz: str,
    day: date,
    previous_day: date,
    *,
    top_n: int = 5,
) -> Digest:
    """Compare ``day`` with ``previous_day`` (normally the same weekday a week before).

    Both frames are cut to their local day in ``tz`` (so passing wider frames
    is fine). Bytes are out + in. Toxic flow counts are rows, cyT as the
    vendor defines it. ``device_changes`` holds the ``top_n`` devices by
    absolute change (zero changes left out).
    """
    now = _local_day(day_df, tz, day)
    before = _local_day(previous_df, tz, previous_day)
    dev_now, dev_before = _per_device(now), _per_device(before)
    tin_b, tout_b = _toxic_counts(before)
    tin_a, tout_a = _toxic_counts(now)
    dg = Digest(
        day=day,
        previous_day=previous_day,
        sentences=[],
        new_devices=_new_devices(dev_now, dev_before),
        new_countries=_new_countries(now, before),
        new_toxic_remotes=_new_toxic_remotes(now, before),
        device_changes=_device_changes(dev_now, dev_before, top_n),
        toxic_in_before=tin_b,
        toxic_out_before=tout_b,
        toxic_in_after=tin_a,
        toxic_out_after=tout_a,
        cyt_before=cyt_of(tin_b, tout_b),
        cyt_after=cyt_of(tin_a, tout_a),
        previous_empty=before.height == 0,
    )
    dg.sentences.extend(_sentences(dg, now, before))
    return dg


# ---------------------------------------------------------------------------
# The frames
# ---------------------------------------------------------------------------

def _local_day(df: pl.DataFrame, tz: str, day: date) -> pl.DataFrame:
    return df.filter(pl.col("start_of_hour").dt.convert_time_zone(tz).dt.date() == day)


def _volume() -> pl.Expr:
    return (pl.col("out_bytes").fill_null(0) + pl.col("in_bytes").fill_null(0)).alias("bytes")


def _per_device(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by("ip0").agg(
        latest_name(), pl.len().cast(pl.UInt32).alias("flows"), _volume().sum()
    )


def _new_devices(dev_now: pl.DataFrame, dev_before: pl.DataFrame) -> pl.DataFrame:
    """Devices of the day absent the day before, most bytes first."""
    return (
        dev_now.join(dev_before.select("ip0"), on="ip0", how="anti")
        .sort(["bytes", "ip0"], descending=[True, False])
        .select(NEW_DEVICES_COLUMNS.names())
        .cast(dict(NEW_DEVICES_COLUMNS))
    )


def _per_country(frame: pl.DataFrame) -> pl.DataFrame:
    """Remotes, flows and bytes per known remote country."""
    if frame.height == 0:
        return pl.DataFrame(schema=NEW_COUNTRIES_COLUMNS)
    g = frame.group_by("ip1").agg(pl.len().alias("flows"), _volume().sum())
    return (
        add_country(g, frame)
        .filter(pl.col("country_code").is_not_null() & (pl.col("country_code") != "--"))
        .group_by("country_code", "country")
        .agg(pl.len().alias("remotes"), pl.col("flows").sum(), pl.col("bytes").sum())
        .cast(dict(NEW_COUNTRIES_COLUMNS))
    )


def _new_countries(now: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """Remote countries of the day absent the day before, most bytes first."""
    return (
        _per_country(now)
        .join(_per_country(before).select("country_code"), on="country_code", how="anti")
        .sort(["bytes", "country_code"], descending=[True, False])
        .select(NEW_COUNTRIES_COLUMNS.names())
    )


def _new_toxic_remotes(now: pl.DataFrame, before: pl.DataFrame) -> pl.DataFrame:
    """Toxic remotes of the day not toxic the day before: critical, then OUT, first."""
    tox_now = now.filter(pl.col("toxic").fill_null(False))
    tox_before = before.filter(pl.col("toxic").fill_null(False)).select("ip1").unique()
    new_tox = (
        tox_now.join(tox_before, on="ip1", how="anti")
        .group_by("ip1")
        .agg(
            pl.col("ip0").n_unique().cast(pl.UInt32).alias("devices"),
            pl.len().cast(pl.UInt32).alias("flows"),
            (pl.col("dir") == "OUT").any().alias("has_out"),
            pl.lit(True).alias("toxic"),
            *flag_aggs(),
        )
        .with_columns(threats_label_expr(), critical_expr())
        .sort(["critical", "has_out", "flows", "ip1"], descending=[True, True, True, False])
    )
    return add_country(new_tox, now).select(NEW_TOXIC_COLUMNS.names()).cast(
        dict(NEW_TOXIC_COLUMNS)
    )


def _device_changes(dev_now: pl.DataFrame, dev_before: pl.DataFrame, top_n: int
                    ) -> pl.DataFrame:
    """The ``top_n`` devices by absolute change of bytes (zero changes left out)."""
    return (
        dev_now.select("ip0", "device_name", pl.col("bytes").alias("bytes_after"))
        .join(
            dev_before.select(
                "ip0", pl.col("device_name").alias("_name_b"), pl.col("bytes").alias("bytes_before")
            ),
            on="ip0",
            how="full",
            coalesce=True,
        )
        .with_columns(
            pl.coalesce("device_name", "_name_b").alias("device_name"),
            pl.col("bytes_before").fill_null(0).cast(pl.Int64),
            pl.col("bytes_after").fill_null(0).cast(pl.Int64),
        )
        .with_columns((pl.col("bytes_after") - pl.col("bytes_before")).alias("change"))
        .with_columns(
            pl.when(pl.col("bytes_before") > 0)
            .then(pl.col("change") / pl.col("bytes_before") * 100)
            .alias("change_pct")
        )
        .filter(pl.col("change") != 0)
        .sort([pl.col("change").abs(), "ip0"], descending=[True, False])
        .head(top_n)
        .select(DEVICE_CHANGES_COLUMNS.names())
        .cast(dict(DEVICE_CHANGES_COLUMNS))
    )


def _toxic_counts(df: pl.DataFrame) -> tuple[int, int]:
    t = df.filter(pl.col("toxic").fill_null(False))
    n_out = t.filter(pl.col("dir") == "OUT").height
    return t.height - n_out, n_out


# ---------------------------------------------------------------------------
# The sentences
# ---------------------------------------------------------------------------

def _sentences(dg: Digest, now: pl.DataFrame, before: pl.DataFrame) -> list[str]:
    """The digest in plain sentences, in reading order."""
    s: list[str] = []
    if before.height == 0:
        s.append(
            f"No data for {dg.previous_day:%A %Y-%m-%d}: everything below counts as new, "
            "so comparisons are not meaningful."
        )
    if now.height == 0:
        s.append(f"No data for {dg.day:%A %Y-%m-%d}.")
    s.append(_traffic_sentence(now, before))
    s.append(_new_devices_sentence(dg.new_devices))
    s.append(_new_countries_sentence(dg.new_countries))
    s.append(_new_toxic_sentence(dg.new_toxic_remotes))
    s.append(
        f"Toxic flows: {dg.toxic_in_after} IN and {dg.toxic_out_after} OUT (was "
        f"{dg.toxic_in_before} IN and {dg.toxic_out_before} OUT); "
        f"cyT {dg.cyt_after} (was {dg.cyt_before})."
    )
    s.extend(_change_sentences(dg.device_changes))
    return s


def _traffic_sentence(now: pl.DataFrame, before: pl.DataFrame) -> str:
    total_a = int(now.select(_volume().sum()).item() or 0) if now.height else 0
    total_b = int(before.select(_volume().sum()).item() or 0) if before.height else 0
    return (
        f"Total traffic: {human_bytes(total_a)} in {_plural(now.height, 'flow')} "
        f"(was {human_bytes(total_b)} in {_plural(before.height, 'flow')}, "
        f"{_pct(total_b, total_a)})."
    )


def _new_devices_sentence(new_devices: pl.DataFrame) -> str:
    if not new_devices.height:
        return "No new devices."
    pairs = new_devices.select("ip0", "device_name").rows()
    labels = [device_label(ip, nm) for ip, nm in pairs]
    return f"{_plural(new_devices.height, 'new device')} appeared: {_list_text(labels)}."


def _new_countries_sentence(new_countries: pl.DataFrame) -> str:
    if not new_countries.height:
        return "No new remote countries."
    names = [one_line(c or cc) for cc, c in new_countries.select("country_code", "country").rows()]
    return (f"{_plural(new_countries.height, 'new remote country', 'new remote countries')}"
            f": {_list_text(names, 8)}.")


def _new_toxic_sentence(new_tox: pl.DataFrame) -> str:
    if not new_tox.height:
        return "No new toxic remotes."
    items = []
    for r in new_tox.iter_rows(named=True):
        where = one_line(r["country"] or "unknown country")
        items.append(f"{one_line(r['ip1'])} ({where}, {one_line(r['threats'], 80)})")
    n_out = int(new_tox["has_out"].sum())
    tail = f", {n_out} of them contacted from the LAN (OUT)" if n_out else ""
    return f"{_plural(new_tox.height, 'new toxic remote')}{tail}: {_list_text(items)}."


def _change_sentences(changes: pl.DataFrame) -> list[str]:
    out = []
    for r in changes.iter_rows(named=True):
        verb = "rose" if r["change"] > 0 else "fell"
        out.append(
            f"Traffic of {device_label(r['ip0'], r['device_name'])} {verb} from "
            f"{human_bytes(r['bytes_before'])} to {human_bytes(r['bytes_after'])} "
            f"({_pct(r['bytes_before'], r['bytes_after'])})."
        )
    return out


def _pct(before: float, after: float) -> str:
    if before == 0:
        return "new" if after else "0%"
    return f"{(after - before) / before * 100:+.0f}%"


def _list_text(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    more = len(items) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"
