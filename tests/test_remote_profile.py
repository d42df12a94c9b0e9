"""Owners of remote IPs (offline ASN data) and the remote-host profile.

Lookups: addresses whose owners are public knowledge (Google's and
Cloudflare's resolvers, OVH, the Tor relays of Stiftung Erneuerbare
Freiheit), checked against the bundled data. Profile functions: small
hand-built frames, every number worked out by hand. AppTest: the profile
opened from a link, against the demo's own rows for a fixed past day (a
second simulator instance is the ground truth).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from flux_dashboard import geo
from flux_dashboard import remote_profile as P
from flux_dashboard.masking import Masker
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

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

def test_remote_chart_hover_shows_the_owner() -> None:
    from flux_dashboard import analytics as A
    from flux_dashboard import charts as C

    fig = C.remote_hosts_fig(A.remote_hosts(profile_rows(), sort_by="bytes"), value="bytes")
    trace = fig.data[0]
    assert "Owner: %{customdata[5]}" in trace.hovertemplate
    owners = {row[1]: row[5] for row in trace.customdata}  # (label text, ..., owner, ...)
    # C2: 1630 bytes; 8.8.4.4: 79; 8.8.8.8: 55 -> three bars, each with its owner
    assert sorted(owners.values()) == ["GOOGLE", "GOOGLE", "LIMENET"]
