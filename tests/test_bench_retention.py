"""The benchmark's retention section (bench/_retention.py) against a stand-in for the
app's ``course_audit.partitions``: it finds the oldest month, times a DELETE of a copy of
its rows, drops the month through ``prune`` and cleans up after itself."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
from typing import Any

import _data
import _retention
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db(transaction=True),  # VACUUM cannot run inside a transaction
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark needs PostgreSQL"),
]

MONTH = "bench_fake_month"


@dataclasses.dataclass(frozen=True)
class PartitionInfo:
    name: str
    start: dt.date
    end: dt.date
    rows: int


class FakePartitions:
    """Prunes one plain table, the "oldest month", once ``keep_months`` is 3 or less."""

    def __init__(self) -> None:
        self.pruned: list[tuple[int, bool]] = []

    def prune(self, *, keep_months: int, dry_run: bool = False) -> list[PartitionInfo]:
        self.pruned.append((keep_months, dry_run))
        if keep_months > 3 or not table_exists(MONTH):
            return []
        info = PartitionInfo(MONTH, dt.date(2025, 1, 1), dt.date(2025, 2, 1), 40)
        if not dry_run:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE {MONTH}")
        return [info]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        [(found,)] = cursor.fetchall()
    return found is not None


@pytest.fixture
def partitions(monkeypatch: pytest.MonkeyPatch) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {MONTH} (LIKE course_audit_courseevent INCLUDING DEFAULTS "
            "INCLUDING INDEXES)"
        )
        cursor.execute(
            f"INSERT INTO {MONTH} (id, uuid, created_at, course_id, account_id, event_type, "
            "event_source, event_data, user_name) SELECT n, gen_random_uuid(), "
            "'2025-01-01'::timestamptz + n * interval '1 hour', 1, 1, 'updated', 'api', "
            "'{}', '' FROM generate_series(0, 39) AS n"
        )
    fake = FakePartitions()
    monkeypatch.setattr(_data, "partitions_module", lambda: fake)
    yield fake
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MONTH}")


def test_the_oldest_month_is_dropped_and_timed_against_a_delete(partitions: Any) -> None:
    section = _retention.measure(types.SimpleNamespace())

    assert section.raw["partition"] == MONTH
    assert section.raw["rows"] == 40
    assert section.raw["drop_seconds"] > 0 and section.raw["delete_seconds"] > 0
    assert "2025-01" in section.intro and "keep_months=3" in section.intro
    assert "| DELETE its rows |" in section.details[0]
    # Dry runs from 19 months down to the first that prunes something, then the real one.
    assert partitions.pruned[-2:] == [(3, True), (3, False)]
    assert partitions.pruned[0] == (_data.MONTHS + 1, True)
    assert not table_exists(MONTH)
    assert not table_exists(_retention.COPY_TABLE)


def test_without_partitions_the_section_says_it_was_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_data, "partitions_module", lambda: None)
    section = _retention.measure(types.SimpleNamespace())
    assert section.intro.startswith("Skipped")
    assert section.raw is None and not section.checks
