"""Helpers shared by the browser tests: wait for a Streamlit run, drive a widget by
its ``key``, read a chart or a table, download a file and open it.

Streamlit 1.67 gives every keyed widget's container the class ``st-key-<key>``,
so a control is found by the key the page gives it, never by its position.
After an action, ``wait_for_run`` reads the script state from ``stApp``; content
is then asserted with ``expect`` (auto-retrying), never with fixed sleeps.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl
from playwright.sync_api import Browser, Locator, Page, expect

LOAD_TIMEOUT = 90_000  # a cold first load can take tens of seconds on a small machine
UI_TIMEOUT = 30_000
DOWNLOAD_TIMEOUT = 90_000  # an evidence pack builds a report with charts on click
expect.set_options(timeout=15_000)

# (url path, h1, sidebar nav label, needs chart, needs table, needs metric)
PAGES = [
    ("", "Overview", "Overview", True, False, True),
    ("devices", "Devices", "Devices", True, True, True),
    ("protocols", "Protocols & ports", "Protocols & ports", True, True, False),
    ("toxic", "Toxic flows", "Toxic flows", True, True, False),
    ("remotes", "Remote hosts", "Remote hosts", True, True, False),
    ("hunting", "Threat hunting", "Threat hunting", False, True, False),  # metrics: in a tab
]
PAGE_IDS = [p[0] or "overview" for p in PAGES]
# The navigation: the Sensors page (test_fleet_clicks.py), those pages and the Findings
# inbox (its clicks: test_triage_clicks.py).
NAV_LABELS = ["Sensors", *(p[2] for p in PAGES), "Findings"]

# st.error boxes that are findings shown by design, not failures.
EXPECTED_ERRORS = (
    re.compile(r"device\(s\) on the LAN reached out to toxic hosts"),
    re.compile(r"possible beaconing"),
)


# ------------------------------------------------------------------ runs and pages
def wait_for_run(page: Page, action: Callable[[], Any] | None = None,
                 timeout: int = LOAD_TIMEOUT) -> None:
    """Run ``action`` (if any) and wait until the Streamlit script run it caused is over."""
    app = page.get_by_test_id("stApp")
    if action is not None:
        action()
        try:  # the state stays "notRunning" for ~100-300 ms after an interaction
            expect(app).to_have_attribute("data-test-script-state", "running", timeout=2_000)
        except AssertionError:
            pass  # a very fast run may already be over
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout)
    expect(app).not_to_have_attribute("data-test-script-state", "compilationError", timeout=1)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)


def open_page(page: Page, url: str, h1: str) -> None:
    page.goto(url)
    wait_for_run(page)
    expect(page.locator("h1")).to_have_text(h1, timeout=UI_TIMEOUT)
    expect(sidebar(page).get_by_test_id("stSelectbox").filter(has_text="Sensor")).to_be_visible()


def sidebar(page: Page) -> Locator:
    return page.get_by_test_id("stSidebar")


def nav_to(page: Page, label: str, h1: str) -> None:
    link = sidebar(page).get_by_test_id("stSidebarNavLink").filter(has_text=label)
    wait_for_run(page, link.click)
    expect(page.locator("h1")).to_have_text(h1, timeout=UI_TIMEOUT)


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def assert_no_errors(page: Page) -> None:
    """No exception box, no script-error dialog, no unexpected error or link warning."""
    app = page.get_by_test_id("stApp")
    expect(app).not_to_have_attribute("data-test-script-state", "compilationError", timeout=1)
    expect(page.get_by_test_id("stException")).to_have_count(0, timeout=1)
    expect(page.get_by_test_id("stErrorCodeBlock")).to_have_count(0, timeout=1)
    expect(page.get_by_test_id("stDialog")).to_have_count(0, timeout=1)
    errors = page.get_by_test_id("stAlertContentError").all_inner_texts()
    unexpected = [e for e in errors if not any(p.search(e) for p in EXPECTED_ERRORS)]
    assert not unexpected, f"error alert(s) on {page.url}: {unexpected}"
    warnings = page.get_by_test_id("stAlertContentWarning").all_inner_texts()
    bad = [w for w in warnings if re.search(r"link|could not|went wrong|invalid", w, re.I)]
    assert not bad, f"warning(s) on {page.url}: {bad}"


def header_caption(page: Page) -> Locator:
    """The caption under the title: sensor · range · filters (· masked)."""
    return page.get_by_test_id("stMain").get_by_test_id("stCaptionContainer").first


def rendered_text(page: Page) -> str:
    """What a viewer can read: main area + sidebar text, table cells, chart labels."""
    parts = [page.get_by_test_id("stMain").inner_text(), sidebar(page).inner_text()]
    # st.dataframe draws on a canvas; its accessible mirror table holds the cell text.
    parts += page.locator('[data-testid="stDataFrame"] table').all_text_contents()
    parts += page.locator('[data-testid="stPlotlyChart"] svg text').all_text_contents()
    # What pickers and text boxes show is their input's value, not text content.
    parts += [box.input_value() for box in page.locator("input[role=combobox], "
                                                         "input[type=text]").all()]
    return "\n".join(parts)


def settled_text(page: Page, find: Callable[[str], list], timeout_s: float = 10.0
                 ) -> tuple[str, list]:
    """``rendered_text`` once ``find(text)`` comes back empty, or after ``timeout_s``.

    After a run the browser may still draw a table or chart of the previous run for
    a moment (seen once, on a loaded CI machine: a device name read from the old
    table just after masking was switched on). What the server sent stays on the
    page, so a real leak is still found; a redraw in progress is waited out.
    """
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        text = rendered_text(page)
        found = find(text)
        if not found or time.monotonic() >= deadline:
            return text, found
        page.wait_for_timeout(250)


# ------------------------------------------------------------------ widgets by key
def widget(page: Page, key: str) -> Locator:
    return page.locator(f".st-key-{key}")


def choose(page: Page, key: str, option: str | re.Pattern) -> None:
    """Pick ``option`` (its visible label) in the selectbox with this key."""
    box = widget(page, key)
    combo = box.get_by_role("combobox")
    combo.click()
    if isinstance(option, str):  # type to filter: long option lists are virtualised
        combo.fill(option)
    item = page.get_by_role("option").filter(has_text=option)
    expect(item.first).to_be_visible()
    wait_for_run(page, item.first.click)
    expect(combo).to_have_value(
        option if isinstance(option, re.Pattern) else re.compile(re.escape(option)))


def selected(page: Page, key: str) -> str:
    """The label a selectbox shows."""
    return widget(page, key).get_by_role("combobox").input_value()


def add_option(page: Page, key: str, option: str | re.Pattern) -> None:
    """Add ``option`` to the multiselect with this key (and close its list)."""
    box = widget(page, key)
    box.get_by_role("combobox").click()
    item = page.get_by_role("option").filter(has_text=option)
    expect(item.first).to_be_visible()
    wait_for_run(page, item.first.click)
    page.keyboard.press("Escape")
    expect(box.get_by_test_id("stMultiSelectTagsContainer")).to_contain_text(option)


def set_toggle(page: Page, key: str, on: bool) -> None:
    """Set the toggle with this key. A click that lands while the switch is being
    re-rendered by a run can be lost (seen once in CI): the click is repeated, at
    most twice, only while the switch still shows the other state."""
    switch = widget(page, key).get_by_role("switch")
    for _ in range(3):
        if switch.is_checked() == on:
            break
        wait_for_run(page)  # never click into a run in progress
        wait_for_run(page, lambda: switch.click(force=True))
        try:
            expect(switch).to_be_checked(checked=on, timeout=5_000)
        except AssertionError:
            continue
    expect(switch).to_be_checked(checked=on)


def set_segment(page: Page, key: str, label: str) -> None:
    """Select the option ``label`` of the segmented control with this key."""
    button = widget(page, key).get_by_role("radio", name=label, exact=True)
    if button.get_attribute("aria-checked") != "true":
        wait_for_run(page, button.click)
    expect(button).to_have_attribute("aria-checked", "true")


def fill_text(page: Page, key: str, value: str) -> None:
    box = widget(page, key).get_by_role("textbox")
    box.fill(value)
    wait_for_run(page, lambda: box.press("Enter"))


def press(page: Page, key: str) -> None:
    wait_for_run(page, widget(page, key).get_by_role("button").click)


def pick_date(page: Page, key: str, day: date) -> None:
    """Pick ``day`` in the calendar of the date input with this key (a day of the month
    the calendar opens on; cells are named like "Friday, 20 November 2026")."""
    widget(page, key).get_by_test_id("stDateInputField").click()
    calendar = page.locator("#stFloatingOverlayPortal").get_by_role("grid")
    expect(calendar).to_be_visible()
    cell = calendar.get_by_role("button", name=re.compile(rf"\b{day.day} {day:%B} {day.year}"))
    wait_for_run(page, cell.click)
    page.keyboard.press("Escape")
    expect(calendar).to_have_count(0)


def slide(page: Page, key: str, steps: int) -> str:
    """Move the slider with this key by ``steps`` (arrow keys); returns its new value text.

    The slider sends its value after a short debounce: callers then wait for what
    the new value changes (``expect`` retries), not for a fixed time.
    """
    expect(widget(page, key)).to_be_visible()
    thumb = widget(page, key).locator('input[type="range"]')
    before = thumb.get_attribute("aria-valuetext") or ""
    thumb.focus()
    expect(thumb).to_be_focused()

    def move() -> None:
        for _ in range(abs(steps)):
            page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
        expect(thumb).not_to_have_attribute("aria-valuetext", before)

    wait_for_run(page, move)
    return thumb.get_attribute("aria-valuetext") or ""


def metric_value(page: Page, label: str) -> Locator:
    metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
    return metric.first.get_by_test_id("stMetricValue")


def metric_int(page: Page, label: str) -> int:
    value = metric_value(page, label)
    expect(value).to_have_text(re.compile(r"^\d[\d,]*$"))
    return int(value.inner_text().replace(",", ""))


# ------------------------------------------------------------------ charts and tables
def wait_for_charts(page: Page) -> None:
    """Plotly containers appear after the run ends; wait until each one has drawn."""
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.first).to_be_visible(timeout=UI_TIMEOUT)
    for i in range(charts.count()):
        expect(charts.nth(i).locator(".main-svg").first).to_be_attached(timeout=UI_TIMEOUT)


_FIGURE_JS = """el => {
  const gd = el.querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  const arr = v => (v && typeof v === 'object' && 'length' in v) ? Array.from(v) : v;
  const title = gd.layout && gd.layout.title;
  return {
    title: title && typeof title === 'object' ? title.text : title,
    data: gd.data.map(t => ({type: t.type, name: t.name, orientation: t.orientation,
                             x: arr(t.x), y: arr(t.y), z: t.z ? Array.from(t.z, arr) : null,
                             locations: arr(t.locations)})),
  };
}"""


def figure(page: Page, key: str) -> dict:
    """Title and traces of the Plotly chart with this key, as drawn in the browser."""
    container = widget(page, key)
    expect(container.locator(".main-svg").first).to_be_attached(timeout=UI_TIMEOUT)
    fig = container.evaluate(_FIGURE_JS)
    assert fig is not None, f"chart {key!r} has no plotly figure"
    return fig


def expect_chart_title(page: Page, key: str, title: str | re.Pattern) -> None:
    expect(widget(page, key).locator(".gtitle")).to_have_text(title, timeout=UI_TIMEOUT)


def table_rows(table: Locator) -> int:
    """Data rows of an ``st.dataframe`` (its grid announces them with aria-rowcount)."""
    grid = table.locator("table").first
    expect(grid).to_have_attribute("aria-rowcount", re.compile(r"^\d+$"), timeout=UI_TIMEOUT)
    return int(grid.get_attribute("aria-rowcount") or "0") - 1  # minus the header row


def expect_rows(table: Locator, n: int) -> None:
    """Wait until an ``st.dataframe`` shows ``n`` data rows."""
    expect(table.locator("table").first).to_have_attribute("aria-rowcount", str(n + 1),
                                                           timeout=UI_TIMEOUT)


def dataframes(page: Page) -> Locator:
    return page.get_by_test_id("stMain").get_by_test_id("stDataFrame")


# ------------------------------------------------------------------ downloads
def download(page: Page, key: str, dest: Path) -> Path:
    """Click the download button with this key; save the file under ``dest``.

    Waits for the current script run to end first: a button drawn by an earlier
    run holds that run's file id, which Streamlit revokes when a later run ends.
    A click on it in that window starts no download and logs "Deferred file …
    not found" (seen after a tab click, whose rerun redraws the tab's buttons).
    """
    wait_for_run(page)
    button = widget(page, key).get_by_role("button")
    expect(button).to_be_visible()
    with page.expect_download(timeout=DOWNLOAD_TIMEOUT) as info:
        button.click()
    d = info.value
    failure = d.failure()
    assert failure is None, f"download {key!r} failed: {failure}"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / d.suggested_filename
    d.save_as(path)
    assert path.stat().st_size > 0, f"download {key!r} is empty"
    return path


def table_toolbar(page: Page, table: Locator) -> Locator:
    """The toolbar an ``st.dataframe`` shows while the pointer is over it (its buttons:
    search, fullscreen; never "Download as CSV": ``client.disableDataExport``)."""
    table.scroll_into_view_if_needed()
    table.hover()
    toolbar = table.get_by_test_id("stElementToolbar")
    expect(toolbar.get_by_role("button").first).to_be_visible()
    return toolbar


def read_csv(data: bytes | Path) -> list[dict[str, str]]:
    raw = data.read_bytes() if isinstance(data, Path) else data
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def read_parquet(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None, f"corrupt member in {path.name}"
        return {name: zf.read(name) for name in zf.namelist()}


# ------------------------------------------------------------------ evidence packs
PACK_MEMBERS = {"flows.csv", "toxic_flows.csv", "storylines.csv", "digest.txt", "report.html",
                "README.txt"}
PACK_FIGURES = 5  # traffic, cyberweather, threats, top devices, top ports


def check_pack(path: Path, *, flows: int, toxic: int, stories: int | None) -> dict[str, bytes]:
    """An evidence pack's members and the rows of its CSVs; returns its files."""
    files = read_zip(path)
    assert set(files) == PACK_MEMBERS, sorted(files)
    assert len(read_csv(files["flows.csv"])) == flows
    assert len(read_csv(files["toxic_flows.csv"])) == toxic
    if stories is not None:
        assert len(read_csv(files["storylines.csv"])) == stories
    assert files["digest.txt"].strip(), "empty digest"
    readme = files["README.txt"].decode()
    assert re.search(rf"flows\.csv\s+{flows} flows", readme), readme
    return files


