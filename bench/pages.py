"""Server time of the registrar's history pages and the admin's course-event changelist,
first page and deep, on the events already in a PostgreSQL database.

Meant for the demo with many events (``seed_demo --events 10000000``), though any data
will do. Requests are made in-process with Django's test ``Client`` (no network, no
server: the figure is the view's own time, with its SQL), logged in as a superuser. A deep
page is what a reader holds after following "Older" that many events: its position is
built with the pages' own ``Cursor``, and the script checks the page starts at the right
event. It prints median, p95 and worst time, and the SQL queries of one request::

    createdb -h 127.0.0.1 -U postgres course_audit_10m
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/course_audit_10m
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_demo --events 10000000
    .venv/bin/python bench/pages.py
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
from collections.abc import Sequence
from typing import Any

from _common import (
    get_or_make_superuser,
    machine_note,
    percentile,
    require_postgresql,
    setup_django,
    time_ms,
)


@dataclasses.dataclass
class Case:
    name: str
    url: str
    params: dict[str, str]
    first: str | None = None  # the uuid (pages) or pk (admin) the page must start with
    timings: list[float] = dataclasses.field(default_factory=list)
    queries: int = 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per figure")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument(
        "--course-depth", type=int, default=100_000, help="events before the deep history page"
    )
    parser.add_argument(
        "--admin-depth", type=int, default=5_000_000, help="events before the deep admin page"
    )
    return parser.parse_args(argv)


def position(queryset: Any, depth: int) -> tuple[Any, Any]:
    """The event at ``depth`` (0-based) of a newest-first listing, and the one before it."""
    ordered = queryset.order_by("-created_at", "-id")
    before, at = list(ordered[depth - 1 : depth + 1])
    return before, at


def cases(args: argparse.Namespace) -> list[Case]:
    from django.db.models import Count
    from django.urls import reverse

    from course_audit.api.pagination import Cursor
    from course_audit.models import Account, CourseEvent

    busiest = CourseEvent.objects.values("course_id").annotate(n=Count("id")).order_by("-n").first()
    if busiest is None:
        raise SystemExit("No events: run seed_demo --events N first.")
    course_id, course_events = busiest["course_id"], busiest["n"]
    history = reverse("course_audit_course_history", args=[course_id])
    depth = min(args.course_depth, course_events - 26)
    previous, first = position(CourseEvent.objects.filter(course_id=course_id), depth)
    deep = Cursor(history.rstrip("/")).encode(previous.created_at, previous.pk)
    month_end = first.created_at
    month = {
        "start_time": (month_end.replace(day=1)).date().isoformat(),
        "end_time": month_end.date().isoformat(),
    }

    root = Account.objects.filter(parent__isnull=True).order_by("pk").first()
    assert root is not None
    account = reverse("course_audit_account_history", args=[root.pk])

    changelist = reverse("admin:course_audit_courseevent_changelist")
    total = CourseEvent.objects.count()
    admin_depth = min(args.admin_depth, total - 101)
    admin_previous, admin_first = position(CourseEvent.objects.all(), admin_depth)
    admin_deep = Cursor(f"admin:{changelist.rstrip('/')}").encode(
        admin_previous.created_at, admin_previous.pk
    )
    print(
        f"{total:,} events; course {course_id} has {course_events:,}; "
        f"{args.repeat} timed requests per line after {args.warmup} untimed; {machine_note()}."
    )
    return [
        Case("history: first page", history, {}),
        Case(f"history: {depth:,} events deep", history, {"after": deep}, str(first.uuid)),
        Case("history: type=updated", history, {"event_type": "updated"}),
        Case("history: one month", history, month),
        Case("account+subaccounts: first page", account, {"include_subaccounts": "on"}),
        Case("admin: first page", changelist, {}),
        Case(
            f"admin: {admin_depth:,} events deep",
            changelist,
            {"after": admin_deep},
            str(admin_first.pk),
        ),
        Case("admin: type=reset_to (rare)", changelist, {"event_type__exact": "reset_to"}),
        Case("admin: source=manual", changelist, {"event_source__exact": "manual"}),
        Case("admin: search a course code", changelist, {"q": first.course.course_code}),
    ]


def check(case: Case, html: str) -> None:
    if case.first is None:
        return
    if "admin" in case.name:
        found = re.search(r"/courseevent/(\d+)/change/", html)
    else:
        found = re.search(r'data-event="([0-9a-f-]+)"', html)
    if not found or found.group(1) != case.first:
        raise SystemExit(f"{case.name}: the page does not start at the expected event")


def run(case: Case, client: Any, args: argparse.Namespace) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for index in range(args.warmup + args.repeat):
        with CaptureQueriesContext(connection) as captured:
            elapsed, response = time_ms(lambda: client.get(case.url, case.params))
        if response.status_code != 200:
            raise SystemExit(f"{case.name}: HTTP {response.status_code}")
        if index == 0:
            check(case, response.content.decode())
        if index >= args.warmup:
            case.timings.append(elapsed)
        case.queries = len(captured)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_django()
    from django.test import Client

    require_postgresql()
    client = Client()
    client.force_login(get_or_make_superuser())
    selected = cases(args)
    print(f"{'case':<40} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    for case in selected:
        run(case, client, args)
        print(
            f"{case.name:<40} {statistics.median(case.timings):>10.1f} "
            f"{percentile(case.timings, 95):>8.1f} {max(case.timings):>8.1f} {case.queries:>8}"
        )


if __name__ == "__main__":
    main()
