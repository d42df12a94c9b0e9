"""findings.detect on small hand-built frames; every expected value worked by hand.

Times: the kit's day is Tue 24 Nov 2026; Paris is UTC+1 then, so 10:00 UTC is
11:00 local, a working hour (HNO: working hours 08:00-19:00 local).
"""

from __future__ import annotations

import hashlib
from datetime import date
from itertools import product

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from flux_dashboard import findings as F
from flux_dashboard.schema import compact
from tests.kit.flows import EMPTY, frame, row, utc

PARIS = "Europe/Paris"
HNO = [0, 1, 2, 3, 4, 5, 6, 7, 19, 20, 21, 22, 23]  # working hours 08:00-19:00 local
SENSOR = 54
A, B = "192.168.1.10", "192.168.1.20"
X, Y, Z = "176.123.8.71", "185.220.101.4", "45.9.20.1"  # remotes (toxic in the tests)
MAC = "aa:bb:cc:dd:ee:01"


def detect(df, baseline=EMPTY, settings=None):
    return F.detect(df, baseline, SENSOR, PARIS, HNO, settings)


def of(out: pl.DataFrame, kind: str) -> pl.DataFrame:
    return out.filter(pl.col("kind") == kind)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def with_geo(df: pl.DataFrame, geo: dict[str, tuple[str, str, str]]) -> pl.DataFrame:
    """The flow frame as geo enrichment leaves it: country and owner of ip1."""
    def col(i: int, name: str) -> pl.Expr:
        return pl.col("ip1").replace_strict({k: v[i] for k, v in geo.items()}, default=None,
                                            return_dtype=pl.String).alias(name)
    return df.with_columns(col(0, "country_code"), col(1, "country"), col(2, "owner"),
                           pl.lit(None, pl.String).alias("iso3"),
                           pl.lit(None, pl.String).alias("owner_net"))


# --------------------------------------------------------------------- empty


def test_empty_frame_gives_an_empty_frame_with_the_schema():
    out = detect(EMPTY, EMPTY)
    assert out.height == 0
    assert out.schema == F.FINDINGS_SCHEMA
    # Ordinary daytime traffic to a remote the baseline knows: nothing to look at either.
    quiet = frame(row(out_bytes=5_000, in_bytes=9_000))
    again = detect(quiet, frame(row(start_of_hour=utc(2026, 11, 20, 10))))
    assert again.height == 0
    assert again.schema == F.FINDINGS_SCHEMA


# --------------------------------------------------------------------- toxic_out


def test_toxic_out_one_per_device_and_remote_with_evidence():
    df = frame(
        # A -> X (trojan): two contacts; 500 + 100 and 300 + 0 bytes.
        row(ip1=X, toxic=True, trojan=True, out_bytes=500, in_bytes=100,
            first_seen=utc(2026, 11, 24, 10, 5), last_seen=utc(2026, 11, 24, 10, 20)),
        row(ip1=X, toxic=True, trojan=True, out_bytes=300, start_of_hour=utc(2026, 11, 24, 11),
            first_seen=utc(2026, 11, 24, 11, 5), last_seen=utc(2026, 11, 24, 11, 30)),
        # B -> Y, unqualified toxic: one contact, no critical threat.
        row(ip0=B, ip1=Y, toxic=True, out_bytes=40, device_name="printer"),
        # Y -> A inbound only: not a toxic_out (and one flow: no inbound_attack).
        row(ip1=Y, dir="IN", toxic=True, bruteforce=True),
    )
    baseline = frame(row(ip1=X, start_of_hour=utc(2026, 11, 20, 10)),
                     row(ip0=B, ip1=Y, start_of_hour=utc(2026, 11, 20, 10)))
    out = detect(df, baseline)
    assert out["kind"].to_list() == ["toxic_out", "toxic_out"]
    first, second = out.rows(named=True)
    assert (first["ip0"], first["ip1"], second["ip0"], second["ip1"]) == (A, X, B, Y)
    assert first["severity"] == "critical"  # high + a critical threat (trojan)
    assert second["severity"] == "high"
    assert (first["flows"], first["bytes"], first["hours"]) == (2, 900, 2)
    assert first["first_contact"] == utc(2026, 11, 24, 10, 5)
    assert first["last_contact"] == utc(2026, 11, 24, 11, 30)
    assert first["threats"] == "Trojan horse"
    assert first["critical"] is True
    assert first["day"] is None and first["deviation"] is None
    assert first["owner"] is None and first["country"] is None  # no geo columns: unknown
    assert second["device_name"] == "printer"
    assert second["threats"] == "Unqualified"
    assert first["note"].startswith("directions OUT; 2 contacts")
    assert first["key"] == sha(f"{SENSOR}|toxic_out|{A}||{X}|")


