"""The digest ("what changed" against a week before) on small hand-built frames;
expected values worked by hand."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from flux_dashboard.digest import (
    DEVICE_CHANGES_COLUMNS,
    NEW_COUNTRIES_COLUMNS,
    NEW_DEVICES_COLUMNS,
    digest,
)
from tests.kit.flows import EMPTY, frame, row, utc

PARIS = "Europe/Paris"

EVIL = "<img src=x onerror=alert(1)>"
LINK = "[x](javascript:alert(1))"


def _digest_frames():
    day, prev = date(2026, 11, 24), date(2026, 11, 17)  # both Tuesdays
    t, p = utc(2026, 11, 24, 9), utc(2026, 11, 17, 9)
    previous = frame(
        row(ip0="192.168.1.20", device_name="NAS-Synology", ip1="8.8.8.8", start_of_hour=p,
            out_bytes=1_000_000_000, in_bytes=200_000_000),  # 1.2 GB
        row(ip0="192.168.1.21", device_name="printer", ip1="8.8.8.8", start_of_hour=p,
            out_bytes=50_000_000),
        row(ip0="192.168.1.21", device_name="printer", ip1="5.255.255.5", dir="IN",
            toxic=True, start_of_hour=p),
        # 23:30 UTC on the 17th is already the 18th in Paris: not part of that day
        row(ip0="192.168.1.99", ip1="1.1.1.1", start_of_hour=utc(2026, 11, 17, 23),
            out_bytes=10**12),
    )
    today = frame(
        row(ip0="192.168.1.20", device_name="NAS-Synology", ip1="8.8.8.8", start_of_hour=t,
            out_bytes=4_000_000_000, in_bytes=800_000_000),  # 4.8 GB
        row(ip0="192.168.1.30", device_name=EVIL, ip1="212.27.48.10", start_of_hour=t,
            out_bytes=10_000_000),
        row(ip0="192.168.1.31", device_name=LINK, ip1="200.160.2.3", start_of_hour=t,
            out_bytes=1_000),
        row(ip0="192.168.1.30", device_name=EVIL, ip1="185.220.101.1", toxic=True,
            command_center=True, start_of_hour=t),
        row(ip0="192.168.1.30", device_name=EVIL, ip1="185.220.101.1", toxic=True,
            command_center=True, start_of_hour=t, port=80),
        row(ip0="192.168.1.20", device_name="NAS-Synology", ip1="5.255.255.5", dir="IN",
            toxic=True, start_of_hour=t),
    )
    return today, previous, day, prev


def test_digest_frames_and_sentences():
    today, previous, day, prev = _digest_frames()
    d = digest(today, previous, PARIS, day, prev)

    assert d.new_devices["ip0"].to_list() == ["192.168.1.30", "192.168.1.31"]
    assert d.new_devices.columns == list(NEW_DEVICES_COLUMNS)
    # today's countries: US, FR, BR, DE; before: US, RU -> new FR, BR, DE
    assert sorted(d.new_countries["country_code"].to_list()) == ["BR", "DE", "FR"]
    # toxic remotes today: 185.220.101.1 (new, OUT, C2) and 5.255.255.5 (seen before)
    assert d.new_toxic_remotes.rows(named=True) == [{
        "ip1": "185.220.101.1", "owner": "Stiftung Erneuerbare Freiheit",
            "country_code": "DE", "country": "Germany", "devices": 1,
        "flows": 2, "has_out": True, "threats": "Command center (C2)"}]
    # toxic IN/OUT: before 1/0 -> cyT 1; now 1 IN + 2 OUT -> cyT 1 + 20 = 21
    assert (d.toxic_in_before, d.toxic_out_before, d.cyt_before) == (1, 0, 1)
    assert (d.toxic_in_after, d.toxic_out_after, d.cyt_after) == (1, 2, 21)

    # changes: NAS 1.2 GB -> 4.8 GB (+3.6 GB, +300%), printer 50 MB -> 0 (-100%),
    # EVIL 0 -> 10 MB (new, pct null), LINK 0 -> 1 kB; the 192.168.1.99 row is off-day.
    ch = d.device_changes
    assert ch.columns == list(DEVICE_CHANGES_COLUMNS)
    assert ch["ip0"].to_list() == ["192.168.1.20", "192.168.1.21", "192.168.1.30",
                                   "192.168.1.31"]
    nas = ch.row(0, named=True)
    assert (nas["bytes_before"], nas["bytes_after"], nas["change"]) == (
        1_200_000_000, 4_800_000_000, 3_600_000_000)
    assert nas["change_pct"] == pytest.approx(300.0)
    assert ch.row(1, named=True)["change_pct"] == pytest.approx(-100.0)
    assert ch.row(2, named=True)["change_pct"] is None

    text = d.as_text()
    assert text.startswith("What changed on Tue 2026-11-24 vs Tue 2026-11-17")
    assert ("Traffic of NAS-Synology (192.168.1.20) rose from 1.2 GB to 4.8 GB (+300%)."
            in d.sentences)
    assert "Traffic of printer (192.168.1.21) fell from 50.0 MB to 0 B (-100%)." in d.sentences
    assert f"2 new devices appeared: {EVIL} (192.168.1.30), {LINK} (192.168.1.31)." in d.sentences
    assert "Toxic flows: 1 IN and 2 OUT (was 1 IN and 0 OUT); cyT 21 (was 1)." in d.sentences
    assert any(s.startswith("1 new toxic remote, 1 of them contacted from the LAN (OUT): "
                            "185.220.101.1 (Germany, Command center (C2))") for s in d.sentences)


def test_digest_markdown_escapes_data_values():
    today, previous, day, prev = _digest_frames()
    md = digest(today, previous, PARIS, day, prev).as_markdown()
    assert "<img" not in md and r"&lt;img src\=x onerror\=alert\(1\)&gt;" in md
    assert "](" not in md and "[x]" not in md


def test_digest_empty_previous_and_empty_day():
    today, _, day, prev = _digest_frames()
    d = digest(today, EMPTY, PARIS, day, prev)
    assert d.previous_empty is True
    assert d.sentences[0].startswith("No data for Tuesday 2026-11-17")
    assert d.new_devices.height == 3
    e = digest(EMPTY, EMPTY, PARIS, day, prev)
    assert "No new devices." in e.sentences and "No new toxic remotes." in e.sentences
    assert "No new remote countries." in e.sentences
    assert e.device_changes.height == 0 and e.new_countries.schema == NEW_COUNTRIES_COLUMNS


def test_digest_sentences_are_single_lines():
    today, previous, day, prev = _digest_frames()
    today = today.with_columns(pl.lit("evil\nname\r\x1b[31m").alias("device_name"))
    d = digest(today, previous, PARIS, day, prev)
    assert all("\n" not in s and "\r" not in s and "\x1b" not in s for s in d.sentences)
