"""Command line: ``python -m flux_dashboard {export,sensors,sync,db,notify,simulate}``.

Progress goes to stderr, data to files or stdout. Every failure is one plain
line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from flux_dashboard import errors as E

EXIT_USAGE, EXIT_ERROR, EXIT_INCOMPLETE = 2, 1, 3

# Flow timestamps are Unix-era. Outside this span a date is a typing mistake, and
# near datetime's own limits the hour arithmetic (rounding to whole hours, asking
# one second early) would overflow. Checked while parsing: no request is made.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_when(text: str) -> datetime:
    """ISO date or date-time between EARLIEST and LATEST; naive values are UTC."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (example: 2026-11-01T00:00Z)") from None
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is in year 0 in UTC
        value = None
    if value is None or not EARLIEST <= value <= LATEST:
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside the supported dates ({EARLIEST:%Y-%m-%d} to "
            f"{LATEST:%Y-%m-%d} UTC)")
    return value


def _positive(text: str) -> int:
    try:
        v = int(text)
        if v < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number") from None
    return v


def _sensor_list(text: str) -> list[int] | None:
    if text.strip().lower() == "all":
        return None
    try:
        ids = [int(p) for p in text.split(",") if p.strip()]
        if not ids or min(ids) < 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r} is not 'all' or a comma-separated list of sensor ids") from None
    return ids


def _day(text: str):
    from datetime import date

    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None
    if not EARLIEST.date() <= day < LATEST.date():
        raise argparse.ArgumentTypeError(f"{text!r} is outside the supported dates")
    return day


