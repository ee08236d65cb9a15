"""Latency of the audit endpoints on PostgreSQL, on page one and deep in a big course.

Loads ``--events`` events (default 200,000) into one new course with ``COPY``, then times
requests made in-process with Django's test ``Client``, authenticated by a bearer token:
page one and a page ``--depth`` events deep (default 100,000), for ``per_page`` 10 and 100,
on the course endpoint, the account endpoint and the account endpoint with
``include_subaccounts=true`` (asked of the parent account). The deep page's token is built
with the API's own ``Cursor`` for the listing's path, which is what a client following
``rel="next"`` would hold after that many events; the script checks that the page starts
at the right event. It prints p50/p95 latency and the SQL queries per request.

It adds its data to the database and leaves it there: use a scratch database::

    createdb -h 127.0.0.1 -U postgres course_audit_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/course_audit_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/api_latency.py
    dropdb -h 127.0.0.1 -U postgres course_audit_bench
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from _common import insert_events, make_user, server_version, setup_django

ACTORS = 5
TIES = 5  # events sharing one timestamp, as a SIS import writes them


@dataclasses.dataclass(frozen=True)
class Listing:
    name: str
    path: str
    params: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Result:
    listing: str
    per_page: int
    depth: int
    p50_ms: float
    p95_ms: float
    queries: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to load")
    parser.add_argument("--depth", type=int, default=100_000, help="events before the deep page")
    parser.add_argument("--repeat", type=int, default=200, help="timed requests per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument(
        "--per-page", type=int, nargs="+", default=[10, 100], help="page sizes to time"
    )
    args = parser.parse_args(argv)
    if args.depth >= args.events:
        parser.error("--depth must be less than --events")
    return args


def event_rows(
    course_id: int, account_id: int, actors: list[tuple[int, str]], count: int, start: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Rows for ``course_audit.recording.insert_events`` (which uses COPY on PostgreSQL)."""
    for index in range(count):
        user_id, user_name = actors[index % len(actors)]
        yield {
            "uuid": uuid.uuid4(),
            "created_at": start + dt.timedelta(seconds=index // TIES),
            "course_id": course_id,
            "account_id": account_id,
            "event_type": "updated",
            "event_source": "api",
            "event_data": {"name": [f"Course v{index}", f"Course v{index + 1}"]},
            "related_course_id": None,
            "user_id": user_id,
            "user_name": user_name,
            "page_view_id": None,
            "sis_batch_id": None,
        }


def load(events: int) -> tuple[Any, Any, Any, str]:
    """A root account, a sub-account with one course of ``events`` events, and a token of
    a user who may see them. Returns (root, sub-account, course, token)."""
    from django.db import transaction

    from course_audit import services
    from course_audit.models import Account, AccountMembership, ApiToken, Role

    stamp = uuid.uuid4().hex[:8]

    with transaction.atomic():
        root = Account.objects.create(name=f"Bench University {stamp}")
        sub = Account.objects.create(name="Bench College", parent=root)
        course = services.course_create(account=sub, name="Bench 101")
        role = Role.objects.create(name=f"Bench auditor {stamp}", view_course_changes=True)
        auditor = make_user(f"auditor-{stamp}")
        AccountMembership.objects.create(user=auditor, account=root, role=role)
        actors = [
            (user.pk, user.get_username())
            for user in (make_user(f"actor{index}-{stamp}") for index in range(ACTORS))
        ]
        _, token = ApiToken.issue(user=auditor, name="bench")

    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=events // TIES + 60)
    rows = event_rows(course.pk, sub.pk, actors, events, start)
    insert_events(rows)
    return root, sub, course, token


def deep_token(path: str, course: Any, depth: int) -> tuple[str, str]:
    """The page token after ``depth`` events of the listing, and the uuid that follows."""
    from course_audit.api.pagination import Cursor
    from course_audit.models import CourseEvent

    ordered = CourseEvent.objects.filter(course=course).order_by("-created_at", "-id")
    last = ordered[depth - 1]
    return Cursor(path.rstrip("/")).encode(last.created_at, last.pk), str(ordered[depth].uuid)


class Case:
    """One figure: a listing at a page size and depth, checked, then timed."""

    def __init__(self, listing: Listing, per_page: int, depth: int, course: Any, token: str):
        from django.test import Client

        self.listing, self.per_page, self.depth = listing, per_page, depth
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.params = {**listing.params, "per_page": str(per_page)}
        self.expected_first: str | None = None
        if depth:
            self.params["page"], self.expected_first = deep_token(listing.path, course, depth)
        self.timings: list[float] = []
        self.queries = 0

    def get(self) -> Any:
        response = self.client.get(self.listing.path, self.params, headers=self.headers)
        if response.status_code != 200:
            raise SystemExit(f"{self.listing.path} {self.params}: {response.status_code}")
        return response

    def check(self) -> None:
        """Verify the page, and count its queries (the token's first use is already past)."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            body = self.get().json()
        self.queries = len(captured)
        events = body["events"]
        if len(events) != self.per_page:
            raise SystemExit(f"{self.listing.name}: {len(events)} events, not {self.per_page}")
        if self.expected_first is not None and events[0]["id"] != self.expected_first:
            raise SystemExit(f"{self.listing.name}: the deep page starts at the wrong event")

    def time_one(self) -> None:
        started = time.perf_counter()
        self.get()
        self.timings.append((time.perf_counter() - started) * 1000)

    def result(self) -> Result:
        percentiles = statistics.quantiles(self.timings, n=100, method="inclusive")
        return Result(
            listing=self.listing.name,
            per_page=self.per_page,
            depth=self.depth,
            p50_ms=statistics.median(self.timings),
            p95_ms=percentiles[94],
            queries=self.queries,
        )


def measure(cases: list[Case], args: argparse.Namespace) -> list[Result]:
    """Warm up, check, then time the cases in turn, so that a burst of load on the machine
    falls on every figure alike."""
    for case in cases:
        for _ in range(args.warmup):
            case.get()
        case.check()
    for _ in range(args.repeat):
        for case in cases:
            case.time_one()
    return [case.result() for case in cases]


def print_table(results: list[Result]) -> None:
    """Queries are those of one request; a token's ``last_used_at`` write (at most once a
    minute) adds one now and then."""
    print(
        f"{'endpoint':<24} {'per_page':>8} {'depth':>8} {'p50 ms':>8} {'p95 ms':>8} {'queries':>7}"
    )
    for result in results:
        print(
            f"{result.listing:<24} {result.per_page:>8} {result.depth:>8,} "
            f"{result.p50_ms:>8.2f} {result.p95_ms:>8.2f} {result.queries:>7}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (see --help).")

    started = time.perf_counter()
    root, sub, course, token = load(args.events)
    print(
        f"Loaded {args.events:,} events into course {course.pk} in "
        f"{time.perf_counter() - started:.1f} s; PostgreSQL {server_version()}; "
        f"{args.repeat} timed requests per line after {args.warmup} untimed; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs."
    )
    listings = [
        Listing("course", f"/api/v1/audit/course/courses/{course.pk}", {}),
        Listing("account", f"/api/v1/audit/course/accounts/{sub.pk}", {}),
        Listing(
            "account+subaccounts",
            f"/api/v1/audit/course/accounts/{root.pk}",
            {"include_subaccounts": "true"},
        ),
    ]
    cases = [
        Case(listing, per_page, depth, course, token)
        for listing in listings
        for per_page in args.per_page
        for depth in (0, args.depth)
    ]
    print_table(measure(cases, args))


if __name__ == "__main__":
    main()
