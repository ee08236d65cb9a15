"""What the benchmark scripts share: Django set-up, scratch databases, loading rows with
COPY, users, timing.

The scripts run as modules from the repository's top folder
(``.venv/bin/python -m bench.<name>``), so ``bench``, ``course_audit`` and
``auditlog_project`` are all importable by their names.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CHUNK = 50_000
ROOT = Path(__file__).resolve().parent.parent


def setup_django(settings: str = "auditlog_project.settings") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings)
    # DEBUG keeps every query in memory; production does not.
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def require_postgresql() -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (see --help).")


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """Drop the database ``url`` names (and, unless ``drop_only``, create it empty).

    Only a name with ``bench`` in it is accepted: this is for scratch databases, and a
    mistyped ``BENCH_DATABASE_URL`` must not drop anything else.
    """
    import psycopg
    from psycopg import sql

    name = database_name(url)
    if "bench" not in name:
        raise SystemExit(f"Refusing to recreate {name!r}: a scratch database's name has 'bench'.")
    maintenance = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


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


def percentile(timings: Sequence[float], share: int) -> float:
    """The ``share``-th percentile (inclusive method); the value itself for one timing."""
    if len(timings) == 1:
        return timings[0]
    return statistics.quantiles(timings, n=100, method="inclusive")[share - 1]


@dataclasses.dataclass
class Timed:
    """A call timed again and again: at most ``repeat`` times and, past its first timing,
    for at most ``max_seconds`` in all (a slow baseline gets fewer timings, not more time)."""

    name: str
    call: Callable[[], Any]
    repeat: int
    max_seconds: float = math.inf
    timings: list[float] = dataclasses.field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.timings) >= self.repeat or sum(self.timings) >= self.max_seconds * 1000

    def summary(self) -> dict[str, float | int]:
        return {
            "p50_ms": statistics.median(self.timings),
            "p95_ms": percentile(self.timings, 95),
            "max_ms": max(self.timings),
            "n": len(self.timings),
        }


def measure_in_rounds(cases: Sequence[Timed], *, warmup: int) -> None:
    """Warm each case up, then time them in turn, a round at a time, so that a burst of
    load on the machine falls on every figure alike."""
    for case in cases:
        for _ in range(warmup):
            case.call()
    while pending := [case for case in cases if not case.done]:
        for case in pending:
            elapsed, _ = time_ms(case.call)
            case.timings.append(elapsed)