# --------------------------------------------------------------------- beacon


def test_beacon_regular_storylines_and_the_threshold():
    regular = [row(ip1=X, toxic=True, tor_node=True, start_of_hour=utc(2026, 11, 24, h),
                   first_seen=utc(2026, 11, 24, h, 7)) for h in (10, 11, 12, 13)]
    # B -> Z at 10:07, 11:07, 16:07: gaps 60 and 300 min, mean 180, std 120,
    # CV 2/3, regularity 1/3.
    irregular = [row(ip0=B, ip1=Z, toxic=True, start_of_hour=utc(2026, 11, 24, h),
                     first_seen=utc(2026, 11, 24, h, 7)) for h in (10, 11, 16)]
    df = frame(*regular, *irregular)
    baseline = frame(row(ip1=X, start_of_hour=utc(2026, 11, 20, 10)),
                     row(ip0=B, ip1=Z, start_of_hour=utc(2026, 11, 20, 10)))
    beacons = of(detect(df, baseline), "beacon")
    assert beacons.select("ip0", "ip1").rows() == [(A, X)]
    b = beacons.row(0, named=True)
    assert b["regularity"] == pytest.approx(1.0)
    assert b["severity"] == "high"  # Tor node is not a critical threat
    assert (b["flows"], b["hours"]) == (4, 4)
    assert b["key"] == sha(f"{SENSOR}|beacon|{A}||{X}|")
    # Both storylines are toxic_out findings too.
    assert of(detect(df, baseline), "toxic_out").height == 2
    # A lower threshold keeps the irregular line as well.
    low = of(detect(df, baseline, F.DetectSettings(beacon_regularity=0.3)), "beacon")
    assert sorted(low["ip1"].to_list()) == sorted([X, Z])
    assert low.filter(pl.col("ip1") == Z)["regularity"][0] == pytest.approx(1 / 3)


# --------------------------------------------------------------------- first_seen


def test_first_seen_out_contacts_toxic_then_new_country_first():
    geo = {"8.8.8.8": ("US", "United States", "GOOGLE"),
           "9.9.9.9": ("US", "United States", "Quad9"),
           "1.1.1.1": ("AU", "Australia", "CLOUDFLARENET"), X: ("MD", "Moldova", "ALEXHOST")}
    baseline = with_geo(frame(row(ip1="8.8.8.8", start_of_hour=utc(2026, 11, 20, 10))), geo)
    df = with_geo(frame(
        row(ip1="8.8.8.8", out_bytes=10_000),  # known: not new
        row(ip1="9.9.9.9", out_bytes=90_000),  # new, country known (US)
        row(ip1="1.1.1.1", out_bytes=1_000, start_of_hour=utc(2026, 11, 24, 12),
            last_seen=utc(2026, 11, 24, 12, 40)),  # new, new country (AU)
        row(ip1="1.1.1.1", out_bytes=2_000, in_bytes=500, start_of_hour=utc(2026, 11, 24, 9),
            first_seen=utc(2026, 11, 24, 9, 15)),
        row(ip1=X, toxic=True, out_bytes=5),  # new and toxic
        row(ip0=B, ip1=Z, dir="IN", toxic=True),  # an inbound scanner: not first_seen
    ), geo)
    seen = of(detect(df, baseline, F.DetectSettings(first_seen_all=True)), "first_seen")
    assert seen["ip1"].to_list() == [X, "1.1.1.1", "9.9.9.9"]
    assert seen["severity"].to_list() == ["medium", "low", "low"]  # toxic raises one level
    assert seen["note"].to_list() == ["first contact; new country: Moldova",
                                      "first contact; new country: Australia", "first contact"]
    # By default only the toxic pair and the new country: 9.9.9.9 is new, but in the US,
    # which the baseline shows.
    assert of(detect(df, baseline), "first_seen")["ip1"].to_list() == [X, "1.1.1.1"]
    one = seen.row(1, named=True)
    assert (one["flows"], one["bytes"], one["hours"]) == (2, 3_500, 2)
    assert one["first_contact"] == utc(2026, 11, 24, 9, 15)
    assert one["last_contact"] == utc(2026, 11, 24, 12, 40)
    assert (one["owner"], one["country_code"], one["country"]) == (
        "CLOUDFLARENET", "AU", "Australia")
    assert one["key"] == sha(f"{SENSOR}|first_seen|{A}||1.1.1.1|")
    # No baseline, no first_seen (every pair would be new).
    assert of(detect(df, EMPTY), "first_seen").height == 0


