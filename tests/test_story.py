"""The demo story: the analyses find the planted incident.

Ground truth is the simulator's ``StoryPlan`` (the story's facts: workstation,
C2 host, days), never the analyses' own output. Each finding is checked twice:
in demo mode (the embedded simulator on today's date, through the app's own
service and loader, in process) and against a fixed-clock simulator served
over real HTTP (``sim.serve(port=0)``), whose day 0 is 2026-03-31, so the
story crosses the spring DST change (day -2, 2026-03-29, has 23 hours).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from flux_dashboard import analytics as A
from flux_dashboard import hunting as Hn
from flux_dashboard import report
from flux_dashboard.config import Secret, Settings, load_settings
from flux_dashboard.digest import digest
from flux_dashboard.service import build_service, embedded_simulator
from flux_dashboard.simulator import Simulator, SimulatorConfig, StoryPlan
from flux_dashboard.simulator.story import OUT_ROTATION, ordinary_cyt, ordinary_events
from tests.kit.clock import PINNED_ISO, today

PARIS = "Europe/Paris"
HNO = [*range(0, 8), *range(19, 24)]  # the demo sensor's non-working hours (its hno_hours)
FIXED_NOW = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)  # 11:30 in Paris, day 0 = 2026-03-31


@dataclass
class Story:
    """A loaded story: its plan, the flows of days -19..-1, the toxic flows of -29..0."""

    mode: str
    plan: StoryPlan
    flows: pl.DataFrame
    toxic_month: pl.DataFrame

    def days(self, first: int, last: int | None = None) -> pl.DataFrame:
        start, end = self.plan.window(first, last)
        return self.flows.filter(pl.col("start_of_hour").is_between(start, end, closed="left"))


def _load(mode: str, service, plan: StoryPlan) -> Story:
    flows = service.loader.load(54, *plan.window(-19, -1)).frame
    toxic = service.loader.load(54, *plan.window(-29, 0),
                                server_filters={"only_toxic": True}).frame
    return Story(mode, plan, flows, toxic)


@pytest.fixture(scope="module", params=["demo", "http"])
def story(request, tmp_path_factory) -> Iterator[Story]:
    cache = tmp_path_factory.mktemp(f"story-{request.param}")
    if request.param == "demo":
        # The app's demo mode: no key, no URL -> the embedded simulator, the story of
        # the (pinned) day.
        settings = load_settings(env={"FLUX_NOW": PINNED_ISO}, secrets={}, cache_dir=cache)
        assert settings.demo and settings.demo_day == today()
        service = build_service(settings)
        plan = embedded_simulator(settings).story
        assert plan.today == settings.demo_day
        yield _load("demo", service, plan)
        service.close()
        return
    sim = Simulator(SimulatorConfig(now=lambda: FIXED_NOW, rate_limit_per_min=None))
    with sim.serve(port=0) as server:
        settings = Settings(api_url=server.url, api_key=Secret("any-key"),
                            rate_limit_per_min=60_000, cache_dir=cache)
        service = build_service(settings)
        assert sim.story.today == date(2026, 3, 31)
        yield _load("http", service, sim.story)
        service.close()


def local_date(t: datetime) -> date:
    return t.astimezone(ZoneInfo(PARIS)).date()


# ------------------------------------------------------------------ the plan itself
def test_the_plan_is_relative_to_the_clock() -> None:
    plan = StoryPlan.anchored(datetime(2026, 11, 26, 23, 30, tzinfo=UTC))  # 00:30 in Paris
    assert plan.today == date(2026, 11, 27)
    assert plan.day(-12) == date(2026, 11, 15) and plan.day(-3) == date(2026, 11, 24)
    assert plan.first_contact == datetime(2026, 11, 15, 14, 7, tzinfo=UTC)  # 15:07 CET
    assert plan.incident_days == set(range(-12, -2))
    assert plan.window(-1) == (datetime(2026, 11, 25, 23, tzinfo=UTC),
                               datetime(2026, 11, 26, 23, tzinfo=UTC))


def test_ordinary_days_are_never_worse_than_moderate_and_show_every_out_kind() -> None:
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(90)]
    cyts = [ordinary_cyt(ordinary_events(7, 54, d, PARIS)) for d in days]
    assert max(cyts) <= 10  # Moderate at most (cyT 6-10)
    names = {"Clear" if c == 0 else "Light" if c <= 5 else "Moderate" for c in cyts}
    assert names == {"Clear", "Light", "Moderate"}
    # any 30 consecutive days hold 10 OUT days: one of each rotation entry
    for i in range(60):
        ips = {e.ip1 for d in days[i:i + 30] for e in ordinary_events(7, 54, d, PARIS)
               if e.dir == "OUT"}
        assert all(set(entry[0]) & ips for entry in OUT_ROTATION)


# ------------------------------------------------------------------ section 2: the findings
def test_first_seen_remotes_of_day_minus_12_rank_the_c2_first(story: Story) -> None:
    p = story.plan
    new = Hn.first_seen_remotes(story.days(-12), story.days(-19, -13))
    top = new.row(0, named=True)
    assert (top["ip0"], top["ip1"]) == (p.workstation_ip, p.c2_ip)
    assert top["device_name"] == p.workstation_name and top["country"] == p.c2_country
    assert top["first_contact"] == p.first_contact  # 15:07 local, the planned minute
    assert top["toxic"] and top["bytes_in"] >= p.stage_bytes  # the implant's download


def test_storyline_of_the_workstation_and_the_c2(story: Story) -> None:
    p = story.plan
    lines = Hn.storylines(story.flows)
    line = lines.filter((pl.col("ip0") == p.workstation_ip) & (pl.col("ip1") == p.c2_ip))
    assert line.height == 1
    r = line.row(0, named=True)
    assert local_date(r["first_contact"]) == p.day(-12)
    assert local_date(r["last_contact"]) == p.day(-3)
    assert r["regularity"] >= 0.8
    # one contact per hour from 15:00 on day -12 to the end of day -3
    hours = (p.at(-2, 0) - p.at(-12, 15)).total_seconds() / 3600
    assert r["contacts"] == hours
    assert lines.row(0, named=True)["ip1"] == p.c2_ip  # critical, OUT, most regular: first


def test_upload_anomaly_holds_the_off_hours_upload_with_its_threshold(story: Story) -> None:
    p = story.plan
    got = Hn.upload_anomalies(story.days(-5), story.days(-12, -6))
    mine = got.filter(pl.col("ip0") == p.workstation_ip)
    # its two largest: 02:00 and 03:00 local (the PC's own traffic may add smaller ones)
    upload = mine.head(2)
    assert upload["hour"].to_list() == p.upload_times()
    for r in upload.iter_rows(named=True):
        assert r["threshold"] >= 1_000_000 and r["bytes_out"] > r["threshold"]
    # the planned uploads, plus a few kB of beacon (and maybe a little more) in those hours
    for r, planned in zip(upload.iter_rows(named=True), p.upload_bytes, strict=True):
        assert planned <= r["bytes_out"] < planned * 1.01
    assert got.row(0, named=True)["ip0"] == p.workstation_ip  # the largest ratio


def test_non_working_hours_flag_the_workstation_that_week(story: Story) -> None:
    p = story.plan
    week = Hn.off_hours_by_device(story.days(-8, -2), PARIS, HNO)
    row = week.filter(pl.col("ip0") == p.workstation_ip).row(0, named=True)
    assert row["mostly_off"] and row["bytes_off"] > sum(p.upload_bytes)
    before = Hn.off_hours_by_device(story.days(-19, -13), PARIS, HNO)
    assert not before.filter(pl.col("ip0") == p.workstation_ip)["mostly_off"].item()


def test_cyberweather_calendar_incident_days_are_the_worst(story: Story) -> None:
    p = story.plan
    cal = A.cyberweather(story.toxic_month, PARIS, "1d")
    level = {p.offset(b.date()): lv for b, lv in zip(cal["bucket"], cal["level"], strict=True)}
    incident = {o: lv for o, lv in level.items() if o in p.incident_days}
    ordinary = {o: lv for o, lv in level.items() if o not in p.incident_days}
    assert sorted(incident) == list(range(-12, -2))
    assert min(incident.values()) >= 3  # Severe (cyT 11-99) or Critical (100+)
    assert max(ordinary.values()) <= 2  # Clear, Light or Moderate
    assert len(set(level.values())) >= 3
    # a beacon day: 24 toxic OUT flows (one per hour) -> cyT >= 240, Critical
    assert level[-7] == 4


def test_digest_of_day_minus_12_names_the_new_country_and_remote(story: Story) -> None:
    p = story.plan
    dg = digest(story.days(-12), story.days(-19), PARIS, p.day(-12), p.day(-19))
    assert p.c2_country in dg.new_countries["country"].to_list()
    assert p.c2_ip in dg.new_toxic_remotes["ip1"].to_list()
    text = dg.as_text()
    assert p.c2_ip in text and p.c2_country in text


def test_digest_of_yesterday_has_no_new_toxic_remote_unlike_a_week_before(story: Story
                                                                           ) -> None:
    p = story.plan
    yesterday = digest(story.days(-1), story.days(-8), PARIS, p.day(-1), p.day(-8))
    assert "No new toxic remotes." in yesterday.sentences
    week_before = digest(story.days(-8), story.days(-15), PARIS, p.day(-8), p.day(-15))
    assert p.c2_ip in week_before.new_toxic_remotes["ip1"].to_list()


def test_evidence_pack_of_the_workstation_holds_storyline_and_upload(story: Story) -> None:
    p = story.plan
    start, end = p.window(-19, -1)
    pack = report.evidence_pack(
        flows=story.flows, sensor={"id": 54, "name": "demo"}, start=start, end=end, tz=PARIS,
        filters_description="", digest_text="", figures={},
        storylines=Hn.storylines(story.flows), generated_at=end, device=p.workstation_ip)
    with zipfile.ZipFile(io.BytesIO(pack)) as zf:
        lines = pl.read_csv(zf.read("storylines.csv"))
        flows = pl.read_csv(zf.read("flows.csv"))
        readme = zf.read("README.txt").decode()
    assert set(lines["ip0"]) == {p.workstation_ip}
    c2 = lines.filter(pl.col("ip1") == p.c2_ip).row(0, named=True)
    assert c2["regularity"] >= 0.8 and c2["first_contact"].startswith(f"{p.day(-12)}")
    upload = flows.filter((pl.col("ip1") == p.c2_ip) & (pl.col("port") == p.upload_port))
    assert sorted(upload["out_bytes"].to_list()) == sorted(p.upload_bytes)
    assert p.workstation_name in readme


# ------------------------------------------------------------------ dense mode
def test_dense_mode_carries_the_same_story() -> None:
    sim = Simulator(SimulatorConfig(now=lambda: FIXED_NOW, dense=True, rate_limit_per_min=None))
    p = sim.story
    assert p == Simulator(SimulatorConfig(now=lambda: FIXED_NOW, story=True)).story
    assert len({r["ip0"] for r in sim.rows_for_hour(54, p.at(-6, 11))}) > 60  # dense

    def rows(t: datetime, **match) -> list[dict]:
        return [r for r in sim.rows_for_hour(54, t)
                if all(r[k] == v for k, v in match.items())]

    beacon = {"ip0": p.workstation_ip, "ip1": p.c2_ip, "port": p.c2_port}
    assert rows(p.at(-12, 14), **beacon) == []  # before the first contact
    first = rows(p.at(-12, 15), **beacon)
    assert len(first) == 1 and first[0]["command_center"] and first[0]["toxic"]
    # day -12 is 2026-03-19, before the DST change: 15:07 CET is 14:07 UTC
    assert first[0]["timestamps"][0][0] == "2026-03-19T14:07:00.000Z"
    assert len(first[0]["timestamps"]) == 4  # every 15 minutes
    assert len(rows(p.at(-3, 23), **beacon)) == 1 and rows(p.at(-2, 12), **beacon) == []
    up = rows(p.upload_times()[0], ip0=p.workstation_ip, port=p.upload_port)
    assert [int(r["out_flux"]) for r in up] == [p.upload_bytes[0]]
    wave = rows(p.at(-9, 3), ip0=p.server_ip, dir="IN", bruteforce=True)
    assert {(r["ip1"], r["port"]) for r in wave} == {
        (ip, port) for ip in p.bruteforce_ips for port in p.bruteforce_ports}
