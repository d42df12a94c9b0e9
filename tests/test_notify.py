"""Notifications end to end: the sync worker on the simulator over real HTTP, the
findings database (SQLite and PostgreSQL), and what a real SMTP server (aiosmtpd) and
an HTTP webhook receiver on loopback get: the daily digest with figures equal to the
simulator's rows, alerts, silence, exactly once through kills, a second worker and a
failing channel, and masked routes that leak no identifier."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest

from flux_dashboard import errors as E
from flux_dashboard.analytics import LEVEL_NAMES, cyt_level, cyt_of, human_bytes
from flux_dashboard.hours import local_day_window
from flux_dashboard.notify import content as C
from flux_dashboard.notify import routes as R
from flux_dashboard.notify.ledger import Ledger
from flux_dashboard.simulator import LateUpload, Simulator, SimulatorConfig
from flux_dashboard.sync import Worker
from flux_dashboard.triage import run
from flux_dashboard.ui.frame import PAGES
from flux_dashboard.ui.sidebar import LINK_KEYS
from tests.browser.browser_kit import identifiers_from_api_rows
from tests.kit.notifying import PUBLIC_URL, notifier, service
from tests.kit.procs import scrubbed_env
from tests.kit.services import SmtpServer, WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
TZ = "Europe/Paris"
NOW = datetime(2026, 11, 18, 7, 20, tzinfo=UTC)  # 08:20 in Paris: yesterday's digest is due
DAY = date(2026, 11, 17)
DAYS = 9  # the worker's window holds the day and the same weekday a week before
C2 = "176.123.8.71"  # the demo story's command server (simulator/story.py)


@pytest.fixture(scope="module")
def sim():
    s = Simulator(SimulatorConfig(now=lambda: NOW, rate_limit_per_min=None))
    with s.serve() as server:
        yield s, server.url


@pytest.fixture(scope="module")
def warm(sim, tmp_path_factory) -> Path:
    """A cache with the worker's window synced (shared by the tests: they read it)."""
    cache = tmp_path_factory.mktemp("notify-cache")
    db = f"sqlite:///{cache / 'warmup.sqlite3'}"
    Worker(service(sim[1], cache, db, NOW), sensors=[54], days=DAYS, clock=lambda: NOW,
           findings=False).cycle()
    return cache


@pytest.fixture
def smtp():
    s = SmtpServer()
    yield s
    s.stop()


@pytest.fixture
def hook():
    h = WebhookReceiver()
    yield h
    h.stop()


