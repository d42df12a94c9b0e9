"""What the notifications say: the daily digest, finding alerts, silence, from one template.

A message is a ``Message``: a title, an intro and sections of lines, each line plain
text (data values made single lines and short, ``escaping.one_line``) with at most
one link. ``as_text``, ``as_markdown`` and ``as_html`` render that one structure, so
the e-mail, the chat message and the preview always say the same thing; Markdown
(``escaping.escape_chat``) and HTML escape every data value (a device named ``<img onerror=…>`` or
``[click](http://evil)`` stays text), and links are only ever built here, from
``FLUX_PUBLIC_URL`` and URL-encoded parameters.

A masked message (a customer-facing route) shows identifiers as the dashboard's
masking does (the same secret, so the same aliases) and its links open the masked
view with aliases (``mask=true``; a masked view accepts aliases only).

``daily`` is the morning report of one sensor's local day against the same weekday a
week before: the figures from the cached flows, the findings from the database.
Pure functions of their inputs (no Streamlit, no request).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import polars as pl

from flux_dashboard import analytics as A
from flux_dashboard.escaping import escape_chat, one_line
from flux_dashboard.findings import KIND_LABELS, SEVERITIES
from flux_dashboard.hours import local_day_window, range_query
from flux_dashboard.masking import Masker

TOP_FINDINGS = 5
# The top findings of a digest: by severity, then these kinds first (a contact with a
# toxic host says more than a machine that uploaded more than usual).
KIND_ORDER = ("toxic_out", "beacon", "inbound_attack", "first_seen", "upload_anomaly",
              "off_hours")
ALERT_LINES = 10  # a grouped alert lists this many findings, then "and N more"
DEFAULT_PUBLIC_URL = "http://localhost:8501"  # what `make run` serves
HUNTING_KINDS = {"first_seen": "First-seen remotes", "upload_anomaly": "Upload anomalies",
                 "off_hours": "Off-hours activity"}
TRIAGE_WORDS = {"acknowledge": "acknowledged", "investigate": "investigating",
                "resolve": "resolved", "false_positive": "false positive",
                "reopen": "reopened", "assign": "assigned", "comment": "commented",
                "expect": "expected"}


@dataclass(frozen=True)
class Line:
    text: str
    link: str | None = None
    label: str = "open"  # the link's words in text and HTML


@dataclass(frozen=True)
class Section:
    heading: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Message:
    title: str
    intro: str
    sections: tuple[Section, ...] = ()
    footer: str = ""
    links: tuple[str, ...] = field(default=())  # every URL, for checks

    def as_text(self) -> str:
        out = [self.title, "", self.intro]
        for s in self.sections:
            out += ["", s.heading]
            for ln in s.lines:
                out.append(f"- {ln.text}")
                if ln.link:
                    out.append(f"  {ln.link}")
        if self.footer:
            out += ["", self.footer]
        return "\n".join(out).strip() + "\n"

    def as_markdown(self) -> str:
        md = escape_chat
        out = [f"**{md(self.title)}**", "", md(self.intro)]
        for s in self.sections:
            out += ["", f"**{md(s.heading)}**"]
            for ln in s.lines:
                link = f" ([{md(ln.label)}](<{ln.link}>))" if ln.link else ""
                out.append(f"- {md(ln.text)}{link}")
        if self.footer:
            out += ["", f"_{md(self.footer)}_"]
        return "\n".join(out).strip() + "\n"

    def as_html(self) -> str:
        e = html.escape
        parts = [f"<h2 style=\"margin:0 0 8px\">{e(self.title)}</h2>", f"<p>{e(self.intro)}</p>"]
        for s in self.sections:
            parts.append(f"<h3 style=\"margin:14px 0 4px\">{e(s.heading)}</h3><ul>")
            for ln in s.lines:
                link = (f" <a href=\"{e(ln.link, quote=True)}\">{e(ln.label)}</a>"
                        if ln.link else "")
                parts.append(f"<li>{e(ln.text)}{link}</li>")
            parts.append("</ul>")
        if self.footer:
            parts.append(f"<p style=\"color:#666;font-size:12px\">{e(self.footer)}</p>")
        return ("<!doctype html><html><body style=\"font-family:sans-serif;max-width:640px\">"
                + "".join(parts) + "</body></html>")


def _message(title: str, intro: str, sections: Sequence[Section], footer: str = "") -> Message:
    kept = tuple(s for s in sections if s.lines)
    links = tuple(ln.link for s in kept for ln in s.lines if ln.link)
    return Message(one_line(title, 200), intro, kept, footer, links)


# ------------------------------------------------------------------ identifiers and links

@dataclass(frozen=True)
class Shown:
    """Identifiers as a route shows them: real, or the dashboard's aliases."""

    mask: Masker | None = None

    def __call__(self, kind: str, value: object, limit: int = 40) -> str:
        if value is None or value == "":
            return ""
        text = str(value)
        if self.mask is not None:
            text = self.mask.mask_value(kind, text) or ""
        return one_line(text, limit)

    def sensor(self, sensor: Mapping) -> str:
        s = self.mask.mask_sensor(sensor) if self.mask is not None else sensor
        return one_line(s.get("full_name") or s.get("name") or f"Sensor {s.get('id')}", 60)

    def device(self, ip0: object, name: object) -> str:
        ip, nm = self("local_ip", ip0), self("name", name)
        if not nm or nm == ip or (self.mask is not None and str(name) == str(ip0)):
            return ip or "?"
        return f"{nm} ({ip})"

    def remote(self, ip1: object, owner: object, country: object) -> str:
        where = ", ".join(one_line(v, 40) for v in (owner, country) if v)
        return f"{self('public_ip', ip1)}" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class Links:
    base: str
    masked: bool = False
    mask: Masker | None = None

    def url(self, page: str, query: Mapping[str, str | list[str]]) -> str:
        q = dict(query)
        if self.masked:
            q["mask"] = "true"
        return f"{self.base.rstrip('/')}/{page}?{urlencode(q, doseq=True)}"

    def day(self, page: str, sensor: int, day: date, tz: str, **extra: str) -> str:
        return self.url(page, {**day_query(sensor, day, tz), **extra})

    def finding(self, row: Mapping, tz: str) -> str:
        key = row["key"]
        if self.mask is not None:
            key = self.mask.mask_value("finding", key)
        day = (row.get("day") or row["first_contact"].astimezone(ZoneInfo(tz)).date())
        return self.day("findings", int(row["sensor"]), day, tz, finding=key)


