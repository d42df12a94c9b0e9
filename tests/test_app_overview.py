"""The Overview's digest ("What changed" vs a week before), its evidence pack's
digest, cyberweather (worst day, days per level, the day select), cybercarbon (and the
drill-down's line), and the digest of Paris's DST days."""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flux_dashboard.digest import digest
from tests.kit.apptest import (
    DEVICES,
    OVERVIEW,
    chart_specs,
    chart_title,
    numbers,
    plain,
    run_page,
    said,
)
from tests.kit.clock import PARIS, days_link, dst_days, local_days
from tests.kit.demo import (
    FIXED_DAY,
    LEVELS,
    digest_bullets,
    expected_digest,
    frame_of,
    hand_level,
)

pytestmark = pytest.mark.usefixtures("app_env")


def test_digest_sentences_and_day_select(rows_of) -> None:
    first = FIXED_DAY - timedelta(days=2)
    at = run_page(OVERVIEW, days_link(first, days=3))
    assert not at.exception and not at.warning
    select = at.selectbox(key="digest_day")
    assert list(select.options) == [f"{d:%a %d %b %Y}" for d in
                                    (FIXED_DAY, FIXED_DAY - timedelta(days=1), first)]
    assert select.value == FIXED_DAY
    prev = FIXED_DAY - timedelta(days=7)
    assert any(s == f"What changed on {FIXED_DAY:%a %d %b} vs {prev:%a %d %b}"
               for s in said(at.subheader))
    expected = expected_digest(FIXED_DAY)
    assert expected and digest_bullets(at) == expected

    other = FIXED_DAY - timedelta(days=1)
    at.selectbox(key="digest_day").set_value(other).run()
    assert not at.exception and not at.warning
    prev = other - timedelta(days=7)
    assert any(s == f"What changed on {other:%a %d %b} vs {prev:%a %d %b}"
               for s in said(at.subheader))
    assert digest_bullets(at) == expected_digest(other)
    assert any(c.startswith(f":material/history: Selected day: flows of {other:%a %d %b}")
               for c in said(at.caption))



def test_evidence_pack_digest_compares_the_last_day_with_a_week_before(
        rows_of, captured_downloads) -> None:
    """The pack's digest.txt is the digest of the range's last local day against the
    same day a week before, both from the API's rows (not just a title with two dates)."""
    first = FIXED_DAY - timedelta(days=2)
    run_page(OVERVIEW, days_link(first, days=3))
    packs = [n for n in captured_downloads if n.endswith(".zip")]
    assert len(packs) == 1, list(captured_downloads)
    with zipfile.ZipFile(io.BytesIO(captured_downloads[packs[0]]())) as z:
        got = z.read("digest.txt").decode()
    prev = FIXED_DAY - timedelta(days=7)
    want = digest(frame_of(rows_of(*local_days(FIXED_DAY))),
                     frame_of(rows_of(*local_days(prev))), "Europe/Paris", FIXED_DAY, prev)
    assert want.sentences and not want.previous_empty
    assert got == want.as_text()



def cyt_per_local_day(rows: list[dict], zone: ZoneInfo = PARIS) -> dict[date, int]:
    """cyT of each local day of API rows, counted row by row."""
    days: Counter = Counter()
    for r in rows:
        t = datetime.fromisoformat(r["start_of_hour"].replace("Z", "+00:00")).astimezone(zone)
        days[t.date()] += (1 if r["dir"] == "IN" else 10) if r["toxic"] else 0
    return dict(days)


