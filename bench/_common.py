"""What the benchmark scripts share: Django set-up, loading rows with COPY, users, timing.

The scripts run from the repository's top folder (``.venv/bin/python bench/<name>.py``);
Python puts ``bench/`` on the path, so they import this as ``_common``.
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CHUNK = 50_000


def setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auditlog_project.settings")
    # DEBUG keeps every query in memory; production does not.
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def require_postgresql() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (see --help).")


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        [(version,)] = cursor.fetchall()
    return str(version)


def machine_note() -> str:
    return (
        f"PostgreSQL {server_version()}; load average {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs"
    )


def insert_events(rows: Iterable[dict[str, Any]], *, analyze: bool = True) -> None:
    """Rows for ``course_audit.recording.insert_events`` (COPY on PostgreSQL), in chunks of
    ``CHUNK`` per transaction; then the table's statistics are brought up to date."""
    from django.db import DEFAULT_DB_ALIAS, connection, transaction

    from course_audit import recording
    from course_audit.models import CourseEvent

    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        with transaction.atomic():
            recording.insert_events(chunk, DEFAULT_DB_ALIAS)
    if analyze:
        table = connection.ops.quote_name(CourseEvent._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {table}")


def make_user(name: str, **extra: Any) -> Any:
    """A user of the project's user model, whatever its login field is called."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    value = f"{name}@example.edu" if field == "email" else name
    return user_model._default_manager.create_user(**{field: value}, **extra)


def get_or_make_superuser(name: str = "bench-admin") -> Any:
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    value = f"{name}@example.edu" if field == "email" else name
    user = user_model._default_manager.filter(**{field: value}).first()
    if user is None:
        user = user_model._default_manager.create_superuser(**{field: value, "password": "bench"})
    return user


def time_ms(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def percentile(timings: list[float], share: int) -> float:
    """The ``share``-th percentile (inclusive method); the value itself for one timing."""
    if len(timings) == 1:
        return timings[0]
    return statistics.quantiles(timings, n=100, method="inclusive")[share - 1]
