"""Evidence pack: zip contents, CSV counts, offline and escaped report.html."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from html.parser import HTMLParser

import plotly.express as px
import plotly.io as pio
import polars as pl
import pytest

from flux_dashboard import hunting
from flux_dashboard.report import evidence_pack
from flux_dashboard.schema import FLOW_SCHEMA, THREAT_FLAGS

EVIL = "<img src=x onerror=alert(1)>"
FILES = {"flows.csv", "toxic_flows.csv", "storylines.csv", "digest.txt", "report.html",
         "README.txt"}


def flow(**kw):
    base = {
        "start_of_hour": datetime(2026, 11, 24, 9, tzinfo=UTC), "ip0": "192.168.1.20",
        "ip1": "8.8.8.8", "dir": "OUT", "protocol": "TCP", "port": 443, "occurrences": 1,
        "duration_s": 1.0, "first_seen": None, "last_seen": None, "out_bytes": 1000,
        "in_bytes": 2000, "filtered": False, "toxic": False, **{f: False for f in THREAT_FLAGS},
        "device_name": "NAS", "custom_name": None, "netbios": None, "mac_address": None,
        "vendor": None, "is_critical": False, "device_category": None,
    }
    base.update(kw)
    return base


def sample_flows() -> pl.DataFrame:
    rows = [flow(start_of_hour=datetime(2026, 11, 24, h, tzinfo=UTC)) for h in range(6)]
    rows += [
        flow(ip0="192.168.1.31", device_name=EVIL, ip1="185.220.101.1", toxic=True,
             command_center=True, start_of_hour=datetime(2026, 11, 24, h, tzinfo=UTC))
        for h in range(3)
    ]
    rows.append(flow(ip1="5.255.255.5", dir="IN", toxic=True, device_name="=cmd|'/C calc'!A0"))
    return pl.DataFrame(rows, schema=FLOW_SCHEMA)


def pack(flows=None, **kw):
    flows = sample_flows() if flows is None else flows
    per_device = flows.group_by("device_name").agg(pl.col("out_bytes").sum()).sort("device_name")
    args = {
        "flows": flows,
        "sensor": {"id": 54, "name": "<b>Sensor</b> & co"},
        "start": datetime(2026, 11, 24, tzinfo=UTC),
        "end": datetime(2026, 11, 25, tzinfo=UTC),
        "tz": "Europe/Paris",
        "filters_description": "toxic only <script>",
        "digest_text": f"1 new device appeared: {EVIL} (192.168.1.31).\n",
        "figures": {
            f"Bytes per device {EVIL}": px.bar(per_device, x="device_name", y="out_bytes"),
            "Flows per hour": px.line(x=[1, 2, 3], y=[3, 1, 2]),
        },
        "storylines": hunting.storylines(flows),
        "generated_at": datetime(2026, 11, 26, 8, 30, tzinfo=UTC),
    }
    args.update(kw)
    return zipfile.ZipFile(io.BytesIO(evidence_pack(**args)))


class Sources(HTMLParser):
    """Every URL-bearing attribute of real tags (script bodies are not parsed as tags)."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster") and value:
                self.urls.append((tag, name, value))


def test_zip_holds_the_files_and_csv_counts_match():
    zf = pack()
    assert set(zf.namelist()) == FILES
    flows = sample_flows()
    assert pl.read_csv(zf.read("flows.csv")).height == flows.height == 10
    assert pl.read_csv(zf.read("toxic_flows.csv")).height == 4
    stories = pl.read_csv(zf.read("storylines.csv"))
    assert stories.height == 2  # (31 -> 185.220.101.1) and (20 -> 5.255.255.5)
    assert zf.read("digest.txt").decode().startswith("1 new device appeared")
    readme = zf.read("README.txt").decode()
    assert "2026-11-24 01:00 to 2026-11-25 01:00 (Europe/Paris)" in readme
    assert "toxic only" in readme and "10 flows" in readme and "2026-11-26 09:30" in readme


def test_csv_cells_cannot_run_as_formulas():
    zf = pack()
    names = pl.read_csv(zf.read("flows.csv"))["device_name"].to_list()
    assert "'=cmd|'/C calc'!A0" in names and "=cmd|'/C calc'!A0" not in names


