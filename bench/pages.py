"""Server time of the registrar's history pages and the admin's course-event changelist,
first page and deep, on the events already in a PostgreSQL database.

Meant for the demo with many events (``seed_demo --events 10000000``), though any data
will do (``scripts/bench`` times the first and deep pages on its own data with the same
cases). Requests are made in-process with Django's test ``Client`` (no network, no
server: the figure is the view's own time, with its SQL), logged in as a superuser. A deep
page is what a reader holds after following "Older" that many events: its position is
built with the pages' own ``Cursor``, and the script checks the page starts at the right
event. It prints median, p95 and worst time, and the SQL queries of one request::

    createdb -h 127.0.0.1 -U postgres course_audit_10m
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/course_audit_10m
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py seed_demo --events 10000000
    .venv/bin/python -m bench.pages
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from bench._common import (
    Timed,
    get_or_make_superuser,
    machine_note,
    measure_in_rounds,
    require_postgresql,
    setup_django,
)


@dataclasses.dataclass
class Case:
    name: str
    url: str
    params: dict[str, str]
    first: str | None = None  # the uuid (pages) or pk (admin) the page must start with
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


def busiest_course() -> tuple[int, int]:
    """The course with the most events, and how many it has."""
    from django.db.models import Count

    from course_audit.models import CourseEvent

    busiest = CourseEvent.objects.values("course_id").annotate(n=Count("id")).order_by("-n").first()
    if busiest is None:
        raise SystemExit("No events: run seed_demo --events N first.")
    return busiest["course_id"], busiest["n"]


def history_cases(course_id: int, depth: int) -> list[Case]:
    """A course's history page: the first page, and the page ``depth`` events in."""
    from django.urls import reverse

    from course_audit.models import CourseEvent
    from course_audit.pagination import Cursor

    history = reverse("course_audit:course_history", args=[course_id])
    previous, first = position(CourseEvent.objects.filter(course_id=course_id), depth)
    deep = Cursor(history.rstrip("/")).encode(previous.created_at, previous.pk)
    return [
        Case("history: first page", history, {}),
        Case(f"history: {depth:,} events deep", history, {"after": deep}, str(first.uuid)),
    ]


def admin_cases(depth: int) -> list[Case]:
    """The admin's course-event changelist: the first page, and the page ``depth`` in."""
    from django.urls import reverse

    from course_audit.models import CourseEvent
    from course_audit.pagination import Cursor

    changelist = reverse("admin:course_audit_courseevent_changelist")
    previous, first = position(CourseEvent.objects.all(), depth)
    deep = Cursor(f"admin:{changelist.rstrip('/')}").encode(previous.created_at, previous.pk)
    return [
        Case("admin: first page", changelist, {}),
        Case(f"admin: {depth:,} events deep", changelist, {"after": deep}, str(first.pk)),
    ]


def filter_cases(course_id: int, root_id: int) -> list[Case]:
    """Filtered pages: a type, a month, a subtree, the admin's filters and search."""
    from django.urls import reverse

    from course_audit.models import Course, CourseEvent

    history = reverse("course_audit:course_history", args=[course_id])
    newest = CourseEvent.objects.filter(course_id=course_id).order_by("-created_at").first()
    assert newest is not None
    month = {
        "start_time": newest.created_at.replace(day=1).date().isoformat(),
        "end_time": newest.created_at.date().isoformat(),
    }
    account = reverse("course_audit:account_history", args=[root_id])
    changelist = reverse("admin:course_audit_courseevent_changelist")
    code = Course.objects.values_list("course_code", flat=True).get(pk=course_id)
    return [
        Case("history: type=updated", history, {"event_type": "updated"}),
        Case("history: one month", history, month),
        Case("account+subaccounts: first page", account, {"include_subaccounts": "on"}),
        Case("admin: type=reset_to (rare)", changelist, {"event_type__exact": "reset_to"}),
        Case("admin: source=manual", changelist, {"event_source__exact": "manual"}),
        Case("admin: search a course code", changelist, {"q": code}),
    ]


def export_cases(course_id: int, root_id: int) -> list[Case]:
    """The CSV exports: an account with its sub-accounts, and one course."""
    from django.urls import reverse

    account = reverse("course_audit:account_export", args=[root_id])
    course = reverse("course_audit:course_export", args=[course_id])
    return [
        Case("export: root account + sub-accounts", account, {"include_subaccounts": "1"}),
        Case("export: one course", course, {}),
    ]


def export_rate(case: Case, client: Any, *, rows: int) -> dict[str, float]:
    """Stream the export ``case`` (CSV) as a client reads it, up to ``rows`` rows: its rows,
    seconds, rows per second, and the process's peak resident memory after it."""
    import resource
    import time

    started = time.perf_counter()
    response = client.get(case.url, {**case.params, "format": "csv"})
    if response.status_code != 200:
        raise SystemExit(f"{case.name}: HTTP {response.status_code}")
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        if lines > rows:
            break
    seconds = time.perf_counter() - started
    response.close()
    read = min(lines - 1, rows)  # less the header row
    return {
        "rows": read,
        "seconds": seconds,
        "rows_per_second": read / seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def check(case: Case, html: str) -> None:
    if case.first is None:
        return
    if "admin" in case.name:
        found = re.search(r"/courseevent/(\d+)/change/", html)
    else:
        found = re.search(r'data-event="([0-9a-f-]+)"', html)
    if not found or found.group(1) != case.first:
        raise SystemExit(f"{case.name}: the page does not start at the expected event")


def timed(case: Case, client: Any, *, repeat: int) -> Timed:
    """Check the page and count its queries once; then a ``Timed`` of the request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def get() -> Any:
        response = client.get(case.url, case.params)
        if response.status_code != 200:
            raise SystemExit(f"{case.name}: HTTP {response.status_code}")
        return response

    get()  # the first request of a page fills caches the others find full
    with CaptureQueriesContext(connection) as captured:
        check(case, get().content.decode())
    case.queries = len(captured)
    return Timed(case.name, get, repeat)


def superuser_client() -> Any:
    from django.test import Client

    client = Client()
    client.force_login(get_or_make_superuser())
    return client


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_django()
    from django.db.models import Count

    from course_audit.models import Account, CourseEvent

    require_postgresql()
    course_id, course_events = busiest_course()
    total = CourseEvent.objects.aggregate(n=Count("id"))["n"]
    root = Account.objects.filter(parent__isnull=True).order_by("pk").first()
    assert root is not None
    cases = [
        *history_cases(course_id, min(args.course_depth, course_events - 26)),
        *admin_cases(min(args.admin_depth, total - 101)),
        *filter_cases(course_id, root.pk),
    ]
    print(
        f"{total:,} events; course {course_id} has {course_events:,}; "
        f"{args.repeat} timed requests per line after {args.warmup} untimed; {machine_note()}."
    )
    client = superuser_client()
    figures = [timed(case, client, repeat=args.repeat) for case in cases]
    measure_in_rounds(figures, warmup=args.warmup)
    print(f"{'case':<40} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    for case, figure in zip(cases, figures, strict=True):
        summary = figure.summary()
        print(
            f"{case.name:<40} {summary['p50_ms']:>10.1f} {summary['p95_ms']:>8.1f} "
            f"{summary['max_ms']:>8.1f} {case.queries:>8}"
        )


if __name__ == "__main__":
    main()
