"""Keyset paging on (``created_at``, ``id``), newest first: the core the API, the history
pages, the admin's event list and the exports share.

A page is ``WHERE (created_at, id) < (t, i) ORDER BY created_at DESC, id DESC LIMIT n + 1``:
a row-value comparison served by the (scope, created_at, id) index, so page 10,000 costs
what page one costs, ties on ``created_at`` (a bulk SIS import) page exactly, and events
inserted meanwhile never make a reader skip or repeat one.

A position travels as an opaque token signed for the listing it was issued on (``Cursor``):
a tampered, truncated or foreign token raises ``InvalidCursor``, which each caller answers
its own way (the API with its 400, a page with its "out of date" message). This module
knows nothing of DRF.

Reading from a standby (``replication``), a token also carries the database position its
page was read at, and the next page is read where that position is replayed (the primary,
if the standby is behind it): a listing whose pages move between the standby and the
primary skips and repeats nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from django.core import signing
from django.db import connections
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan

from course_audit import prepared, replication
from course_audit.filters import MAX_PARAMETER_LENGTH, too_long_message

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
OUT_OF_DATE_MESSAGE = (
    "is not a page token from this listing's Link header; use page=first to start again"
)

# A position: the (created_at, id) of the row a page continues from.
Position = tuple[dt.datetime, int]
# Rows that are the union of several index ranges, as (column, values), e.g. the accounts
# of a subtree (see ``fetch_ordered``); None for one range.
Partitions = tuple[str, list[int]] | None
# Filters whose union the rows are, each served by an index range of its own, e.g. one per
# changed field a listing asks for (see ``fetch_ordered``); None for one range.
Branches = Sequence[Q] | None


class Rider(Protocol):
    """A statement that may ride on a page's own SQL (``keyset_rows``): e.g. the page's
    access record (``course_audit.access_log.PageRecord``)."""

    written: bool

    def statement(self, using: str, count_sql: str) -> tuple[str, list[Any]] | None:
        """A data-modifying statement for the page query's ``WITH`` clause on ``using``,
        given ``count_sql`` (the number of rows the page shows), and its parameters; None
        where it cannot ride there."""
        ...


class InvalidCursor(ValueError):
    """A page token that is not one this listing issued: too long, tampered, truncated,
    signed for another listing, or holding no position."""

    def __init__(self, message: str, *, param: str = "page") -> None:
        super().__init__(f"{param}: {message}")
        self.message = message
        # The query parameter that carried the token, for the error to name it.
        self.param = param


class Cursor:
    """Encodes and decodes a position, signed for one listing (``scope``)."""

    def __init__(self, scope: str) -> None:
        self.signer = signing.Signer(salt=f"course_audit.cursor:{scope}")

    def encode(self, created_at: dt.datetime, pk: int) -> str:
        micros = (created_at - EPOCH) // dt.timedelta(microseconds=1)
        at = replication.page_position()
        if at is None:
            return self.signer.sign_object([micros, pk])
        return self.signer.sign_object([micros, pk, replication.format_lsn(at)])

    def decode(self, token: str, *, param: str = "page") -> Position:
        """The position in ``token``; ``InvalidCursor`` naming ``param`` if it holds none.
        A database position in it becomes the request's floor (``replication.require``)."""
        if len(token) > MAX_PARAMETER_LENGTH:
            raise InvalidCursor(too_long_message(len(token)), param=param)
        try:
            micros, pk, *rest = self.signer.unsign_object(token)
            if not isinstance(micros, int) or not isinstance(pk, int) or isinstance(pk, bool):
                raise ValueError("malformed position")
            if len(rest) > 1 or not all(isinstance(lsn, str) for lsn in rest):
                raise ValueError("malformed database position")
            at = replication.parse_lsn(rest[0]) if rest else None
            created_at = EPOCH + dt.timedelta(microseconds=micros)
        except (signing.BadSignature, ValueError, TypeError, OverflowError):
            raise InvalidCursor(OUT_OF_DATE_MESSAGE, param=param) from None
        if at is not None:
            replication.require(at)
        return created_at, pk


