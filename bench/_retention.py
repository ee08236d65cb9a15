"""Retention: dropping a month of events against a ``DELETE`` of the same rows.

Needs the app's monthly partitions (``course_audit.partitions``); without them the
section says so and measures nothing. With them, the oldest month of the data is the
one to go: its rows are first copied into a plain table with the same indexes (the
event table itself refuses a DELETE), the copy's rows are deleted (and the table
vacuumed, which a DELETE leaves to do), then the month is pruned with
``archives.prune``, timed: its archive written, read back and checked, then its partition
dropped.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from django.test import override_settings

from bench import _data
from bench._report import TIMES, Section, number, table

COPY_TABLE = "bench_retention_delete"


def measure(run: Any) -> Section:
    partitions = _data.partitions_module()
    section = Section("retention", "Retention", "")
    if partitions is None:
        section.intro = (
            "Skipped: the event table is not partitioned by month (it is, on PostgreSQL, "
            "from migration 0004 on), so there is no month to drop."
        )
        return section
    keep_months, month = oldest_month(partitions)
    delete_seconds, vacuum_seconds, deleted = delete_copy(month)
    from course_audit import archives

    with (
        tempfile.TemporaryDirectory(prefix="bench-archives-") as store,
        override_settings(COURSE_AUDIT_DIGEST_DIR=store),
    ):
        started = time.perf_counter()
        outcome = archives.prune(keep_months=keep_months)
        drop_seconds = time.perf_counter() - started
    dropped = [part for part, _ in outcome.dropped]
    if outcome.refused:
        raise SystemExit(f"retention: prune kept {outcome.refused}")
    if [info.name for info in dropped] != [month.name]:
        raise SystemExit(f"retention: prune dropped {dropped}, not only {month.name}")
    section.raw = {
        "partition": month.name,
        "rows": deleted,
        "drop_seconds": drop_seconds,
        "delete_seconds": delete_seconds,
        "vacuum_seconds": vacuum_seconds,
    }
    section.intro = (
        f"The oldest month ({month.start:%Y-%m}, {deleted:,} events): `archives.prune"
        f"(keep_months={keep_months})` archiving it (written, read back and checked) and "
        "dropping its partition, against a `DELETE` of the same "
        "rows from a copy of them in a plain table with the same indexes, committed, and the "
        "`VACUUM` that the deleted rows then need. No target: the figure is the ratio."
    )
    section.details.append(
        table(
            ["what", "seconds", "÷ drop"],
            [
                ["archive and drop the month", round(drop_seconds, 3), 1],
                ["DELETE its rows", round(delete_seconds, 3), _ratio(delete_seconds, drop_seconds)],
                [
                    "DELETE and VACUUM",
                    round(delete_seconds + vacuum_seconds, 3),
                    _ratio(delete_seconds + vacuum_seconds, drop_seconds),
                ],
            ],
        )
    )
    return section


def _ratio(value: float, base: float) -> str:
    return f"{number(value / base)}{TIMES}" if base else "—"


def oldest_month(partitions: Any) -> tuple[int, Any]:
    """The largest ``keep_months`` that prunes something, and the one month it prunes."""
    for keep_months in range(_data.MONTHS + 1, 0, -1):
        candidates = partitions.expired_partitions(
            "default", partitions.retention_cutoff(keep_months)
        )
        if candidates:
            if len(candidates) != 1:
                raise SystemExit(f"retention: the oldest months are {candidates}, not one")
            return keep_months, candidates[0]
    raise SystemExit("retention: no month of the data would be pruned")


def delete_copy(month: Any) -> tuple[float, float, int]:
    """Copy the partition's rows into a plain table with its indexes, then time a DELETE
    of them and the VACUUM after it; the copy is dropped. Returns (delete s, vacuum s, rows)."""
    from django.db import connection, transaction

    qn = connection.ops.quote_name
    copy, source = qn(COPY_TABLE), qn(month.name)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {copy}")
        cursor.execute(f"CREATE TABLE {copy} (LIKE {source} INCLUDING DEFAULTS INCLUDING INDEXES)")
        cursor.execute(f"INSERT INTO {copy} SELECT * FROM {source}")
        cursor.execute(f"VACUUM ANALYZE {copy}")
        started = time.perf_counter()
        with transaction.atomic():
            cursor.execute(
                f"DELETE FROM {copy} WHERE created_at >= %s AND created_at < %s",
                [month.start, month.end],
            )
            deleted = cursor.rowcount
        delete_seconds = time.perf_counter() - started
        started = time.perf_counter()
        cursor.execute(f"VACUUM {copy}")
        vacuum_seconds = time.perf_counter() - started
        cursor.execute(f"DROP TABLE {copy}")
    return delete_seconds, vacuum_seconds, deleted
