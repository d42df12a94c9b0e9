"""The remote-host profile in the app (AppTest): opened from a link, from the search
box or a table's row, its look-back, the owner search on the toxic page, masking (the
alias and never an echo), and closing it; against the demo's own rows for a closed
day (FIXED_DAY, the story's C2's last beacon day)."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from datetime import timedelta

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.masking import Masker
from tests.kit.apptest import REMOTES, TOXIC, param, plain, run_page, table_with
from tests.kit.clock import PLAN, days_link, local_days
from tests.kit.demo import FIXED_DAY, INCIDENT_DAY, rows

pytestmark = pytest.mark.usefixtures("app_env")

# The demo's planted incident (simulator/story.py): its C2 (an Alexhost address in
# Moldova) beacons every hour of days -12 to -3; FIXED_DAY is its last day.
STORY_C2 = PLAN.c2_ip
C2_OWNER, C2_NET = "Alexhost Srl", "176.123.8.0/22"
assert PLAN.offset(FIXED_DAY) in PLAN.beacon_days
SECRET = "apptest-fixed-mask-secret"  # kit.apptest.hermetic's
C2 = "91.92.248.153"  # the unit tests' C2 (another toxic address of the demo)


def open_link(query: dict[str, str]) -> AppTest:
    return run_page(REMOTES, query)


def markdown(at: AppTest) -> str:
    return "\n".join(plain(m.value) for m in at.markdown)


def subheaders(at: AppTest) -> list[str]:
    return [plain(s.value).removeprefix(":material/travel_explore: ") for s in at.subheader]


def test_profile_opens_from_a_link(day_rows: list[dict], captured_downloads: dict) -> None:
    at = open_link({**days_link(FIXED_DAY), "remote": STORY_C2})
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
    at = open_link({**days_link(PLAN.day(PLAN.bruteforce_days[-1])), "remote": "218.92.0.107"})
    assert "Other IPs of Chinanet" in markdown(at)
    peers = table_with(at, {"ip1", "country", "devices", "toxic_flows"})
    assert "61.177.172.140" in set(peers["ip1"]) and "218.92.0.107" not in set(peers["ip1"])


@pytest.mark.parametrize(("remote", "message"), [
    ("192.168.1.10", "is not a public IP address"),
    ("2001:db8::1", "is not a public IP address"),
])
def test_a_link_to_a_non_public_address_says_so(remote: str, message: str) -> None:
    at = open_link({**days_link(FIXED_DAY), "remote": remote})
    assert not any("Remote host" in s for s in subheaders(at))
    assert any(message in plain(i.value) for i in at.info), [i.value for i in at.info]


def test_masked_profile_link_keeps_the_owner_and_hides_the_ip(day_rows: list[dict]) -> None:
    alias = Masker(SECRET).mask_value("public_ip", STORY_C2)
    at = open_link({**days_link(FIXED_DAY), "remote": alias, "mask": "true"})
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
    at = open_link({**days_link(FIXED_DAY), "remote": STORY_C2, "mask": "true"})
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
    at = open_link(days_link(FIXED_DAY))
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
    at = open_link({**days_link(FIXED_DAY), "remote": STORY_C2})
    assert not any("Look-back" in plain(c.value) for c in at.caption)
    at.button_group(key="profile_lookback").set_value(7).run()
    assert not at.exception
    assert any("Look-back (7 days before the range): flows of" in plain(c.value)
               for c in at.caption), [c.value for c in at.caption]
    start, _ = local_days(FIXED_DAY)
    before = [r for r in rows(start - timedelta(days=7), start) if r["ip1"] == STORY_C2]
    devices = {r["ip0"] for r in before}
    assert before
    assert f"In the 7 days before the range: {len(before):,} flows with {len(devices):,} " \
        "device(s)" in markdown(at).replace("**", "")



def test_toxic_search_finds_rows_by_owner(day_rows: list[dict]) -> None:
    at = run_page(TOXIC, days_link(FIXED_DAY))
    at.text_input(key="toxic_search").input(C2_OWNER.split()[0].lower()).run()  # any case
    assert not at.exception
    table = table_with(at, {"time", "ip1", "owner", "threats"})
    expected = [r for r in day_rows if r["toxic"] and r["ip1"] == STORY_C2]
    assert len(table) == len(expected) > 0
    assert set(table["ip1"]) == {STORY_C2} and set(table["owner"]) == {C2_OWNER}


def test_masked_search_opens_the_alias_and_never_echoes_what_was_typed() -> None:
    alias = Masker(SECRET).mask_value("public_ip", C2)
    at = open_link({**days_link(FIXED_DAY), "mask": "true"})
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
    at = open_link({**days_link(FIXED_DAY), "remote": STORY_C2})
    assert subheaders(at) == [f"Remote host {STORY_C2}"]
    at.button(key="profile_close").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not any("Remote host" in s for s in subheaders(at))
    assert at.text_input(key="remote").value == ""
    # the page lists every remote host of the day again, not only the profiled one
    hosts = {r["ip1"] for r in day_rows}
    shown = table_with(at, {"ip1", "country", "devices", "toxic_flows"})
    assert len(hosts) > 1 and set(shown["ip1"]) == hosts


def test_the_profile_jump_keeps_the_sensor_days_and_filters_of_the_page() -> None:
    """A table row opens the Remote hosts page through a page switch, whose run ends
    before the sidebar is drawn: Streamlit then drops the state of the unbound
    widgets. The jump once landed on the first sensor and the default days (sensor 77
    on 14 Nov became sensor 54 on "yesterday")."""
    at = run_page(TOXIC, {**days_link(INCIDENT_DAY), "sensor": "77",
                          "threat": "tor_node"})
    device = at.sidebar.multiselect(key="device").options[0]
    at.sidebar.multiselect(key="device").set_value([device]).run()
    before = at.caption[0].value
    # What a row's selection callback does (ui/profile.py), then the run it causes.
    at.session_state["remote"] = STORY_C2
    at.session_state["_flux_open_profile"] = True
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Remote hosts"]
    assert at.session_state["sensor_id"] == 77
    assert (at.session_state["from_day"], at.session_state["to_day"]) == (
        INCIDENT_DAY, INCIDENT_DAY + timedelta(days=1))
    assert at.session_state["device"] == [device]
    assert at.session_state["threat"] == ["tor_node"]
    assert at.caption[0].value.startswith(before.split(" · remote")[0].rsplit(" · ", 1)[0])
    assert {k: param(at, k) for k in ("sensor", "from_day", "device", "threat")} == {
        "sensor": ["77"], "from_day": [INCIDENT_DAY.isoformat()], "device": [device],
        "threat": ["tor_node"]}