def _share(text: str) -> float:
    try:
        v = float(text)
        if not 0 < v <= 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a share between 0 and 1 "
                                         "(e.g. 0.5)") from None
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m flux_dashboard",
                description="Serenicity flow data: export, list sensors, run the simulator.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--api-url", help="API base URL (default: SERENICITY_API_URL or the "
                        "embedded simulator when no key is configured)")
        sp.add_argument("--rate-limit", type=_positive, metavar="PER_MIN",
                        help="requests per minute (default 100 on the real API)")
        sp.add_argument("--cache-dir", type=Path, help="on-disk cache folder")
        sp.add_argument("--per-page", type=_positive, help="rows asked per page (default 1000)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    ex = sub.add_parser("export", help="write a sensor's flows for a time range to a file")
    ex.add_argument("--sensor", type=int, required=True, help="sensor id")
    ex.add_argument("--from", dest="start", type=parse_when, required=True,
                    help="start (ISO, inclusive, UTC unless an offset is given)")
    ex.add_argument("--to", dest="end", type=parse_when, required=True,
                    help="end (ISO, exclusive)")
    ex.add_argument("--ip0", action="append", default=[], help="local IP (repeatable)")
    ex.add_argument("--ip1", help="remote IP")
    ex.add_argument("--protocol")
    ex.add_argument("--port")
    ex.add_argument("--mac")
    g = ex.add_mutually_exclusive_group()
    g.add_argument("--only-in", action="store_true")
    g.add_argument("--only-out", action="store_true")
    ex.add_argument("--only-toxic", action="store_true")
    ex.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv")
    common(ex)

    se = sub.add_parser("sensors", help="list the sensors the key can read")
    common(se)

    sy = sub.add_parser("sync", help="keep the last days of sensors complete in the cache "
                        "(a background worker beside the dashboard)")
    sy.add_argument("--sensors", type=_sensor_list, default=None, metavar="all|ID,...",
                    help="sensors to keep warm (default: all the key can read)")
    sy.add_argument("--days", type=_positive, default=30, help="days kept warm (default 30)")
    sy.add_argument("--share", type=_share, default=0.5,
                    help="largest share of the key's rate limit the worker may use (0-1, "
                    "default 0.5); interactive loads go first")
    sy.add_argument("--once", action="store_true", help="one cycle, then exit")
    sy.add_argument("--no-findings", action="store_true",
                    help="sync only: do not detect findings after each sensor")
    sy.add_argument("--no-notify", action="store_true",
                    help="do not send the digests and alerts of FLUX_NOTIFY_FILE's routes")
    common(sy)

    no = sub.add_parser("notify", help="daily digests and alerts (FLUX_NOTIFY_FILE): preview "
                        "a digest, or send a test message to a route")
    what = no.add_mutually_exclusive_group(required=True)
    what.add_argument("--preview", action="store_true",
                      help="print a sensor's digest of one day as it would be sent (text and "
                      "Markdown), without sending it")
    what.add_argument("--test", metavar="ROUTE", help="send one test message to ROUTE")
    no.add_argument("--sensor", type=int, help="sensor id (--preview)")
    no.add_argument("--day", type=_day, help="the sensor's local day, YYYY-MM-DD (--preview; "
                    "default: yesterday)")
    no.add_argument("--masked", action="store_true",
                    help="as a masked (customer-facing) route sees it")
    common(no)

    dbp = sub.add_parser("db", help="the findings database (FLUX_DATABASE_URL, else SQLite "
                         "in the cache directory)")
    dbp.add_argument("action", choices=["upgrade", "status"],
                     help="upgrade: apply the migrations; status: where it is, its revision "
                     "and how many findings it holds")
    common(dbp)

    sim = sub.add_parser("simulate", help="serve the simulated API over HTTP", add_help=False)
    sim.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _settings(args):
    from flux_dashboard.config import load_settings

    return load_settings(api_url=args.api_url, rate_limit_per_min=args.rate_limit,
                         cache_dir=args.cache_dir, per_page=args.per_page)


def _progress_printer(quiet: bool):
    if quiet:
        return None
    last = [0.0]

    def show(p) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and p.requests_done < p.requests_planned:
            return
        last[0] = now
        print(f"\rrequests {p.requests_done}/{p.requests_planned} · rows {p.rows:,} · "
              f"hours {p.hours_done}/{p.hours_total} · ~{p.seconds_left:.0f}s left   ",
              end="", file=sys.stderr, flush=True)

    return show


def cmd_export(args, transport=None) -> int:
    from flux_dashboard.filters import Filters
    from flux_dashboard.service import build_service

    if args.out.suffix.lower() not in (".parquet", ".csv"):
        print("error: --out must end in .parquet or .csv", file=sys.stderr)
        return EXIT_USAGE
    if args.end <= args.start:
        print("error: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    direction = "IN" if args.only_in else "OUT" if args.only_out else "all"
    filters, problems = Filters.parse(devices=args.ip0, remote_ip=args.ip1,
                                      protocol=args.protocol, port=args.port, mac=args.mac,
                                      direction=direction, toxic_only=args.only_toxic)
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return EXIT_USAGE
    from flux_dashboard.service import request_meter

    settings = _settings(args)
    service = build_service(settings, transport=transport)
    try:
        service.client.sensor(args.sensor)  # a clear "unknown sensor" before any flux request
        result = service.loader.load(args.sensor, args.start, args.end,
                                     server_filters=filters.server_params(),
                                     progress=_progress_printer(args.quiet))
    finally:
        service.close()
        # What the export cost counts in the deployment's meter, beside the dashboard's.
        request_meter(settings).add("cli", service.client.request_count)
    frame = filters.apply(result.frame)  # e.g. several --ip0 values are filtered locally
    if not args.quiet:
        print(file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    if args.out.suffix.lower() == ".csv":
        from flux_dashboard.escaping import csv_safe

        # Same cells as the dashboard's CSV downloads: none runs as a spreadsheet formula.
        csv_safe(frame).write_csv(tmp)
    else:
        frame.write_parquet(tmp)
    tmp.replace(args.out)
    if not args.quiet:
        print(f"{frame.height:,} rows written to {args.out} "
              f"({result.flux_requests} flux requests, {result.cached_hours} hours from cache)",
              file=sys.stderr)
    return 0


def cmd_sensors(args, transport=None) -> int:
    from flux_dashboard.service import build_service

    service = build_service(_settings(args), transport=transport)
    try:
        sensors = service.client.sensors()
    finally:
        service.close()
    print(f"# {service.settings.describe()}", file=sys.stderr)
    for s in sensors:
        print(f"{s.get('id')}\t{s.get('status', '?')}\t{s.get('timezone', '?')}\t"
              f"{s.get('full_name') or s.get('name')}")
    return 0


def cmd_sync(args, transport=None) -> int:
    import signal
    import threading

    from flux_dashboard.service import build_service, request_meter
    from flux_dashboard.sync import RequestTally, Worker

    settings = _settings(args)
    if args.days > settings.max_range_days:
        print(f"error: --days may be at most {settings.max_range_days} (FLUX_MAX_RANGE_DAYS)",
              file=sys.stderr)
        return EXIT_USAGE
    logging.getLogger("flux_dashboard.sync").setLevel(
        logging.WARNING if args.quiet else logging.INFO)
    notifier = None
    routes = None
    if not args.no_notify:
        from flux_dashboard.notify import routes as R

        routes = R.load(secrets=_secrets())  # a bad routes file: one line, exit 1
        logging.getLogger("flux_dashboard.notify").setLevel(
            logging.WARNING if args.quiet else logging.INFO)
    stop = threading.Event()

    def stopping(*_) -> None:
        stop.set()
        if notifier is not None:
            notifier.wake()
        # Waits for slots and retries end at once; a request the API holds open does
        # not: past STOP_GRACE_S the process leaves anyway (what completed is on disk,
        # every write is atomic, a message being sent is in the ledger).
        threading.Thread(target=_leave_after, args=(STOP_GRACE_S,), daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stopping)
    service = build_service(settings, transport=transport, background=True, share=args.share,
                            stop=stop)
    if routes is not None and len(routes):
        notifier = _notifier(service, routes, stop)
    count = RequestTally(request_meter(settings))  # the team's quota meter

    if not args.no_findings:  # migrations at start-up; a database that is down is retried
        from flux_dashboard.triage import run

        try:
            run.store_for(settings)
        except E.DatabaseUnavailableError as exc:
            logging.getLogger("flux_dashboard.sync").warning("%s", exc)
    try:
        worker = Worker(service, sensors=args.sensors, days=args.days, stop=stop,
                        on_cycle=count, findings=not args.no_findings, notifier=notifier)
        return worker.run(once=args.once)
    finally:
        stop.set()
        if notifier is not None:
            notifier.close(timeout=3.0)  # a message being sent is finished and recorded
        service.close()


STOP_GRACE_S = 4.0  # a stopping worker exits within this, whatever the API does


def _leave_after(seconds: float) -> None:
    import os

    time.sleep(seconds)
    logging.getLogger("flux_dashboard.sync").warning(
        "stopping: a request to the API is still unanswered after %.0f s; exiting now "
        "(everything completed is saved; the next start resumes)", seconds)
    logging.shutdown()
    os._exit(0)


def _secrets() -> dict:
    from flux_dashboard.config import read_secrets, secrets_file

    return read_secrets(secrets_file())


def _notifier(service, routes, stop=None, detect: bool = False):
    from flux_dashboard.access import Hosting
    from flux_dashboard.audit import AuditLog
    from flux_dashboard.notify.notifier import Notifier

    settings = service.settings
    host = Hosting.load(settings, _secrets())
    audit = AuditLog(host.audit_file, secret=settings.api_key.reveal()
                     if settings.api_key else None, clock=settings.now)
    return Notifier(service, routes, stop=stop, audit=audit, detect=detect)


def cmd_notify(args, transport=None) -> int:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from flux_dashboard.hours import sensor_zone
    from flux_dashboard.notify import routes as R
    from flux_dashboard.service import build_service, request_meter

    settings = _settings(args)
    if args.test:
        routes = R.load(secrets=_secrets())
        route = routes.get(args.test)
        service = build_service(settings, transport=transport)
        try:
            out = _notifier(service, routes).send_test(route)
        finally:
            service.close()
        targets = ", ".join(route.targets())
        if out.status != "sent":
            print(f"error: the test message to {route.name} ({targets}) failed after "
                  f"{out.attempts} tries: {out.error}", file=sys.stderr)
            return EXIT_ERROR
        print(f"test message sent to {route.name} ({targets})")
        return 0
    if args.sensor is None:
        print("error: --preview needs --sensor", file=sys.stderr)
        return EXIT_USAGE
    service = build_service(settings, transport=transport)
    try:
        sensor = service.client.sensor(args.sensor)  # "unknown sensor" before any flux request
        notifier = _notifier(service, R.Routes(), detect=True)
        notifier.sensors({args.sensor: sensor})
        day = args.day or (settings.now().astimezone(ZoneInfo(sensor_zone(sensor))).date()
                           - timedelta(days=1))
        message = notifier.digest(args.sensor, day, masked=args.masked)
    finally:
        service.close()
        if not settings.demo:
            request_meter(settings).add("cli", service.client.request_count)
    print(message.as_text())
    print("----- Markdown -----")
    print(message.as_markdown())
    return 0


def cmd_db(args, transport=None) -> int:
    import polars as pl

    from flux_dashboard.triage import db
    from flux_dashboard.triage.store import FindingsStore

    settings = _settings(args)
    url = db.database_url(settings)
    eng = db.connect(url)  # applies the migrations
    try:
        store = FindingsStore(eng)
        counts = store.counts()
        print(f"findings database: {db.where(url)}")
        print(f"revision: {db.current(eng)} (latest: {db.HEAD})")
        if args.action == "status":
            total = int(counts["findings"].sum()) if counts.height else 0
            print(f"findings: {total:,}")
            for status, n in counts.group_by("status").agg(pl.col("findings").sum()) \
                    .sort("status").rows():
                print(f"  {status}: {n:,}")
    finally:
        eng.dispose()
    return 0


def main(argv: list[str] | None = None, *, transport=None) -> int:
    """Run one command; ``transport`` (an httpx transport) replaces the network in tests."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        from flux_dashboard.simulator import main as simulate

        return simulate(argv[1:])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    args = build_parser().parse_args(argv)
    try:
        return {"export": cmd_export, "sensors": cmd_sensors, "sync": cmd_sync,
                "db": cmd_db, "notify": cmd_notify}[args.command](args, transport)
    except E.IncompleteDataError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except E.FluxError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"\nerror: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})",
              file=sys.stderr)
        return EXIT_ERROR
