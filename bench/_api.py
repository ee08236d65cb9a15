"""API page latency and SQL queries per request, against baselines and the floor.

Each figure is a page of a listing (the course endpoint, the account endpoint, and the
account endpoint with its sub-accounts) at a ``per_page`` and a depth (page one, or
``depth`` events in), asked in-process with Django's test ``Client`` and a bearer token:

- ``keyset``: the app's endpoint, the deep page's token built with the API's own
  ``Cursor``, as a client following ``rel="next"`` would hold it;
- ``offset`` and ``cursor``: the same viewset with DRF's ``PageNumberPagination`` and
  ``CursorPagination`` (``bench.bench_urls``), the page number or cursor reaching the same depth;
- ``floor``: no Django request at all, the bare keyset SQL on the same index with a raw
  cursor, the rows turned into dicts and rendered by the app's JSON renderer.

Every page is checked once (its size, and that a deep page starts at the event ``depth``
events in) before it is timed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench._common import Timed

API_PREFIX = "/api/v1/"
VARIANTS = ("keyset", "offset", "cursor", "floor")


@dataclasses.dataclass(frozen=True)
class Listing:
    name: str
    path: str
    params: dict[str, str]
    # The events column the listing is scoped by, and its value: the floor's WHERE. None
    # for a listing with no single index range (sub-accounts), timed for keyset only.
    scope: tuple[str, int] | None
    events: Any  # the listing's events, as a QuerySet

    def variants(self) -> tuple[str, ...]:
        return VARIANTS if self.scope is not None else ("keyset",)


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a page ``depth`` events in starts, as each pager encodes it."""

    after: tuple[Any, int] | None  # (created_at, id) of the event before the page
    first_uuid: str  # the event the page must start with
    cursor_position: str | None  # DRF CursorPagination: the marker's created_at ...
    cursor_offset: int  # ... and the events after the marker to skip


def listings(dataset: Any) -> list[Listing]:
    from course_audit import selectors
    from course_audit.models import Account

    department, root = dataset.department, dataset.root
    subtree = [account.pk for account in Account.objects.filter(root.subtree_q())]
    return [
        Listing(
            "course",
            f"{API_PREFIX}audit/course/courses/{dataset.course.pk}",
            {},
            ("course_id", dataset.course.pk),
            selectors.course_events(dataset.course),
        ),
        Listing(
            "account",
            f"{API_PREFIX}audit/course/accounts/{department.pk}",
            {},
            ("account_id", department.pk),
            selectors.account_events([department.pk]),
        ),
        Listing(
            "account+subaccounts",
            f"{API_PREFIX}audit/course/accounts/{root.pk}",
            {"include_subaccounts": "true"},
            None,
            selectors.account_events(subtree),
        ),
    ]


def position(listing: Listing, depth: int) -> Position:
    """The page ``depth`` events into ``listing`` (page one for 0)."""
    rows = list(
        listing.events.order_by("-created_at", "-id").values_list("created_at", "id", "uuid")[
            max(0, depth - 100) : depth + 1
        ]
    )
    *before, (_, _, first_uuid) = rows
    if not before:
        return Position(None, str(first_uuid), None, 0)
    created_at, pk, _ = before[-1]
    # DRF's cursor marks the last event whose successor is strictly older, and skips the
    # events after it: the page then starts exactly ``depth`` in, ties and all.
    marker = len(before) - 1
    while marker > 0 and before[marker][0] == rows[marker + 1][0]:
        marker -= 1
    return Position(
        after=(created_at, pk),
        first_uuid=str(first_uuid),
        cursor_position=str(before[marker][0]),
        cursor_offset=len(before) - 1 - marker,
    )


def _baseline_path(listing: Listing, variant: str) -> str:
    return f"/bench/{variant}/{listing.path.removeprefix(API_PREFIX)}"


def _drf_cursor_token(where: Position) -> str:
    from rest_framework.pagination import Cursor

    from bench.bench_urls import StockCursorPagination

    paginator = StockCursorPagination()
    paginator.base_url = "http://testserver/"
    url = paginator.encode_cursor(
        Cursor(offset=where.cursor_offset, reverse=False, position=where.cursor_position)
    )
    return parse_qs(urlsplit(url).query)["cursor"][0]


