"""Load with concurrent writes and a database restart, against a production server.

Run it through ``scripts/load`` (which makes the temporary folder and always removes it)::

    scripts/load                      # 60 s, the PostgreSQL restart half-way
    scripts/load --duration 120
    scripts/load --replication        # with a streaming standby and PgBouncer

What it does, all on 127.0.0.1:

1. starts a private PostgreSQL cluster (``_cluster.py``; never the shared server, since it
   restarts it), migrates it and seeds the demo university (``seed_demo``, plus
   ``--events`` synthetic events);
2. serves the demo project with gunicorn (``WORKERS`` x ``THREADS``, gthread);
3. for ``--duration`` seconds (and at most ``--max-requests`` requests):

   - readers page through whole audit listings (a course's, an account's, the root's
     subtree), following ``Link: rel="next"`` verbatim as canvasapi does;
   - writers change courses through the REST API (``PUT`` names, start dates and
     lifecycle events, ``POST`` new courses), each on courses of its own, so it knows
     what every confirmed change must have recorded;
   - SIS imports (``manage.py sis_import``) run one after another over generated
     ``courses.csv`` files that differ from run to run;
   - half-way, the private PostgreSQL is restarted (``pg_ctl restart -m fast``), at a
     moment a SIS import has committed a chunk and works on the next (waited for, at
     most 15 s); after the load, once more while the server is idle;

4. checks, and prints, then exits non-zero if any invariant failed:

   - no 5xx but 503, each 503 with the contract's JSON body and ``Retry-After``, and only
     while the database was away (or just after); every kind of request succeeds after;
   - each write the server confirmed (200) recorded exactly the events it implies, linked
     to its request id; a refused write (4xx, 503) recorded nothing and changed nothing;
     no event of the run belongs to no confirmed write or SIS batch; each writer's courses
     end as its confirmed writes left them;
   - listings: no event twice, in strict (created_at, id) order, and none skipped.
     *Skipped* is defined exactly: an event of the listing's filter whose (created_at, id)
     is at or below the listing's first event and whose inserting transaction had
     committed when the listing began (the commit timestamp of the row's ``xmin``, which
     the private cluster tracks, before the server's clock read just before page one),
     but which the reader never got. (Not ``pg_visible_in_snapshot(xmin, ...)``: an event
     inserted in a savepoint has a subtransaction's ``xmin``, which a snapshot does not
     list, so a transaction still running would count as committed.)
     Events committed while the reader paged may or may not be seen, depending on where
     the reader was: they are counted, not required;
   - SIS: each batch's counters match its events (one ``created`` event per course
     created, one changed course per course with events), a finished batch accounts for
     every row; after the run each file whose import the restart cut short is imported
     again, then the last file: each finishes its job (the courses then match that file
     exactly); the last once more changes and records nothing;
   - latency percentiles (p50, p90, p99, max) per kind of request, requests per second.

With ``--replication`` the private cluster is ``_cluster.Replication``: a primary, its
streaming standby and PgBouncer in transaction mode. The server (``bench_settings``) writes
through PgBouncer and reads the audit events from the standby; the SIS imports write through
PgBouncer too. The standby is restarted at ``--standby-restart-at`` and the primary at
``--restart-at``. Besides the invariants above (503s only while the *primary* is away),
every writer reads its course's listing right after each confirmed write, with the same
token, and must find the write's events there (read-your-writes), and the standby's replay
lag is sampled on the primary all along (``pg_stat_replication``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import http.client
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from bench._cluster import PrivateCluster, Replication, free_port
from bench._common import ROOT, percentile, setup_django
from bench._http import _free_port, _wait_until_serving

WORKERS = 2
THREADS = 4
SIS_ROWS = 4000
# Bad rows in every generated file, so that skipped-row accounting is exercised too.
SIS_BAD_ROWS = 2
COURSES_PER_WRITER = 12
# 503s are expected while the database is away, and may come just after it is back (a
# request already waiting on its connection); after this, none.
RECOVERY_GRACE_SECONDS = 2.0
UNAVAILABLE = {
    "errors": [
        {
            "message": "The database could not complete the request; nothing was changed. "
            "Try again later."
        }
    ]
}
LINK = re.compile(r'<([^>]*)>; rel="(\w+)"')
FORM = "application/x-www-form-urlencoded"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="an empty temporary folder")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--max-requests", type=int, default=300_000, help="bound (300,000)")
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000, help="synthetic events to seed")
    parser.add_argument("--port", type=int, default=5433, help="the private PostgreSQL's port")
    parser.add_argument(
        "--restart-at", type=float, default=0.5, help="when to restart PostgreSQL (share of run)"
    )
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--replication",
        action="store_true",
        help="a streaming standby for the reads and PgBouncer for the writes",
    )
    parser.add_argument(
        "--standby-restart-at",
        type=float,
        default=0.25,
        help="with --replication: when to restart the standby (share of run)",
    )
    return parser.parse_args(argv)


# Recording what happened -----------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    kind: str
    status: int  # 0: no HTTP answer (the connection failed)
    started: float  # seconds since the run began
    ms: float
    body: bytes = b""
    retry_after: str | None = None


@dataclasses.dataclass
class Write:
    writer: int
    course_id: int | None
    action: str
    sent: dict[str, str]
    status: int
    request_id: str | None
    # What a confirmed write must have recorded: [(event_type, event_data)]; for a create,
    # the name to find in its ``created`` event.
    expected: list[tuple[str, dict[str, Any]]]
    started: float


@dataclasses.dataclass
class Listing:
    kind: str
    path: str
    filter: dict[str, Any]
    began_at: str  # the database server's clock just before page one
    uuids: list[str]
    pages: int
    retries: int


@dataclasses.dataclass
class SisRun:
    number: int
    path: Path
    returncode: int
    output: str
    started: float
    ended: float


class Run:
    """What the threads share: the clock, the request budget, and what they saw."""

    def __init__(self, args: argparse.Namespace, port: int, token: str) -> None:
        self.args = args
        self.port = port
        self.token = token
        self.tickets = itertools.count()
        self.began = time.monotonic()
        self.stop = threading.Event()
        self.samples: list[Sample] = []
        self.writes: list[Write] = []
        self.listings: list[Listing] = []
        self.sis_runs: list[SisRun] = []
        self.outage: tuple[float, float] | None = None
        self.standby_outage: tuple[float, float] | None = None
        # Read-your-writes: (writer, action, status of the read, whether it showed the write)
        self.own_reads: list[tuple[int, str, int, bool | None]] = []
        # Seconds of replay lag of the standby, sampled on the primary.
        self.lag_samples: list[float] = []
        # The database's clock when the load began: events of the run are newer.
        self.started_at: dt.datetime | None = None
        self.errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.began

    def running(self) -> bool:
        if self.stop.is_set() or self.now() >= self.args.duration:
            return False
        return next(self.tickets) < self.args.max_requests


class Client:
    """One keep-alive connection to the server, as one API client."""

    def __init__(self, run: Run, cookies: dict[str, str] | None = None) -> None:
        self.run = run
        self.connection: http.client.HTTPConnection | None = None
        # A browser's session instead of the API token, for the pages.
        self.cookies = cookies

    def send(
        self, kind: str, method: str, path: str, body: dict[str, str] | None = None
    ) -> tuple[Sample, http.client.HTTPResponse | None]:
        headers = {"Authorization": f"Bearer {self.run.token}"}
        if self.cookies is not None:
            headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        payload = None
        if body is not None:
            payload = urlencode(body)
            headers["Content-Type"] = FORM
        started = self.run.now()
        clock = time.perf_counter()
        # A GET may be sent again on a fresh connection (the server may have closed an
        # idle one); a write never is: its outcome would be unknown.
        for attempt in range(2 if method == "GET" else 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.run.port, timeout=60)
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.connection.close()
                self.connection = None
                if attempt == 0 and method == "GET":
                    continue
                self.run.errors.append(f"{method} {path}: no answer ({error!r})")
                break
            sample = Sample(
                kind,
                response.status,
                started,
                (time.perf_counter() - clock) * 1000,
                data if response.status >= 500 else b"",
                response.getheader("Retry-After"),
            )
            self.run.samples.append(sample)
            return sample, _Answered(response, data)  # type: ignore[return-value]
        sample = Sample(kind, 0, started, (time.perf_counter() - clock) * 1000)
        self.run.samples.append(sample)
        return sample, None


class _Answered:
    """A read response: its status, headers and body."""

    def __init__(self, response: http.client.HTTPResponse, body: bytes) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = body

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)


# Readers ---------------------------------------------------------------------------------


def reader(run: Run, index: int, plans: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Page through whole listings, one after another, until the run ends."""
    import psycopg

    rng = random.Random(run.args.seed * 100 + index)
    client = Client(run)
    database: psycopg.Connection[Any] | None = None
    while not run.stop.is_set() and run.now() < run.args.duration:
        kind, path, listing_filter = rng.choice(plans)
        per_page = rng.choice([25, 50, 100])
        # The server's clock before page one: what had committed when the listing began.
        try:
            if database is None or database.closed:
                database = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
            row = database.execute("SELECT clock_timestamp()::text").fetchone()
            assert row is not None
            began_at = str(row[0])
        except psycopg.OperationalError:
            database = None
            time.sleep(0.2)
            continue
        url: str | None = f"{path}{'&' if '?' in path else '?'}per_page={per_page}"
        uuids: list[str] = []
        pages = retries = 0
        complete = False
        while url is not None:
            if not run.running():
                break
            sample, response = client.send(kind, "GET", url)
            if response is None or sample.status == 503:
                retries += 1
                time.sleep(0.2)
                continue  # the same page again: its cursor is still good
            if sample.status != 200:
                run.errors.append(f"GET {url}: HTTP {sample.status}")
                break
            pages += 1
            uuids.extend(event["id"] for event in response.json()["events"])
            links = dict(
                (rel, link) for link, rel in LINK.findall(response.getheader("Link") or "")
            )
            following = links.get("next")
            if following is None:
                complete = True
                url = None
            else:
                parts = urlsplit(following)
                if (parts.hostname, parts.port) != ("127.0.0.1", run.port):
                    run.errors.append(f"rel=next points elsewhere: {following}")
                    break
                url = f"{parts.path}?{parts.query}"
        if complete:
            run.listings.append(
                Listing(kind, path, listing_filter, began_at, uuids, pages, retries)
            )
    if database is not None:
        database.close()