def test_week_cyberweather_worst_day_days_per_level_and_cybercarbon(rows_of, monkeypatch):
    first = FIXED_DAY - timedelta(days=6)
    at = run_page(OVERVIEW, days_link(first, days=7))
    assert not at.exception and not at.warning
    rows = rows_of(*local_days(first, 7))
    per_day = cyt_per_local_day(rows)
    assert len(per_day) == 7
    # The worst day: highest cyT, the latest of equals.
    day, cyt = max(per_day.items(), key=lambda kv: (kv[1], kv[0]))
    m = {x.label: x for x in at.metric}
    assert "Cyberweather today" not in m  # today is outside these past days
    worst = m["Cyberweather, worst day"]
    assert worst.value == LEVELS[hand_level(cyt)]
    assert worst.delta == f"{day:%a %d %b} · cyT {cyt:,}"
    levels = Counter(hand_level(v) for v in per_day.values())
    line = next(md.value for md in at.markdown if "Days per cyberweather level" in md.value)
    assert "(7 days)" in line
    for lvl, name in enumerate(LEVELS):
        assert f"</span>{name} {levels[lvl]}" in line, (name, line)
    # Cybercarbon: every byte in and out, at 18 gCO2e per (decimal) GB.
    total = sum(int(r["in_flux"]) + int(r["out_flux"]) for r in rows)
    grams = total / 1e9 * 18
    carbon = m["Cybercarbon (CO2e)"]
    assert carbon.value.startswith("≈ ")
    shown, unit = carbon.value.removeprefix("≈ ").split(" ")
    scale = {"g": 1, "kg": 1e3, "t": 1e6}[unit]
    assert float(shown.replace(",", "")) * scale == pytest.approx(grams, rel=0.01)
    km = float(carbon.delta.removeprefix("≈ ").removesuffix(" km by car").replace(",", ""))
    assert km == pytest.approx(grams / 198, rel=0.01)
    assert "18 gCO2e per GB" in carbon.help and "estimate" in carbon.help

    # The factor is a setting: the vendor's mobile figure, 50 g/GB.
    monkeypatch.setenv("FLUX_CARBON_G_PER_GB", "50")
    at = run_page(OVERVIEW, days_link(first, days=7))
    carbon = next(x for x in at.metric if x.label == "Cybercarbon (CO2e)")
    km = float(carbon.delta.removeprefix("≈ ").removesuffix(" km by car").replace(",", ""))
    assert km == pytest.approx(total / 1e9 * 50 / 198, rel=0.01)
    assert "50 gCO2e per GB" in carbon.help


def test_drill_down_cybercarbon_line(rows_of) -> None:
    at = run_page(DEVICES, days_link(FIXED_DAY))
    ip = at.selectbox(key="drill").value
    rows = [r for r in rows_of(*local_days(FIXED_DAY)) if r["ip0"] == ip]
    total = sum(int(r["in_flux"]) + int(r["out_flux"]) for r in rows)
    line = next(md.value for md in at.markdown if md.value.startswith("**Cybercarbon**"))
    said_line = plain(line)
    shown, unit = re.search(r"≈ ([\d.,]+) (g|kg|t) CO2e", said_line).groups()
    scale = {"g": 1, "kg": 1e3, "t": 1e6}[unit]
    grams = float(shown.replace(",", "")) * scale
    # as exact as the shown digits: "14 g" is 13.5 to 14.5 g, "1.84 kg" 1,835 to 1,845 g
    decimals = len(shown.partition(".")[2])
    assert abs(grams - total / 1e9 * 18) <= 0.5 * 10 ** -decimals * scale, (shown, total)
    assert "at 18 gCO2e/GB" in said_line and "(198 gCO2e/km)" in said_line
    assert chart_title(chart_specs(at)["dev_carbon"]).startswith("Cybercarbon per device")


def test_cyberweather_day_select(rows_of) -> None:
    first = FIXED_DAY - timedelta(days=2)
    at = run_page(OVERVIEW, days_link(first, days=3))
    assert at.selectbox(key="cw_day").value == FIXED_DAY
    at.selectbox(key="cw_day").set_value(first).run()
    assert not at.exception
    spec = chart_specs(at)["cw_hours"]
    assert chart_title(spec) == f"Cyberweather by hour, {first.isoformat()}"
    rows = rows_of(*local_days(first))
    cyt = sum(1 if r["dir"] == "IN" else 10 for r in rows if r["toxic"])
    assert cyt > 0
    # (a level absent that day keeps its legend entry with one empty point)
    assert sum(v for trace in spec["data"] for v in numbers(trace.get("y"))
               if v is not None) == cyt



@pytest.mark.parametrize("day", dst_days(), ids=["spring", "autumn"])
def test_digest_of_a_dst_day_covers_its_23_or_25_local_hours(rows_of, day: date) -> None:
    """The Overview's "What changed" on Paris's DST days: the day's own local hours
    (23 in March, 25 in October) against the same local day a week before, never 24 h
    in UTC (the digest of the hand-cut windows; a window off by an hour differs)."""
    at = run_page(OVERVIEW, days_link(day))
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="digest_day").value == day
    start, end = local_days(day)
    hours = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600
    assert hours == (23 if day.month < 6 else 25)  # (same-zone subtraction is wall time)
    expected = expected_digest(day)
    assert expected and digest_bullets(at) == expected