def check_report(browser: Browser, files: dict[str, bytes], dest: Path, title: str,
                 toxic: int):
    """Open report.html offline; returns the opened report for further checks.
    ``toxic``: the toxic flows the pack holds (none: its tables say "None.")."""
    dest.mkdir(parents=True, exist_ok=True)
    html_path = dest / "report.html"
    html_path.write_bytes(files["report.html"])
    report = open_offline(browser, html_path)
    page = report.page
    expect(page.locator("h1")).to_contain_text(title)
    plots = page.locator(".js-plotly-plot")
    expect(plots).to_have_count(PACK_FIGURES, timeout=30_000)
    for i in range(PACK_FIGURES):
        expect(plots.nth(i).locator(".main-svg").first).to_be_attached()
    if toxic:
        expect(page.locator("table").first).to_be_visible()
    else:  # a quiet device (the demo story's ordinary days): said, not an empty grid
        expect(page.locator("table")).to_have_count(0)
        expect(page.get_by_text("None.", exact=True).first).to_be_visible()
    remote = [u for u in report.requests if not u.startswith(("file:", "data:", "blob:"))]
    assert not remote, f"the report fetches from the network: {remote[:5]}"
    assert not report.errors, report.errors
    expect(page.locator('img[src="x"]')).to_have_count(0)
    expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
    assert not report.dialogs
    return report