def day_query(sensor: int, day: date, tz: str) -> dict[str, str]:
    """The sidebar's custom range pinned to one local day of the sensor (DST-safe)."""
    return range_query(sensor, *local_day_window(day, tz), tz)


# ------------------------------------------------------------------ the daily digest

@dataclass(frozen=True)
class DayFigures:
    flows: int
    bytes_in: int
    bytes_out: int
    toxic_in: int
    toxic_out: int
    cyt: int
    level: int
    co2e_g: float

    @classmethod
    def of(cls, flows: pl.DataFrame, g_per_gb: float) -> DayFigures:
        k = A.kpis(flows)
        return cls(flows=int(k["flows"]), bytes_in=int(k["bytes_in"] or 0),
                   bytes_out=int(k["bytes_out"] or 0), toxic_in=int(k["toxic_in"]),
                   toxic_out=int(k["toxic_out"]), cyt=int(k["cyt"]),
                   level=A.cyt_level(int(k["cyt"])),
                   co2e_g=A.cybercarbon(flows, g_per_gb)["co2e_g"])


def _change(now: float, before: float) -> str:
    if before == 0:
        return "new" if now else "same"
    pct = (now - before) / before * 100
    return "same" if abs(pct) < 0.5 else f"{pct:+.0f}%"


def figure_lines(day: DayFigures, week: DayFigures, weekday: str) -> tuple[Line, ...]:
    vs = f"vs {weekday} a week before"
    level = f"{A.LEVEL_NAMES[day.level]} (cyT {day.cyt:,}; {vs}: " \
            f"{A.LEVEL_NAMES[week.level]}, cyT {week.cyt:,})"
    return (
        Line(f"Flows: {day.flows:,} ({_change(day.flows, week.flows)} {vs})"),
        Line(f"Bytes in: {A.human_bytes(day.bytes_in)} ({_change(day.bytes_in, week.bytes_in)})"
             f" · out: {A.human_bytes(day.bytes_out)} "
             f"({_change(day.bytes_out, week.bytes_out)})"),
        Line(f"Cyberweather: {level}"),
        Line(f"Toxic flows IN: {day.toxic_in:,} (was {week.toxic_in:,}) · OUT: "
             f"{day.toxic_out:,} (was {week.toxic_out:,})"),
        Line(f"Cybercarbon: ≈ {A.human_grams(day.co2e_g)} CO2e "
             f"({_change(day.co2e_g, week.co2e_g)})"),
    )


