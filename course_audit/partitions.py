"""Monthly partitions of the append-only tables on PostgreSQL, and retention by month.

Two tables are partitioned alike (``Table``): the course events (``EVENTS``, migration
0004) and the access records (``ACCESS_RECORDS``, migration 0013, ``course_audit.access_log``).
Every function here takes the table, the events by default; what follows says it of the
events.

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

# Months made ahead of the current one, so inserts never reach the default partition.
MONTHS_AHEAD = 3
# How long a partition change waits for a lock before it gives up (it retries next run)
# rather than queueing every read of the table behind it.
LOCK_TIMEOUT = "5s"


@dataclasses.dataclass(frozen=True)
class Table:
    """A table partitioned by month on ``created_at``, with its append-only guard: the
    trigger function that refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE``, and the name of
    the ``TRUNCATE`` trigger each partition gets (a statement trigger is not inherited)."""

    name: str
    guard_function: str
    truncate_trigger: str

    @property
    def default_partition(self) -> str:
        return f"{self.name}_default"

    @property
    def legacy_partition(self) -> str:
        return f"{self.name}_legacy"


EVENTS = Table(
    "course_audit_courseevent",
    "course_audit_courseevent_append_only",
    "course_audit_evt_no_truncate",
)
ACCESS_RECORDS = Table(
    "course_audit_accessrecord",
    "course_audit_accessrecord_append_only",
    "course_audit_acc_no_truncate",
)
TABLES = (EVENTS, ACCESS_RECORDS)
# The events table's names, as the archives and the migrations know them.
TABLE = EVENTS.name
DEFAULT_PARTITION = EVENTS.default_partition
LEGACY_PARTITION = EVENTS.legacy_partition
GUARD_FUNCTION = EVENTS.guard_function
TRUNCATE_TRIGGER = EVENTS.truncate_trigger

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


def is_partitioned(using: str = "default", table: Table = EVENTS) -> bool:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table.name])
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


def month_partition_name(start: dt.datetime, table: Table = EVENTS) -> str:
    return f"{table.name}_p{start:%Y%m}"


def _parse_bound(text: str) -> dt.datetime | None:
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return dt.datetime.fromisoformat(text.strip("'")).astimezone(dt.UTC)


def list_partitions(using: str = "default", table: Table = EVENTS) -> list[PartitionInfo]:
    """The partitions, oldest first, the default one last (none for a plain table)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)"
            " FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid"
            " WHERE pg_inherits.inhparent = to_regclass(%s)",
            [table.name],
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
    table: Table = EVENTS,
) -> list[str]:
    """Make the month partitions from ``start``'s month (default: this month) to
    ``months_ahead`` months after this one (or to ``start``'s month, if later); returns
    the names made.

    Rows that already sit in the default partition for a new month are moved into it.
    """
    if not is_partitioned(using, table):
        return []
    ahead = MONTHS_AHEAD if months_ahead is None else months_ahead
    current = month_start(now or timezone.now())
    first = month_start(start) if start is not None else current
    last = max(add_months(current, ahead), first)
    made: list[str] = []
    connection = connections[using]
    with transaction.atomic(using=using):
        _prepare(connection)
        existing = list_partitions(using, table)
        month = first
        while month <= last:
            following = add_months(month, 1)
            if not covered(existing, month, following):
                _create_month(connection, table, month, following)
                made.append(month_partition_name(month, table))
            month = following
    return made