# ------------------------------------------------------------------ masking checks
_IP = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_MAC = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?![0-9A-Fa-f:])")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# The plotly.js library inlined in report.html: code, not data (minified names
# such as "TV" would look like a NetBIOS name).
_PLOTLY_LIB = re.compile(r"<script[^>]*>\s*/\*\*?\s*\n?\*?\s*plotly\.js v.*?</script>", re.S)


@dataclass(frozen=True)
class Identifiers:
    """Original (unmasked) identifiers; ``leaks(text)`` lists those found in a text.

    IPs and MACs are matched as whole tokens (``192.168.1.2`` is not found inside
    ``192.168.1.20``); names and vendors as whole strings between non-word chars.
    """

    ips: frozenset[str]
    macs: frozenset[str]
    names: frozenset[str]

    def __post_init__(self) -> None:
        words = sorted(self.names, key=len, reverse=True)
        pattern = r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w-])"
        object.__setattr__(self, "_names_re", re.compile(pattern))

    def leaks(self, text: str) -> list[str]:
        found = set(_IP.findall(text)) & self.ips
        found |= {m.lower() for m in _MAC.findall(text)} & self.macs
        found |= set(self._names_re.findall(text))  # type: ignore[attr-defined]
        return sorted(found)


def identifiers_from_api_rows(rows: list[dict], sensors: list[dict]) -> Identifiers:
    """Every identifier of these API flux rows and sensor objects."""
    ips, macs, names = set(), set(), set()
    for r in rows:
        ips.update((r["ip0"], r["ip1"]))
        macs.update(m.lower() for m in r.get("mac_address_list") or () if m)
        if r.get("last_mac_address"):
            macs.add(r["last_mac_address"].lower())
        names.update(n for n in r.get("netbios_list") or () if n)
        for value in (r.get("last_netbios"), r.get("vendor"),
                      (r.get("custom_ip0") or {}).get("name")):
            if value:
                names.add(value)
    for s in sensors:
        ips.update(v for v in (s.get("public_ip"), s.get("local_ip")) if v)
        if s.get("mac_address"):
            macs.add(s["mac_address"].lower())
        names.update(v for v in (s.get("name"), s.get("full_name")) if v)
    # A name with markup is also looked for by its visible word ("<b>Caméra</b>").
    names.update(w for n in list(names) if "<" in n
                 for w in re.findall(r">([^<>]{4,})<", n))
    return Identifiers(frozenset(ips), frozenset(macs), frozenset(names))


