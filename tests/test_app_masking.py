"""Demo masking: no original identifier on any page or in any download, a scanner
that finds each kind of identifier, masked first runs, masking off again, and aliases
consistent across pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.simulator import Simulator
from tests.kit.apptest import (
    DEVICES,
    HUNTING,
    MAIN,
    PAGES,
    TOXIC,
    download,
    new_app,
    plain,
    readable,
    run_page,
    table_with,
    texts,
)
from tests.kit.clock import PINNED
from tests.kit.demo import (
    IPV4,
    KNOWN_NAMES,
    MAC,
    ORIGINAL_IP,
    SENSOR_NAMES,
    TITLES,
    device_options,
    unexpected_errors,
)

pytestmark = pytest.mark.usefixtures("app_env")


# ------------------------------------------------------------------ masking
@pytest.fixture(scope="module")
def originals(truth: Simulator) -> dict[str, set[str]]:
    """Every identifier the masked runs could show, from the simulator's own rows: the
    last 10 days of the demo sensor (range, digest day and week before, hunting
    baseline) and the sensor objects."""
    rows = truth.rows(MAIN, PINNED - timedelta(days=10), PINNED + timedelta(hours=1))
    ips, macs, names, vendors = set(), set(), set(), set()
    for r in rows:
        ips.update((r["ip0"], r["ip1"]))
        macs.update(m.lower() for m in r["mac_address_list"])
        names.update(n for n in (*r["netbios_list"], r["last_netbios"]) if n)
        if r["custom_ip0"] and r["custom_ip0"].get("name"):
            names.add(r["custom_ip0"]["name"])
        if r.get("vendor"):
            vendors.add(r["vendor"])
    for s in truth.sensors():
        ips.update(s[k] for k in ("public_ip", "local_ip") if s.get(k))
        macs.add(s["mac_address"].lower())
        names.update(s[k] for k in ("name", "full_name") if s.get(k))
    # Short names ("TV", "IPBX") would match ordinary words; HTML_NAME is checked escaped.
    names = {n for n in names if len(n) >= 5} | set(KNOWN_NAMES) | set(SENSOR_NAMES)
    assert len(ips) > 100 and len(macs) > 20 and len(vendors) > 5
    return {"ips": ips, "macs": macs, "names": names, "vendors": vendors}




def leaks(text: str, originals: dict[str, set[str]]) -> list[str]:
    shown = plain(text)
    found = [ip for ip in IPV4.findall(shown) if ip in originals["ips"]]
    found += [m for m in MAC.findall(shown) if m.lower().replace("-", ":") in originals["macs"]]
    found += [n for n in (*originals["names"], *originals["vendors"]) if n in shown]
    return found


def masked_texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """What a masked page shows, and what its download buttons save."""
    yield from texts(at)
    for button in at.get("download_button"):
        name, content = download(button)
        for member, text in readable(name, content):
            yield f"download {button.key}: {member}", text


@pytest.mark.parametrize("page", PAGES)
def test_masking_hides_every_identifier(page_runs: dict[str, AppTest],
                                        masked_runs: dict[str, AppTest],
                                        originals: dict[str, set[str]], page: str) -> None:
    at = masked_runs[page]
    assert not at.exception, [e.message for e in at.exception]
    assert unexpected_errors(at, page) == []
    assert at.sidebar.toggle(key="mask").value is True
    assert [t.value for t in at.title] == [TITLES[page]]
    found, downloads = [], set()
    for where, text in masked_texts(at):
        found += [(where, leak) for leak in leaks(text, originals)]
        found += [(where, m.group(0)) for m in ORIGINAL_IP.finditer(plain(text))]
        if where.startswith("download"):
            downloads.add(where.split(":")[0])
    assert found == []
    assert len(downloads) == len(at.get("download_button"))
    # the page still shows the same amount of data as unmasked
    assert len(at.dataframe) == len(page_runs[page].dataframe)
    assert [m.value for m in at.metric if m.label in ("Flows", "Devices")] == [
        m.value for m in page_runs[page].metric if m.label in ("Flows", "Devices")]


def test_the_leak_scanner_finds_each_kind_of_identifier(page_runs: dict[str, AppTest],
                                                        originals: dict[str, set[str]]) -> None:
    """The scanner itself: on the unmasked pages it finds each kind, separately in the
    page's tables, in its other elements (captions, selects, charts) and in what its
    downloads save, so that a scanner skipping any of the three fails here."""
    seen = {where: {"ips": set(), "macs": set(), "names": set(), "vendors": set()}
            for where in ("tables", "page", "downloads")}
    for page in (DEVICES, TOXIC):
        for source, text in masked_texts(page_runs[page]):
            kinds = seen["downloads" if source.startswith("download ") else
                         "tables" if source == "Dataframe" else "page"]
            for leak in leaks(text, originals):
                for kind, values in originals.items():
                    if leak in values or leak.lower() in values:
                        kinds[kind].add(leak)
    for where, kinds in seen.items():
        assert all(kinds.values()), (where, {k: len(v) for k, v in kinds.items()})
        assert any(not re.match(r"(10|192\.168)\.", ip) for ip in kinds["ips"]), where  # public


def test_masked_link_first_run_hides_sensor_names() -> None:
    at = new_app({"mask": "true"})
    at.run()
    assert at.sidebar.toggle(key="mask").value is True
    # masked, the picker has its own widget key (sidebar.py: so the browser redraws it)
    assert "sensor_id" not in [s.key for s in at.sidebar.selectbox]
    options = " ".join(at.sidebar.selectbox(key="sensor_id_masked").options)
    assert not [s for s in SENSOR_NAMES if s in options], options


def test_masking_off_again_brings_the_real_identifiers_back(
        page_runs: dict[str, AppTest]) -> None:
    at = run_page(DEVICES, {"mask": "true"})
    masked = table_with(at, {"device_name", "ip0", "mac_address", "vendor"})
    assert not set(masked["ip0"]) & set(page_runs[DEVICES].dataframe[0].value["ip0"])

    at.sidebar.toggle(key="mask").set_value(False).run()
    assert not at.exception and not at.error
    shown = table_with(at, {"device_name", "ip0", "mac_address", "vendor"})
    real = page_runs[DEVICES].dataframe[0].value
    columns = ["ip0", "device_name", "mac_address", "vendor"]
    assert {tuple(r) for r in shown[columns].itertuples(index=False)} == {
        tuple(r) for r in real[columns].itertuples(index=False)}
    text = "\n".join(t for _, t in texts(at))
    for name in (*KNOWN_NAMES, *SENSOR_NAMES):
        assert name in plain(text), name
    assert "masked" not in at.caption[0].value


def test_masked_aliases_are_consistent_across_pages(masked_runs: dict[str, AppTest]) -> None:
    devices = masked_runs[DEVICES].dataframe[0].value
    alias = dict(zip(devices["ip0"], devices["device_name"], strict=True))
    assert len(alias) == len(devices)
    # sidebar options use the same aliases
    for opt in device_options(masked_runs[DEVICES]):
        name, _, ip = opt.rpartition(" · ")
        assert ip in alias
        if name:
            assert alias[ip] == name
    # The toxic and hunting pages (opened on the incident's day, not the devices page's
    # range): every device both show has the same alias and the same masked name.
    for page in (TOXIC, HUNTING):
        checked = 0
        for df in (d.value for d in masked_runs[page].dataframe):
            if {"ip0", "device_name"} <= set(df.columns):
                for ip, name in zip(df["ip0"], df["device_name"], strict=True):
                    if ip in alias:
                        assert alias[ip] == name, (page, ip, name, alias[ip])
                        checked += 1
        assert checked > 0, page