def test_report_is_offline_and_embeds_plotly_once():
    html = pack().read("report.html").decode()
    parser = Sources()
    parser.feed(html)
    external = [u for u in parser.urls if u[2].lower().lstrip().startswith(("http:", "https:",
                                                                               "//"))]
    assert external == []
    assert html.count("plotly.js v") == 1  # the bundle header, inlined once
    assert html.count('class="plotly-graph-div"') == 2


def test_report_escapes_every_data_string():
    html = pack().read("report.html").decode()
    assert EVIL not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>Sensor</b>" not in html
    assert "<title>Evidence pack – &lt;b&gt;Sensor&lt;/b&gt; &amp; co</title>" in html
    assert "toxic only &lt;script&gt;" in html
    parser = Sources()
    parser.feed(html)
    assert not any(tag == "img" for tag, _, _ in parser.urls)


def test_figures_exported_with_plotly_white_even_under_another_default(monkeypatch):
    monkeypatch.setattr(pio.templates, "default", "plotly_dark")
    fig = px.line(x=[1, 2], y=[2, 1])
    html = pack(figures={"f": fig}).read("report.html").decode()
    assert "rgb(17,17,17)" not in html  # plotly_dark's background
    assert fig.layout.template.layout.paper_bgcolor == "rgb(17,17,17)"  # caller's fig untouched


def test_device_pack_and_empty_inputs():
    zf = pack(device="192.168.1.31")
    assert pl.read_csv(zf.read("flows.csv")).height == 3
    assert pl.read_csv(zf.read("storylines.csv")).height == 1
    assert "Device:    <img" in zf.read("README.txt").decode()  # README is plain text
    assert "Device: &lt;img" in zf.read("report.html").decode()

    empty = pl.DataFrame(schema=FLOW_SCHEMA)
    zf = pack(flows=empty, figures={}, storylines=hunting.storylines(empty), digest_text="")
    assert set(zf.namelist()) == FILES
    assert pl.read_csv(zf.read("flows.csv")).height == 0
    assert "No charts." in zf.read("report.html").decode()


@pytest.mark.parametrize("naive", [True, False])
def test_naive_datetimes_are_utc(naive):
    start = datetime(2026, 11, 24) if naive else datetime(2026, 11, 24, tzinfo=UTC)
    html = pack(start=start).read("report.html").decode()
    assert "2026-11-24 01:00 to 2026-11-25 01:00 (Europe/Paris)" in html


def _report(z: zipfile.ZipFile) -> str:
    return z.read("report.html").decode()


def test_report_gives_cybercarbon_and_the_worst_day():
    # 10 GB in all (two flows of 4 GB in + 1 GB out). Tue 24 Nov (Paris): one toxic OUT,
    # cyT 10, Moderate. Wed 25 Nov: three toxic IN, cyT 3, Light. The range's total
    # (13) would read Severe: the report names the worst day instead.
    big = {"in_bytes": 4_000_000_000, "out_bytes": 1_000_000_000}
    rows = [flow(**big, toxic=True), flow(**big, ip1="1.1.1.1")]
    rows += [flow(dir="IN", toxic=True, in_bytes=0, out_bytes=0,
                  start_of_hour=datetime(2026, 11, 25, 9, tzinfo=UTC)) for _ in range(3)]
    flows = pl.DataFrame(rows, schema=FLOW_SCHEMA)
    html_text = _report(pack(flows))
    assert ("Cybercarbon (estimate): ≈ 180 g CO2e for 10.0 GB at 18 gCO2e/GB, about 0.91 km "
            "driven by an average petrol car (198 gCO2e/km)") in html_text
    assert "Moderate (Tue 2026-11-24, cyT 10)" in html_text
    assert "Cyberweather, worst day" in html_text and "Severe (" not in html_text
    assert "Days per cyberweather level (2 local days, Europe/Paris)" in html_text
    for colour, text in (("#2e9e5b", "Clear 0"), ("#f2c94c", "Light 1"),
                         ("#f2994a", "Moderate 1"), ("#d64545", "Severe 0"),
                         ("#6b1238", "Critical 0")):
        assert f"background:{colour};margin:0 .3em 0 .8em\"></span>{text}" in html_text
    # The vendor's mobile factor, passed as the setting: 10 GB x 50 = 500 g = 2.53 km.
    mobile = _report(pack(flows, carbon_g_per_gb=50.0))
    assert "≈ 500 g CO2e for 10.0 GB at 50 gCO2e/GB, about 2.53 km" in mobile