def _prepare(connection: Any) -> None:
    """Wait for locks no longer than ``LOCK_TIMEOUT``; check deferred constraints now, since
    PostgreSQL will not detach a table with checks pending (an enclosing transaction's)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _create_month(connection: Any, table: Table, start: dt.datetime, end: dt.datetime) -> None:
    quote = connection.ops.quote_name
    name = month_partition_name(start, table)
    default = table.default_partition
    with connection.cursor() as cursor:
        _lock_referenced(cursor, table.name)
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {quote(default)}"
            " WHERE created_at >= %s AND created_at < %s)",
            [start, end],
        )
        strays = cursor.fetchone()[0]
        if strays:
            # PostgreSQL refuses a partition whose rows sit in the default one: take the
            # default out (its copies of the row triggers go with it), move the rows,
            # put it back.
            cursor.execute(f"ALTER TABLE {quote(table.name)} DETACH PARTITION {quote(default)}")
        # DDL takes no parameters once a host binds them server-side: literals, of the
        # app's own month bounds.
        cursor.execute(
            f"CREATE TABLE {quote(name)} PARTITION OF {quote(table.name)} "
            f"FOR VALUES FROM ({timestamp_literal(start)}) TO ({timestamp_literal(end)})"
        )
        guard_truncate(cursor, table, name, quote)
        if strays:
            cursor.execute(
                f"INSERT INTO {quote(name)} SELECT * FROM {quote(default)}"
                " WHERE created_at >= %s AND created_at < %s",
                [start, end],
            )
            cursor.execute(
                f"DELETE FROM {quote(default)} WHERE created_at >= %s AND created_at < %s",
                [start, end],
            )
            cursor.execute(
                f"ALTER TABLE {quote(table.name)} ATTACH PARTITION {quote(default)} DEFAULT"
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


def guard_truncate(cursor: Any, table: Table, partition: str, quote: Any) -> None:
    """Reject ``TRUNCATE`` of one partition (a statement trigger is not inherited)."""
    cursor.execute(
        f"CREATE TRIGGER {table.truncate_trigger} BEFORE TRUNCATE ON {quote(partition)}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {table.guard_function}()"
    )


def retention_cutoff(keep_months: int, now: dt.datetime | None = None) -> dt.datetime:
    """Rows older than this are past retention: ``keep_months`` months before ``now``."""
    return add_months((now or timezone.now()).astimezone(dt.UTC), -keep_months)


def expired_partitions(
    using: str, cutoff: dt.datetime, table: Table = EVENTS
) -> list[PartitionInfo]:
    """The partitions whose rows are all older than ``cutoff``, oldest first, with their
    row counts (``course_audit.archives.prune`` archives and drops the events' ones,
    ``course_audit.access_log.prune`` drops the access records' ones)."""
    if not is_partitioned(using, table):
        return []
    connection = connections[using]
    return [
        dataclasses.replace(part, rows=_count(connection, part.name))
        for part in list_partitions(using, table)
        if not part.is_default and part.end is not None and part.end <= cutoff
    ]


def drop_partition(using: str, part: PartitionInfo, table: Table = EVENTS) -> None:
    """Detach and drop one partition: never a ``DELETE``, a month goes whole. For the
    events the caller (``archives.prune``) has archived it first, in the same transaction."""
    connection = connections[using]
    quote = connection.ops.quote_name
    with transaction.atomic(using=using):
        _prepare(connection)
        with connection.cursor() as cursor:
            _lock_referenced(cursor, part.name)
            cursor.execute(f"ALTER TABLE {quote(table.name)} DETACH PARTITION {quote(part.name)}")
            cursor.execute(f"DROP TABLE {quote(part.name)}")


def create_month(using: str, start: dt.datetime, table: Table = EVENTS) -> str:
    """Make the partition of ``start``'s month alone if no partition covers it (a restored
    month: ``ensure_partitions`` would make every month from it to now); returns its name."""
    start = month_start(start)
    end = add_months(start, 1)
    connection = connections[using]
    with transaction.atomic(using=using):
        _prepare(connection)
        if not covered(list_partitions(using, table), start, end):
            _create_month(connection, table, start, end)
    return month_partition_name(start, table)


def default_rows_before(using: str, cutoff: dt.datetime, table: Table = EVENTS) -> int:
    """Rows in the default partition older than ``cutoff`` (prune cannot drop those)."""
    if not is_partitioned(using, table):
        return 0
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {connection.ops.quote_name(table.default_partition)}"
            " WHERE created_at < %s",
            [cutoff],
        )
        return int(cursor.fetchone()[0])