def log_in(port: int) -> dict[str, str]:
    """A session of the registrar, through the login form, as a browser gets one."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", "/accounts/login/")
    response = connection.getresponse()
    page = response.read().decode()
    cookies = _cookies(response)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, "no CSRF token on the login page"
    form = urlencode(
        {"username": "registrar", "password": "demo", "csrfmiddlewaretoken": match.group(1)}
    )
    connection.request(
        "POST",
        "/accounts/login/",
        body=form,
        headers={
            "Content-Type": FORM,
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        },
    )
    response = connection.getresponse()
    response.read()
    cookies.update(_cookies(response))
    connection.close()
    if response.status != 302 or "sessionid" not in cookies:
        raise SystemExit(f"logging in as registrar failed: HTTP {response.status}")
    return cookies


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def page_reader(run: Run, cookies: dict[str, str], paths: list[str]) -> None:
    """A registrar reading history pages in a browser (a session, no token)."""
    rng = random.Random(run.args.seed * 10)
    client = Client(run, cookies)
    while run.running():
        sample, _ = client.send("page-history", "GET", rng.choice(paths))
        if sample.status not in (200, 503):
            run.errors.append(f"page: HTTP {sample.status}")
        time.sleep(0.05)


# Writers ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Known:
    """What a writer knows of one of its courses: its state after its last confirmed write."""

    name: str
    state: str
    start_at: dt.datetime | None


LIFECYCLE = {
    "unpublished": [("offer", "available"), ("conclude", "completed"), ("delete", "deleted")],
    "available": [("claim", "unpublished"), ("conclude", "completed"), ("delete", "deleted")],
    "completed": [("delete", "deleted")],
    "deleted": [("undelete", "unpublished")],
}


def writer(run: Run, index: int, courses: dict[int, Known], account_id: int) -> None:
    from course_audit.diff import json_value, lifecycle_events

    rng = random.Random(run.args.seed * 1000 + index)
    client = Client(run)
    serial = itertools.count()
    while run.running():
        course_id = rng.choice(list(courses))
        known = courses[course_id]
        number = next(serial)
        draw = rng.random()
        path = f"/api/v1/courses/{course_id}"
        method = "PUT"
        new_start: dt.datetime | None = None
        target_state = known.state
        if known.state == "deleted" or 0.75 <= draw < 0.95:
            action, target_state = rng.choice(LIFECYCLE[known.state])
            body = {"course[event]": action}
            expected = [(event, {}) for event in lifecycle_events(known.state, target_state)]
            kind = "write-lifecycle"
        elif draw < 0.6:
            action = "rename"
            new_name = f"Load w{index} n{number}"
            body = {"course[name]": new_name}
            expected = [("updated", {"name": [known.name, new_name]})]
            kind = "write-rename"
        elif draw < 0.75:
            action = "start_at"
            new_start = dt.datetime(2001, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=number)
            body = {"course[start_at]": new_start.isoformat().replace("+00:00", "Z")}
            old = json_value(known.start_at) if known.start_at is not None else None
            expected = [("updated", {"start_at": [old, json_value(new_start)]})]
            kind = "write-start_at"
        else:
            action = "create"
            method = "POST"
            path = f"/api/v1/accounts/{account_id}/courses"
            body = {"course[name]": f"Load w{index} new n{number}"}
            expected = [("created", {"name": [None, body["course[name]"]]})]
            kind = "write-create"
        sample, response = client.send(kind, method, path, body)
        request_id = response.getheader("X-Request-Id") if response is not None else None
        run.writes.append(
            Write(
                index,
                None if action == "create" else course_id,
                action,
                body,
                sample.status,
                request_id,
                expected,
                sample.started,
            )
        )
        if run.args.replication and sample.status == 200 and response is not None:
            created = response.json()["id"] if action == "create" else course_id
            read_own_write(run, client, index, action, int(created), request_id, expected)
        if sample.status == 200 and response is not None and action != "create":
            answer = response.json()
            if answer["workflow_state"] != target_state:
                run.errors.append(
                    f"writer {index}: {action} on course {course_id} answered "
                    f"{answer['workflow_state']}, expected {target_state}"
                )
            courses[course_id] = Known(
                name=answer["name"],
                state=answer["workflow_state"],
                start_at=new_start if new_start is not None else known.start_at,
            )


def read_own_write(
    run: Run,
    client: Client,
    index: int,
    action: str,
    course_id: int,
    request_id: str | None,
    expected: list[tuple[str, dict[str, Any]]],
) -> None:
    """The writer's next read, at once: its course's newest events, which must hold the
    write's (linked to its request id), however far the standby lags."""
    path = f"/api/v1/audit/course/courses/{course_id}?per_page=10"
    sample, response = client.send("read-own-write", "GET", path)
    if response is None or sample.status != 200:
        run.own_reads.append((index, action, sample.status, None))
        return
    found = response.json()["events"]
    linked = [event for event in found if event["links"]["page_view"] == request_id]
    # A write whose page view row could not be saved (the database failing just after its
    # commit) has events without the link: found by what they recorded.
    unlinked = [event for event in found if event["links"]["page_view"] is None]
    shown = len(linked) == len(expected) or all(
        any(_records(event, event_type, data) for event in unlinked)
        for event_type, data in expected
    )
    run.own_reads.append((index, action, 200, shown))


