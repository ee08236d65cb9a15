"""Keyset pagination on (``created_at``, ``id``), newest first, with Canvas's Link header.

A page is ``WHERE (created_at, id) < (t, i) ORDER BY created_at DESC, id DESC LIMIT n + 1``:
a row-value comparison served by the (scope, created_at, id) index, so page 10,000 costs
what page one costs, ties on ``created_at`` (a bulk SIS import) page exactly, and events
inserted meanwhile never make a client skip or repeat one.

The ``page`` token is opaque and signed for the path it was issued on: a tampered,
truncated or foreign token is a 400, never a 500 and never a silent restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.db import connections
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request

from course_audit.filters import MAX_PARAMETER_LENGTH, too_long_message

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
FIRST = "first"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_per_page(raw: str | None) -> int:
    """``per_page``: default 10; an integer out of 1..100 is clamped, as Canvas does."""
    if raw is None or raw == "":
        return DEFAULT_PER_PAGE
    if len(raw) > MAX_PARAMETER_LENGTH:
        raise ValidationError({"per_page": too_long_message(len(raw))})
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({"per_page": f"must be an integer, got {raw!r}"}) from None
    return max(1, min(MAX_PER_PAGE, value))


class Cursor:
    """Encodes and decodes the position after the last row of a page."""

    def __init__(self, scope: str) -> None:
        self.signer = signing.Signer(salt=f"course_audit.cursor:{scope}")

    def encode(self, created_at: dt.datetime, pk: int) -> str:
        micros = (created_at - EPOCH) // dt.timedelta(microseconds=1)
        return self.signer.sign_object([micros, pk])

    def decode(self, token: str) -> tuple[dt.datetime, int]:
        if len(token) > MAX_PARAMETER_LENGTH:
            raise ValidationError({"page": too_long_message(len(token))})
        try:
            micros, pk = self.signer.unsign_object(token)
            if not isinstance(micros, int) or not isinstance(pk, int) or isinstance(pk, bool):
                raise ValueError("malformed position")
            created_at = EPOCH + dt.timedelta(microseconds=micros)
        except (signing.BadSignature, ValueError, TypeError, OverflowError):
            raise ValidationError(
                {
                    "page": "is not a page token from this listing's Link header; "
                    "use page=first to start again"
                }
            ) from None
        return created_at, pk


def scope_of(request: Request) -> str:
    return request.path.rstrip("/")


def keyset_rows(
    queryset: QuerySet[Any],
    *,
    limit: int,
    after: tuple[dt.datetime, int] | None = None,
    before: tuple[dt.datetime, int] | None = None,
    partitions: tuple[str, list[int]] | None = None,
) -> tuple[list[Any], bool]:
    """Up to ``limit`` rows, newest first, and whether more lie beyond them.

    With ``after`` (a decoded cursor) the rows are the next older ones; with ``before``,
    the next newer ones (read oldest first, then turned round), so a page can step back
    without offsets. ``partitions`` is as in ``fetch_ordered``.
    """
    newer = before is not None
    # The plain bound on created_at beside each row comparison lets PostgreSQL skip the
    # month partitions the page cannot reach; the row comparison alone does not.
    if after is not None:
        queryset = queryset.filter(
            TupleLessThan(Tuple("created_at", "id"), after), created_at__lte=after[0]
        )
    if before is not None:
        queryset = queryset.filter(
            TupleGreaterThan(Tuple("created_at", "id"), before), created_at__gte=before[0]
        )
    rows = fetch_ordered(queryset, limit + 1, partitions, ascending=newer)
    more = len(rows) > limit
    rows = rows[:limit]
    if newer:
        rows.reverse()
    return rows, more


def fetch_ordered(
    queryset: QuerySet[Any],
    limit: int,
    partitions: tuple[str, list[int]] | None,
    *,
    ascending: bool = False,
) -> list[Any]:
    """The first ``limit`` rows, newest first (oldest first when ``ascending``).

    ``partitions`` (a field and its values, e.g. the accounts of a subtree) says the
    rows are the union of several index ranges. On PostgreSQL each range is then read
    with its own LIMITed index scan (a LATERAL join) and the candidates' positions are
    merged there, so that only the ``limit`` winners are fetched (and joined) in full,
    instead of reading and sorting every row of every range for each page.
    """
    ordered = queryset.order_by(*(("created_at", "id") if ascending else ("-created_at", "-id")))
    if partitions is not None and len(partitions[1]) > 1:
        connection = connections[queryset.db]
        if connection.vendor == "postgresql":
            field, keys = partitions
            inner = ordered.filter(**{field: RawSQL("fan.key", ())}).values("id", "created_at")
            sql, params = inner[:limit].query.get_compiler(using=queryset.db).as_sql()
            direction = "ASC" if ascending else "DESC"
            ordered = ordered.filter(
                pk__in=RawSQL(
                    "SELECT top.id FROM unnest(%s::bigint[]) AS fan(key) "
                    f"CROSS JOIN LATERAL ({sql}) AS top "
                    f"ORDER BY top.created_at {direction}, top.id {direction} LIMIT %s",
                    (list(keys), *params, limit),
                )
            )
    return list(ordered[:limit])


class KeysetPagination(BasePagination):
    """Pages of ``per_page`` rows after the ``page`` cursor; ``Link`` as Canvas sends it."""

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.per_page = parse_per_page(request.query_params.get("per_page"))
        self.page_token = request.query_params.get("page") or FIRST
        cursor = Cursor(scope_of(request))
        after = cursor.decode(self.page_token) if self.page_token != FIRST else None
        rows, self.has_next = keyset_rows(
            queryset,
            limit=self.per_page,
            after=after,
            partitions=getattr(view, "keyset_partitions", None),
        )
        self.next_token = cursor.encode(rows[-1].created_at, rows[-1].pk) if self.has_next else None
        return rows

    def page_url(self, token: str) -> str:
        request = self.request
        params = [
            (key, value)
            for key, values in request.query_params.lists()
            if key not in ("page", "per_page")
            for value in values
        ]
        params += [("page", token), ("per_page", str(self.per_page))]
        return f"{request.build_absolute_uri(request.path)}?{urlencode(params)}"

    def link_header(self) -> str:
        links: Sequence[tuple[str, str]] = [("current", self.page_token)]
        if self.next_token is not None:
            links = [*links, ("next", self.next_token), ("first", FIRST)]
        else:
            links = [*links, ("first", FIRST), ("last", self.page_token)]
        return ",".join(f'<{self.page_url(token)}>; rel="{rel}"' for rel, token in links)

    def get_paginated_response(self, data: Any) -> Any:
        from rest_framework.response import Response

        return Response(data, headers={"Link": self.link_header()})
