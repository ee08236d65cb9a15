"""The API's paginator: Canvas's ``page`` and ``per_page`` and its ``Link`` header, over the
keyset core (``course_audit.pagination``).

The ``page`` token is opaque and signed for the path it was issued on: a tampered,
truncated or foreign token is a 400 naming ``page``, never a 500 and never a silent restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from course_audit.filters import MAX_PARAMETER_LENGTH, too_long_message
from course_audit.pagination import Cursor, InvalidCursor, keyset_rows

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100
FIRST = "first"


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


def scope_of(request: Request) -> str:
    return request.path.rstrip("/")


class KeysetPagination(BasePagination):
    """Pages of ``per_page`` rows after the ``page`` cursor; ``Link`` as Canvas sends it."""

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.per_page = parse_per_page(request.query_params.get("per_page"))
        self.page_token = request.query_params.get("page") or FIRST
        cursor = Cursor(scope_of(request))
        try:
            after = cursor.decode(self.page_token) if self.page_token != FIRST else None
        except InvalidCursor as error:
            raise ValidationError({error.param: error.message}) from None
        rows, self.has_next = keyset_rows(
            queryset,
            limit=self.per_page,
            after=after,
            partitions=getattr(view, "keyset_partitions", None),
            fields=getattr(view, "keyset_fields", None),
            branches=getattr(view, "keyset_branches", None),
            prepare=getattr(view, "keyset_prepare", False),
            scope=getattr(view, "keyset_scope", None),
            rider=getattr(view, "keyset_rider", None),
        )
        last = rows[-1] if self.has_next else None
        self.next_token: str | None
        # Rows are values (the audit listings) or models.
        if isinstance(last, dict):
            self.next_token = cursor.encode(last["created_at"], last["id"])
        elif last is not None:
            self.next_token = cursor.encode(last.created_at, last.pk)
        else:
            self.next_token = None
        return rows

    def link_header(self) -> str:
        links: Sequence[tuple[str, str]] = [("current", self.page_token)]
        if self.next_token is not None:
            links = [*links, ("next", self.next_token), ("first", FIRST)]
        else:
            links = [*links, ("first", FIRST), ("last", self.page_token)]
        # Every link is this path with the request's other parameters as they came, then
        # ``page`` and ``per_page``: the part they share is built once.
        request = self.request
        kept = [
            (key, value)
            for key, values in request.query_params.lists()
            if key not in ("page", "per_page")
            for value in values
        ]
        head = f"{request.build_absolute_uri(request.path)}?"
        if kept:
            head += urlencode(kept) + "&"
        per_page = str(self.per_page)
        return ",".join(
            f'<{head}{urlencode([("page", token), ("per_page", per_page)])}>; rel="{rel}"'
            for rel, token in links
        )

    def get_paginated_response(self, data: Any) -> Any:
        return Response(data, headers={"Link": self.link_header()})