def _records(event: dict[str, Any], event_type: str, data: dict[str, Any]) -> bool:
    recorded = event.get("event_data") or {}
    return event["event_type"] == event_type and all(
        json.loads(json.dumps(recorded.get(field))) == json.loads(json.dumps(value))
        for field, value in data.items()
    )


def lag_sampler(run: Run, primary_url: str) -> None:
    """The standby's replay lag, as the primary sees it, every 0.2 s."""
    import psycopg

    database: psycopg.Connection[Any] | None = None
    while not run.stop.wait(0.2) and run.now() < run.args.duration:
        try:
            if database is None or database.closed:
                database = psycopg.connect(primary_url, autocommit=True, connect_timeout=3)
            row = database.execute(
                "SELECT COALESCE(extract(epoch FROM max(replay_lag)), 0) FROM pg_stat_replication"
            ).fetchone()
        except psycopg.OperationalError:
            database = None
            continue
        if row is not None:
            run.lag_samples.append(float(row[0]))
    if database is not None:
        database.close()


# SIS imports -----------------------------------------------------------------------------


def sis_file(folder: Path, number: int, departments: list[str]) -> Path:
    """Run ``number``'s courses.csv: a third of the names and states change each run."""
    lines = ["course_id,short_name,long_name,account_id,status,start_date,end_date"]
    statuses = ["active", "published", "completed", "published", "unpublished", "deleted"]
    for row in range(SIS_ROWS):
        revision = number - (number - row) % 3
        account = departments[row % len(departments)] if row % 4 else ""
        status = statuses[(revision + row) % len(statuses)]
        lines.append(
            f"LOAD-{row:05d},L{row},Load course {row} rev {revision},{account},{status},"
            f"2026-0{1 + row % 9}-01,"
        )
    lines.append("LOAD-BAD-1,B1,Bad status,,archived,,")
    lines.append("LOAD-BAD-2,B2,Bad dates,,active,2026-02-01,2026-01-01")
    path = folder / f"load-{number:03d}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def expected_sis_courses(path: Path) -> dict[str, tuple[str, str]]:
    """SIS id -> (name, workflow state) that importing ``path`` must leave."""
    states = {"published": "available", "completed": "completed", "deleted": "deleted"}
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        sis_id, _code, name, _account, status, _start, _end = line.split(",")
        if sis_id.startswith("LOAD-BAD"):
            continue
        # ``active`` and ``unpublished`` differ for an existing course; these files never
        # hold ``active`` for a course whose earlier state is unknown to the check, so the
        # check below compares only the states a status fixes.
        found[sis_id] = (name, states.get(status, status))
    return found


