"""Monthly partitions of the course events table on PostgreSQL, and retention by month.

Migration 0004 makes ``course_audit_courseevent`` a table partitioned by range on
``created_at`` (its primary key in the database is ``(id, created_at)``; the model's is
still ``id``). Each calendar month (UTC) has a partition named ``<table>_pYYYYMM``; a
default partition, ``<table>_default``, takes any row no month partition covers, so an
insert never fails for want of one. A site that had events before the migration keeps
them in ``<table>_legacy``, covering everything up to the month the migration ran in.

``ensure_partitions`` makes the months ahead (``migrate`` and the ``course_audit_partitions``
command call it); ``drop_partition`` detaches and drops a whole month past retention, once
``course_audit.archives.prune`` has archived it. Triggers made
by the migration reject ``UPDATE``, ``DELETE`` and ``TRUNCATE`` of events; dropping a
partition fires none of them, so retention is the one way rows leave the table.

On any other database the table is a plain one and these functions do nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

TABLE = "course_audit_courseevent"
DEFAULT_PARTITION = f"{TABLE}_default"
LEGACY_PARTITION = f"{TABLE}_legacy"
# Months made ahead of the current one, so inserts never reach the default partition.
MONTHS_AHEAD = 3
# How long a partition change waits for a lock before it gives up (it retries next run)
# rather than queueing every read of the table behind it.
LOCK_TIMEOUT = "5s"
GUARD_FUNCTION = "course_audit_courseevent_append_only"
TRUNCATE_TRIGGER = "course_audit_evt_no_truncate"

_BOUND = re.compile(r"FROM \((?P<start>MINVALUE|'[^']+')\) TO \((?P<end>MAXVALUE|'[^']+')\)")


@dataclasses.dataclass(frozen=True)
class PartitionInfo:
    """One partition: its range (``None`` for an open end) and, when counted, its rows."""

    name: str
    start: dt.datetime | None
    end: dt.datetime | None
    is_default: bool = False
    rows: int | None = None

    def label(self) -> str:
        if self.is_default:
            return "default (anything no month covers)"
        start = f"{self.start:%Y-%m-%d}" if self.start else "the beginning"
        end = f"{self.end:%Y-%m-%d}" if self.end else "the end"
        return f"{start} to {end}"


def is_partitioned(using: str = "default") -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def month_start(moment: dt.datetime | dt.date) -> dt.datetime:
    """The first instant (UTC) of the month ``moment`` falls in."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC) if timezone.is_aware(moment) else moment
    return dt.datetime(moment.year, moment.month, 1, tzinfo=dt.UTC)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` moved by whole calendar months; a day past the month's end is clamped."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_month = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_month - dt.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def month_partition_name(start: dt.datetime) -> str:
    return f"{TABLE}_p{start:%Y%m}"


def _parse_bound(text: str) -> dt.datetime | None:
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return dt.datetime.fromisoformat(text.strip("'")).astimezone(dt.UTC)


def list_partitions(using: str = "default") -> list[PartitionInfo]:
    """The partitions, oldest first, the default one last (none for a plain table)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)"
            " FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " WHERE pg_inherits.inhparent = to_regclass(%s)",
            [TABLE],
        )
        found = cursor.fetchall()
    partitions = []
    for name, bound in found:
        if bound == "DEFAULT":
            partitions.append(PartitionInfo(name, None, None, is_default=True))
            continue
        match = _BOUND.search(bound)
        if match is None:  # not made by this module; leave it be
            continue
        partitions.append(
            PartitionInfo(name, _parse_bound(match["start"]), _parse_bound(match["end"]))
        )
    low = dt.datetime.min.replace(tzinfo=dt.UTC)
    partitions.sort(key=lambda part: (part.is_default, part.start or low))
    return partitions


def _count(connection: Any, name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
        return int(cursor.fetchone()[0])


def covered(partitions: list[PartitionInfo], start: dt.datetime, end: dt.datetime) -> bool:
    """Whether any month/legacy partition overlaps ``[start, end)``."""
    for part in partitions:
        if part.is_default:
            continue
        if (part.start is None or part.start < end) and (part.end is None or start < part.end):
            return True
    return False


def ensure_partitions(
    using: str = "default",
    *,
    start: dt.date | dt.datetime | None = None,
    months_ahead: int | None = None,
    now: dt.datetime | None = None,
) -> list[str]:
    """Make the month partitions from ``start``'s month (default: this month) to
    ``months_ahead`` months after this one (or to ``start``'s month, if later); returns
    the names made.

    Rows that already sit in the default partition for a new month are moved into it.
    """
    if not is_partitioned(using):
        return []
    ahead = MONTHS_AHEAD if months_ahead is None else months_ahead
    current = month_start(now or timezone.now())
    first = month_start(start) if start is not None else current
    last = max(add_months(current, ahead), first)
    made: list[str] = []
    connection = connections[using]
    with transaction.atomic(using=using):
        _prepare(connection)
        existing = list_partitions(using)
        month = first
        while month <= last:
            following = add_months(month, 1)
            if not covered(existing, month, following):
                _create_month(connection, month, following)
                made.append(month_partition_name(month))
            month = following
    return made


def _prepare(connection: Any) -> None:
    """Wait for locks no longer than ``LOCK_TIMEOUT``; check deferred constraints now, since
    PostgreSQL will not detach a table with checks pending (an enclosing transaction's)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _create_month(connection: Any, start: dt.datetime, end: dt.datetime) -> None:
    quote = connection.ops.quote_name
    name = month_partition_name(start)
    with connection.cursor() as cursor:
        _lock_referenced(cursor, TABLE)
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {quote(DEFAULT_PARTITION)}"
            " WHERE created_at >= %s AND created_at < %s)",
            [start, end],
        )
        strays = cursor.fetchone()[0]
        if strays:
            # PostgreSQL refuses a partition whose rows sit in the default one: take the
            # default out (its copies of the row triggers go with it), move the rows,
            # put it back.
            cursor.execute(
                f"ALTER TABLE {quote(TABLE)} DETACH PARTITION {quote(DEFAULT_PARTITION)}"
            )
        # DDL takes no parameters once a host binds them server-side: literals, of the
        # app's own month bounds.
        cursor.execute(
            f"CREATE TABLE {quote(name)} PARTITION OF {quote(TABLE)} "
            f"FOR VALUES FROM ({timestamp_literal(start)}) TO ({timestamp_literal(end)})"
        )
        guard_truncate(cursor, name, quote)
        if strays:
            cursor.execute(
                f"INSERT INTO {quote(name)} SELECT * FROM {quote(DEFAULT_PARTITION)}"
                " WHERE created_at >= %s AND created_at < %s",
                [start, end],
            )
            cursor.execute(
                f"DELETE FROM {quote(DEFAULT_PARTITION)}"
                " WHERE created_at >= %s AND created_at < %s",
                [start, end],
            )
            cursor.execute(
                f"ALTER TABLE {quote(TABLE)} ATTACH PARTITION {quote(DEFAULT_PARTITION)} DEFAULT"
            )


def _lock_referenced(cursor: Any, table: str) -> None:
    """Lock the tables the events' foreign keys reference before the events table itself.

    Making or dropping a partition takes the events table's lock first and then, for the
    partition's foreign keys, a ``SHARE ROW EXCLUSIVE`` lock on each referenced table
    (courses, accounts, ...). A writer does the opposite: it changes a course, then its
    trigger inserts the event. Taking the referenced tables first, in the writers' order,
    makes the partition change wait for them instead of deadlocking with them.
    """
    cursor.execute(
        "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint"
        " WHERE conrelid = to_regclass(%s) AND contype = 'f' ORDER BY 1",
        [table],
    )
    for (referenced,) in cursor.fetchall():
        cursor.execute(f"LOCK TABLE {referenced} IN SHARE ROW EXCLUSIVE MODE")


def timestamp_literal(value: dt.datetime) -> str:
    """An aware datetime as an SQL literal of ``timestamptz`` (for DDL, which takes no
    parameters when they are bound server-side)."""
    if value.tzinfo is None:
        raise ValueError("a partition bound must be an aware datetime")
    return f"'{value.isoformat()}'::timestamptz"


def guard_truncate(cursor: Any, table: str, quote: Any) -> None:
    """Reject ``TRUNCATE`` of one partition (a statement trigger is not inherited)."""
    cursor.execute(
        f"CREATE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {quote(table)}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {GUARD_FUNCTION}()"
    )


def retention_cutoff(keep_months: int, now: dt.datetime | None = None) -> dt.datetime:
    """Rows older than this are past retention: ``keep_months`` months before ``now``."""
    return add_months((now or timezone.now()).astimezone(dt.UTC), -keep_months)


def expired_partitions(using: str, cutoff: dt.datetime) -> list[PartitionInfo]:
    """The partitions whose rows are all older than ``cutoff``, oldest first, with their
    row counts (``course_audit.archives.prune`` archives and drops them)."""
    if not is_partitioned(using):
        return []
    connection = connections[using]
    return [
        dataclasses.replace(part, rows=_count(connection, part.name))
        for part in list_partitions(using)
        if not part.is_default and part.end is not None and part.end <= cutoff
    ]


def drop_partition(using: str, part: PartitionInfo) -> None:
    """Detach and drop one partition: never a ``DELETE``, a month goes whole. The caller
    (``archives.prune``) has archived it first, in the same transaction."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using):
        _prepare(connection)
        with connection.cursor() as cursor:
            _lock_referenced(cursor, part.name)
            cursor.execute(f"ALTER TABLE {quote(TABLE)} DETACH PARTITION {quote(part.name)}")
            cursor.execute(f"DROP TABLE {quote(part.name)}")


def create_month(using: str, start: dt.datetime) -> str:
    """Make the partition of ``start``'s month alone if no partition covers it (a restored
    month: ``ensure_partitions`` would make every month from it to now); returns its name."""
    start = month_start(start)
    end = add_months(start, 1)
    connection = connections[using]
    with transaction.atomic(using=using):
        _prepare(connection)
        if not covered(list_partitions(using), start, end):
            _create_month(connection, start, end)
    return month_partition_name(start)


def default_rows_before(using: str, cutoff: dt.datetime) -> int:
    """Rows in the default partition older than ``cutoff`` (prune cannot drop those)."""
    if not is_partitioned(using):
        return 0
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {connection.ops.quote_name(DEFAULT_PARTITION)}"
            " WHERE created_at < %s",
            [cutoff],
        )
        return int(cursor.fetchone()[0])