# --------------------------------------------------------------------- upload_anomaly


def upload_baseline() -> pl.DataFrame:
    # A's hourly upload: 1.0, 1.2, 1.1, 1.0, 1.3 MB -> median 1.1 MB, MAD 0.1 MB,
    # threshold 1.1 + 3 x 0.1 = 1.4 MB.
    mb = [1_000_000, 1_200_000, 1_100_000, 1_000_000, 1_300_000]
    rows = [row(out_bytes=v, mac_address=MAC, start_of_hour=utc(2026, 11, 18 + i, 10))
            for i, v in enumerate(mb)]
    return frame(*rows, row(ip1="8.8.4.4", start_of_hour=utc(2026, 11, 18, 10)))


def test_upload_anomaly_per_local_day():
    df = frame(
        # 11:00 local: 2.0 + 0.8 = 2.8 MB (2x the threshold); 13:00: 7.0 MB (5x); 15:00: 1 MB.
        row(out_bytes=2_000_000, mac_address=MAC),
        row(ip1="8.8.4.4", out_bytes=800_000, in_bytes=50, mac_address=MAC),
        row(out_bytes=7_000_000, mac_address=MAC, start_of_hour=utc(2026, 11, 24, 12)),
        row(out_bytes=1_000_000, mac_address=MAC, start_of_hour=utc(2026, 11, 24, 14)),
    )
    out = detect(df, upload_baseline())
    assert out["kind"].to_list() == ["upload_anomaly"]
    u = out.row(0, named=True)
    assert u["day"] == date(2026, 11, 24)
    assert (u["flows"], u["bytes"], u["hours"]) == (3, 9_800_000, 2)  # bytes: the upload
    assert u["deviation"] == pytest.approx(5.0)
    assert u["severity"] == "high"  # medium + a deviation of at least 3
    assert (u["first_contact"], u["last_contact"]) == (utc(2026, 11, 24, 10),
                                                      utc(2026, 11, 24, 12))
    assert u["mac_address"] == MAC and u["ip1"] is None and u["threats"] == ""
    assert u["key"] == sha(f"{SENSOR}|upload_anomaly|{A}|{MAC}||2026-11-24")
    # A higher k lifts the threshold to 1.1 + 20 x 0.1 = 3.1 MB: only the 7 MB hour.
    k20 = detect(df, upload_baseline(), F.DetectSettings(upload_k=20))
    assert (k20["hours"][0], k20["bytes"][0]) == (1, 7_000_000)


# --------------------------------------------------------------------- off_hours


LOW_OFF = F.DetectSettings(off_hours_min_flows=2, off_hours_min_bytes=1_000)


def test_off_hours_per_device_and_local_day():
    df = frame(
        row(start_of_hour=utc(2026, 11, 24, 22), out_bytes=600, mac_address=MAC),  # 23:00 off
        row(start_of_hour=utc(2026, 11, 24, 5), in_bytes=900),  # 06:00 local, off
        row(out_bytes=50_000),  # 11:00 local: working hours, not counted
        row(ip0=B, start_of_hour=utc(2026, 11, 24, 22), out_bytes=99_000),  # one flow only
    )
    baseline = frame(row(start_of_hour=utc(2026, 11, 20, 10)),
                     row(ip0=B, start_of_hour=utc(2026, 11, 20, 10)))
    out = detect(df, baseline, LOW_OFF)
    assert out["kind"].to_list() == ["off_hours"]
    o = out.row(0, named=True)
    assert (o["ip0"], o["day"], o["flows"], o["bytes"], o["hours"]) == (
        A, date(2026, 11, 24), 2, 1_500, 2)
    assert o["deviation"] == pytest.approx(1.5)
    assert o["severity"] == "low"
    assert o["mac_address"] == MAC
    # The key of a machine kind holds the MAC and the day, not a remote.
    assert o["key"] == F.finding_key(SENSOR, "off_hours", A, MAC, "8.8.8.8", date(2026, 11, 24))
    assert o["key"] == sha(f"{SENSOR}|off_hours|{A}|{MAC}||2026-11-24")


