"""Links: URL parameters restore filters, range and devices; invalid or unknown
parameters are said in plain words and fetch nothing; "Pin these dates"; the refresh
buttons; links that cannot apply (unknown sensor or device, ranges over the maximum or
the memory budget)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from flux_dashboard.hours import hour_label, preset_range
from tests.kit.apptest import (
    DEVICES,
    MAIN,
    TOXIC,
    as_int,
    demo_api,
    flux_requests,
    metrics,
    new_app,
    param,
    said,
)
from tests.kit.clock import PARIS, PINNED, days_link, today
from tests.kit.demo import (
    FIXED_DAY,
    INCIDENT_DAY,
    OVERVIEW_METRICS,
    toxic_flow_table,
)

pytestmark = pytest.mark.usefixtures("app_env")


# ------------------------------------------------------------------ URL state
URL_FILTERS = {"dir": "OUT", "toxic": "true"}


def test_url_parameters_restore_the_filters() -> None:
    # On INCIDENT_DAY, which has toxic OUT flows (an ordinary day may have none).
    linked = new_app({**days_link(INCIDENT_DAY), **URL_FILTERS})
    linked.run()
    assert not linked.exception and not linked.error
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    assert linked.sidebar.toggle(key="toxic").value is True
    assert not linked.warning, said(linked.warning)

    clicked = new_app(days_link(INCIDENT_DAY))
    clicked.run()
    assert as_int(metrics(clicked)["Toxic IN"]) > 0  # the filters have something to remove
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.run()
    assert metrics(linked) == metrics(clicked)
    assert metrics(linked)["Toxic IN"] == "0"
    assert as_int(metrics(linked)["Flows"]) == as_int(metrics(linked)["Toxic OUT"]) > 0
    # the filters also hold on another page
    linked.switch_page(TOXIC).run()
    assert not linked.exception
    assert linked.sidebar.button_group(key="dir").value == "OUT"
    flows = toxic_flow_table(linked)
    assert set(flows["dir"]) == {"OUT"}


def range_option(at: AppTest, word: str) -> tuple[int, str]:
    """(index, URL value) of a time-range option: Streamlit writes a bound selectbox's
    displayed option (its formatted label) into the URL."""
    options = at.sidebar.selectbox(key="range").options
    return next((i, o) for i, o in enumerate(options) if word in o)


def test_url_parameters_restore_range_and_filters() -> None:
    """A link as the app writes it (range label, dir, toxic) restores widgets and numbers."""
    clicked = new_app()
    clicked.run()
    index, url_range = range_option(clicked, "7 days")
    clicked.sidebar.selectbox(key="range").select_index(index)
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.run()
    linked = new_app({**URL_FILTERS, "range": url_range})
    linked.run()
    assert not clicked.exception and not clicked.error
    assert not linked.exception and not linked.error
    assert linked.sidebar.selectbox(key="range").index == index
    assert linked.session_state["range"] == clicked.session_state["range"]
    assert not linked.warning, said(linked.warning)
    assert metrics(linked) == metrics(clicked)
    assert linked.caption[0].value == clicked.caption[0].value  # same range and filters


def test_url_device_by_ip(page_runs: dict[str, AppTest]) -> None:
    ip = page_runs[DEVICES].dataframe[0].value["ip0"].iloc[0]
    linked = new_app({**URL_FILTERS, "device": ip})
    linked.run()
    clicked = new_app()
    clicked.run()
    clicked.sidebar.button_group(key="dir").set_value("OUT")
    clicked.sidebar.toggle(key="toxic").set_value(True)
    clicked.sidebar.multiselect(key="device").set_value([ip])
    clicked.run()
    assert not linked.exception
    assert linked.sidebar.multiselect(key="device").value == [ip]
    assert not linked.warning, said(linked.warning)
    assert metrics(linked) == metrics(clicked)


@pytest.mark.parametrize(("query", "message"), [
    ({"port": "99999"}, "Port “99999” must be a whole number from 0 to 65535."),
    ({"remote": "not-an-ip"}, "Remote IP “not-an-ip” is not a valid"),
    ({"mac": "zz:zz"}, "MAC address “zz:zz” must look like"),
])
def test_invalid_parameter_gives_inline_error_and_no_fetch(query: dict, message: str) -> None:
    at = new_app(query)
    at.run()
    assert not at.exception
    assert any(message in e for e in said(at.error)), said(at.error)
    assert any("nothing was fetched" in i for i in said(at.info))
    assert not at.metric
    assert not at.get("plotly_chart")
    assert not at.title  # the page itself does not render
    # the widget shows the bad value so it can be fixed
    key, value = next(iter(query.items()))
    assert at.sidebar.text_input(key=key).value == value


def test_unknown_parameter_gives_a_warning() -> None:
    at = new_app({"foo": "bar"})
    at.run()
    assert not at.exception and not at.error
    assert any("does not know" in w and "foo" in w for w in said(at.warning))
    assert metrics(at)  # the data is still shown


def test_invalid_range_falls_back_to_default_with_warning() -> None:
    at = new_app({"range": "mars"})
    at.run()
    expected = default_metrics()
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="range").index == 0
    assert any("fell back to defaults" in w and "range" in w for w in said(at.warning))
    assert metrics(at) == expected


def test_custom_range_with_start_after_end_is_an_error() -> None:
    at = new_app()
    at.run()
    index, _ = range_option(at, "Custom")
    at.sidebar.selectbox(key="range").select_index(index).run()
    assert not at.exception and not at.error
    # Custom starts as "yesterday 00:00 → today 00:00" in the sensor's time zone
    day = today(PARIS)
    assert at.sidebar.date_input(key="to_day").value == day
    assert at.sidebar.date_input(key="from_day").value == day - timedelta(days=1)
    assert at.sidebar.selectbox(key="from_hour").value == "00:00"
    assert at.sidebar.selectbox(key="to_hour").value == "00:00"
    assert metrics(at)
    at.sidebar.date_input(key="from_day").set_value(day)
    at.sidebar.date_input(key="to_day").set_value(day - timedelta(days=1))
    at.run()
    assert not at.exception
    assert any("start of the range must be before its end" in e for e in said(at.error))
    assert not at.metric and not at.get("plotly_chart")


def test_pin_turns_a_relative_range_into_fixed_dates() -> None:
    at = new_app({"range": "Last 7 days"})
    at.run()
    before = metrics(at)
    at.sidebar.button(key="pin_btn").click().run()
    assert not at.exception
    # The Custom fields that hold "last 7 days" at PINNED (hours.preset_range, tested by
    # hand in test_hours.py), in the sensor's local time.
    # On the day clocks go back, an edge in the repeated hour is its "(2nd)" label.
    (a, a_hour), (b, b_hour) = (hour_label(t, PARIS) for t in preset_range("7d", PINNED, PARIS))
    expected = {"range": "Custom", "from_day": a, "from_hour": a_hour, "to_day": b,
                "to_hour": b_hour}
    got = {k: at.session_state[k] for k in expected}
    assert got == expected
    # the date widgets show those dates, and the data is the same
    assert at.sidebar.selectbox(key="range").value == "Custom"
    assert at.sidebar.date_input(key="from_day").value == got["from_day"]
    assert at.sidebar.selectbox(key="from_hour").value == got["from_hour"]
    assert metrics(at) == before
    # The point of the button: the link now holds those fixed dates, not "Last 7 days".
    assert {k: param(at, k) for k in got} == {k: [str(v)] for k, v in got.items()}


# ------------------------------------------------------------------ refresh
def _first_hour(value: str) -> datetime:
    """The first whole hour a request's ``from`` covers (rows start on whole hours; the
    loader may send ``from`` a second before the hour)."""
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    hour = t.replace(minute=0, second=0, microsecond=0)
    return hour if hour == t else hour + timedelta(hours=1)


def _row_downloads(requests: list[dict[str, str]]) -> list[datetime]:
    """First hour of each flux request that downloads rows (the late-data recheck only
    counts: it asks for one row)."""
    return sorted(_first_hour(p["from"]) for p in requests if p.get("per_page") != "1")


def test_refresh_fetches_the_open_hour_again() -> None:
    sim = demo_api()  # the demo API the app reads in this process
    at = new_app()
    at.run()
    mark = len(sim.requests)
    at.run()
    assert flux_requests(sim, mark) == [], "a plain rerun fetched flows again"
    at.sidebar.button(key="refresh_btn").click().run()
    assert not at.exception and not at.error
    downloads = _row_downloads(flux_requests(sim, mark))
    assert downloads, "Refresh made no flux request"
    # only the hours still open (not settled 15 min after their end)
    open_from = (PINNED - timedelta(minutes=15)).replace(minute=0, second=0, microsecond=0)
    assert downloads[0] == open_from, (downloads, open_from)
    assert [t.value for t in at.title] == ["Overview"] and metrics(at)


def test_refresh_whole_range_fetches_every_hour_again() -> None:
    sim = demo_api()
    at = new_app()
    at.run()
    mark = len(sim.requests)
    at.sidebar.button(key="refresh_all_btn").click().run()
    assert not at.exception and not at.error
    downloads = _row_downloads(flux_requests(sim, mark))
    start, _ = preset_range("24h", PINNED, PARIS)
    assert downloads and downloads[0] == start, (downloads[:3], start)
    assert [t.value for t in at.title] == ["Overview"] and metrics(at)


@pytest.mark.parametrize("key", ["refresh_btn", "refresh_all_btn"])
def test_refresh_buttons_run_cleanly(key: str) -> None:
    at = new_app()
    at.run()
    before = metrics(at)
    at.sidebar.button(key=key).click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert [t.value for t in at.title] == ["Overview"]
    assert list(metrics(at)) == list(before) == OVERVIEW_METRICS


# ------------------------------------------------------------------ links that cannot apply
def default_metrics(query: dict[str, str] | None = None) -> dict[str, str]:
    """The overview's numbers on a plain link (or ``query``), now (the open hour grows
    with the clock)."""
    at = new_app(query)
    at.run()
    return metrics(at)


def test_unknown_sensor_in_a_link_warns_and_shows_the_first_sensor() -> None:
    at = new_app({"sensor": "999", **days_link(FIXED_DAY)})
    at.run()
    assert not at.exception and not at.error
    assert any("999" in w for w in said(at.warning)), said(at.warning)
    assert at.session_state["sensor_id"] == MAIN
    assert metrics(at) == default_metrics(days_link(FIXED_DAY))


def test_superscript_digit_sensor_in_a_link_warns_and_falls_back() -> None:
    at = new_app({"sensor": "²"})  # str.isdigit() says yes; int() says no
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, said(at.error)
    assert any("²" in w for w in said(at.warning)), said(at.warning)
    assert at.session_state["sensor_id"] == MAIN
    assert metrics(at)


def test_range_over_the_maximum_is_an_error_and_fetches_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_MAX_RANGE_DAYS", "5")
    sim = demo_api()
    mark = len(sim.requests)
    at = new_app({"range": "Last 7 days"})
    at.run()
    assert not at.exception
    assert any("The range is 7 days long; the maximum is 5 days" in e
               for e in said(at.error)), said(at.error)
    assert any("nothing was fetched" in i for i in said(at.info))
    assert not at.metric and not at.title
    assert flux_requests(sim, mark) == []


def test_custom_range_over_92_days_is_an_error() -> None:
    first = today(PARIS) - timedelta(days=100)
    sim = demo_api()
    mark = len(sim.requests)
    at = new_app(days_link(first, days=95))
    at.run()
    assert not at.exception
    assert any("the maximum is 92 days" in e for e in said(at.error)), said(at.error)
    assert not at.metric
    assert flux_requests(sim, mark) == []


def test_a_range_larger_than_the_memory_budget_says_what_to_narrow_and_loads_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: a window the server could not keep in memory is refused up front,
    judged from the disk cache's metadata, with the number of days that would fit."""
    from flux_dashboard.schema import COMPACT_ROW_BYTES

    monkeypatch.setenv("FLUX_MEMORY_MB", "64")  # 25.6 MB for one range: ~200k flows
    sim = demo_api()
    week = new_app({"range": "Last 7 days"})
    week.run()  # fills the cache: a week of the demo sensor fits
    assert not week.exception and not week.error, said(week.error)
    assert week.metric
    first = today(PARIS) - timedelta(days=61)
    mark = len(sim.requests)
    at = new_app(days_link(first, days=60))
    at.run()
    assert not at.exception
    refusal = [e for e in said(at.error) if "more than this server keeps" in e]
    assert refusal, said(at.error)
    got = re.search(r"about ([\d.]+) million flows, about ([\d,]+) MB.*choose at most "
                    r"(\d+) days", refusal[0])
    assert got, refusal[0]
    rows = float(got.group(1)) * 1e6
    assert rows * COMPACT_ROW_BYTES > 64 * 0.4 * 2**20  # really over the budget
    assert 10 <= int(got.group(3)) < 60
    assert not at.metric and flux_requests(sim, mark) == []
    # The days it names do fit: the last of them are loaded and shown.
    fit = int(got.group(3))
    ok = new_app(days_link(first + timedelta(days=60 - fit), days=fit))
    ok.run()
    assert not ok.exception and not [e for e in said(ok.error) if "server keeps" in e]
    assert ok.metric


def test_unknown_device_in_a_link_warns_and_is_ignored() -> None:
    at = new_app({"device": "10.99.99.99", **days_link(FIXED_DAY)})
    at.run()
    assert not at.exception and not at.error
    assert any("10.99.99.99" in w and "ignored" in w for w in said(at.warning)), [
        w for w in said(at.warning)]
    assert at.sidebar.multiselect(key="device").value == []
    assert metrics(at) == default_metrics(days_link(FIXED_DAY))

