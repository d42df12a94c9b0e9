"""Owners of remote IPs (offline ASN data) and the remote-host profile.

Lookups: addresses whose owners are public knowledge (Google's and
Cloudflare's resolvers, OVH, the Tor relays of Stiftung Erneuerbare
Freiheit), checked against the bundled data. Profile functions: small
hand-built frames, every number worked out by hand. AppTest: the profile
opened from a link, against the demo's own rows for a fixed past day (a
second simulator instance is the ground truth).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from app_env import SCRUBBED
from streamlit.testing.v1 import AppTest

from flux_dashboard import geo
from flux_dashboard import remote_profile as P
from flux_dashboard.masking import Masker
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS
from flux_dashboard.simulator import Simulator, SimulatorConfig
from flux_dashboard.simulator.story import StoryPlan

# ------------------------------------------------------------------ lookups
KNOWN_OWNERS = [
    ("8.8.8.8", "GOOGLE", "8.8.8.0/24"),
    ("8.8.4.4", "GOOGLE", "8.8.4.0/24"),
    ("1.1.1.1", "CLOUDFLARENET", "1.1.1.0/24"),
    ("2001:4860:4860::8888", "GOOGLE", "2001:4860:4840::/42"),  # Google DNS over IPv6
    ("185.220.101.4", "Stiftung Erneuerbare Freiheit", "185.220.101.0/24"),  # Tor relays
]


@pytest.mark.parametrize(("ip", "owner", "network"), KNOWN_OWNERS)
def test_owner_of_well_known_addresses(ip: str, owner: str, network: str) -> None:
    assert geo.owner(ip) == (owner, network)


def test_owner_of_an_ovh_address_can_be_searched_as_ovh() -> None:
    name, network = geo.owner("51.38.1.1")  # OVH's 51.38.0.0/16
    assert "OVH" in name and network == "51.38.0.0/16"


@pytest.mark.parametrize(("ip", "said"), [
    ("10.1.2.3", geo.PRIVATE_OWNER), ("192.168.1.10", geo.PRIVATE_OWNER),
    ("100.64.0.1", geo.PRIVATE_OWNER), ("fd00::1", geo.PRIVATE_OWNER),
    ("127.0.0.1", geo.RESERVED_OWNER), ("224.0.0.1", geo.RESERVED_OWNER),
    ("240.1.2.3", geo.RESERVED_OWNER), ("2001:db8::1", geo.RESERVED_OWNER),
    # a public address no network of the June 2024 data covers (nor the country data)
    ("102.228.12.138", geo.UNKNOWN_OWNER),
    ("not-an-ip", geo.UNKNOWN_OWNER), ("", geo.UNKNOWN_OWNER),
])
def test_private_reserved_and_unknown_addresses_say_so(ip: str, said: str) -> None:
    assert geo.owner(ip) == (said, None)
    assert said in ("Private network", "Reserved address", "Unknown owner")


def test_country_lookup_still_works_from_the_same_database() -> None:
    """The ASN file replaces the country file: countries must not change."""
    assert geo.lookup("8.8.8.8") == ("US", "United States", "USA")
    assert geo.lookup("1.1.1.1") == ("AU", "Australia", "AUS")
    assert geo.lookup("91.92.248.153")[:2] == ("BG", "Bulgaria")
    assert geo.lookup("10.0.0.1") == geo.UNKNOWN
    # and the owner lookup after a country lookup still sees the ASN data
    assert geo.owner("9.9.9.9") == ("QUAD9-AS-1", "9.9.9.0/24")


def test_owners_are_looked_up_once_per_distinct_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    db = geo._db()
    calls: list[str] = []
    real = db.lookup

    def counting(ip: str):
        calls.append(ip)
        return real(ip)

    monkeypatch.setattr(db, "lookup", counting)
    geo.owner.cache_clear()
    ips = ["8.8.8.8", "1.1.1.1", "9.9.9.9"] * 1000 + [None]
    df = pl.DataFrame({"ip1": ips})
    out = geo.with_owner(df)
    assert sorted(calls) == ["1.1.1.1", "8.8.8.8", "9.9.9.9"]
    assert out.height == 3001 and out.columns == ["ip1", "owner", "owner_net"]
    assert out.row(1) == ("1.1.1.1", "CLOUDFLARENET", "1.1.1.0/24")
    assert out.row(3000) == (None, None, None)
    geo.with_owner(df)  # a second frame with the same IPs: the cache answers
    assert len(calls) == 3


def test_masking_keeps_the_owner_and_empties_its_network() -> None:
    df = geo.with_owner(pl.DataFrame({"ip1": ["8.8.8.8", "91.92.248.153"]}))
    masked = Masker(b"test-secret-of-sixteen-bytes").mask_frame(df)
    assert masked["owner"].to_list() == ["GOOGLE", "LIMENET"]
    assert masked["owner_net"].to_list() == [None, None]
    assert not set(masked["ip1"]) & {"8.8.8.8", "91.92.248.153"}


# ------------------------------------------------------------------ profile functions
LOCAL_A, LOCAL_B, LOCAL_C = "192.168.1.10", "192.168.1.20", "192.168.1.30"
C2, GOOGLE_A, GOOGLE_B = "91.92.248.153", "8.8.8.8", "8.8.4.4"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make_flows(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "start_of_hour": utc(2024, 3, 4, 10), "ip0": LOCAL_A, "ip1": C2, "dir": "OUT",
        "protocol": "TCP", "port": 443, "occurrences": 1, "duration_s": 1.0,
        "first_seen": None, "last_seen": None, "out_bytes": 0, "in_bytes": 0,
        "filtered": False, "toxic": False, **dict.fromkeys(THREAT_FLAGS, False),
        "device_name": None, "custom_name": None, "netbios": None, "mac_address": None,
        "vendor": None, "is_critical": False, "device_category": None,
    }
    full = []
    for r in rows:
        row = {**defaults, **r}
        row["device_name"] = row["device_name"] or row["ip0"]
        full.append(row)
    return geo.with_owner(pl.from_dicts(full, schema=FLOW_SCHEMA))


def profile_rows() -> pl.DataFrame:
    c2 = {"ip1": C2, "toxic": True, "command_center": True}
    return make_flows([
        # PC (A): OUT to the C2 at 10:00, 11:00, 13:00; the 11:00 one blocked
        {**c2, "ip0": LOCAL_A, "device_name": "PC-A", "out_bytes": 100, "in_bytes": 10,
         "first_seen": utc(2024, 3, 4, 10, 5), "last_seen": utc(2024, 3, 4, 10, 6)},
        {**c2, "ip0": LOCAL_A, "device_name": "PC-A", "out_bytes": 200, "in_bytes": 20,
         "start_of_hour": utc(2024, 3, 4, 11), "first_seen": utc(2024, 3, 4, 11, 5),
         "last_seen": utc(2024, 3, 4, 11, 7), "filtered": True},
        {**c2, "ip0": LOCAL_A, "device_name": "PC-A", "port": 8443, "out_bytes": 300,
         "start_of_hour": utc(2024, 3, 4, 13), "first_seen": utc(2024, 3, 4, 13, 5),
         "last_seen": utc(2024, 3, 4, 13, 9)},
        # server (B): one IN flow from the C2, UDP 53, no timestamps
        {**c2, "ip0": LOCAL_B, "device_name": "SRV-B", "dir": "IN", "protocol": "UDP",
         "port": 53, "in_bytes": 1000, "start_of_hour": utc(2024, 3, 4, 12)},
        # unrelated traffic: C to Google (two IPs of one owner), A to Google too
        {"ip0": LOCAL_C, "ip1": GOOGLE_A, "out_bytes": 5, "in_bytes": 50},
        {"ip0": LOCAL_A, "ip1": GOOGLE_B, "out_bytes": 7, "in_bytes": 70},
        {"ip0": LOCAL_C, "ip1": GOOGLE_B, "out_bytes": 1, "in_bytes": 1},
    ])


def test_remote_summary_counts_by_hand() -> None:
    s = P.remote_summary(profile_rows(), C2)
    assert s == {
        "ip": C2, "flows": 4, "owner": "LIMENET", "owner_net": "91.92.240.0/20",
        "country_code": None, "country": None,  # this frame carries no countries
        "bytes_in": 10 + 20 + 1000, "bytes_out": 100 + 200 + 300, "devices": 2,
        "toxic_flows": 4, "blocked_flows": 1, "threats": ["Command center (C2)"],
        "critical": True,
        "first_contact": utc(2024, 3, 4, 10, 5),  # first_seen of the 10:00 flow
        "last_contact": utc(2024, 3, 4, 13, 9),  # last_seen of the 13:00 flow
    }
    assert P.blocked_text(s) == "partly blocked by the sensor (1 of 4 toxic flows)"


def test_remote_summary_of_an_absent_ip() -> None:
    s = P.remote_summary(profile_rows(), "1.1.1.1")
    assert s["flows"] == 0 and s["devices"] == 0 and s["threats"] == []
    assert s["first_contact"] is None and s["owner"] is None


def test_remote_devices_by_hand() -> None:
    d = P.remote_devices(profile_rows(), C2, "Europe/Paris")
    assert d.columns == list(P.DEVICE_COLUMNS)
    rows = d.rows(named=True)
    paris = ZoneInfo("Europe/Paris")
    # SRV-B: 1000 bytes; PC-A: 600 + 30 = 630 bytes -> SRV-B first
    assert [r["ip0"] for r in rows] == [LOCAL_B, LOCAL_A]
    b, a = rows
    assert (b["device_name"], b["dirs"], b["flows"], b["bytes"], b["ports"], b["protocols"]) \
        == ("SRV-B", "IN", 1, 1000, "53", "UDP")
    assert (a["device_name"], a["dirs"], a["flows"], a["bytes_out"], a["bytes_in"], a["ports"],
            a["protocols"], a["toxic_flows"], a["blocked_flows"]) == \
        ("PC-A", "OUT", 3, 600, 30, "443, 8443", "TCP", 3, 1)
    # 10:05 UTC is 11:05 in Paris (CET, March)
    assert a["first_contact"] == datetime(2024, 3, 4, 11, 5, tzinfo=paris)
    assert b["first_contact"] == datetime(2024, 3, 4, 13, 0, tzinfo=paris)  # its hour


def test_remote_regularity_per_device() -> None:
    r = P.remote_regularity(profile_rows(), C2)
    by_device = {row["ip0"]: row for row in r.iter_rows(named=True)}
    # PC-A contacts at 10:05, 11:05, 13:05: gaps 60 and 120 min, mean 90, std 30,
    # CV 1/3, regularity 2/3. SRV-B: one contact, no regularity.
    assert by_device[LOCAL_A]["contacts"] == 3
    assert by_device[LOCAL_A]["regularity"] == pytest.approx(2 / 3)
    assert by_device[LOCAL_B]["regularity"] is None


def test_same_owner_remotes_lists_the_other_ips_of_the_organisation() -> None:
    df = profile_rows()
    peers = P.same_owner_remotes(df, GOOGLE_A, "GOOGLE")
    # 8.8.4.4: flows from A (77 bytes) and C (2 bytes), two devices
    assert peers.select("ip1", "flows", "bytes", "devices").rows() == [(GOOGLE_B, 2, 79, 2)]
    assert P.same_owner_remotes(df, C2, "LIMENET").height == 0
    assert P.same_owner_remotes(df, "10.0.0.1", geo.PRIVATE_OWNER).height == 0


def test_first_contacts_over_cached_days() -> None:
    day1 = pl.DataFrame({"ip1": [C2, GOOGLE_A], "start_of_hour": [utc(2024, 3, 1, 5),
                                                                    utc(2024, 3, 1, 9)]})
    day2 = pl.DataFrame({"ip1": [C2, GOOGLE_B], "start_of_hour": [utc(2024, 3, 2, 1),
                                                                    utc(2024, 3, 2, 2)]})
    table = P.first_contacts([day2, day1])
    assert P.first_contact_of(table, C2) == utc(2024, 3, 1, 5)
    assert P.first_contact_of(table, GOOGLE_B) == utc(2024, 3, 2, 2)
    assert P.first_contact_of(table, "1.1.1.1") is None
    assert P.first_contacts([]).height == 0


@pytest.mark.parametrize(("value", "masked", "ok"), [
    ("91.92.248.153", False, "91.92.248.153"),
    (" 2a00:1450:4001::1 ", False, "2a00:1450:4001::1"),
    ("2001:db8::1:2:3:4", True, "2001:db8::1:2:3:4"),
    # spelled as the masker writes it (leading zeros kept), so it equals the table's ip1
    ("2001:db8::c66a:0a5e:f74d:9e94", True, "2001:db8::c66a:0a5e:f74d:9e94"),
])
def test_check_remote_accepts_public_addresses(value: str, masked: bool, ok: str) -> None:
    assert P.check_remote(value, masked) == (ok, None)


@pytest.mark.parametrize(("value", "masked", "message"), [
    ("192.168.1.10", False, "is not a public IP address"),
    ("127.0.0.1", False, "is not a public IP address"),
    ("2001:db8::1", False, "is not a public IP address"),
    ("<b>x</b>", False, "is not an IP address"),
    ("", False, "Enter a public IP address"),
    ("91.92.248.153", True, "is not a masked remote address"),
])
def test_check_remote_refuses_the_rest_with_a_message(value: str, masked: bool,
                                                      message: str) -> None:
    ip, problem = P.check_remote(value, masked)
    assert ip is None and message in (problem or "")


# ------------------------------------------------------------------ AppTest
APP = str(Path(__file__).resolve().parents[1] / "app.py")
REMOTES = "pages/5_remotes.py"
PARIS = ZoneInfo("Europe/Paris")
MAIN = 54
FIXED_DAY = datetime.now(PARIS).date() - timedelta(days=3)
# The demo's planted incident (simulator/story.py), day 0 = today as in the app's demo.
# Its C2 (an Alexhost address in Moldova) beacons every hour of days -12 to -3: FIXED_DAY
# is its last day. The AppTests below profile that C2 (the unit tests above use C2).
PLAN = StoryPlan.anchored(datetime.now(UTC), "Europe/Paris")
STORY_C2 = PLAN.c2_ip
C2_OWNER, C2_NET = "Alexhost Srl", "176.123.8.0/22"
assert PLAN.offset(FIXED_DAY) in PLAN.beacon_days
SECRET = "apptest-fixed-mask-secret"


@pytest.fixture(scope="module", autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache_dir = tmp_path_factory.mktemp("flux-cache")
    with pytest.MonkeyPatch.context() as mp:
        for name in SCRUBBED:
            mp.delenv(name, raising=False)
        mp.setenv("FLUX_CACHE_DIR", str(cache_dir))
        # The app's story is PLAN's, even when the suite crosses the sensor's midnight.
        mp.setenv("FLUX_DEMO_DAY", PLAN.today.isoformat())
        mp.setenv("FLUX_MASK_SECRET", SECRET)
        yield cache_dir


def fixed_link(first: date = FIXED_DAY) -> dict[str, str]:
    return {"range": "Custom", "from_day": first.isoformat(), "from_hour": "00:00",
            "to_day": (first + timedelta(days=1)).isoformat(), "to_hour": "00:00"}


@pytest.fixture(scope="module")
def day_rows() -> list[dict]:
    start = datetime(FIXED_DAY.year, FIXED_DAY.month, FIXED_DAY.day, tzinfo=PARIS)
    truth = Simulator(SimulatorConfig(rate_limit_per_min=None))
    return truth.rows(MAIN, start, start + timedelta(days=1))


def open_link(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["FLUX_APPTEST"] = "1"
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.switch_page(REMOTES).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def plain(value: str) -> str:
    """Markdown as a reader sees it: the app escapes every echoed value."""
    return re.sub(r"\\(.)", r"\1", value)


def markdown(at: AppTest) -> str:
    return "\n".join(plain(m.value) for m in at.markdown)


def subheaders(at: AppTest) -> list[str]:
    return [plain(s.value).removeprefix(":material/travel_explore: ") for s in at.subheader]


def table_with(at: AppTest, columns: set[str]):
    found = [d.value for d in at.dataframe if columns <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def test_profile_opens_from_a_link(day_rows: list[dict], captured_downloads: dict) -> None:
    at = open_link({**fixed_link(), "remote": STORY_C2})
    assert subheaders(at) == [f"Remote host {STORY_C2}"]
    mine = [r for r in day_rows if r["ip1"] == STORY_C2]
    assert mine, "the story's C2 beacons every hour of its last day"
    text = markdown(at)
    assert f"**Owner** {C2_OWNER}" in text and f"**country** {PLAN.c2_country}" in text
    assert C2_NET in text
    assert "Command center (C2)" in text
    toxic = [r for r in mine if r["toxic"]]
    blocked = [r for r in toxic if r["filtered"]]
    if len(blocked) == len(toxic):
        assert f"blocked by the sensor (all {len(toxic):,} toxic flows)" in text
    else:
        assert f"blocked by the sensor ({len(blocked):,} of {len(toxic):,} toxic flows)" in text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Flows"] == f"{len(mine):,}"
    assert metrics["Local devices"] == str(len({r["ip0"] for r in mine}))
    devices = table_with(at, {"ip0", "dirs", "ports", "blocked_flows"})
    assert Counter(dict(zip(devices["ip0"], devices["flows"], strict=True))) == \
        Counter(r["ip0"] for r in mine)
    assert set(devices["dirs"]) == {"OUT"}  # the beaconing PC calls out
    # the link stays on the profile, and the evidence pack holds only this host's flows
    assert at.query_params["remote"] in (STORY_C2, [STORY_C2])
    zip_end = f"-{STORY_C2.replace('.', '_')}.zip"
    name = next(n for n in captured_downloads if n.endswith(zip_end))
    with zipfile.ZipFile(io.BytesIO(captured_downloads[name]())) as zf:
        flows = pl.read_csv(zf.read("flows.csv"))
        readme = zf.read("README.txt").decode()
    assert flows.height == len(mine) and set(flows["ip1"]) == {STORY_C2}
    assert set(flows["owner"]) == {C2_OWNER}
    assert f"Remote:    {STORY_C2} ({C2_OWNER})" in readme


def test_profile_lists_other_ips_of_the_same_owner() -> None:
    # 218.92.0.107 and 61.177.172.140 are both Chinanet (AS4134) brute-forcers: the
    # story's brute-force waves (days -9 and -4) come from both.
    assert {"218.92.0.107", "61.177.172.140"} <= set(PLAN.bruteforce_ips)
    at = open_link({**fixed_link(PLAN.day(PLAN.bruteforce_days[-1])), "remote": "218.92.0.107"})
    assert "Other IPs of Chinanet" in markdown(at)
    peers = table_with(at, {"ip1", "country", "devices", "toxic_flows"})
    assert "61.177.172.140" in set(peers["ip1"]) and "218.92.0.107" not in set(peers["ip1"])


@pytest.mark.parametrize(("remote", "message"), [
    ("192.168.1.10", "is not a public IP address"),
    ("2001:db8::1", "is not a public IP address"),
])
def test_a_link_to_a_non_public_address_says_so(remote: str, message: str) -> None:
    at = open_link({**fixed_link(), "remote": remote})
    assert not any("Remote host" in s for s in subheaders(at))
    assert any(message in plain(i.value) for i in at.info), [i.value for i in at.info]


def test_masked_profile_link_keeps_the_owner_and_hides_the_ip(day_rows: list[dict]) -> None:
    alias = Masker(SECRET).mask_value("public_ip", STORY_C2)
    at = open_link({**fixed_link(), "remote": alias, "mask": "true"})
    assert subheaders(at) == [f"Remote host {alias}"]
    text = markdown(at)
    assert f"**Owner** {C2_OWNER}" in text and "hidden (masking)" in text
    devices = table_with(at, {"ip0", "dirs", "ports", "blocked_flows"})
    names = {n for r in day_rows if r["ip1"] == STORY_C2
             for n in (r.get("last_netbios"), (r.get("custom_ip0") or {}).get("name"),
                       *(r.get("netbios_list") or ())) if n}
    assert names  # the beaconing PC has a name to hide
    shown = devices.to_csv(index=False) + text
    assert STORY_C2 not in shown and C2_NET.rsplit(".", 1)[0] not in shown
    assert not any(n in shown for n in names)
    assert not set(devices["ip0"]) & {r["ip0"] for r in day_rows}


def test_masking_turns_a_real_ip_in_a_link_into_its_alias(day_rows: list[dict]) -> None:
    """A masked view never keeps the real IP: not in the filter, the URL or the page."""
    alias = Masker(SECRET).mask_value("public_ip", STORY_C2)
    at = open_link({**fixed_link(), "remote": STORY_C2, "mask": "true"})
    assert subheaders(at) == [f"Remote host {alias}"]
    assert at.sidebar.text_input(key="remote").value == alias
    assert at.query_params["remote"] in (alias, [alias])
    assert f"**Owner** {C2_OWNER}" in markdown(at)
    # masking off again: the real address comes back
    at.sidebar.toggle(key="mask").set_value(False).run()
    assert not at.exception
    assert subheaders(at) == [f"Remote host {STORY_C2}"]
    assert at.sidebar.text_input(key="remote").value == STORY_C2


def test_search_box_opens_a_profile_and_refuses_the_rest() -> None:
    at = open_link(fixed_link())
    assert not any("Remote host" in s for s in subheaders(at))
    at.text_input(key="rh_profile_search").input("not an ip").run()
    assert not at.exception
    assert any("is not an IP address" in plain(w.value) for w in at.warning)
    assert not any("Remote host" in s for s in subheaders(at))
    at.text_input(key="rh_profile_search").input(f" {STORY_C2} ").run()
    assert not at.exception
    assert subheaders(at) == [f"Remote host {STORY_C2}"]
    assert at.sidebar.text_input(key="remote").value == STORY_C2


def test_look_back_is_fetched_only_when_asked_and_counted_by_hand() -> None:
    at = open_link({**fixed_link(), "remote": STORY_C2})
    assert not any("Look-back" in plain(c.value) for c in at.caption)
    at.button_group(key="profile_lookback").set_value(7).run()
    assert not at.exception
    assert any("Look-back (7 days before the range): flows of" in plain(c.value)
               for c in at.caption), [c.value for c in at.caption]
    start = datetime(FIXED_DAY.year, FIXED_DAY.month, FIXED_DAY.day, tzinfo=PARIS)
    truth = Simulator(SimulatorConfig(rate_limit_per_min=None))
    before = [r for r in truth.rows(MAIN, start - timedelta(days=7), start)
              if r["ip1"] == STORY_C2]
    devices = {r["ip0"] for r in before}
    assert before
    assert f"In the 7 days before the range: {len(before):,} flows with {len(devices):,} " \
        "device(s)" in markdown(at).replace("**", "")


def test_remote_chart_hover_shows_the_owner() -> None:
    from flux_dashboard import analytics as A
    from flux_dashboard import charts as C

    fig = C.remote_hosts_fig(A.remote_hosts(profile_rows(), sort_by="bytes"), value="bytes")
    trace = fig.data[0]
    assert "Owner: %{customdata[5]}" in trace.hovertemplate
    owners = {row[1]: row[5] for row in trace.customdata}  # (label text, ..., owner, ...)
    # C2: 1630 bytes; 8.8.4.4: 79; 8.8.8.8: 55 -> three bars, each with its owner
    assert sorted(owners.values()) == ["GOOGLE", "GOOGLE", "LIMENET"]


def test_toxic_search_finds_rows_by_owner(day_rows: list[dict]) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["FLUX_APPTEST"] = "1"
    for k, v in fixed_link().items():
        at.query_params[k] = v
    at.run()
    at.switch_page("pages/4_toxic.py").run()
    at.text_input(key="toxic_search").input(C2_OWNER.split()[0].lower()).run()  # any case
    assert not at.exception
    table = table_with(at, {"time", "ip1", "owner", "threats"})
    expected = [r for r in day_rows if r["toxic"] and r["ip1"] == STORY_C2]
    assert len(table) == len(expected) > 0
    assert set(table["ip1"]) == {STORY_C2} and set(table["owner"]) == {C2_OWNER}


def test_masked_search_opens_the_alias_and_never_echoes_what_was_typed() -> None:
    alias = Masker(SECRET).mask_value("public_ip", C2)
    at = open_link({**fixed_link(), "mask": "true"})
    at.text_input(key="rh_profile_search").input("192.168.1.102").run()
    assert not at.exception
    shown = [plain(w.value) for w in at.warning]
    assert any("That is not a masked remote address" in w for w in shown), shown
    assert not any("192.168.1.102" in w for w in shown)
    assert at.text_input(key="rh_profile_search").value == ""
    at.text_input(key="rh_profile_search").input(C2).run()
    assert not at.exception
    assert subheaders(at) == [f"Remote host {alias}"]
    assert at.sidebar.text_input(key="remote").value == alias
    assert at.text_input(key="rh_profile_search").value == ""


def test_closing_the_profile_goes_back_to_every_remote_host(day_rows: list[dict]) -> None:
    at = open_link({**fixed_link(), "remote": STORY_C2})
    assert subheaders(at) == [f"Remote host {STORY_C2}"]
    at.button(key="profile_close").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not any("Remote host" in s for s in subheaders(at))
    assert at.text_input(key="remote").value == ""
    # the page lists every remote host of the day again, not only the profiled one
    hosts = {r["ip1"] for r in day_rows}
    shown = table_with(at, {"ip1", "country", "devices", "toxic_flows"})
    assert len(hosts) > 1 and set(shown["ip1"]) == hosts