def import_sis(run: Run | None, path: Path, root_id: int, env: dict[str, str]) -> SisRun:
    started = run.now() if run is not None else 0.0
    done = subprocess.run(
        [sys.executable, "manage.py", "sis_import", str(path), "--account", str(root_id),
         "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    ended = run.now() if run is not None else 0.0
    number = int(path.stem.split("-")[1])
    return SisRun(number, path, done.returncode, done.stdout + done.stderr, started, ended)


def sis_importer(run: Run, folder: Path, root_id: int, departments: list[str]) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "auditlog_project.settings", "DEBUG": "0"}
    if "POOLER_DATABASE_URL" in os.environ:
        # With --replication the imports write through PgBouncer, as the server does:
        # Debian's 1.18 carries neither prepared statements nor the `options` startup
        # parameter the demo settings send for them (docs/scaling.md §3).
        env["DATABASE_URL"] = os.environ["POOLER_DATABASE_URL"]
        env["DATABASE_PREPARED_STATEMENTS"] = "off"
    for number in itertools.count(1):
        if run.stop.is_set() or run.now() >= run.args.duration:
            return
        path = sis_file(folder, number, departments)
        run.sis_runs.append(import_sis(run, path, root_id, env))


def restarter(run: Run, cluster: PrivateCluster) -> None:
    if run.stop.wait(run.args.duration * run.args.restart_at):
        return
    # The worst moment for an import: a chunk committed, the next one under way. Waited
    # for, within bounds; the restart comes anyway.
    mid_import = _wait_for_a_mid_import(run, seconds=15)
    began = run.now()
    print(
        f"==> restarting the private PostgreSQL at {began:.1f} s"
        + (" (a SIS import between its chunks)" if mid_import else ""),
        flush=True,
    )
    cluster.restart()
    run.outage = (began, run.now())
    print(f"    back at {run.outage[1]:.1f} s", flush=True)


def standby_restarter(run: Run, cluster: Replication) -> None:
    if run.stop.wait(run.args.duration * run.args.standby_restart_at):
        return
    began = run.now()
    print(f"==> restarting the standby at {began:.1f} s", flush=True)
    cluster.standby.restart()
    run.standby_outage = (began, run.now())
    print(f"    back at {run.standby_outage[1]:.1f} s", flush=True)


def _wait_for_a_mid_import(run: Run, *, seconds: float) -> bool:
    import psycopg

    deadline = time.monotonic() + seconds
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as database:
        while time.monotonic() < deadline and not run.stop.is_set():
            found = database.execute(
                "SELECT 1 FROM course_audit_sisbatch WHERE workflow_state = 'importing' "
                "AND rows_applied > 0 AND filename LIKE %s",
                ["load-%"],
            ).fetchone()
            if found:
                return True
            time.sleep(0.05)
    return False


def idle_restart_probe(run: Run, cluster: PrivateCluster, path: str) -> list[Sample]:
    """Restart PostgreSQL while no request runs, then send as many requests as the server
    has threads, several times over: none may fail (a connection kept from before the
    restart must be noticed as dead before it is used, not by the request using it)."""
    cluster.restart()
    client = Client(run)
    probes = []
    for _ in range(3 * WORKERS * THREADS):
        sample, _response = client.send("idle-restart-probe", "GET", f"{path}?per_page=1")
        probes.append(run.samples.pop())
        assert probes[-1] is sample
    return probes


# Setting up ------------------------------------------------------------------------------


def manage(*arguments: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "auditlog_project.settings", "DEBUG": "0"}
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return done.stdout


@contextlib.contextmanager
def gunicorn(folder: Path) -> Iterator[int]:
    """The demo project under gunicorn on a free port of 127.0.0.1 (the benchmark's
    settings: the demo's, with a trivial view to wait on); stopped on the way out."""
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
        "--keep-alive", "30", "--log-level", "warning", "--pid", str(folder / "gunicorn.pid"),
        "--chdir", str(ROOT),
        "auditlog_project.wsgi:application",
    ]  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.bench_settings", "DEBUG": "0"}
    if "POOLER_DATABASE_URL" in os.environ:
        # --replication: writes through PgBouncer, audit reads from the standby.
        env["DIRECT_DATABASE_URL"] = os.environ["DATABASE_URL"]
        env["DATABASE_URL"] = os.environ["POOLER_DATABASE_URL"]
    # The 503s' tracebacks go to the log (course_audit.api.exceptions), not the report.
    log = (folder / "gunicorn.log").open("ab")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_serving("127.0.0.1", port, server)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# Checking --------------------------------------------------------------------------------


class Verdict:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, message: str) -> None:
        print(f"  [{'ok' if ok else 'FAIL'}] {message}")
        if not ok:
            self.failures.append(message)