def routes_toml(**routes: dict) -> str:
    out = []
    for name, r in routes.items():
        out.append(f"[routes.{name}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in r.items()]
    return "\n".join(out) + "\n"


def day_truth(sim, day: date) -> dict:
    """The simulator's own rows of the sensor's local day, counted here."""
    start, end = local_day_window(day, TZ)
    rows = sim.rows(54, start, end)
    tin = sum(1 for r in rows if r["toxic"] and r["dir"] == "IN")
    tout = sum(1 for r in rows if r["toxic"] and r["dir"] == "OUT")
    return {"flows": len(rows), "in": sum(int(r["in_flux"]) for r in rows),
            "out": sum(int(r["out_flux"]) for r in rows), "toxic_in": tin, "toxic_out": tout,
            "cyt": cyt_of(tin, tout)}


def check_links(urls: list[str], day: date | None = None) -> None:
    """Every link opens a page of the dashboard at the public URL, with known
    parameters only, on sensor 54 and (when given) the day pinned."""
    pages = {p[0] for p in PAGES}
    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == "https://flux.example.test", url
        assert parts.path.startswith("/base/") and parts.path[6:] in pages, url
        query = parse_qs(parts.query)
        assert set(query) <= set(LINK_KEYS), url
        assert query.get("sensor", ["54"]) == ["54"]
        if day is not None and "from_day" in query:
            assert query["from_day"] == [day.isoformat()]
            assert query["to_day"] == [(day + timedelta(days=1)).isoformat()]
            assert query["from_hour"] == query["to_hour"] == ["00:00"]


def hrefs(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def the_worker(sim, warm, db, n=None, clock=lambda: NOW) -> Worker:
    return Worker(service(sim[1], warm, db, NOW, clock), sensors=[54], days=DAYS, clock=clock,
                  notifier=n)


# ------------------------------------------------------------------ routes


def test_routes_name_their_urls_and_refuse_literal_ones(tmp_path):
    env = {"SOC_CHAT": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
           "SOC_MAIL": "mailtos://flux:S3cret-pass@mail.example.org?to=soc@example.org"}
    routes = R.parse({"silent_after_hours": 4, "routes": {
        "soc": {"sensors": [54, 54, 7], "urls": ["SOC_CHAT", "SOC_MAIL"],
                "receives": "alerts", "min_severity": "critical", "daily_at": "07:30"},
        "customer": {"sensors": "*", "urls": "SOC_MAIL", "masked": True}}}, env=env)
    soc, customer = routes.get("soc"), routes.get("customer")
    assert soc.sensors == (7, 54) and customer.sensors is None
    assert soc.receives == {"alerts"} and customer.receives == {"daily", "alerts"}
    assert soc.alerts_on("critical") and not soc.alerts_on("high")
    assert customer.alerts_on("high") and not customer.alerts_on("medium")
    assert (soc.daily_at.hour, soc.daily_at.minute) == (7, 30) and customer.masked
    assert routes.silent_after_hours == 4
    # Described by service and host name; a token in the host's place is not shown.
    assert soc.targets() == ["Slack", "E-Mail · mail.example.org"]
    assert "T1JJ3T3L2" not in repr(soc) and "S3cret" not in repr(routes)
    # The secrets file's [notify] table is read too.
    got = R.parse({"routes": {"x": {"urls": ["FROM_FILE"]}}}, env={},
                  secrets={"notify": {"FROM_FILE": "json://127.0.0.1:9/h"}})
    assert got.get("x").urls == ("json://127.0.0.1:9/h",)

    bad = [({"urls": ["json://127.0.0.1:9/hook?token=abc123"]}, "Name each Apprise URL"),
           ({"urls": ["UNSET_NAME"]}, "UNSET_NAME is not set"),
           ({"urls": ["SOC_CHAT"], "min_severity": "urgent"}, "'min_severity' is one of"),
           ({"urls": ["SOC_CHAT"], "daily_at": "8h"}, "'daily_at' must be"),
           ({"urls": ["SOC_CHAT"], "sensors": ["54"]}, "'sensors' must be"),
           ({"urls": ["SOC_CHAT"], "recieves": "daily"}, "unknown setting 'recieves'"),
           ({"urls": ["SOC_CHAT"], "masked": "yes"}, "'masked' is true or false")]
    for raw, words in bad:
        with pytest.raises(E.ConfigError, match=re.escape(words)) as err:
            R.parse({"routes": {"soc": raw}}, env=env)
        assert "abc123" not in str(err.value) and "TIiajk" not in str(err.value)
    with pytest.raises(E.ConfigError, match="no notification route named 'nope'"):
        routes.get("nope")
    path = tmp_path / "routes.toml"
    path.write_text("[routes.soc\nurls = 1", encoding="utf-8")
    with pytest.raises(E.ConfigError, match="is not valid TOML"):
        R.load(path, env={})
    assert len(R.load(env={})) == 0  # no FLUX_NOTIFY_FILE: no route, nothing sent


def test_hostile_names_stay_text_in_every_format():
    name = "<img src=x> [c](http://e.vil) *x* and a long tail"
    row = {"key": "k" * 20, "sensor": 54, "kind": "beacon", "severity": "high", "day": None,
           "ip0": "10.0.0.9", "device_name": name, "ip1": "203.0.113.9", "owner": "_Evil_ |x|",
           "country": "France", "first_contact": NOW, "threats": None}
    msg = C.alert(pl.DataFrame([row]), {54: {"id": 54, "name": "S"}}, lambda s: TZ,
                  links=C.Links(PUBLIC_URL), show=C.Shown())
    html, md, text = msg.as_html(), msg.as_markdown(), msg.as_text()
    assert "<img" not in html and "&lt;img src=x&gt;" in html
    assert hrefs(html) == list(msg.links) and len(msg.links) == 1  # only the links we built
    assert "[c](" not in md and r"\[c\]" in md and "&lt;img" in md
    assert "http://e.vil" not in md and "http:\u2060//e.vil" in md  # no autolink
    assert name[:39] + "…" in text  # plain text shows the name as it is (cut short)


# ------------------------------------------------------------------ the digest


def test_daily_digest_reaches_smtp_and_a_webhook_once_with_the_days_figures(
        sim, warm, tmp_path, smtp, hook):
    db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    svc = service(sim[1], warm, db, NOW)
    env = {"TEAM_MAIL": smtp.url(), "TEAM_HOOK": hook.url()}
    n = notifier(svc, routes_toml(team={"sensors": [54], "urls": ["TEAM_MAIL", "TEAM_HOOK"],
                                        "receives": ["daily"]}), env, lambda: NOW,
                 tmp_path / "audit.jsonl")
    w = the_worker(sim, warm, db, n)
    assert w.run(once=True) == 0
    assert len(smtp.messages) == 1 and len(hook.received) == 1

    mail = smtp.messages[0]
    sensor = svc.client.sensor(54)
    truth, week = day_truth(sim[0], DAY), day_truth(sim[0], DAY - timedelta(days=7))
    level = LEVEL_NAMES[cyt_level(truth["cyt"])]
    assert mail["Subject"] == (f"Flux daily digest · {sensor['full_name'] or sensor['name']} · "
                               f"Tue 17 Nov 2026 · {level}")
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (text, html):
        assert f"Flows: {truth['flows']:,}" in body
        assert f"Bytes in: {human_bytes(truth['in'])}" in body
        assert f"out: {human_bytes(truth['out'])}" in body
        assert (f"Toxic flows IN: {truth['toxic_in']:,} (was {week['toxic_in']:,}) · OUT: "
                f"{truth['toxic_out']:,} (was {week['toxic_out']:,})") in body
        assert f"cyT {truth['cyt']:,}" in body
    check_links(hrefs(html), DAY)
    assert len(hrefs(html)) >= 7  # overview, toxic, inbox, hunting ×3, open findings
    found = run.store_for(svc.settings).list([54], first_contact=local_day_window(DAY, TZ))
    for url in hrefs(html):  # a finding's link names one of the day's findings
        key = parse_qs(urlsplit(url).query).get("finding")
        if key:
            assert key[0] in set(found["key"].to_list())
    path, body = hook.received[0]
    assert path == "/hook" and body["title"] == mail["Subject"] and body["type"] == "info"
    assert f"Flows: {truth['flows']:,}" in body["message"]

    # Another cycle, a restarted worker: nothing more.
    the_worker(sim, warm, db, notifier(svc, routes_toml(team={
        "sensors": [54], "urls": ["TEAM_MAIL", "TEAM_HOOK"], "receives": ["daily"]}), env,
        lambda: NOW, tmp_path / "audit.jsonl")).run(once=True)
    assert len(smtp.messages) == 1 and len(hook.received) == 1
    rows = Ledger(run.store_for(svc.settings).engine).recent()
    assert rows.select("kind", "subject", "status", "attempts", "late").rows() == [
        ("daily", "2026-11-17", "sent", 1, False)]
    audit = (tmp_path / "audit.jsonl").read_text()
    entries = [json.loads(line) for line in audit.splitlines()]
    assert [(e["event"], e["route"], e["kind"], e["status"]) for e in entries] == [
        ("notification", "team", "daily", "sent")]
    assert str(smtp.port) not in audit and "/hook" not in audit  # never a URL


def test_a_missed_digest_is_sent_late_and_the_gap_caught_up(sim, warm, tmp_path, hook):
    db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    svc = service(sim[1], warm, db, NOW)
    toml = routes_toml(team={"sensors": [54], "urls": ["HOOK"], "receives": ["daily"]})
    earlier = NOW - timedelta(days=2)  # 16 Nov: the digest of 15 Nov went out on time
    n = notifier(svc, toml, {"HOOK": hook.url()}, lambda: earlier, tmp_path / "a.jsonl")
    n.cycle([54])
    (first,) = [b["title"] for _, b in hook.received]
    assert first.startswith("Flux daily digest · ") and "Sun 15 Nov 2026" in first
    # No worker ran on 17 Nov; on 18 Nov at 11:20 two are due: 16 Nov (late) and 17 Nov,
    # also past its time by over an hour: late too.
    later = NOW + timedelta(hours=3)
    n2 = notifier(svc, toml, {"HOOK": hook.url()}, lambda: later, tmp_path / "a.jsonl")
    n2.cycle([54])
    titles = [b["title"] for _, b in hook.received[1:]]
    assert len(titles) == 2
    assert titles[0].startswith("[late] Flux daily digest") and "Mon 16 Nov 2026" in titles[0]
    assert titles[1].startswith("[late] Flux daily digest") and "Tue 17 Nov 2026" in titles[1]
    n2.cycle([54])
    assert len(hook.received) == 3


# ------------------------------------------------------------------ exactly once


def _spec(sim, warm, db, tmp_path, toml, env, **extra) -> dict:
    return {"api": sim[1], "cache": str(warm), "database": db, "now": NOW.isoformat(),
            "toml": toml, "env": env, "audit": str(tmp_path / "audit.jsonl"),
            "synced": [54], **extra}


def _child(action: str, spec: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.kit.notifying", action,
                             json.dumps(spec)], cwd=ROOT, env=scrubbed_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_worker_killed_between_recording_and_sending_sends_once_after_restart(
        sim, warm, tmp_path, smtp, database_url):
    toml = routes_toml(team={"sensors": [54], "urls": ["MAIL"], "receives": ["daily"]})
    env = {"MAIL": smtp.url()}
    child = _child("plan-then-die", _spec(sim, warm, database_url, tmp_path, toml, env))
    _, err = child.communicate(timeout=120)
    assert child.returncode == -9, err[-2000:]  # SIGKILL, after recording
    svc = service(sim[1], warm, database_url, NOW)
    ledger = Ledger(run.store_for(svc.settings).engine)
    assert ledger.recent().select("kind", "status").rows() == [("daily", "pending")]
    assert smtp.messages == []

    n = notifier(svc, toml, env, lambda: NOW, tmp_path / "audit.jsonl")
    n.cycle([54])
    n.cycle([54])
    assert len(smtp.messages) == 1 and "Tue 17 Nov 2026" in smtp.messages[0]["Subject"]
    assert ledger.recent().select("status", "attempts").rows() == [("sent", 1)]


def test_two_workers_on_one_database_send_once(sim, warm, tmp_path, smtp, hook,
                                               database_url):
    toml = routes_toml(team={"sensors": [54], "urls": ["MAIL"], "receives": ["daily"]},
                       chat={"sensors": "*", "urls": ["HOOK"], "receives": ["daily"]})
    spec = _spec(sim, warm, database_url, tmp_path, toml,
                 {"MAIL": smtp.url(), "HOOK": hook.url()}, go=str(tmp_path / "go"), repeat=3)
    children = [_child("cycle", spec) for _ in range(2)]
    (tmp_path / "go").touch()
    for c in children:
        _, err = c.communicate(timeout=180)
        assert c.returncode == 0, err[-2000:]
    assert len(smtp.messages) == 1 and len(hook.received) == 1
    rows = Ledger(run.store_for(service(sim[1], warm, database_url, NOW).settings).engine) \
        .recent().sort("route")
    assert rows.select("route", "status", "attempts").rows() == [
        ("chat", "sent", 1), ("team", "sent", 1)]


def test_a_failing_channel_is_retried_and_never_holds_up_another_route(
        sim, warm, tmp_path, smtp, caplog):
    flaky, dead = WebhookReceiver(fail_first=3), WebhookReceiver(fail_first=100)
    try:
        db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
        svc = service(sim[1], warm, db, NOW)
        secret_url = f"json://hookuser:S3cretPassw0rd@127.0.0.1:{dead.port}/t0ken-abcdef99"
        env = {"FLAKY": flaky.url(), "DEAD": secret_url, "MAIL": smtp.url()}
        toml = routes_toml(flaky={"sensors": [54], "urls": ["FLAKY"], "receives": ["daily"]},
                           dead={"sensors": [54], "urls": ["DEAD"], "receives": ["daily"]},
                           mail={"sensors": [54], "urls": ["MAIL"], "receives": ["daily"]})
        n = notifier(svc, toml, env, lambda: NOW, tmp_path / "audit.jsonl")
        with caplog.at_level("INFO"):
            out = {o.route: o for o in n.cycle([54])}
        assert out["flaky"].status == "sent" and out["flaky"].attempts == 4
        assert out["dead"].status == "failed" and out["dead"].attempts == 4
        assert out["mail"].status == "sent" and len(smtp.messages) == 1
        assert flaky.failures == 3 and len(flaky.received) == 1  # delivered once
        assert dead.failures == 4 and dead.received == []
        rows = {r["route"]: r for r in Ledger(run.store_for(svc.settings).engine)
                .recent().to_dicts()}
        assert rows["flaky"]["status"] == "sent" and rows["flaky"]["attempts"] == 4
        assert rows["flaky"]["last_error"].startswith("attempt 3: JSON")
        assert rows["dead"]["status"] == "failed"
        assert rows["dead"]["last_error"].startswith("1 of 1 channel failed after 4 tries")
        # Later cycles do not try a failed delivery again (it is reported, on the page).
        n.cycle([54])
        assert dead.failures == 4 and len(flaky.received) == 1 and len(smtp.messages) == 1
        audit = (tmp_path / "audit.jsonl").read_text()
        for text in (audit, caplog.text, json.dumps(rows, default=str)):
            for secret in ("S3cretPassw0rd", "t0ken-abcdef99", "hookuser"):
                assert secret not in text
        assert '"route": "dead"' in audit and '"status": "failed"' in audit
    finally:
        flaky.stop()
        dead.stop()


# ------------------------------------------------------------------ masked routes


def test_a_masked_route_shows_no_real_identifier(sim, warm, tmp_path, hook):
    db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    svc = service(sim[1], warm, db, NOW)
    toml = routes_toml(customer={"sensors": [54], "urls": ["HOOK"], "masked": True,
                                 "min_severity": "critical"})
    n = notifier(svc, toml, {"HOOK": hook.url()}, lambda: NOW, tmp_path / "a.jsonl")
    w = the_worker(sim, warm, db, n)
    w.run(once=True)
    led = Ledger(run.store_for(svc.settings).engine)
    assert led.count(kind="daily", status="sent") == 1
    assert led.count(kind="alert", status="sent") > 1
    start = NOW - timedelta(days=DAYS)
    ids = identifiers_from_api_rows(sim[0].rows(54, start, NOW), svc.client.sensors())
    assert C2 in ids.ips
    for _, body in hook.received:
        text = body["title"] + "\n" + body["message"]
        assert ids.leaks(text) == [], text[:3000]
        urls = re.findall(r"https://\S+", text)
        check_links(urls)
        for url in urls:
            q = parse_qs(urlsplit(url).query)
            assert q["mask"] == ["true"]
            assert all(k.startswith("f-") for k in q.get("finding", []))
    # The same digest unmasked names the story's workstation: the scan can fail.
    plain = n.digest(54, DAY - timedelta(days=1), masked=False)
    assert ids.leaks(plain.as_text())


# ------------------------------------------------------------------ alerts and silence


def test_story_findings_alert_once_and_triaged_ones_never(sim, warm, tmp_path, hook):
    db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
    svc = service(sim[1], warm, db, NOW)
    toml = routes_toml(soc={"sensors": [54], "urls": ["HOOK"], "receives": ["alerts"],
                            "min_severity": "critical"},
                       late={"sensors": [54], "urls": ["HOOK2"], "receives": ["alerts"],
                             "min_severity": "critical"})
    hook2 = WebhookReceiver()
    try:
        n = notifier(svc, toml, {"HOOK": hook.url(), "HOOK2": hook2.url()}, lambda: NOW,
                     tmp_path / "a.jsonl")
        w = the_worker(sim, warm, db)
        w.cycle()  # syncs and detects: the story's beacon is a new critical finding
        store = run.store_for(svc.settings)
        beacon = store.list([54], kinds=["beacon"], statuses=["new"])
        assert beacon.height == 1 and beacon["ip1"][0] == C2
        n.plan([54])
        # Before the cycle sends, an analyst acknowledges the beacon for route "late" only:
        # the ledger has its row, but the message leaves it out.
        rows = Ledger(store.engine).find("late", "alert", 54, [beacon["key"][0]])
        assert rows  # recorded for both routes
        n.send_route(n.routes.get("soc"))
        store.change(beacon["key"][0], int(beacon["version"][0]), "ann@example.org",
                     "acknowledge", now=NOW)
        n.send_route(n.routes.get("late"))
        (soc_msg,), (late_msg,) = hook.received, hook2.received
        assert C2 in soc_msg[1]["message"] and "Beaconing" in soc_msg[1]["message"]
        assert C2 in soc_msg[1]["title"] or "new findings" in soc_msg[1]["title"]
        assert "Beaconing" not in late_msg[1]["message"]
        led = Ledger(store.engine)
        assert led.find("late", "alert", 54, [beacon["key"][0]])[beacon["key"][0]][
            "status"] == "dropped"
        # Later cycles: no alert again, on any route.
        for _ in range(2):
            w.cycle()
            n.cycle([54])
        assert len(hook.received) == 1 and len(hook2.received) == 1
        check_links(re.findall(r"https://\S+", soc_msg[1]["message"]))
    finally:
        hook2.stop()


def test_a_silent_sensor_alerts_once_and_recovers_once(tmp_path, hook):
    t0 = datetime(2026, 11, 18, 0, tzinfo=UTC)
    clock = [t0 + timedelta(hours=2, minutes=30)]
    outage = LateUpload(54, t0, t0 + timedelta(hours=8), uploaded=t0 + timedelta(hours=10))
    s = Simulator(SimulatorConfig(now=lambda: clock[0], rate_limit_per_min=None,
                                  late_uploads=(outage,)))
    with s.serve() as server:
        db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
        svc = service(server.url, tmp_path / "cache", db, t0, lambda: clock[0])
        n = notifier(svc, routes_toml(ops={"sensors": [54], "urls": ["HOOK"],
                                           "receives": ["alerts"]}),
                     {"HOOK": hook.url()}, lambda: clock[0], tmp_path / "a.jsonl")
        w = Worker(svc, sensors=[54], days=1, clock=lambda: clock[0], notifier=n,
                   findings=False)
        titles = []
        # Data stops at 00:00 UTC; the hour 08:00 brings it back (settled at 09:15); the
        # buffered hours arrive at 10:00 and change nothing more.
        for hours, expected in ((2.5, []), (4.0, []), (5.5, ["silent"]), (6.5, []),
                                (9.5, ["back"]), (10.5, []), (11.5, [])):
            clock[0] = t0 + timedelta(hours=hours)
            w.sync_sensor(54)
            got = [o.kind for o in n.cycle([54]) if o.status == "sent"]
            assert got == expected, (hours, got)
            titles += [b["title"] for _, b in hook.received[len(titles):]]
        assert titles == ["Flux alert · sensor silent · " + titles[0].split(" · ")[-1],
                          "Flux · sensor back · " + titles[0].split(" · ")[-1]]
        assert "last data ended at 18 Nov 01:00" in hook.received[0][1]["message"]


# ------------------------------------------------------------------ the CLI


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flux_dashboard", *args], cwd=cwd,
                          env=scrubbed_env({"PYTHONPATH": str(ROOT), **env}),
                          capture_output=True, text=True, timeout=300)


def test_preview_tells_the_demo_story_and_masks_on_request(tmp_path):
    env = {"FLUX_NOW": "2026-11-18T10:30:00Z", "FLUX_CACHE_DIR": str(tmp_path / "c")}
    first = _cli(["notify", "--preview", "--sensor", "54", "--day", "2026-11-06"], env,
                 tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = first.stdout
    assert "Flux daily digest · " in out and "----- Markdown -----" in out
    top = out.split("New findings:")[1].split("Hunting")[0]
    assert f"CRITICAL Beaconing PC-Compta-02 (192.168.1.102) → {C2}" in top
    assert f"CRITICAL Toxic contact (OUT) PC-Compta-02 (192.168.1.102) → {C2}" in top
    upload = _cli(["notify", "--preview", "--sensor", "54", "--day", "2026-11-13"], env,
                  tmp_path)
    assert "CRITICAL Upload anomaly PC-Compta-02 (192.168.1.102) from 13 Nov 02:" in \
        upload.stdout.split("New findings:")[1]
    masked = _cli(["notify", "--preview", "--sensor", "54", "--day", "2026-11-06",
                   "--masked"], env, tmp_path)
    assert masked.returncode == 0 and "Beaconing" in masked.stdout
    for real in (C2, "PC-Compta-02", "192.168.1.102"):
        assert real not in masked.stdout
    assert "mask=true" in masked.stdout
    bad = _cli(["notify", "--preview"], env, tmp_path)
    assert bad.returncode == 2 and "needs --sensor" in bad.stderr


def test_notify_test_sends_one_message_and_bad_routes_say_so(tmp_path, hook):
    routes = tmp_path / "routes.toml"
    routes.write_text(routes_toml(team={"urls": ["TEAM_HOOK"]}), encoding="utf-8")
    env = {"FLUX_NOW": "2026-11-18T10:30:00Z", "FLUX_CACHE_DIR": str(tmp_path / "c"),
           "FLUX_NOTIFY_FILE": str(routes), "TEAM_HOOK": hook.url("secret-path-123")}
    done = _cli(["notify", "--test", "team"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "test message sent to team (JSON · 127.0.0.1)"
    assert len(hook.received) == 1 and hook.received[0][0] == "/secret-path-123"
    assert hook.received[0][1]["title"] == "Flux · test message to team"
    unknown = _cli(["notify", "--test", "other"], env, tmp_path)
    assert unknown.returncode == 1
    assert "no notification route named 'other' (routes: team)" in unknown.stderr
    routes.write_text(routes_toml(team={"urls": ["json://u:pw-999@127.0.0.1:9/x"]}),
                      encoding="utf-8")
    literal = _cli(["notify", "--test", "team"], env, tmp_path)
    assert literal.returncode == 1 and "Name each Apprise URL" in literal.stderr
    assert "pw-999" not in literal.stderr + literal.stdout
    hook.fail_first = 10
    routes.write_text(routes_toml(team={"urls": ["TEAM_HOOK"]}), encoding="utf-8")
    failed = _cli(["notify", "--test", "team"], {**env, "FLUX_NOTIFY_BACKOFF_S": "0"},
                  tmp_path)
    assert failed.returncode == 1 and "failed after 4 tries" in failed.stderr
    assert "secret-path-123" not in failed.stderr + failed.stdout


def test_sync_once_sends_the_routes_digest_from_the_cli(sim, tmp_path, hook):
    routes = tmp_path / "routes.toml"
    routes.write_text(routes_toml(team={"sensors": [54], "urls": ["TEAM_HOOK"],
                                        "receives": ["daily"]}), encoding="utf-8")
    env = {"SERENICITY_API_URL": sim[1], "FLUX_NOW": NOW.isoformat(),
           "FLUX_RATE_LIMIT": "60000",  # the simulator's own limit is off too
           "FLUX_CACHE_DIR": str(tmp_path / "c"), "FLUX_NOTIFY_FILE": str(routes),
           "TEAM_HOOK": hook.url(), "FLUX_PUBLIC_URL": "https://flux.example.test/base"}
    args = ["sync", "--once", "--sensors", "54", "--days", str(DAYS), "--no-findings"]
    done = _cli(args, env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [b["title"][:18] for _, b in hook.received] == ["Flux daily digest "]
    assert "Tue 17 Nov 2026" in hook.received[0][1]["title"]
    check_links(re.findall(r"https://\S+", hook.received[0][1]["message"]), DAY)
    again = _cli(args, env, tmp_path)
    assert again.returncode == 0 and len(hook.received) == 1  # once, across processes
    off = _cli([*args, "--no-notify"], {**env, "FLUX_NOTIFY_FILE": str(tmp_path / "none")},
               tmp_path)
    assert off.returncode == 0  # --no-notify does not even read the routes file
    bad = _cli(args, {**env, "FLUX_NOTIFY_FILE": str(tmp_path / "none")}, tmp_path)
    assert bad.returncode == 1 and "does not exist (FLUX_NOTIFY_FILE)" in bad.stderr