def test_off_hours_dst_spring_forward_day():
    # 2026-03-29 in Paris lasts 23 hours: 23:00 UTC on the 28th is 00:00 (UTC+1) on the
    # 29th and 21:00 UTC on the 29th is 23:00 (UTC+2); 22:00 UTC is already the 30th.
    df = frame(*(row(start_of_hour=t, out_bytes=10) for t in (
        utc(2026, 3, 28, 22),  # 23:00 on the 28th
        utc(2026, 3, 28, 23), utc(2026, 3, 29, 21),  # the 29th
        utc(2026, 3, 29, 22))))  # 00:00 on the 30th
    settings = F.DetectSettings(off_hours_min_flows=1, off_hours_min_bytes=1)
    out = detect(df, EMPTY, settings).sort("day")
    assert out.select("day", "flows").rows() == [
        (date(2026, 3, 28), 1), (date(2026, 3, 29), 2), (date(2026, 3, 30), 1)]


# --------------------------------------------------------------------- inbound_attack


def wave(ip1: str, hours: tuple[int, ...], ip0: str = A, **kw) -> list[dict]:
    return [row(ip0=ip0, ip1=ip1, dir="IN", port=p, toxic=True, bruteforce=True, in_bytes=100,
                start_of_hour=utc(2026, 11, 24, h), **kw) for h in hours for p in (22, 3389)]


def test_inbound_attack_per_device_remote_and_day():
    df = frame(*wave(X, (10, 11, 12)),  # 6 flows: the minimum
               *wave(Z, (10, 11), ip0=B), row(ip0=B, ip1=Z, dir="IN", toxic=True))  # 5 flows
    out = detect(df)
    assert out["kind"].to_list() == ["inbound_attack"]
    i = out.row(0, named=True)
    assert (i["ip0"], i["ip1"], i["day"]) == (A, X, date(2026, 11, 24))
    assert (i["flows"], i["bytes"], i["hours"]) == (6, 600, 3)
    assert i["deviation"] == pytest.approx(1.0)
    assert i["threats"] == "Bruteforce"
    assert i["note"] == "toxic IN flows on ports 22, 3389"
    assert i["severity"] == "medium"
    assert i["key"] == sha(f"{SENSOR}|inbound_attack|{A}||{X}|2026-11-24")
    # A known attacker on a device marked critical: medium + 2 = critical.
    worse = detect(frame(*wave(X, (10, 11, 12), hcard=True, is_critical=True)))
    assert worse.select("severity", "threats", "is_critical", "critical").row(0) == (
        "critical", "Known attacker, Bruteforce", True, True)


def test_inbound_attack_dst_fall_back_day():
    # 2026-10-25 in Paris lasts 25 hours: from 22:00 UTC on the 24th (00:00, UTC+2)
    # to 23:00 UTC on the 25th (00:00 on the 26th, UTC+1).
    hours = (utc(2026, 10, 24, 21),  # 23:00 on the 24th
             utc(2026, 10, 24, 22), utc(2026, 10, 25, 12), utc(2026, 10, 25, 22),  # the 25th
             utc(2026, 10, 25, 23))  # 00:00 on the 26th
    df = frame(*(row(ip1=X, dir="IN", toxic=True, start_of_hour=t) for t in hours))
    out = detect(df, EMPTY, F.DetectSettings(inbound_min_flows=1)).sort("day")
    assert out.select("day", "flows").rows() == [
        (date(2026, 10, 24), 1), (date(2026, 10, 25), 3), (date(2026, 10, 26), 1)]
    day = out.row(1, named=True)
    assert (day["first_contact"], day["last_contact"]) == (utc(2026, 10, 24, 22),
                                                          utc(2026, 10, 25, 22))
    assert day["key"] == sha(f"{SENSOR}|inbound_attack|{A}||{X}|2026-10-25")