def check_statuses(run: Run, verdict: Verdict) -> None:
    print("==> statuses")
    by_kind: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for sample in run.samples:
        by_kind[sample.kind][sample.status] += 1
    for kind in sorted(by_kind):
        counts = ", ".join(
            f"{status or 'no answer'}: {n}" for status, n in sorted(by_kind[kind].items())
        )
        print(f"  {kind}: {counts}")
    bad = [s for s in run.samples if s.status >= 500 and s.status != 503]
    verdict.check(not bad, f"no 5xx but 503 ({len(bad)} others: {_first_bodies(bad)})")
    silent = [s for s in run.samples if s.status == 0]
    verdict.check(not silent, f"every request answered ({len(silent)} got no answer)")
    unavailable = [s for s in run.samples if s.status == 503]
    malformed = [
        s
        for s in unavailable
        if s.retry_after != "30"
        or (
            b"Temporarily unavailable" not in s.body
            if s.kind.startswith("page")
            else _json(s.body) != UNAVAILABLE
        )
    ]
    verdict.check(
        not malformed,
        f"every 503 ({len(unavailable)}) has Retry-After: 30 and the contract's JSON body (API) "
        f"or the unavailable page (pages) "
        f"({len(malformed)} not: {_first_bodies(malformed)})",
    )
    verdict.check(run.outage is not None, "PostgreSQL was restarted mid-run")
    if run.outage is None:
        return
    began, ended = run.outage
    late = [s for s in unavailable if s.started > ended + RECOVERY_GRACE_SECONDS]
    early = [s for s in unavailable if s.started + s.ms / 1000 < began]
    print(
        f"  outage: {began:.2f}-{ended:.2f} s ({ended - began:.2f} s); 503s: {len(unavailable)}, "
        f"of which answered before it began: {len(early)}, started after it ended + "
        f"{RECOVERY_GRACE_SECONDS:.0f} s: {len(late)}"
    )
    verdict.check(not early and not late, "503s only while the database was away")
    stale = [s.started - ended for s in unavailable if s.started > ended]
    print(
        f"  503s to requests that began once the database was back: {len(stale)}"
        + (f" (the latest {max(stale):.2f} s after)" if stale else "")
    )
    after = ended + RECOVERY_GRACE_SECONDS
    # By family: a reader may spend the rest of the run in one long listing of one kind.
    for family, label in (("read-", "API reads"), ("write-", "API writes"), ("page-", "pages")):
        recovered = sum(
            1
            for s in run.samples
            if s.kind.startswith(family) and s.started > after and s.status == 200
        )
        verdict.check(recovered > 0, f"{label}: {recovered} answered 200 after the restart")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _first_bodies(samples: list[Sample]) -> str:
    return "; ".join(f"{s.kind} {s.status} {s.body[:120]!r}" for s in samples[:3])


def check_replication(run: Run, folder: Path, verdict: Verdict) -> None:
    print("==> the standby")
    text = (folder / "gunicorn.log").read_text(encoding="utf-8", errors="replace")
    print(
        "  the server's log (each process logs each change once): standby down "
        f"{text.count('is down (')}, lagging past the limit {text.count('is lagging (')}, back "
        f"{text.count('is back: audit reads')}; primary away "
        f"{text.count('primary database is away')}"
    )
    verdict.check(run.standby_outage is not None, "the standby was restarted mid-run")
    if run.standby_outage is not None:
        began, ended = run.standby_outage
        during = [s for s in run.samples if began <= s.started <= ended + RECOVERY_GRACE_SECONDS
                  and s.kind.startswith(("read-", "page-"))]  # fmt: skip
        print(f"  standby restart: {began:.2f}-{ended:.2f} s ({ended - began:.2f} s); reads "
              f"begun then: {collections.Counter(s.status for s in during)}")  # fmt: skip
        verdict.check(
            all(s.status == 200 for s in during),
            f"every read begun while the standby restarted answered 200 ({len(during)})",
        )
    if run.lag_samples:
        lags = sorted(run.lag_samples)
        print(
            f"  replay lag on the primary ({len(lags)} samples): p50 "
            f"{percentile(lags, 50) * 1000:.1f} ms, p99 {percentile(lags, 99) * 1000:.1f} ms, "
            f"max {lags[-1] * 1000:.1f} ms"
        )
    print("==> read-your-writes")
    checked = [read for read in run.own_reads if read[3] is not None]
    missed = [read for read in checked if not read[3]]
    unread = collections.Counter(read[2] for read in run.own_reads if read[3] is None)
    print(f"  confirmed writes read back at once by their writer: {len(checked)}; the read "
          f"failed: {dict(unread)}")  # fmt: skip
    verdict.check(bool(checked) and not missed, f"each writer saw its own write in its next "
                  f"read ({len(missed)} did not: {missed[:3]})")  # fmt: skip


def check_writes(run: Run, writer_courses: list[dict[int, Known]], verdict: Verdict) -> None:
    from course_audit.models import Course, CourseEvent, PageView

    print("==> writes")
    events: dict[str, list[CourseEvent]] = collections.defaultdict(list)
    for event in CourseEvent.objects.filter(event_source="api", created_at__gte=run.started_at):
        events[str(event.page_view_id)].append(event)
    confirmed = [w for w in run.writes if w.status == 200]
    refused = [w for w in run.writes if w.status != 200]
    expected_events = sum(len(w.expected) for w in confirmed)
    stored = sum(len(found) for found in events.values())
    print(
        f"  writes sent: {len(run.writes)}; confirmed (200): {len(confirmed)}, "
        f"refused: {collections.Counter(w.status for w in refused)}"
    )
    print(f"  events the confirmed writes imply: {expected_events}; api events stored: {stored}")
    wrong = []
    for write in confirmed:
        found = events.pop(str(write.request_id), [])
        if write.action == "create":
            got = [(e.event_type, {"name": e.event_data.get("name")}) for e in found]
        else:
            got = [(e.event_type, e.event_data) for e in found]
            if any(e.course_id != write.course_id for e in found):
                got.append(("on another course", {}))
        if got != write.expected:
            wrong.append(f"{write.action} {write.sent} -> {got}, expected {write.expected}")
    verdict.check(not wrong, f"each confirmed write recorded exactly its events ({len(wrong)} "
                  f"did not: {wrong[:3]})")  # fmt: skip
    recorded_refused = [w for w in refused if str(w.request_id) in events]
    verdict.check(
        not recorded_refused,
        f"no refused write recorded an event ({len(recorded_refused)} did: "
        f"{[(w.action, w.status) for w in recorded_refused[:3]]})",
    )
    orphans = {key: found for key, found in events.items() if key not in
               {str(w.request_id) for w in refused}}  # fmt: skip
    verdict.check(not orphans, f"no api event outside a confirmed write ({len(orphans)} requests)")
    verdict.check(stored == expected_events, f"events stored ({stored}) = events the confirmed "
                  f"changes imply ({expected_events})")  # fmt: skip
    # The courses end as the confirmed writes left them: a refused write changed nothing.
    drift = []
    for courses in writer_courses:
        for course_id, known in courses.items():
            row = Course.objects.get(pk=course_id)
            if (row.name, row.workflow_state, row.start_at) != (
                known.name,
                known.state,
                known.start_at,
            ):
                drift.append(course_id)
    verdict.check(not drift, f"each writer's courses are as its confirmed writes left them "
                  f"({len(drift)} differ)")  # fmt: skip
    refused_names = [w.sent["course[name]"] for w in refused if "course[name]" in w.sent]
    leaked = Course.objects.filter(name__in=refused_names).count()
    verdict.check(leaked == 0, f"no refused rename or create reached a course ({leaked} did)")
    missing_views = sum(
        1 for w in confirmed
        if not PageView.objects.filter(request_id=w.request_id).exists()
    )  # fmt: skip
    print(f"  confirmed writes without their page view row: {missing_views}")


