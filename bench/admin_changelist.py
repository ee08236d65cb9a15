"""Server time of the admin's course-event changelist on PostgreSQL, shallow and deep.

Loads ``--events`` events (default 1,500,000) spread over ``--courses`` new courses with
``COPY`` (skip with ``--no-load`` to reuse what an earlier run left), then times requests
made in-process with Django's test ``Client`` as a superuser: the first page, a deep page
(``?p=``, which the admin turns into ``OFFSET``), a type filter, a source filter and a
search by course code. It prints the median and worst time and the SQL queries of each.

It adds its data to the database and leaves it there: use a scratch database::

    createdb -h 127.0.0.1 -U postgres course_audit_bench
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/course_audit_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python bench/admin_changelist.py
    dropdb -h 127.0.0.1 -U postgres course_audit_bench
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

CHUNK = 50_000
ACTORS = 50
# Roughly how often each type occurs: field changes dominate, copies and resets are rare.
TYPE_WEIGHTS = {
    "updated": 700,
    "published": 80,
    "unpublished": 40,
    "created": 60,
    "concluded": 50,
    "unconcluded": 10,
    "deleted": 30,
    "restored": 10,
    "copied_from": 5,
    "copied_to": 5,
    "reset_from": 1,
    "reset_to": 1,
}
SOURCE_WEIGHTS = {"sis": 80, "api": 15, "manual": 5}


@dataclasses.dataclass(frozen=True)
class Result:
    case: str
    median_ms: float
    max_ms: float
    queries: int
    slowest_sql_ms: float


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_500_000, help="events to load")
    parser.add_argument("--courses", type=int, default=3_000, help="courses to spread them on")
    parser.add_argument("--no-load", action="store_true", help="time the data already there")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per figure")
    parser.add_argument("--deep-page", type=int, default=1_000, help="the deep page's ?p=")
    return parser.parse_args(argv)


def setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auditlog_project.settings")
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def event_rows(
    courses: list[tuple[int, int]], actors: list[tuple[int, str]], count: int, start: dt.datetime
) -> Iterator[dict[str, Any]]:
    """Rows for ``course_audit.recording.insert_events`` (which uses COPY on PostgreSQL)."""
    rng = random.Random(4)
    types = rng.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()), k=count)
    sources = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()), k=count)
    for index in range(count):
        course_id, account_id = courses[rng.randrange(len(courses))]
        user_id, user_name = actors[index % len(actors)]
        yield {
            "uuid": uuid.uuid4(),
            "created_at": start + dt.timedelta(seconds=index),
            "course_id": course_id,
            "account_id": account_id,
            "event_type": types[index],
            "event_source": sources[index],
            "event_data": {"name": [f"Course v{index}", f"Course v{index + 1}"]},
            "related_course_id": None,
            "user_id": user_id,
            "user_name": user_name,
            "page_view_id": None,
            "sis_batch_id": None,
        }


def load(events: int, course_count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import DEFAULT_DB_ALIAS, connection, transaction

    from course_audit import recording
    from course_audit.models import Account, Course, CourseEvent

    stamp = uuid.uuid4().hex[:8]
    user_model = get_user_model()
    username_field = user_model.USERNAME_FIELD
    with transaction.atomic():
        users = [
            user_model._default_manager.create_user(
                **{username_field: f"actor{index}-{stamp}@example.edu"}
            )
            for index in range(ACTORS)
        ]
        root = Account.objects.create(name=f"Bench University {stamp}")
        accounts = [
            Account.objects.create(name=f"Bench College {index}", parent=root)
            for index in range(20)
        ]
        # bulk_create records a ``created`` event per course, like any other write path.
        created = Course.objects.bulk_create(
            Course(
                account=accounts[index % len(accounts)],
                root_account=root,
                name=f"Bench course {stamp} {index}",
                course_code=f"B{stamp}-{index}",
                sis_course_id=f"SIS-{stamp}-{index}",
            )
            for index in range(course_count)
        )
    courses = [(course.pk, course.account_id) for course in created]
    actors = [(user.pk, user.get_username()) for user in users]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=events + 60)
    rows = event_rows(courses, actors, events, start)
    while chunk := list(itertools.islice(rows, CHUNK)):
        with transaction.atomic():
            recording.insert_events(chunk, DEFAULT_DB_ALIAS)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(CourseEvent._meta.db_table)}")


def superuser() -> Any:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    username_field = user_model.USERNAME_FIELD
    name = "bench-admin@example.edu" if username_field == "email" else "bench-admin"
    user = user_model._default_manager.filter(**{username_field: name}).first()
    if user is None:
        user = user_model._default_manager.create_superuser(
            **{username_field: name, "password": "bench"}
        )
    return user


def measure(name: str, client: Any, params: dict[str, str], repeat: int) -> Result:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    url = reverse("admin:course_audit_courseevent_changelist")
    timings: list[float] = []
    queries: list[dict[str, Any]] = []
    for _ in range(repeat + 1):  # the first request warms caches and is not counted
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, params)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code}")
        timings.append(elapsed)
        queries = captured.captured_queries
    slowest = max(float(query["time"]) for query in queries) * 1000
    timings = timings[1:]
    return Result(name, statistics.median(timings), max(timings), len(queries), slowest)


def print_table(results: list[Result]) -> None:
    print(f"{'case':<38} {'median ms':>10} {'max ms':>10} {'queries':>8} {'slowest SQL ms':>15}")
    for result in results:
        print(
            f"{result.case:<38} {result.median_ms:>10.1f} {result.max_ms:>10.1f} "
            f"{result.queries:>8} {result.slowest_sql_ms:>15.1f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from course_audit.models import Course

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (see --help).")
    if not args.no_load:
        started = time.perf_counter()
        load(args.events, args.courses)
        print(f"Loaded {args.events:,} events in {time.perf_counter() - started:.1f} s.")
    client = Client()
    client.force_login(superuser())
    course = Course.objects.order_by("-id").first()
    user_model = get_user_model()
    actor = (
        user_model._default_manager.filter(
            **{f"{user_model.USERNAME_FIELD}__startswith": "actor7-"}
        )
        .order_by("-pk")
        .first()
    )
    assert course is not None and actor is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM course_audit_courseevent")
        [(total,)] = cursor.fetchall()
    print(
        f"{total:,} events; {args.repeat} timed requests per line after one untimed; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs."
    )
    cases = {
        "first page": {},
        f"page {args.deep_page}": {"p": str(args.deep_page)},
        "event_type=reset_to (rare)": {"event_type__exact": "reset_to"},
        "event_type=updated": {"event_type__exact": "updated"},
        "event_source=manual": {"event_source__exact": "manual"},
        "search course code": {"q": course.course_code},
        "search actor": {"q": actor.get_username()},
        "search 'Bench course' (200 courses)": {"q": "Bench course"},
        "course filter (course link)": {"course__id__exact": str(course.pk)},
    }
    results = [measure(name, client, params, args.repeat) for name, params in cases.items()]
    print_table(results)


if __name__ == "__main__":
    main()