def keyset_rows(
    queryset: QuerySet[Any],
    *,
    limit: int,
    after: Position | None = None,
    before: Position | None = None,
    partitions: Partitions = None,
    fields: Sequence[str] | None = None,
    branches: Branches = None,
    prepare: bool = False,
    scope: tuple[str, Any] | None = None,
    rider: Rider | None = None,
) -> tuple[list[Any], bool]:
    """Up to ``limit`` rows, newest first, and whether more lie beyond them.

    With ``after`` (a decoded cursor) the rows are the next older ones; with ``before``,
    the next newer ones (read oldest first, then turned round), so a page can step back
    without offsets. ``partitions``, ``fields`` and ``branches`` are as in
    ``fetch_ordered``. ``prepare``: the page's query, when it is one range read as values,
    is a prepared statement where ``COURSE_AUDIT_PREPARED_STATEMENTS`` says
    (``course_audit.prepared``); for a query of a fixed shape run again and again, as the
    API's unfiltered listings are. ``scope``: (a column, a value) the rows of ``queryset``
    must also have, added here (as SQL text where the rows are read as values: no ORM
    filter built for each page). ``rider``: a statement run by the page's own query where
    it can (one round trip; ``Rider``), which then marks it ``written``.
    """
    newer = before is not None
    # A page token may have asked for more than the standby the queryset was bound for has.
    queryset = replication.rebind(queryset)
    rows = None
    if fields is not None and _one_range(queryset, partitions, branches):
        # Rows as values from one index range: the bound goes into the SQL as text
        # (``_values_rows``), without the ORM building and compiling its filter per page.
        rows = _values_rows(
            queryset,
            tuple(fields),
            limit + 1,
            ascending=newer,
            after=after,
            before=before,
            prepare=prepare,
            scope=scope,
            rider=rider,
        )
    if rows is None and scope is not None:
        queryset = queryset.filter(**{scope[0]: scope[1]})
    if rows is None:
        rows = fetch_ordered(
            _bounded(queryset, after=after, before=before),
            limit + 1,
            partitions,
            ascending=newer,
            fields=fields,
            branches=branches,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    if newer:
        rows.reverse()
    return rows, more


def _bounded(
    queryset: QuerySet[Any], *, after: Position | None, before: Position | None
) -> QuerySet[Any]:
    """The rows after ``after`` (older) or before ``before`` (newer) in (created_at, id).

    The plain bound on created_at beside each row comparison lets PostgreSQL skip the
    month partitions the page cannot reach; the row comparison alone does not.
    ``_keyset_sql`` is the same condition as SQL text.
    """
    if after is not None:
        queryset = queryset.filter(
            TupleLessThan(Tuple("created_at", "id"), after), created_at__lte=after[0]
        )
    if before is not None:
        queryset = queryset.filter(
            TupleGreaterThan(Tuple("created_at", "id"), before), created_at__gte=before[0]
        )
    return queryset


def _keyset_sql(
    queryset: QuerySet[Any], *, after: Position | None, before: Position | None
) -> tuple[list[str], list[Any]]:
    """``_bounded``'s condition as SQL text and parameters, one condition per bound."""
    connection = connections[queryset.db]
    qn = connection.ops.quote_name
    opts = queryset.model._meta
    table = qn(opts.db_table)
    created, pk = f"{table}.{qn('created_at')}", f"{table}.{qn(opts.pk.column)}"
    field = opts.get_field("created_at")
    conditions: list[str] = []
    params: list[Any] = []
    for position, (row_op, op) in ((after, ("<", "<=")), (before, (">", ">="))):
        if position is None:
            continue
        at = field.get_db_prep_value(position[0], connection)
        conditions.append(f"({created}, {pk}) {row_op} (%s, %s) AND {created} {op} %s")
        params += [at, position[1], at]
    return conditions, params


def _one_range(queryset: QuerySet[Any], partitions: Partitions, branches: Branches) -> bool:
    """Whether ``fetch_ordered`` reads the rows as one range (no fan-out of its own)."""
    fan = partitions is not None and len(partitions[1]) > 1
    arms = branches is not None and len(branches) > 1
    return not (fan or arms) or connections[queryset.db].vendor != "postgresql"


def fetch_ordered(
    queryset: QuerySet[Any],
    limit: int,
    partitions: Partitions,
    *,
    ascending: bool = False,
    fields: Sequence[str] | None = None,
    branches: Branches = None,
) -> list[Any]:
    """The first ``limit`` rows, newest first (oldest first when ``ascending``): models, or
    dicts of ``fields`` (``QuerySet.values`` names, which may follow relations) when given.

    ``partitions`` (a field and its values, e.g. the accounts of a subtree) says the
    rows are the union of several index ranges; so do ``branches`` (filters, e.g. one per
    changed field, whose union ``queryset``'s own filter already is). On PostgreSQL each
    range (each value, and each branch of it) is then read with its own LIMITed index
    scan and the candidates' positions are merged there, so that only the ``limit``
    winners are fetched (and joined) in full, instead of reading and sorting every row of
    every range for each page. A row two branches share counts once.
    """
    ordered = queryset.order_by(*(("created_at", "id") if ascending else ("-created_at", "-id")))
    fan = partitions is not None and len(partitions[1]) > 1
    arms = list(branches) if branches is not None and len(branches) > 1 else []
    connection = connections[queryset.db]
    if (fan or arms) and connection.vendor == "postgresql":
        ordered = ordered.filter(
            _winners(ordered, limit, partitions if fan else None, arms, ascending=ascending)
        )
    if fields is not None:
        # Last: the joins the fields need stay out of the ranges' own scans above.
        rows = _values_rows(ordered, tuple(fields), limit, ascending=ascending)
        if rows is not None:
            return rows
        ordered = ordered.values(*fields)
    return list(ordered[:limit])


def _winners(
    ordered: QuerySet[Any],
    limit: int,
    partitions: Partitions,
    arms: Sequence[Q],
    *,
    ascending: bool,
) -> RawSQL:
    """``pk = ANY(the first limit positions of the union of the ranges)``: each range read
    by a LIMITed scan of its own, the union merged (and its duplicates dropped) in SQL."""
    connection = connections[ordered.db]
    direction = "ASC" if ascending else "DESC"
    table = connection.ops.quote_name(ordered.model._meta.db_table)
    pk = connection.ops.quote_name(ordered.model._meta.pk.column)
    inner = ordered
    if partitions is not None:
        inner = inner.filter(**{partitions[0]: RawSQL("fan.key", ())})
    parts, params = [], []
    for arm in arms or [Q()]:
        sql, arm_params = (
            inner.filter(arm)
            .values("id", "created_at")[:limit]
            .query.get_compiler(using=ordered.db)
            .as_sql()
        )
        parts.append(sql)
        params.extend(arm_params)
    # Each branch with its own ORDER BY and LIMIT, hence in parentheses.
    union = " UNION ALL ".join(f"({sql})" for sql in parts) if arms else parts[0]
    if partitions is not None:
        source = f"unnest(%s::bigint[]) AS fan(key) CROSS JOIN LATERAL ({union}) AS top"
        params = [list(partitions[1]), *params]
    else:
        source = f"({union}) AS top"
    # A row of several branches comes once from each: counted once.
    distinct = " GROUP BY top.id, top.created_at" if arms else ""
    # ``= ANY(ARRAY(...))``, not ``IN (...)``: the winners' ids are computed once and each
    # fetched by its key; an IN may be planned as a semi join that reads every row of
    # every range.
    return RawSQL(
        f"{table}.{pk} = ANY(ARRAY(SELECT top.id FROM {source}{distinct} "
        f"ORDER BY top.created_at {direction}, top.id {direction} LIMIT %s))",
        (*params, limit),
        output_field=BooleanField(),
    )


@dataclasses.dataclass(frozen=True)
class _SelectTemplate:
    """The SELECT list, joins and ORDER BY of ``QuerySet.values(*fields)`` on a model,
    compiled once (per database, model, fields and direction), with what turns its
    columns into Python values."""

    head: str  # "SELECT ... FROM ... JOIN ..."
    order_by: str  # "ORDER BY ..."
    names: tuple[str, ...]
    converters: dict[int, tuple[list[Any], Any]]


# The names of the page's rows and of a rider's statement in a page query's WITH clause.
_PAGE = "course_audit_page"
_RIDER = "course_audit_rider"
_TEMPLATES: dict[tuple[str, str, str, type, tuple[str, ...], bool], _SelectTemplate] = {}


def _select_template(
    queryset: QuerySet[Any], fields: tuple[str, ...], ascending: bool
) -> _SelectTemplate | None:
    connection = connections[queryset.db]
    key = (
        queryset.db,
        connection.vendor,
        connection.settings_dict["NAME"],
        queryset.model,
        fields,
        ascending,
    )
    template = _TEMPLATES.get(key)
    if template is None:
        order = ("created_at", "id") if ascending else ("-created_at", "-id")
        query = queryset.model._base_manager.using(queryset.db).order_by(*order).values(*fields)
        compiler = query.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        head, _, order_by = sql.rpartition(" ORDER BY ")
        if params or not head or " WHERE " in head:
            return None
        names = (
            *query.query.extra_select,
            *query.query.values_select,
            *query.query.annotation_select,
        )
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        template = _TEMPLATES[key] = _SelectTemplate(
            head=head, order_by=f"ORDER BY {order_by}", names=tuple(names), converters=converters
        )
    return template


def _values_rows(
    ordered: QuerySet[Any],
    fields: tuple[str, ...],
    limit: int,
    *,
    ascending: bool,
    after: Position | None = None,
    before: Position | None = None,
    prepare: bool = False,
    scope: tuple[str, Any] | None = None,
    rider: Rider | None = None,
) -> list[dict[str, Any]] | None:
    """``list(_bounded(ordered, after=after, before=before).values(*fields)[:limit])``
    without compiling the SELECT list and its joins for each page: only ``ordered``'s WHERE
    is compiled, the keyset bound added as text (``_keyset_sql``), and put between the
    parts of a template compiled once (``_select_template``). Reading a page of the audit
    listings costs Django more to compile than PostgreSQL to run.

    None when ``ordered`` is not a plain filter of its model's own columns (a filter that
    joins another table, a distinct, an extra): the caller then lets the ORM do it all.
    """
    query = ordered.query
    table = query.get_meta().db_table
    if (
        query.distinct
        or query.extra
        or query.annotations
        or query.combinator
        or query.low_mark
        or query.high_mark is not None
        # A join a filter still uses (one it set up and trimmed again counts for nothing).
        or any(alias != table and query.alias_refcount[alias] for alias in query.alias_map)
    ):
        return None
    template = _select_template(ordered, fields, ascending)
    if template is None:
        return None
    connection = connections[ordered.db]
    qn = connection.ops.quote_name
    source = f" FROM {qn(table)}"
    if template.head.count(source) != 1:
        return None
    compiler = query.get_compiler(using=ordered.db)
    where, params = compiler.compile(query.where) if query.where else ("", [])
    conditions, bound_params = _keyset_sql(ordered, after=after, before=before)
    if scope is not None:
        field: Any = query.get_meta().get_field(scope[0])
        conditions.insert(0, f"{qn(table)}.{qn(field.column)} = %s")
        bound_params = [field.get_db_prep_value(scope[1], connection), *bound_params]
    if conditions:
        where = " AND ".join([*([f"({where})"] if where else []), *conditions])
        params = [*params, *bound_params]
    direction = "ASC" if ascending else "DESC"
    # The page's rows are chosen first, on the listing's index alone, and only they are
    # joined: a plan PostgreSQL keeps whatever it guesses of the parameters (a prepared,
    # generic plan may otherwise join every row of the range before sorting).
    chosen = (
        f"SELECT * FROM {qn(table)}{f' WHERE {where}' if where else ''}"
        f" ORDER BY {qn(table)}.{qn('created_at')} {direction}, {qn(table)}.{qn('id')} "
        f"{direction} LIMIT {int(limit)}"
    )
    ride = None
    if rider is not None:
        # The rows shown: the page reads one more than it shows, to know whether more follow.
        count_sql = f"SELECT least(count(*), {int(limit) - 1}) FROM {qn(_PAGE)}"
        ride = rider.statement(ordered.db, count_sql)
    if ride is None:
        sql = f"{template.head.replace(source, f' FROM ({chosen}) {qn(table)}')}"
    else:
        # The page's rows once, for the SELECT and the rider's count alike; the rider's
        # statement runs to its end whether or not the SELECT reads it.
        sql = (
            f"WITH {qn(_PAGE)} AS ({chosen}), {qn(_RIDER)} AS ({ride[0]}) "
            f"{template.head.replace(source, f' FROM {qn(_PAGE)} {qn(table)}')}"
        )
        params = [*params, *ride[1]]
    sql = f"{sql} {template.order_by}"
    with prepared.cursor(ordered.db) if prepare else connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if ride is not None and rider is not None:  # a ride has its rider
        rider.written = True
    converters = template.converters
    names = template.names
    result = []
    for row in rows:
        if converters:
            row = list(row)
            for index, (functions, expression) in converters.items():
                value = row[index]
                for function in functions:
                    value = function(value, expression, connection)
                row[index] = value
        result.append(dict(zip(names, row, strict=True)))
    return result


@dataclasses.dataclass(frozen=True)
class KeysetPage:
    """A page read in either direction, with the tokens of the pages on each side."""

    rows: list[Any]
    # The token to pass as ``after`` for the next older page; None on the oldest page.
    older: str | None
    # The token to pass as ``before`` for the next newer page; None on the newest page.
    newer: str | None


def keyset_page(
    queryset: QuerySet[Any],
    cursor: Cursor,
    *,
    limit: int,
    after: Position | None = None,
    before: Position | None = None,
    partitions: Partitions = None,
    branches: Branches = None,
) -> KeysetPage:
    """Up to ``limit`` model rows after ``after`` (older) or before ``before`` (newer), and
    the Older and Newer tokens a page of links (the history pages, the admin) offers.

    A page reached going back (``before``) always has older rows behind it; one reached
    going forward (``after``) always has newer ones.
    """
    rows, more = keyset_rows(
        queryset, limit=limit, after=after, before=before, partitions=partitions, branches=branches
    )
    older = newer = None
    if rows:
        if more or before is not None:
            older = cursor.encode(rows[-1].created_at, rows[-1].pk)
        if (more and before is not None) or after is not None:
            newer = cursor.encode(rows[0].created_at, rows[0].pk)
    return KeysetPage(rows=rows, older=older, newer=newer)