def check_listings(run: Run, verdict: Verdict) -> None:
    from django.db import connection

    print("==> listings")
    per_kind = collections.Counter(listing.kind for listing in run.listings)
    print(f"  complete listings: {dict(per_kind)}; pages: {sum(x.pages for x in run.listings)}; "
          f"events read: {sum(len(x.uuids) for x in run.listings)}; pages retried after a 503 "
          f"or no answer: {sum(x.retries for x in run.listings)}")  # fmt: skip
    verdict.check(len(per_kind) >= 2, "listings of at least two kinds completed")
    duplicates = skipped = unordered = phantoms = late_seen = late_unseen = 0
    table = connection.ops.quote_name("course_audit_courseevent")
    for listing in run.listings:
        if len(set(listing.uuids)) != len(listing.uuids):
            duplicates += 1
        if not listing.uuids:
            continue
        where, params = _listing_where(listing.filter)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT uuid::text, created_at, id FROM {table} WHERE uuid = ANY(%s::uuid[])",
                [listing.uuids],
            )
            keys = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
            first = keys.get(listing.uuids[0])
            if first is None or len(keys) != len(set(listing.uuids)):
                phantoms += 1
                continue
            order = [keys[u] for u in listing.uuids]
            if any(a <= b for a, b in itertools.pairwise(order)):
                unordered += 1
            cursor.execute(
                f"SELECT uuid::text, COALESCE(pg_xact_commit_timestamp(xmin) < %s::timestamptz, "
                f"true), created_at, pg_xact_commit_timestamp(xmin) FROM {table} "
                f"WHERE {where} AND (created_at, id) <= (%s, %s)",
                [listing.began_at, *params, first[0], first[1]],
            )
            rows = cursor.fetchall()
        in_range = {row[0]: row[1] for row in rows}
        seen = set(listing.uuids)
        if not seen <= set(in_range):
            phantoms += 1
        committed_before = {u for u, before in in_range.items() if before}
        if committed_before - seen:
            skipped += 1
            print(f"  skipped in {listing.path} (began {listing.began_at}):")
            for row in rows:
                if row[0] in committed_before - seen:
                    print(f"    event {row[0]} created {row[2]}, committed {row[3]}")
        late = set(in_range) - committed_before
        late_seen += len(late & seen)
        late_unseen += len(late - seen)
    verdict.check(duplicates == 0, f"no listing saw an event twice ({duplicates} did)")
    verdict.check(unordered == 0, f"every listing in strict (created_at, id) descending order "
                  f"({unordered} not)")  # fmt: skip
    verdict.check(phantoms == 0, f"every event read is stored, in its listing ({phantoms} not)")
    verdict.check(skipped == 0, f"no listing skipped an event committed before it began "
                  f"({skipped} did)")  # fmt: skip
    print(f"  events committed while a reader paged, at or below its first event: "
          f"{late_seen} seen, {late_unseen} not (either is correct)")  # fmt: skip


def _listing_where(listing_filter: dict[str, Any]) -> tuple[str, list[Any]]:
    """The SQL condition of the events a listing covers (the API's filters, as SQL)."""
    if "course_id" in listing_filter:
        return "course_id = %s", [listing_filter["course_id"]]
    where, params = "account_id = ANY(%s)", [listing_filter["account_ids"]]
    if "user_id" in listing_filter:
        where, params = f"{where} AND user_id = %s", [*params, listing_filter["user_id"]]
    return where, params


RECONNECT_GRACE = 5.0


def _spans(sis_run: SisRun, outage: tuple[float, float] | None) -> bool:
    """Whether the import was under way during the outage or the few seconds after it in
    which a pooler may still be reconnecting (PgBouncer's ``server_login_retry``)."""
    if outage is None:
        return False
    return sis_run.started <= outage[1] + RECONNECT_GRACE and sis_run.ended >= outage[0]