def request_for(
    listing: Listing, variant: str, per_page: int, depth: int, where: Position
) -> tuple[str, dict[str, str]]:
    """The path and query string of the page in ``variant`` (not the floor)."""
    from course_audit.pagination import Cursor

    params = {**listing.params, "per_page": str(per_page)}
    if variant == "keyset":
        if where.after is not None:
            params["page"] = Cursor(listing.path).encode(*where.after)
        return listing.path, params
    if variant == "offset":
        params["page"] = str(depth // per_page + 1)
    elif variant == "cursor" and where.after is not None:
        params["cursor"] = _drf_cursor_token(where)
    return _baseline_path(listing, variant), params


def events_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The page's events: the compound document, or DRF's envelope around it."""
    document = body.get("results", body)
    return list(document["events"])


class Client:
    """Django's test client with the dataset's bearer token; every answer must be a 200."""

    def __init__(self, token: str) -> None:
        from django.test import Client as DjangoClient

        self.client = DjangoClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, params: dict[str, str]) -> Any:
        response = self.client.get(path, params, headers=self.headers)
        if response.status_code != 200:
            raise SystemExit(f"{path} {params}: HTTP {response.status_code}")
        return response

    def queries(self, path: str, params: dict[str, str]) -> list[str]:
        """The SQL of one request."""
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            self.get(path, params)
        return [query["sql"] for query in captured.captured_queries]


# The access record each read writes (course_audit.access_log): counted apart from the
# read's queries, and bounded by a target of its own.
ACCESS_RECORD_INSERT = 'INSERT INTO "course_audit_accessrecord"'


def floor_query(
    column: str, value: int, per_page: int, after: tuple[Any, int] | None = None
) -> tuple[str, list[Any]]:
    """The bare keyset SQL of a page of the events whose ``column`` is ``value``: every
    column of the event table, one more row than a page (as a pager must read to know
    whether a next page exists), on the listing's own index."""
    from django.db import connection

    from course_audit.models import CourseEvent

    opts = CourseEvent._meta
    qn = connection.ops.quote_name
    columns = ", ".join(qn(field.column) for field in opts.concrete_fields)
    sql = f"SELECT {columns} FROM {qn(opts.db_table)} WHERE {qn(column)} = %s"
    params: list[Any] = [value]
    if after is not None:
        # The plain bound beside the row comparison prunes the month partitions, as the
        # API's own query does (``course_audit.pagination.keyset_rows``).
        sql += " AND (created_at, id) < (%s, %s) AND created_at <= %s"
        params += [*after, after[0]]
    sql += " ORDER BY created_at DESC, id DESC LIMIT %s"
    params.append(per_page + 1)
    return sql, params


def floor_page(sql: str, params: list[Any], per_page: int) -> bytes:
    """The rows of ``floor_query`` as dicts, rendered by the API's JSON renderer."""
    from django.db import connection

    from course_audit.api.views import CourseAuditViewSet

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()[:per_page]]
    for row in rows:
        if isinstance(row["event_data"], str):  # psycopg hands jsonb over decoded
            row["event_data"] = json.loads(row["event_data"])
    return bytes(CourseAuditViewSet.renderer_classes[0]().render(rows))


def floor_call(listing: Listing, per_page: int, where: Position) -> Callable[[], bytes]:
    """The keyset page as bare SQL with a raw cursor, its rows as dicts, JSON-encoded."""
    assert listing.scope is not None
    sql, params = floor_query(*listing.scope, per_page, where.after)
    return lambda: floor_page(sql, params, per_page)


def check_floor(call: Callable[[], bytes], per_page: int, where: Position) -> None:
    rows = json.loads(call())
    if len(rows) != per_page or rows[0]["uuid"] != where.first_uuid:
        raise SystemExit("floor: the bare SQL does not read the page the endpoint serves")


def latency_cases(
    dataset: Any,
    client: Client,
    *,
    per_pages: tuple[int, ...],
    depth: int,
    variants: tuple[str, ...],
    repeat: int,
    max_seconds: float,
) -> list[tuple[dict[str, Any], Timed]]:
    """Every (listing, per_page, depth, variant), checked, ready to be timed."""
    cases = []
    for listing in listings(dataset):
        for page_depth in (0, depth):
            where = position(listing, page_depth)
            for per_page in per_pages:
                for variant in listing.variants():
                    if variant not in variants:
                        continue
                    key = {
                        "listing": listing.name,
                        "per_page": per_page,
                        "depth": page_depth,
                        "variant": variant,
                    }
                    call = _checked_call(client, listing, variant, per_page, page_depth, where)
                    cases.append((key, Timed(str(key), call, repeat, max_seconds)))
    return cases


def _checked_call(
    client: Client, listing: Listing, variant: str, per_page: int, depth: int, where: Position
) -> Callable[[], Any]:
    if variant == "floor":
        call = floor_call(listing, per_page, where)
        check_floor(call, per_page, where)
        return call
    path, params = request_for(listing, variant, per_page, depth, where)
    events = events_of(client.get(path, params).json())
    if len(events) != per_page or events[0]["id"] != where.first_uuid:
        raise SystemExit(
            f"{listing.name} ({variant}, per_page={per_page}, depth={depth:,}): "
            "the page does not start at the expected event"
        )
    return lambda: client.get(path, params)


def query_counts(
    dataset: Any, client: Client, per_pages: tuple[int, ...] = (1, 10, 100)
) -> list[dict[str, Any]]:
    """SQL queries of one request of each app listing's page one, per ``per_page``: the
    read's (``queries``) and, apart, the INSERTs of its access record
    (``access_record_inserts``: alone, or in the page's statement).

    The token was used just before, so its ``last_used_at`` write (at most once a minute)
    is not counted: that is the steady state; the budget leaves room for it.
    """
    counts = []
    for listing in listings(dataset):
        for per_page in per_pages:
            path, params = request_for(listing, "keyset", per_page, 0, position(listing, 0))
            client.get(path, params)
            sql = client.queries(path, params)
            counts.append(
                {
                    "listing": listing.name,
                    "per_page": per_page,
                    # An access record's INSERT of its own is not the read's; one riding
                    # on the page's statement (``access_log.PageRecord``) adds none.
                    "queries": sum(not query.startswith(ACCESS_RECORD_INSERT) for query in sql),
                    "access_record_inserts": sum(ACCESS_RECORD_INSERT in query for query in sql),
                }
            )
    return counts