# --------------------------------------------------------------------- identity


def story(days: range) -> pl.DataFrame:
    """A beacon from A to X at hh:07 every hour of ``days`` (Nov 20 + d), and a
    brute-force wave on B each of those days."""
    rows = []
    for d in days:
        day = 20 + d
        rows += [row(ip1=X, toxic=True, command_center=True, out_bytes=100,
                     start_of_hour=utc(2026, 11, day, h), first_seen=utc(2026, 11, day, h, 7))
                 for h in range(24)]
        rows += [row(ip0=B, ip1=Z, dir="IN", port=p, toxic=True, bruteforce=True,
                     start_of_hour=utc(2026, 11, day, h)) for h in (10, 11, 12) for p in (22, 3389)]
    return frame(*rows)


def test_the_same_finding_from_two_overlapping_ranges_has_the_same_key():
    first, second = detect(story(range(0, 3))), detect(story(range(1, 4)))  # share days 1-2
    for kind in ("toxic_out", "beacon"):
        one, two = of(first, kind), of(second, kind)
        assert one["key"].to_list() == two["key"].to_list() == [sha(f"{SENSOR}|{kind}|{A}||{X}|")]
        assert one["first_contact"][0] != two["first_contact"][0]  # other evidence, same key
    waves = {r["day"]: r["key"] for r in of(first, "inbound_attack").iter_rows(named=True)}
    again = {r["day"]: r["key"] for r in of(second, "inbound_attack").iter_rows(named=True)}
    assert sorted(waves) == [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
    shared = [date(2026, 11, 21), date(2026, 11, 22)]
    assert [waves[d] for d in shared] == [again[d] for d in shared]
    assert waves[shared[0]] == sha(f"{SENSOR}|inbound_attack|{B}||{Z}|2026-11-21")
    assert len(set(waves.values())) == 3  # one key per day


def test_the_same_input_twice_gives_identical_findings():
    df = story(range(0, 2))
    out = detect(df)
    assert_frame_equal(out, detect(df))
    assert out["key"].n_unique() == out.height == 4  # toxic_out, beacon, 2 waves
    # Another sensor, another key.
    other = F.detect(df, EMPTY, 55, PARIS, HNO)
    assert set(other["key"]).isdisjoint(out["key"])


def test_finding_key_ignores_what_the_kind_does_not_use():
    day = date(2026, 11, 24)
    # Pair kinds: no MAC, no day; machine kinds: no remote.
    assert F.finding_key(54, "toxic_out", A, MAC, X, day) == sha(f"54|toxic_out|{A}||{X}|")
    assert F.finding_key("54", "upload_anomaly", A, MAC, X, day) == sha(
        f"54|upload_anomaly|{A}|{MAC}||2026-11-24")
    assert F.finding_key(54, "inbound_attack", A, MAC, X, day) == sha(
        f"54|inbound_attack|{A}||{X}|2026-11-24")
    assert F.finding_key(54, "off_hours", A, MAC, None, day) != F.finding_key(
        54, "off_hours", A, "aa:bb:cc:dd:ee:02", None, day)  # another machine on that IP


# --------------------------------------------------------------------- severity


@pytest.mark.parametrize(("args", "level"), [
    (("off_hours", "", False, 1.5), "low"),
    (("first_seen", None, False, None), "low"),
    (("off_hours", "", False, 3.0), "medium"),  # a large deviation
    (("upload_anomaly", "", False, 2.0), "medium"),
    (("first_seen", "Unqualified", False, None), "medium"),  # toxic
    (("inbound_attack", "Bruteforce", False, 2.9), "medium"),  # toxic by nature: no raise
    (("toxic_out", "Tor node", False, None), "high"),
    (("upload_anomaly", "", True, 2.0), "high"),  # a device marked critical
    (("toxic_out", "Command center (C2)", False, None), "critical"),
    (("beacon", "Unqualified", True, None), "critical"),
    (("inbound_attack", "Known attacker, Bruteforce", True, 1.0), "critical"),
    (("upload_anomaly", "Trojan horse", True, 5.0), "critical"),  # 1 + 4: the ceiling
])
def test_severity_rule_by_hand(args, level):
    assert F.severity(*args) == level


def test_severity_expr_is_the_same_rule_and_the_text_says_it():
    grid = list(product(F.KINDS, ["", "Unqualified", "Tor node", "Trojan horse, Tor node"],
                        [False, True], [None, 1.0, 3.0]))
    df = pl.DataFrame(grid, schema={"kind": pl.String, "threats": pl.String,
                                    "is_critical": pl.Boolean, "deviation": pl.Float64},
                      orient="row")
    got = df.select(F.severity_expr())["severity"].to_list()
    assert got == [F.severity(*g) for g in grid]
    assert set(got) == set(F.SEVERITIES)
    for words in ("toxic_out", "beaconing high", "Command center (C2)", "Known attacker",
                  "device marked critical", "3× the kind's threshold", "Critical is the ceiling"):
        assert words in F.SEVERITY_RULE


# --------------------------------------------------------------------- compact


def scene() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every kind fires once (with LOW_OFF), with geo columns as the pages have them."""
    geo = {X: ("MD", "Moldova", "ALEXHOST"), Z: ("CN", "China", "CHINANET"),
           "8.8.8.8": ("US", "United States", "GOOGLE"),
           "8.8.4.4": ("US", "United States", "GOOGLE"),
           "1.1.1.1": ("AU", "Australia", "CLOUDFLARENET")}
    df = frame(
        *[row(ip1=X, toxic=True, command_center=True, mac_address=MAC,
              start_of_hour=utc(2026, 11, 24, h), first_seen=utc(2026, 11, 24, h, 7))
          for h in (9, 10, 11)],
        row(ip1="1.1.1.1", out_bytes=7_000_000, mac_address=MAC,
            start_of_hour=utc(2026, 11, 24, 12)),
        row(start_of_hour=utc(2026, 11, 24, 20), out_bytes=5_000),  # 21:00 local, off
        row(start_of_hour=utc(2026, 11, 24, 21), out_bytes=5_000),
        *wave(Z, (10, 11, 12), ip0=B, device_name="SRV"))
    return with_geo(df, geo), with_geo(upload_baseline(), geo)


def test_a_compact_frame_gives_the_same_findings():
    df, baseline = scene()
    plain = detect(df, baseline, LOW_OFF)
    # Most severe first, then in KINDS order: the C2 contacts; A's 7 MB hour (5x its
    # threshold) and its first, toxic, contact with X; the wave and the evening; 1.1.1.1.
    assert plain.select("kind", "severity").rows() == [
        ("toxic_out", "critical"), ("beacon", "critical"), ("upload_anomaly", "high"),
        ("first_seen", "high"), ("inbound_attack", "medium"), ("off_hours", "medium"),
        ("first_seen", "low")]
    small = detect(compact(df), compact(baseline), LOW_OFF)
    assert small.schema == F.FINDINGS_SCHEMA
    assert_frame_equal(small, plain)
    assert plain["country"].to_list()[:2] == ["Moldova", "Moldova"]


# --------------------------------------------------------------------- links


def test_link_query_pins_the_range():
    df, baseline = scene()
    out = detect(df, baseline, LOW_OFF)
    # First contact 09:07 UTC; no session end, so the last is its hour, 11:00 UTC.
    c2 = of(out, "toxic_out").row(0, named=True)  # 10:00-12:00 local, hours rounded out
    page, q = F.link_query(c2, PARIS, "remote")
    assert page == "remotes"
    assert q == {"sensor": "54", "range": "Custom", "from_day": "2026-11-24",
                 "from_hour": "10:00", "to_day": "2026-11-24", "to_hour": "12:00",
                 "remote": X}
    page, q = F.link_query(c2, PARIS)
    assert (page, q["device"]) == ("devices", [A])
    # A day-bound finding: its whole local day (here the 25-hour 2026-10-25).
    day = {"sensor": 54, "day": date(2026, 10, 25), "ip0": A, "ip1": None}
    _, q = F.link_query(day, PARIS)
    assert (q["from_day"], q["from_hour"], q["to_day"], q["to_hour"]) == (
        "2026-10-25", "00:00", "2026-10-26", "00:00")
    with pytest.raises(ValueError, match="no remote"):
        F.link_query(day, PARIS, "remote")
