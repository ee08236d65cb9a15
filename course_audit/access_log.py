"""Who looked: an access record of every read of audit data.

The history pages, the page view page, the home page's recent activity, the API's
listings and event proofs, the exports and the admin's event list and event page each
write access records (``AccessRecord``):
who read, when, which scope with which filters (the query string as sent, bounded), how
many events the answer held, and from which request (method, path, request id, client
address; the API token, if one authenticated it). A read writes them in **one** ``INSERT``,
once its rows are known: one record, or, for the admin's event list and the home page's
recent activity, one per tenant whose events the page showed (each tenant's root admins
see their own).

Record or refuse: a page, an API listing or an admin page whose record cannot be written
is not served. The ``DatabaseError`` goes up and the request answers 503 with
``Retry-After`` (the middleware for the pages, the API's exception handler, the admin's
own hook), as when the database is away: nobody reads audit data without a trace.

A background export (``course_audit.tasks``) writes two kinds: its task's read of the
events into the file (surface ``job``, method ``TASK``: no request is running; the record
names the one that queued the job), written with the job's completion in one transaction,
so a job whose record cannot be written keeps no file; and each download of the file
(surface ``export``, the job's scope and filters, its row count), written before the file
is served. A job cancelled or failed part-way keeps no file and discloses nothing: no
record.

An API listing's page read on the primary (where the records go), on PostgreSQL, writes
its record with the page's own statement (``PageRecord``: the INSERT in a ``WITH`` clause
of the page's SELECT, its count that of the rows read): one round trip, and the read and
its record commit together, or neither does. Elsewhere the record is its own INSERT.

An export streams, so its count is known only at its end: its record is written then,
with the rows sent and ``complete`` false if the stream was cut short (the client went
away, or the database failed mid-way). An append-only record cannot be written first and
finished later. Before the 200 goes out the export has read its first rows, so a
database that is away is still a 503; one that fails between the last row and the
record loses the record, which is logged as an error.

One exception: read-only mode (``course_audit.replication``: the primary is away and a
site with ``ReadOnlyFailoverRouter`` serves safe requests from the standby), where no
write can succeed and the site chose to keep answering. There each record goes to this
module's logger (a warning with every field) instead of the table.

``COURSE_AUDIT_ACCESS_LOG = False`` turns all of it off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from django.db import DatabaseError, connections, router
from django.http import HttpRequest, QueryDict
from django.urls import reverse

from course_audit import partitions, prepared, replication
from course_audit.conf import conf
from course_audit.models import AccessRecord, ApiToken, ExportJob
from course_audit.types import UserRequest

logger = logging.getLogger(__name__)

# The query string is kept as sent, within bounds: a request cannot fill the log.
MAX_FILTERS = 20
MAX_FILTER_LENGTH = 200
MAX_PATH_LENGTH = 2048
# The method of a record written by a background export's task, not by a request.
TASK_METHOD = "TASK"

Surface = AccessRecord.Surface
Scope = AccessRecord.Scope
_Row = TypeVar("_Row")


@dataclasses.dataclass(frozen=True)
class Target:
    """What a read asked for: a scope (``AccessRecord.Scope``), its id, and the tenant
    (root account) whose data it is, ``None`` for a read across tenants."""

    scope: str
    scope_id: object
    root_account_id: int | None
    # True: the rows may be of several tenants (a person's events): one record per tenant
    # whose rows the answer showed (``record_per_tenant``), not one of ``root_account_id``.
    per_tenant: bool = False


def enabled() -> bool:
    return conf.ACCESS_LOG


def record(
    request: UserRequest,
    *,
    surface: str,
    target: Target,
    count: int,
    complete: bool = True,
    filters: dict[str, Any] | None = None,
) -> None:
    """Write the access record of a read of ``count`` events of ``target`` (one INSERT),
    with ``filters`` (default: the request's query string). A ``DatabaseError`` is the
    caller's to answer: refuse the read (see the module)."""
    if not enabled():
        return
    _write(
        [
            _record(
                request,
                surface=surface,
                target=target,
                count=count,
                complete=complete,
                filters=filters,
            )
        ]
    )


class PageRecord:
    """The access record of a page about to be read, its count still to come: written by
    the page's own SQL statement where it can ride on it (``statement``), else on its own
    once the rows are known (``write``)."""

    def __init__(self, request: UserRequest, *, surface: str, target: Target) -> None:
        self.request = request
        self.surface = surface
        self.target = target
        # Set by whoever ran ``statement``'s INSERT with its query.
        self.written = False

    def statement(self, using: str, count_sql: str) -> tuple[str, list[Any]] | None:
        """The record's INSERT, to run as a statement of a ``WITH`` clause of a query on
        ``using``, its count the value of ``count_sql`` (an SQL expression of that
        query, e.g. a count of its page), with its parameters; None where it cannot ride
        there (the log off, read-only mode, records written on another database, or one
        other than PostgreSQL: only its ``WITH`` takes an INSERT). Whoever runs it sets
        ``written``."""
        if not enabled() or replication.read_only():
            return None
        if router.db_for_write(AccessRecord) != using:
            return None
        connection = connections[using]
        if connection.vendor != "postgresql":
            return None
        record = _record(
            self.request, surface=self.surface, target=self.target, count=0, complete=True
        )
        sql = _insert_sql(connection.vendor, using, 1, _asynchronous(connection), count_sql)
        return sql, _insert_params([record], connection, without="count")

    def write(self, count: int) -> None:
        """The record with ``count`` on its own (``record``), unless the read's statement
        wrote it."""
        if not self.written:
            record(self.request, surface=self.surface, target=self.target, count=count)


def job_filters(job: ExportJob) -> dict[str, Any]:
    """A background export's filters as its access records keep them."""
    filters = {key: _clean(str(value))[:MAX_FILTER_LENGTH] for key, value in job.filters.items()}
    if job.include_subaccounts:
        filters["include_subaccounts"] = "1"
    return filters


def record_job(job: ExportJob, *, target: Target, count: int) -> None:
    """Write the access record of a background export's read: its task read ``count``
    events of ``target`` into the job's file for its requester. No request is running: the
    record names the one that queued the job (its id and client address), the job's page
    as its path, and ``TASK`` as its method. A ``DatabaseError`` is the task's to answer:
    it keeps no file (see ``course_audit.tasks``)."""
    if not enabled():
        return
    user = job.requested_by
    _write(
        [
            AccessRecord(
                root_account_id=target.root_account_id,
                user_id=user.pk,
                user_name=user.get_username()[:255],
                surface=Surface.JOB,
                scope=target.scope,
                scope_id=_scope_id(target),
                filters=job_filters(job),
                count=count,
                complete=True,
                request_id=job.request_id,
                http_method=TASK_METHOD,
                path=reverse("course_audit:export_job", args=[job.pk]),
                client_addr=job.client_addr,
            )
        ]
    )


def events_shown(states: Iterable[Any]) -> int:
    """How many events the as-of answers show: those that set a value shown (each
    ``replay.CourseAsOf`` setting links the event that set it)."""
    return len(
        {
            setting.event.id
            for state in states
            for setting in state.settings.values()
            if setting.event is not None
        }
    )


def record_per_tenant(
    request: UserRequest,
    *,
    surface: str,
    scope: str,
    scope_id: object,
    tenants: Iterable[int | None],
) -> None:
    """Write one record per tenant whose rows a read showed (``tenants``: each row's root
    account id), with its count, all in one INSERT; a read that showed none writes one
    record of no tenant."""
    if not enabled():
        return
    counts: dict[int | None, int] = dict(Counter(tenants)) or {None: 0}
    _write(
        [
            _record(
                request,
                surface=surface,
                target=Target(scope, scope_id, root_id),
                count=count,
                complete=True,
            )
            for root_id, count in counts.items()
        ]
    )


def recorded_stream(
    request: UserRequest,
    rows: Iterable[_Row],
    render: Callable[[Iterator[_Row]], Iterator[str]],
    *,
    surface: str,
    target: Target,
) -> Iterator[str]:
    """``render(rows)`` (an export's lines), with the rows counted as they go, and the
    access record written when the stream ends: every row sent, or cut short (the client
    went away, the database failed: ``complete`` false)."""
    if not enabled():
        yield from render(iter(rows))
        return
    sent = 0

    def counted() -> Iterator[_Row]:
        # Counted as handed over: the renderers yield a row's line as soon as they have it,
        # so a stream cut short stops at a line, and every row counted went out.
        nonlocal sent
        for row in rows:
            sent += 1
            yield row

    complete = False
    try:
        yield from render(counted())
        complete = True
    finally:
        try:
            record(request, surface=surface, target=target, count=sent, complete=complete)
        except DatabaseError:
            # The rows are out: too late to refuse. Said loudly instead.
            logger.error(
                "The access record of an export of %s %s (%d rows) could not be written",
                target.scope,
                target.scope_id,
                sent,
                exc_info=True,
            )


def prune(
    using: str, *, keep_months: int, dry_run: bool = False, now: dt.datetime | None = None
) -> list[partitions.PartitionInfo]:
    """Drop every month of access records wholly older than ``keep_months`` months (no
    archive: the access log is kept for its retention, then goes); ``dry_run`` only
    lists them. Returns the months, with their row counts."""
    if keep_months < 1:
        raise ValueError("keep_months must be at least 1")
    cutoff = partitions.retention_cutoff(keep_months, now)
    table = partitions.ACCESS_RECORDS
    expired = partitions.expired_partitions(using, cutoff, table)
    if not dry_run:
        for part in expired:
            partitions.drop_partition(using, part, table)
    return expired


def _write(records: list[AccessRecord]) -> None:
    if replication.read_only():
        for record in records:
            logger.warning(
                "Access record kept in the log (read-only mode: the primary is away): %s",
                _as_text(record),
                extra={"access_record": _fields(record)},
            )
        return
    using = router.db_for_write(AccessRecord)
    connection = connections[using]
    sql = _insert_sql(connection.vendor, using, len(records), _asynchronous(connection))
    params = _insert_params(records, connection)
    # One shape per number of records: prepared where the site says (``course_audit.prepared``).
    with prepared.cursor(using) as cursor:
        cursor.execute(sql, params)


# Every column but the key, which the database numbers.
_INSERT_FIELDS: tuple[Any, ...] = tuple(
    field for field in AccessRecord._meta.concrete_fields if field.attname != "id"
)


def _insert_params(
    records: list[AccessRecord], connection: Any, *, without: str | None = None
) -> list[Any]:
    """The records' values for ``_insert_sql``, in its order (``without``: a column the
    statement computes itself)."""
    return [
        field.get_db_prep_save(getattr(record, field.attname), connection)
        for record in records
        for field in _INSERT_FIELDS
        if field.attname != without
    ]


def _asynchronous(connection: Any) -> bool:
    """Whether a record's commit may skip waiting for the disk flush (``_insert_sql``):
    in autocommit (as a site serves a read) the statement is its own transaction (no
    BEGIN, COMMIT or savepoint), unless the site asks for the wait."""
    alone = connection.get_autocommit() and not connection.in_atomic_block
    return alone and not conf.ACCESS_LOG_SYNCHRONOUS_COMMIT


@functools.lru_cache(maxsize=64)
def _insert_sql(
    vendor: str, using: str, rows: int, asynchronous: bool, count_sql: str | None = None
) -> str:
    """The records' INSERT, built once per shape: what ``Model.save()`` would send, without
    building it for each read (the ORM's INSERT costs more to compile than to run).
    ``count_sql``: the count is that SQL expression, not a parameter (``PageRecord``).

    ``asynchronous`` (PostgreSQL, a statement that is its own transaction, unless
    ``COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT``): the commit does
    not wait for the WAL to reach the disk (``synchronous_commit`` off for this statement's
    transaction alone). A commit that waits costs a disk flush, several milliseconds,
    more than the whole read it records; without the wait, a crash of the database server
    can lose the records of its last fraction of a second (three times
    ``wal_writer_delay`` at most), never corrupt them, and the read is still refused when
    the INSERT itself fails.
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(field.column) for field in _INSERT_FIELDS)
    table = qn(AccessRecord._meta.db_table)

    def value(field: Any, typed: bool) -> str:
        if count_sql is not None and field.attname == "count":
            return f"({count_sql})::{field.cast_db_type(connection)}"
        return f"%s::{field.cast_db_type(connection)}" if typed else "%s"

    if vendor == "postgresql" and asynchronous:
        # The setting rides in the statement: no second round trip, and a statement
        # with parameters may be prepared (``server_side_binding``), where a SET could not
        # travel with it. Typed, since a SELECT's parameters have no column to take a type
        # from.
        typed = ", ".join(value(field, True) for field in _INSERT_FIELDS)
        values = " UNION ALL ".join([f"SELECT {typed}"] * rows)
        return (
            f"INSERT INTO {table} ({columns}) SELECT records.* FROM ({values}) records, "
            f"(SELECT set_config('synchronous_commit', 'off', true)) settings"
        )
    row = f"({', '.join(value(field, False) for field in _INSERT_FIELDS)})"
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)}"


def _record(
    request: UserRequest,
    *,
    surface: str,
    target: Target,
    count: int,
    complete: bool,
    filters: dict[str, Any] | None = None,
) -> AccessRecord:
    http: Any = getattr(request, "_request", request)  # a DRF request wraps one
    user = getattr(http, "user", None)
    user_id, user_name = None, ""
    if user is not None and user.is_authenticated:
        user_id, user_name = user.pk, user.get_username()[:255]
    # DRF keeps the token it authenticated with on the Django request too.
    token = getattr(http, "auth", None)
    return AccessRecord(
        root_account_id=target.root_account_id,
        user_id=user_id,
        user_name=user_name,
        api_token_id=token.pk if isinstance(token, ApiToken) else None,
        surface=surface,
        scope=target.scope,
        scope_id=_scope_id(target),
        filters=request_filters(http.GET) if filters is None else filters,
        count=count,
        complete=complete,
        request_id=getattr(http, "course_audit_request_id", None),
        http_method=(http.method or "")[:16],
        path=_clean(http.path)[:MAX_PATH_LENGTH],
        client_addr=client_address(http),
    )


def _scope_id(target: Target) -> str:
    return _clean(str(target.scope_id))[:64] if target.scope_id is not None else ""


def _fields(record: AccessRecord) -> dict[str, Any]:
    return {
        field.attname: getattr(record, field.attname)
        for field in AccessRecord._meta.concrete_fields
        if field.attname != "id"
    }


def _as_text(record: AccessRecord) -> str:
    return " ".join(f"{name}={value!s}" for name, value in _fields(record).items())


def request_filters(query: QueryDict) -> dict[str, Any]:
    """The query string as sent (a value, or the list of a repeated parameter), bounded in
    parameters and length."""
    filters: dict[str, Any] = {}
    for key, values in list(query.lists())[:MAX_FILTERS]:
        kept = [_clean(value)[:MAX_FILTER_LENGTH] for value in values[:MAX_FILTERS]]
        filters[_clean(key)[:MAX_FILTER_LENGTH]] = kept[0] if len(kept) == 1 else kept
    return filters


def _clean(text: str) -> str:
    # PostgreSQL stores no NUL in text or jsonb.
    return text.replace("\x00", "")


def client_address(request: HttpRequest) -> str | None:
    """The request's client address (``REMOTE_ADDR``), ``None`` when it is not one."""
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return None
