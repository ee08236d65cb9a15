"""The benchmark's retention section (bench/_retention.py) on the app's real month
partitions: it finds the oldest month, times a DELETE of a copy of its rows, drops the
month through ``archives.prune`` and cleans up after itself."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from bench import _data, _retention
from course_audit import partitions, services
from course_audit.context import audit_context
from course_audit.models import CourseEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),  # VACUUM cannot run inside a transaction
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark needs PostgreSQL"),
]


def months_ago(months: int, day: int = 1) -> dt.datetime:
    this_month = partitions.month_start(timezone.now())
    return partitions.add_months(this_month, -months).replace(day=day)


@pytest.fixture
def old_months(course: Any) -> Iterator[dict[int, int]]:
    """Partitions back to ``_data.MONTHS + 1`` months ago, with events in the oldest two."""
    oldest = _data.MONTHS + 1
    partitions.ensure_partitions(start=months_ago(oldest))
    rows = {oldest: 3, oldest - 1: 2}
    for ago, count in rows.items():
        for day in range(1, count + 1):
            with audit_context(occurred_at=months_ago(ago, day + 10)):
                services.course_update(course=course, name=f"{ago} months ago, {day}")
    yield rows
    # Leave the partitions as migrate made them: this month and the ones ahead.
    this_month = partitions.month_start(timezone.now())
    with connection.cursor() as cursor:
        for part in partitions.list_partitions():
            if part.start is not None and part.start < this_month:
                cursor.execute(f"DROP TABLE {part.name}")


def test_the_oldest_month_is_dropped_and_timed_against_a_delete(old_months: dict[int, int]):
    oldest = _data.MONTHS + 1
    name = partitions.month_partition_name(months_ago(oldest))
    section = _retention.measure(types.SimpleNamespace())

    assert section.raw["partition"] == name
    assert section.raw["rows"] == old_months[oldest]
    assert section.raw["drop_seconds"] > 0 and section.raw["delete_seconds"] > 0
    assert f"{months_ago(oldest):%Y-%m}" in section.intro
    assert "| DELETE its rows |" in section.details[0]
    assert name not in [part.name for part in partitions.list_partitions()]
    # The next month is untouched, and so is every row outside the dropped month.
    assert CourseEvent.objects.filter(created_at__lt=months_ago(oldest - 1)).count() == 0
    assert (
        CourseEvent.objects.filter(
            created_at__gte=months_ago(oldest - 1), created_at__lt=months_ago(oldest - 2)
        ).count()
        == old_months[oldest - 1]
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [_retention.COPY_TABLE])
        assert cursor.fetchone()[0] is None


def test_without_partitions_the_section_says_it_was_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_data, "partitions_module", lambda: None)
    section = _retention.measure(types.SimpleNamespace())
    assert section.intro.startswith("Skipped")
    assert section.raw is None and not section.checks
