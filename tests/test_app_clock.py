"""The app's one clock (``FLUX_NOW``): a server pinned just before or just after the
sensor's midnight shows that instant's day, whatever day the test runs on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flux_dashboard import clock
from tests.kit.apptest import MAIN, metrics, new_app, plain, run_page, truth
from tests.kit.clock import PARIS, local_days

pytestmark = pytest.mark.usefixtures("app_env")


def _caption(at) -> str:
    return plain(at.caption[0].value)


@pytest.mark.parametrize(("pinned", "today"), [
    # 23:59:50 in Paris on Sunday 6 December, then 00:00:05 on Monday 7 December
    (datetime(2026, 12, 6, 22, 59, 50, tzinfo=UTC), date(2026, 12, 6)),
    (datetime(2026, 12, 6, 23, 0, 5, tzinfo=UTC), date(2026, 12, 7)),
    # 00:00:05 UTC is already 01:00:05 in Paris: the sensor's day, not UTC's
    (datetime(2026, 12, 7, 0, 0, 5, tzinfo=UTC), date(2026, 12, 7)),
], ids=["paris-23:59:50", "paris-00:00:05", "utc-00:00:05"])
def test_a_pinned_server_shows_the_day_of_its_instant(monkeypatch, pinned: datetime,
                                                       today: date) -> None:
    monkeypatch.setenv("FLUX_NOW", pinned.isoformat())
    at = run_page(query={"range": "Yesterday"})
    yesterday = date.fromordinal(today.toordinal() - 1)
    start, end = local_days(yesterday)
    assert f"{start:%a %d %b %Y %H:%M} → {end:%a %d %b %Y %H:%M} (Europe/Paris)" in _caption(at)
    assert "Cyberweather today" not in metrics(at)  # yesterday holds no hour of today

    # The default range ends with the open hour, and "today so far" is the instant's
    # local day: its cyT is the ground truth's for that day up to the instant.
    at = new_app()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    end = (pinned.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    assert f"→ {end.astimezone(PARIS):%a %d %b %Y %H:%M} (Europe/Paris)" in _caption(at)
    day_start, _ = local_days(today)
    rows = truth(now=clock.pinned(pinned)).rows(MAIN, day_start, end)
    cyt = sum(1 if r["dir"] == "IN" else 10 for r in rows if r["toxic"])
    today_metric = next(m for m in at.metric if m.label == "Cyberweather today")
    assert today_metric.delta == f"so far · cyT {cyt:,}"