def file_texts(path: Path) -> dict[str, str]:
    """Every text a downloaded file holds, per member: CSV as is, Parquet as its
    rows, a zip member by member; HTML also unescaped (entities, \\uXXXX in JSON)
    without the inlined plotly.js library."""
    def texts(name: str, data: bytes) -> dict[str, str]:
        if name.endswith(".parquet"):
            df = pl.read_parquet(io.BytesIO(data))
            return {name: "\n".join([",".join(df.columns)]
                                    + ["\t".join(map(str, row)) for row in df.iter_rows()])}
        text = data.decode("utf-8", errors="replace")
        if name.endswith(".html"):
            code_free = _PLOTLY_LIB.sub("", text)
            assert len(code_free) < len(text) or "plotly.js" not in text, \
                f"{name}: inlined plotly.js not recognised"
            unescaped = _UNICODE_ESCAPE.sub(lambda m: chr(int(m[1], 16)),
                                            html.unescape(code_free))
            return {name: code_free, f"{name} (unescaped)": unescaped}
        return {name: text}

    out = {f"file name {path.name}": path.name}
    if path.suffix == ".zip":
        for member, data in read_zip(path).items():
            out[f"zip member name {member}"] = member
            out.update({f"{path.name}:{k}": v for k, v in texts(member, data).items()})
    else:
        out.update(texts(path.name, path.read_bytes()))
    return out


# ------------------------------------------------------------------ the offline report
@dataclass
class OpenedReport:
    page: Page
    requests: list[str]
    errors: list[str]
    dialogs: list[str]


def open_offline(browser: Browser, html_path: Path) -> OpenedReport:
    """Open a saved HTML file in an offline browser context; record what it asks for."""
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 2000})
    page = context.new_page()
    opened = OpenedReport(page, [], [], [])
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
    page.goto(html_path.as_uri())
    page.wait_for_load_state("load")
    return opened
