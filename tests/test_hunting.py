"""Hunting analyses on small hand-built frames; expected values worked by hand."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from flux_dashboard import analytics as A
from flux_dashboard import hunting as h
from flux_dashboard.schema import FLOW_SCHEMA, UTC_US
from tests.kit.flows import EMPTY, frame, row, utc

PARIS = "Europe/Paris"
HNO = [0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23]  # working hours 08:00-19:00 local


# --------------------------------------------------------------------- helpers


def test_threat_label_and_critical():
    df = frame(
        row(toxic=True, trojan=True, tor_node=True),
        row(toxic=True),
        row(toxic=False),
    ).with_columns(h.threats_label_expr(), A.critical_expr())
    # Labels in THREATS order (most dangerous first).
    assert df["threats"].to_list() == ["Trojan horse, Tor node", A.UNQUALIFIED, ""]
    assert df["critical"].to_list() == [True, False, False]


# ------------------------------------------------------------ 1. off hours


def test_is_off_hours_expr_local_time_dst_and_weekend():
    times = [
        utc(2026, 11, 24, 6),   # Tue, Paris UTC+1 -> 07:00 local, in hno -> off
        utc(2026, 11, 24, 7),   # 08:00 local -> work
        utc(2026, 11, 24, 17),  # 18:00 local -> work
        utc(2026, 11, 24, 18),  # 19:00 local -> off
        utc(2026, 7, 7, 5),     # Tue, summer UTC+2 -> 07:00 local -> off
        utc(2026, 7, 7, 6),     # 08:00 local -> work
        utc(2026, 11, 28, 12),  # Saturday 13:00 local -> off only with weekend_off
    ]
    df = pl.DataFrame({"start_of_hour": times}, schema={"start_of_hour": UTC_US})
    got = df.select(h.is_off_hours_expr(PARIS, HNO))["off_hours"].to_list()
    assert got == [True, False, False, True, True, False, True]
    no_we = df.select(h.is_off_hours_expr(PARIS, HNO, weekend_off=False))["off_hours"]
    assert no_we.to_list()[-1] is False
    # Invalid hours from the sensor object are ignored, an empty list means weekends only.
    only_we = df.select(h.is_off_hours_expr(PARIS, [99, "x", None]))["off_hours"]
    assert only_we.to_list() == [False] * 6 + [True]


def test_off_hours_by_device():
    work, off = utc(2026, 11, 24, 10), utc(2026, 11, 24, 22)  # 11:00 and 23:00 Paris
    df = frame(
        # A: work 1M out + 2M in = 3M; off 1M -> share 1/4 = 0.25 -> not mostly off
        row(ip0="A", device_name="nas", start_of_hour=work, out_bytes=1_000_000,
            in_bytes=2_000_000),
        row(ip0="A", device_name="nas", start_of_hour=off, out_bytes=1_000_000),
        # B: off 4M (two flows), work 1M -> share 4/5 = 0.8 > 0.5 -> mostly off
        row(ip0="B", start_of_hour=off, out_bytes=3_000_000),
        row(ip0="B", start_of_hour=off, ip1="1.1.1.1", in_bytes=1_000_000),
        row(ip0="B", start_of_hour=work, out_bytes=1_000_000),
        # C: only 10 kB, all off -> share 1.0 but below min_bytes -> never flagged
        row(ip0="C", start_of_hour=off, out_bytes=10_000),
    )
    out = h.off_hours_by_device(df, PARIS, HNO)
    assert out.columns == list(h.OFF_HOURS_COLUMNS)
    # flagged first, then bytes_off desc (A 1M > C 10k)
    assert out["ip0"].to_list() == ["B", "A", "C"]
    b, a, c = out.rows(named=True)
    assert (b["flows_work"], b["flows_off"], b["bytes_work"], b["bytes_off"]) == (
        1, 2, 1_000_000, 4_000_000)
    assert b["off_share"] == pytest.approx(0.8) and b["mostly_off"] is True
    assert a["device_name"] == "nas" and a["off_share"] == pytest.approx(0.25)
    assert a["mostly_off"] is False
    assert c["off_share"] == 1.0 and c["mostly_off"] is False
    # With the floor lowered, C is flagged too.
    low = h.off_hours_by_device(df, PARIS, HNO, min_bytes=0)
    assert low.filter(pl.col("mostly_off"))["ip0"].sort().to_list() == ["B", "C"]


def test_off_hours_toxic_orders_off_hours_first_then_newest():
    df = frame(
        row(ip1="1.1.1.1", toxic=True, start_of_hour=utc(2026, 11, 24, 10)),  # work
        row(ip1="1.1.1.2", toxic=True, start_of_hour=utc(2026, 11, 24, 12)),  # work, newer
        row(ip1="1.1.1.3", toxic=True, start_of_hour=utc(2026, 11, 24, 2)),   # off
        row(ip1="1.1.1.4", toxic=True, start_of_hour=utc(2026, 11, 24, 22)),  # off, newest
        row(ip1="9.9.9.9", toxic=False, start_of_hour=utc(2026, 11, 24, 23)),
    )
    out = h.off_hours_toxic(df, PARIS, HNO)
    assert out["ip1"].to_list() == ["1.1.1.4", "1.1.1.3", "1.1.1.2", "1.1.1.1"]
    assert out["off_hours"].to_list() == [True, True, False, False]
    assert out.columns == [*FLOW_SCHEMA.names(), "off_hours"]


# ------------------------------------------------------- 2. first-seen remotes


def test_first_seen_remotes():
    baseline = frame(row(ip0="A", ip1="8.8.8.8", start_of_hour=utc(2026, 11, 20, 10)))
    df = frame(
        row(ip0="A", ip1="8.8.8.8", out_bytes=999_999_999),           # known pair
        row(ip0="A", ip1="212.27.48.10", device_name="laptop", out_bytes=500, in_bytes=1500,
            start_of_hour=utc(2026, 11, 24, 9), first_seen=utc(2026, 11, 24, 9, 42)),
        row(ip0="A", ip1="212.27.48.10", device_name="laptop", out_bytes=100,
            start_of_hour=utc(2026, 11, 24, 8)),  # no first_seen -> 08:00 is the earliest
        # B never talked to 8.8.8.8 in the baseline; tiny but toxic -> ranked first
        row(ip0="B", ip1="8.8.8.8", toxic=True, trojan=True, out_bytes=1),
    )
    out = h.first_seen_remotes(df, baseline)
    assert out.columns == list(h.FIRST_SEEN_COLUMNS)
    assert out.select("ip0", "ip1").rows() == [("B", "8.8.8.8"), ("A", "212.27.48.10")]
    b, a = out.rows(named=True)
    assert b["toxic"] is True and b["threats"] == "Trojan horse" and b["country"] == "United States"
    assert a["device_name"] == "laptop" and a["country_code"] == "FR"
    assert a["flows"] == 2 and a["bytes_out"] == 600 and a["bytes_in"] == 1500
    assert a["first_contact"] == utc(2026, 11, 24, 8)
    assert a["toxic"] is False and a["threats"] == ""


def test_first_seen_remotes_empty_baseline_means_all_new_and_empty_df():
    df = frame(row(ip0="A", ip1="8.8.8.8"), row(ip0="A", ip1="1.1.1.1"))
    assert h.first_seen_remotes(df, EMPTY).height == 2
    out = h.first_seen_remotes(EMPTY, df)
    assert out.height == 0 and out.schema == h.FIRST_SEEN_COLUMNS


# -------------------------------------------------------------- 3. storylines


def test_storylines_regularity_and_order():
    rows = []
    # A -> r1: toxic OUT every hour at :05, four hours (10..13 UTC).
    # contacts 10:05, 11:05, 12:05, 13:05 -> gaps 60, 60, 60 min
    # mean 60, std 0 -> CV 0 -> regularity 1 - 0 = 1.0
    for hh in range(10, 14):
        rows.append(row(ip0="A", ip1="212.27.48.10", toxic=True, tor_node=True,
                        start_of_hour=utc(2026, 11, 24, hh),
                        first_seen=utc(2026, 11, 24, hh, 5), last_seen=utc(2026, 11, 24, hh, 6),
                        out_bytes=100, occurrences=2))
    # Same hour 10, another port, later session: same contact (hour min stays 10:05).
    rows.append(row(ip0="A", ip1="212.27.48.10", toxic=True, tor_node=True, port=8443,
                    start_of_hour=utc(2026, 11, 24, 10), first_seen=utc(2026, 11, 24, 10, 20),
                    last_seen=utc(2026, 11, 24, 10, 30), in_bytes=7))
    # B <- r2: toxic IN at 10:00, 11:00, 13:00 (no timestamps -> start_of_hour)
    # gaps 60, 120 -> mean 90, population std 30 -> CV 1/3 -> regularity 2/3
    for hh in (10, 11, 13):
        rows.append(row(ip0="B", ip1="5.255.255.5", dir="IN", toxic=True, bruteforce=True,
                        start_of_hour=utc(2026, 11, 24, hh), out_bytes=1000))
    # C <- r3: critical (C2), only 2 contacts -> regularity null; ranked first anyway.
    for hh in (1, 2):
        rows.append(row(ip0="C", ip1="185.220.101.1", dir="IN", toxic=True,
                        command_center=True, start_of_hour=utc(2026, 11, 24, hh)))
    rows.append(row(ip0="A", ip1="8.8.8.8", toxic=False, out_bytes=10**9))  # not toxic
    out = h.storylines(frame(*rows))
    assert out.columns == list(h.STORYLINE_COLUMNS)
    assert out.select("ip0", "ip1").rows() == [
        ("C", "185.220.101.1"), ("A", "212.27.48.10"), ("B", "5.255.255.5")]
    c, a, b = out.rows(named=True)

    assert c["critical"] is True and c["threats"] == "Command center (C2)"
    assert c["regularity"] is None and c["contacts"] == 2
    assert c["regularity_note"] == "2 contacts: too few to judge regularity (needs 3)"

    assert a["dirs"] == "OUT" and a["country"] == "France"
    assert a["first_contact"] == utc(2026, 11, 24, 10, 5)
    assert a["last_contact"] == utc(2026, 11, 24, 13, 6)
    assert (a["hours_active"], a["contacts"], a["flows"]) == (4, 4, 5)
    assert (a["bytes_out"], a["bytes_in"], a["occurrences"]) == (400, 7, 9)
    assert a["regularity"] == pytest.approx(1.0)
    assert a["regularity_note"] == (
        "4 contacts, median gap 60 min, variation 0% → very regular (beaconing hint)")

    assert b["dirs"] == "IN" and b["critical"] is False
    assert b["first_contact"] == utc(2026, 11, 24, 10)
    assert b["last_contact"] == utc(2026, 11, 24, 13)  # fallback to start_of_hour
    assert b["regularity"] == pytest.approx(2 / 3)
    # median of (60, 120) = 90 min; CV 33%
    assert b["regularity_note"] == (
        "3 contacts, median gap 90 min, variation 33% → somewhat irregular")


def test_storylines_both_directions_and_empty():
    df = frame(row(toxic=True, dir="IN"), row(toxic=True, dir="OUT", port=80))
    assert h.storylines(df)["dirs"].to_list() == ["IN+OUT"]
    assert h.storylines(EMPTY).schema == h.STORYLINE_COLUMNS
    assert h.storylines(frame(row(toxic=False))).height == 0


def test_beaconing_keeps_very_regular_pairs_with_out_flows():
    # by hand: regularity >= 0.9 (0.9 itself counts) and an OUT flow among the dirs
    stories = pl.DataFrame({
        "ip0": ["A", "B", "C", "D", "E"],
        "dirs": ["OUT", "IN", "IN+OUT", "OUT", "OUT"],
        "regularity": [0.9, 1.0, 0.95, 0.89, None],
    })
    assert h.beaconing(stories)["ip0"].to_list() == ["A", "C"]
    # on storylines: an hourly OUT contact at :05 scores 1.0; the same inbound does not count
    rows = [row(ip0=ip0, dir=d, toxic=True, start_of_hour=utc(2026, 11, 24, hh),
                first_seen=utc(2026, 11, 24, hh, 5))
            for ip0, d in (("A", "OUT"), ("B", "IN")) for hh in range(10, 14)]
    out = h.beaconing(h.storylines(frame(*rows)))
    assert out.select("ip0", "dirs", "regularity").rows() == [("A", "OUT", 1.0)]


# ------------------------------------------------------- 4. upload anomalies


def test_upload_anomalies():
    t0 = utc(2026, 11, 17, 0)
    base_rows = []
    # A baseline hourly out: 1, 2, 3, 4, 5 MB -> median 3 MB;
    # |x - 3| = 2, 1, 0, 1, 2 -> MAD 1 MB -> threshold 3 + 3 x 1 = 6 MB
    for i, mb in enumerate([1, 2, 3, 4, 5]):
        base_rows.append(row(ip0="A", start_of_hour=t0 + timedelta(hours=i),
                             out_bytes=mb * 1_000_000))
    # B: only 2 baseline hours -> skipped (fewer than min_baseline_hours=3)
    for i in range(2):
        base_rows.append(row(ip0="B", start_of_hour=t0 + timedelta(hours=i), out_bytes=1))
    # D: flat 100 B -> median 100, MAD 0 -> threshold max(100, 1 MB floor) = 1 MB
    for i in range(3):
        base_rows.append(row(ip0="D", start_of_hour=t0 + timedelta(hours=i), out_bytes=100))
    baseline = frame(*base_rows)

    t1 = utc(2026, 11, 24, 0)
    df = frame(
        row(ip0="A", device_name="nas", start_of_hour=t1, out_bytes=5_000_000),  # < 6 MB
        row(ip0="A", device_name="nas", start_of_hour=t1 + timedelta(hours=1),
            out_bytes=7_000_000),  # 7 / 6 = 1.1667
        # two rows in one hour: 4 + 8 = 12 MB -> ratio 12 / 6 = 2.0
        row(ip0="A", device_name="nas", start_of_hour=t1 + timedelta(hours=2),
            out_bytes=4_000_000),
        row(ip0="A", device_name="nas", start_of_hour=t1 + timedelta(hours=2), ip1="1.1.1.1",
            out_bytes=8_000_000),
        row(ip0="B", start_of_hour=t1, out_bytes=10**12),   # no usable baseline
        row(ip0="C", start_of_hour=t1, out_bytes=10**12),   # absent from baseline
        row(ip0="D", start_of_hour=t1, out_bytes=500_000),  # under the 1 MB floor
        row(ip0="D", start_of_hour=t1 + timedelta(hours=1), out_bytes=3_000_000),  # 3.0
    )
    out = h.upload_anomalies(df, baseline)
    assert out.columns == list(h.UPLOAD_COLUMNS)
    assert out.select("ip0", "hour", "bytes_out").rows() == [
        ("D", t1 + timedelta(hours=1), 3_000_000),
        ("A", t1 + timedelta(hours=2), 12_000_000),
        ("A", t1 + timedelta(hours=1), 7_000_000),
    ]
    d, a12, a7 = out.rows(named=True)
    assert (d["baseline_median"], d["baseline_mad"], d["threshold"]) == (100, 0, 1_000_000)
    assert d["ratio"] == pytest.approx(3.0)
    assert (a12["baseline_median"], a12["baseline_mad"], a12["threshold"]) == (
        3_000_000, 1_000_000, 6_000_000)
    assert a12["baseline_hours"] == 5 and a12["device_name"] == "nas"
    assert a12["ratio"] == pytest.approx(2.0) and a7["ratio"] == pytest.approx(7 / 6)
    # k = 6 -> A's threshold 3 + 6 = 9 MB: only the 12 MB hour of A remains
    assert h.upload_anomalies(df, baseline, k=6).filter(pl.col("ip0") == "A").height == 1


def test_upload_anomalies_empty():
    assert h.upload_anomalies(EMPTY, EMPTY).schema == h.UPLOAD_COLUMNS
    assert h.upload_anomalies(frame(row(out_bytes=10**9)), EMPTY).height == 0


def test_empty_inputs_keep_columns():
    assert h.off_hours_by_device(EMPTY, PARIS, HNO).schema == h.OFF_HOURS_COLUMNS
    assert h.off_hours_toxic(EMPTY, PARIS, HNO).columns == [*FLOW_SCHEMA.names(), "off_hours"]