def _severity_order() -> pl.Expr:
    return pl.col("severity").replace_strict(SEVERITIES, list(range(len(SEVERITIES))),
                                             default=len(SEVERITIES), return_dtype=pl.Int8)


def finding_text(row: Mapping, show: Shown, tz: str, with_sensor: str | None = None) -> str:
    kind = KIND_LABELS.get(row["kind"], str(row["kind"]))
    parts = [f"{str(row['severity']).upper()} {kind}"]
    if row.get("ip0") or row.get("device_name"):
        parts.append(show.device(row.get("ip0"), row.get("device_name")))
    if row.get("ip1"):
        parts.append("→ " + show.remote(row["ip1"], row.get("owner"), row.get("country")))
    if row.get("first_contact") is not None:
        first = row["first_contact"].astimezone(ZoneInfo(tz))
        parts.append(f"from {first:%d %b %H:%M}")
    if with_sensor:
        parts.append(f"on {with_sensor}")
    return " ".join(parts)


def daily(sensor: Mapping, day: date, tz: str, flows: pl.DataFrame, week_before: pl.DataFrame,
          new: pl.DataFrame, open_counts: Mapping[str, int], triaged: pl.DataFrame, *,
          links: Links, show: Shown, g_per_gb: float, late: bool = False,
          coverage: float = 1.0) -> Message:
    """The digest of ``sensor``'s local ``day``: ``flows`` of that day and of the same
    weekday a week before (unmasked; shown through ``show``), ``new`` findings whose
    evidence began that day (``TRIAGE_SCHEMA``), ``open_counts`` by status now, and the
    day's triage ``events`` by people (``EVENT_SCHEMA``)."""
    sid = int(sensor["id"])
    name = show.sensor(sensor)
    weekday = f"{day - timedelta(days=7):%a %d %b}"
    today = DayFigures.of(flows, g_per_gb)
    title = (f"{'[late] ' if late else ''}Flux daily digest · {name} · {day:%a %d %b %Y} · "
             f"{A.LEVEL_NAMES[today.level]}")
    intro = (f"{name}, {day:%A %d %B %Y} ({tz}), against {weekday}. "
             f"{len(new)} new finding{'s' * (len(new) != 1)}, "
             f"{sum(open_counts.values())} open.")
    if coverage < 0.999:
        intro += f" Data incomplete: {coverage:.0%} of the day's hours were available."
    sections = [Section("The day", figure_lines(today, DayFigures.of(week_before, g_per_gb),
                                                f"{day - timedelta(days=7):%a}")
                        + (Line("Open the day (Overview; its evidence pack button builds the "
                                "day's pack)", links.day("overview", sid, day, tz), "overview"),
                           Line("Toxic flows of the day", links.day("toxic", sid, day, tz),
                                "toxic flows")))]
    if new.height:
        by = new.group_by("kind", "severity").len().sort(
            _severity_order(), "kind").rows()
        counts = ", ".join(f"{n} {KIND_LABELS.get(k, k).lower()} ({s})" for k, s, n in by)
        top = new.sort(_severity_order(), pl.col("kind").replace_strict(
            KIND_ORDER, list(range(len(KIND_ORDER))), default=len(KIND_ORDER),
            return_dtype=pl.Int8), pl.col("flows"), "key",
            descending=[False, False, True, False]).head(TOP_FINDINGS)
        sections.append(Section(
            f"New findings: {new.height}",
            (Line(counts, links.day("findings", sid, day, tz), "inbox"),
             *(Line(finding_text(r, show, tz), links.finding(r, tz), "finding")
               for r in top.iter_rows(named=True)))))
    else:
        sections.append(Section("New findings: none", (Line(
            "No new finding that day.", links.day("findings", sid, day, tz), "inbox"),)))
    hunting = []
    for kind, label in HUNTING_KINDS.items():
        n = new.filter(pl.col("kind") == kind).height if new.height else 0
        hunting.append(Line(f"{label}: {n}", links.day("hunting", sid, day, tz), "hunting"))
    sections.append(Section("Hunting", tuple(hunting)))
    status_line = ", ".join(f"{n} {s}" for s, n in open_counts.items() if n) or "none"
    lines = [Line(f"Open findings: {status_line}", links.url("findings", {"sensor": str(sid)}),
                  "inbox")]
    if triaged.height:
        by_actor = triaged.group_by("actor").agg(pl.len().alias("n"),
                                                 pl.col("action").unique().sort()) \
            .sort("n", "actor", descending=[True, False])
        for actor, n, actions in by_actor.rows():
            who = "(hidden)" if show.mask is not None else one_line(actor, 60)
            what = ", ".join(TRIAGE_WORDS.get(a, a) for a in actions)
            lines.append(Line(f"Triaged that day by {who}: {n} ({what})"))
    else:
        lines.append(Line("Nothing triaged that day."))
    sections.append(Section("Triage", tuple(lines)))
    return _message(title, intro, sections, footer=(
        f"Flux dashboard · sensor {sid} · figures from the sensor's flows, findings from the "
        "triage database."))