def check_sis(run: Run, root_id: int, verdict: Verdict) -> None:
    from django.db.models import Count, Sum

    from course_audit.models import CourseEvent, SisBatch

    print("==> SIS imports")
    for sis_run in run.sis_runs:
        summary = " ".join(sis_run.output.split()[-12:]) if sis_run.returncode else ""
        state = "ok" if sis_run.returncode == 0 else f"exit {sis_run.returncode}: {summary}"
        print(f"  run {sis_run.number}: {sis_run.started:.1f}-{sis_run.ended:.1f} s, {state}")
    verdict.check(bool(run.sis_runs), f"{len(run.sis_runs)} imports ran during the load")
    if not run.sis_runs:
        return
    # Only the restart of the primary may cut an import short: one that failed wholly
    # before or after it failed for a reason of its own.
    unexplained = [
        sis_run.number
        for sis_run in run.sis_runs
        if sis_run.returncode and not _spans(sis_run, run.outage)
    ]
    verdict.check(
        not unexplained,
        f"every import the restart did not cut short finished ({len(unexplained)} failed: "
        f"runs {unexplained[:10]})",
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "auditlog_project.settings", "DEBUG": "0"}
    # Each file whose run the restart cut short, then the last: run again, each finishes
    # its job, the courses then exactly as the file says.
    failed = [sis_run.path for sis_run in run.sis_runs if sis_run.returncode != 0]
    last = run.sis_runs[-1].path
    for path in [*failed, last]:
        rerun = import_sis(None, path, root_id, env)
        verdict.check(rerun.returncode == 0, f"{path.name} imported again after the run "
                      f"finishes ({rerun.output.strip().splitlines()[-5:]})")  # fmt: skip
        mismatched, found = _sis_mismatches(path)
        verdict.check(not mismatched, f"the courses then match {path.name} exactly "
                      f"({found} courses, {len(mismatched)} differ)")  # fmt: skip
    events_before = CourseEvent.objects.filter(event_source="sis").count()
    again = import_sis(None, last, root_id, env)
    changed = re.findall(r"courses (?:created|changed): (\d+)", again.output)
    verdict.check(
        again.returncode == 0
        and changed == ["0", "0"]
        and CourseEvent.objects.filter(event_source="sis").count() == events_before,
        f"importing it once more changes and records nothing ({changed})",
    )
    batches = SisBatch.objects.filter(filename__startswith="load-").order_by("pk")
    wrong = []
    states_seen: collections.Counter[str] = collections.Counter()
    for batch in batches:
        states_seen[batch.workflow_state] += 1
        events = CourseEvent.objects.filter(sis_batch=batch)
        courses = events.values("course_id").distinct().count()
        created = events.filter(event_type="created").count()
        finished = batch.workflow_state in {"imported", "imported_with_messages"}
        if batch.workflow_state == "failed":
            print(
                f"  batch {batch.pk} ({batch.filename}) failed: {batch.rows_applied} of "
                f"{batch.rows_total} rows applied (its committed chunks), "
                f"{batch.courses_created} courses created, {batch.courses_updated} changed, "
                f"{events.count()} events; {batch.messages[-1][:90]}"
            )
        rows_ok = not finished or (
            batch.rows_applied + batch.rows_skipped == batch.rows_total
            and batch.rows_skipped == SIS_BAD_ROWS
        )
        if (
            courses != batch.courses_created + batch.courses_updated
            or created != (batch.courses_created)
            or not rows_ok
        ):
            wrong.append(
                f"batch {batch.pk} {batch.workflow_state}: {batch.courses_created} created, "
                f"{batch.courses_updated} changed, {batch.rows_applied}+{batch.rows_skipped}/"
                f"{batch.rows_total} rows; events: {created} created on {courses} courses"
            )
    totals = batches.aggregate(
        rows=Sum("rows_total"),
        applied=Sum("rows_applied"),
        skipped=Sum("rows_skipped"),
        created=Sum("courses_created"),
        changed=Sum("courses_updated"),
    )
    print(
        f"  batches: {dict(states_seen)}; rows read {totals['rows']}, applied "
        f"{totals['applied']}, skipped {totals['skipped']}; courses created "
        f"{totals['created']}, changed {totals['changed']}; events recorded "
        f"{CourseEvent.objects.filter(sis_batch__in=batches).count()}"
    )
    verdict.check(not wrong, f"every batch's counters match its events and rows ({wrong[:3]})")
    duplicated = (
        CourseEvent.objects.filter(course__sis_course_id__startswith="LOAD-", event_type="created")
        .values("course_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    verdict.check(duplicated == 0, f"each imported course has one created event ({duplicated} "
                  f"have more)")  # fmt: skip
    sis_events = CourseEvent.objects.filter(
        event_source="sis", created_at__gte=run.started_at
    ).exclude(sis_batch__filename__startswith="load-")
    verdict.check(not sis_events.exists(), "no sis event of the run outside a load batch")


def check_server_log(folder: Path, verdict: Verdict) -> None:
    """The server's own account: database errors it answered 503, and any 500."""
    text = (folder / "gunicorn.log").read_text(encoding="utf-8", errors="replace")
    answered = text.count("Database error answering")
    crashes = re.findall(r"^Internal Server Error: .*$", text, flags=re.MULTILINE)
    print("==> the server's log")
    print(f"  database errors answered 503: {answered}; page view rows not saved: "
          f"{text.count('not saved: the database failed')}")  # fmt: skip
    verdict.check(not crashes, f"no 'Internal Server Error' logged ({crashes[:3]})")


def _sis_mismatches(path: Path) -> tuple[list[str], int]:
    """The SIS ids whose course differs from what importing ``path`` must leave."""
    from course_audit.models import Course

    expected = expected_sis_courses(path)
    found = {
        sis_id: (name, state)
        for sis_id, name, state in Course.objects.filter(
            sis_course_id__startswith="LOAD-"
        ).values_list("sis_course_id", "name", "workflow_state")
    }
    mismatched = [
        sis_id
        for sis_id, (name, state) in expected.items()
        if sis_id not in found
        or found[sis_id][0] != name
        or (state != "active" and found[sis_id][1] != state)
    ]
    mismatched += sorted(set(found) - set(expected))
    return mismatched, len(found)


def report_latency(run: Run, elapsed: float) -> None:
    print("==> latency (ms) and throughput")
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    for sample in run.samples:
        if sample.status:
            by_kind[sample.kind].append(sample.ms)
    print(f"  {'kind':<18}{'n':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for kind, timings in sorted(by_kind.items()):
        print(
            f"  {kind:<18}{len(timings):>8}{percentile(timings, 50):>9.1f}"
            f"{percentile(timings, 90):>9.1f}{percentile(timings, 99):>9.1f}{max(timings):>9.1f}"
        )
    total = len(run.samples)
    print(f"  {total} requests in {elapsed:.1f} s: {total / elapsed:.1f} requests/s")


# The run ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    if args.replication:
        replicated = Replication.with_free_ports(args.workdir)
        try:
            return run_load(args, replicated.primary, replicated)
        finally:
            replicated.stop()
    cluster = PrivateCluster(args.workdir, free_port(args.port))
    try:
        return run_load(args, cluster)
    finally:
        cluster.stop()


def run_load(
    args: argparse.Namespace, cluster: PrivateCluster, replicated: Replication | None = None
) -> int:
    started = time.monotonic()
    if replicated is None:
        print(
            f"==> a private PostgreSQL in {args.workdir} on 127.0.0.1:{cluster.port}; load "
            f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
            flush=True,
        )
        cluster.start()
    else:
        print(
            f"==> a private primary in {args.workdir} on 127.0.0.1:{cluster.port}, its "
            f"streaming standby on {replicated.standby.port}, PgBouncer (transaction mode) on "
            f"{replicated.pooler.port}; load average {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        replicated.start()
        os.environ["POOLER_DATABASE_URL"] = replicated.pooler.url
        os.environ["REPLICA_DATABASE_URL"] = replicated.standby.url
    # The set-up, the readers' clock and the checks use the primary itself.
    os.environ["DATABASE_URL"] = cluster.url
    manage("migrate", "--verbosity", "0")
    manage("seed_demo", "--events", str(args.events))
    token = manage("create_api_token", "registrar", "--name", "load").strip()
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.utils import timezone

    from course_audit.models import Account, Course, CourseEvent

    print(
        f"    seeded in {time.monotonic() - started:.0f} s: {Course.objects.count()} courses, "
        f"{CourseEvent.objects.count()} events",
        flush=True,
    )
    root = Account.objects.get(parent=None)
    departments = list(
        Account.objects.filter(root_account=root, sis_account_id__isnull=False)
        .exclude(sub_accounts__isnull=False)
        .order_by("pk")
    )
    candidates = list(
        Course.objects.exclude(workflow_state="deleted").order_by("pk")[
            : args.writers * COURSES_PER_WRITER
        ]
    )
    writer_courses = [
        {
            course.pk: Known(course.name, course.workflow_state, course.start_at)
            for course in candidates[index :: args.writers]
        }
        for index in range(args.writers)
    ]
    subtree = [root.pk, *Account.objects.filter(root_account=root).values_list("pk", flat=True)]
    registrar = get_user_model()._default_manager.get_by_natural_key("registrar")
    # The root's subtree is too long to read whole within a run while SIS imports add
    # thousands of events to it; its events by the registrar (the writers' token: every
    # API write lands there) make a listing readable whole, written to all along.
    plans: list[tuple[str, str, dict[str, Any]]] = [
        ("read-account", f"/api/v1/audit/course/accounts/{root.pk}", {"account_ids": [root.pk]}),
        (
            "read-subtree",
            f"/api/v1/audit/course/accounts/{root.pk}?include_subaccounts=true"
            f"&user_id={registrar.pk}",
            {"account_ids": subtree, "user_id": registrar.pk},
        ),
    ]
    # The accounts of the writers' courses: listings written to while they are read.
    written = Course.objects.filter(pk__in=[pk for c in writer_courses for pk in c])
    for account_id in sorted(set(written.values_list("account_id", flat=True)))[:3]:
        plans.append(
            (
                "read-account",
                f"/api/v1/audit/course/accounts/{account_id}",
                {"account_ids": [account_id]},
            )
        )
    for courses in writer_courses:
        for course_id in list(courses)[:3]:
            plans.append(
                (
                    "read-course",
                    f"/api/v1/audit/course/courses/{course_id}",
                    {"course_id": course_id},
                )
            )
    connections.close_all()
    sis_folder = args.workdir / "sis"
    sis_folder.mkdir()
    with gunicorn(args.workdir) as port:
        run = Run(args, port, token)
        run.started_at = timezone.now()
        print(
            f"==> load for {args.duration:.0f} s: {args.readers} readers, {args.writers} writers, "
            f"SIS imports of {SIS_ROWS + SIS_BAD_ROWS} rows; gunicorn {WORKERS} workers x "
            f"{THREADS} threads on 127.0.0.1:{port}",
            flush=True,
        )
        threads = [
            threading.Thread(target=reader, args=(run, index, plans))
            for index in range(args.readers)
        ]
        threads += [
            threading.Thread(
                target=writer, args=(run, index, writer_courses[index], departments[0].pk)
            )
            for index in range(args.writers)
        ]
        threads.append(
            threading.Thread(
                target=sis_importer,
                args=(run, sis_folder, root.pk, [d.sis_account_id for d in departments]),
            )
        )
        page_paths = [f"/audit/courses/{course_id}/" for course_id in writer_courses[0]]
        page_paths.append(f"/audit/accounts/{departments[0].pk}/")
        threads.append(threading.Thread(target=page_reader, args=(run, log_in(port), page_paths)))
        threads.append(threading.Thread(target=restarter, args=(run, cluster)))
        if replicated is not None:
            threads.append(threading.Thread(target=standby_restarter, args=(run, replicated)))
            threads.append(threading.Thread(target=lag_sampler, args=(run, cluster.url)))
        load_began = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            run.stop.set()
        elapsed = time.monotonic() - load_began
        probes = idle_restart_probe(run, cluster, plans[0][1])
    load1, load5, _ = os.getloadavg()
    connections.close_all()
    verdict = Verdict()
    for error in run.errors[:10]:
        print(f"  client error: {error}")
    verdict.check(not run.errors, f"no client-side errors ({len(run.errors)})")
    check_statuses(run, verdict)
    print("==> a restart while the server is idle")
    verdict.check(
        all(sample.status == 200 for sample in probes),
        f"each of the {len(probes)} requests after it answered 200 "
        f"({collections.Counter(sample.status for sample in probes)})",
    )
    check_writes(run, writer_courses, verdict)
    if replicated is not None:
        check_replication(run, args.workdir, verdict)
    check_listings(run, verdict)
    check_sis(run, root.pk, verdict)
    check_server_log(args.workdir, verdict)
    report_latency(run, elapsed)
    print(
        f"==> {time.monotonic() - started:.0f} s in all; load average at the end "
        f"{load1:.2f} (1 min), {load5:.2f} (5 min) on {os.cpu_count()} CPUs"
    )
    if verdict.failures:
        print(f"==> FAILED: {len(verdict.failures)} invariants", file=sys.stderr)
        for failure in verdict.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("==> every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