# ------------------------------------------------------------------ alerts and silence

def alert(rows: pl.DataFrame, sensors: Mapping[int, Mapping], tz_of, *, links: Links,
          show: Shown) -> Message:
    """One message for the new findings of a cycle: one finding, or a list of them."""
    rows = rows.sort(_severity_order(), "first_contact", "key")
    first = rows.row(0, named=True)
    names = {int(s): show.sensor(sensors.get(int(s), {"id": s}))
             for s in rows["sensor"].unique().to_list()}
    if rows.height == 1:
        tz = tz_of(int(first["sensor"]))
        kind = KIND_LABELS.get(first["kind"], first["kind"])
        title = f"Flux alert · {str(first['severity']).upper()} {kind} · " \
                f"{names[int(first['sensor'])]}"
        lines = [Line(finding_text(first, show, tz), links.finding(first, tz), "finding")]
        if first.get("threats"):
            lines.append(Line(f"Threats: {one_line(first['threats'], 120)}"))
        return _message(title, "A new finding at or above this channel's severity.",
                        [Section("Finding", tuple(lines))])
    shown = rows.head(ALERT_LINES)
    title = f"Flux alert · {rows.height} new findings · worst {first['severity']} · " \
            + ", ".join(sorted(names.values()))
    lines = tuple(Line(finding_text(r, show, tz_of(int(r["sensor"])),
                                    names[int(r["sensor"])] if len(names) > 1 else None),
                       links.finding(r, tz_of(int(r["sensor"]))), "finding")
                  for r in shown.iter_rows(named=True))
    more = (Line(f"… and {rows.height - ALERT_LINES} more in the inbox",
                 links.url("findings", {}), "inbox"),) if rows.height > ALERT_LINES else ()
    return _message(title, f"{rows.height} new findings at or above this channel's severity.",
                    [Section("Findings", lines + more)])


def silence(sensor: Mapping, tz: str, last_data: datetime, now: datetime, back: bool, *,
            links: Links, show: Shown, hours: int) -> Message:
    name = show.sensor(sensor)
    zone = ZoneInfo(tz)
    last = last_data.astimezone(zone)
    day = now.astimezone(zone).date()
    link = Line("The sensor's flows", links.day("overview", int(sensor["id"]), day, tz),
                "overview")
    if back:
        return _message(f"Flux · sensor back · {name}",
                        f"{name} sends data again (its last data before the silence ended "
                        f"at {last:%d %b %H:%M} {tz}).", [Section("Sensor", (link,))])
    return _message(f"Flux alert · sensor silent · {name}",
                    f"No data from {name} for over {hours} hours: its last data ended at "
                    f"{last:%d %b %H:%M} {tz}. Check its power, link and status.",
                    [Section("Sensor", (link,))])


def test_message(route: str, now: datetime) -> Message:
    return _message(f"Flux · test message to {route}",
                    f"This is a test of the notification route {route!r}, sent at "
                    f"{now:%Y-%m-%d %H:%M} UTC. Digests and alerts will arrive here.", [])
