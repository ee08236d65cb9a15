"""The history exports: CSV and JSON Lines of exactly the filtered events, streamed.

Rows are read one keyset page at a time (``EXPORT_CHUNK``), so memory stays flat whatever
the size; dates are ISO 8601 in the viewer's time zone; CSV cells that a spreadsheet would
read as a formula are neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import itertools
import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from course_audit.diff import in_field_order
from course_audit.models import Course, CourseEvent
from course_audit.pagination import Branches, Partitions, keyset_rows

EXPORT_CHUNK = 1000
# At most about this many rows are held at once by an export over many ranges (a subtree's
# accounts, see ``walk``): each range's chunk is capped at its share of it.
EXPORT_HELD_ROWS = 20_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Each exported column and the walked row's value it is made of; the keyset walk also
# reads "id" (with "created_at", the position).
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("created_at", "created_at"),
    ("course_id", "course_id"),
    ("course_name", "course__name"),
    ("account_id", "account_id"),
    ("event_type", "event_type"),
    ("event_source", "event_source"),
    ("user_id", "user_id"),
    ("user_name", "user_name"),
    ("sis_batch_id", "sis_batch_id"),
    ("request_id", "page_view_id"),
    ("related_course_id", "related_course_id"),
    ("event_data", "event_data"),
)
EXPORT_COLUMNS = [column for column, _ in _COLUMNS]
_ROW_FIELDS = ("id", *(field for _, field in _COLUMNS))


def export_row(row: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """One exported record (``EXPORT_COLUMNS``) from a row of ``walk``: ids as text, the
    time in ``zone``, the event's data in the order the pages show it."""
    record = {column: row[field] for column, field in _COLUMNS}
    record["id"] = str(record["id"])
    record["created_at"] = record["created_at"].astimezone(zone).isoformat(timespec="seconds")
    record["request_id"] = str(record["request_id"]) if record["request_id"] else None
    if isinstance(record["event_data"], dict):
        record["event_data"] = in_field_order(record["event_data"])
    return record


def walk(
    events: QuerySet[CourseEvent], partitions: Partitions, branches: Branches = None
) -> Iterator[dict[str, Any]]:
    """Every event as a row of plain values (no model instances), newest first, one keyset
    page at a time: memory stays flat whatever the size.

    Over ``partitions`` (a subtree's accounts) each range is walked on its own and the
    walks are merged here, in the same order (``created_at`` then ``id``, descending, a
    position no two rows share). Paging the union instead (``fetch_ordered``'s fan-out)
    reads up to a chunk from every range for each chunk it returns. A range's chunk
    starts at a quarter of ``EXPORT_CHUNK`` (a range may hold a few rows) and doubles as
    it is drained, up to its share of ``EXPORT_HELD_ROWS``: what is held is bounded,
    whatever the rows. The course names are then read for each ``EXPORT_CHUNK`` of merged
    rows by primary key, not joined in every range's query. ``branches`` (one filter per
    changed field asked for) are read as ``fetch_ordered`` reads them, in each range.
    """
    rows_of = events.select_related(None)
    if partitions is None or len(partitions[1]) <= 1:
        yield from _walk_range(rows_of.values(*_ROW_FIELDS), EXPORT_CHUNK, EXPORT_CHUNK, branches)
        return
    field, keys = partitions
    rows_of = rows_of.values(*(name for name in _ROW_FIELDS if name != "course__name"))
    most = min(EXPORT_CHUNK, max(EXPORT_CHUNK // 10, EXPORT_HELD_ROWS // len(keys)))
    first = max(1, min(most, EXPORT_CHUNK // 4))
    merged = heapq.merge(
        *(_walk_range(rows_of.filter(**{field: key}), first, most, branches) for key in keys),
        key=_position,
        reverse=True,
    )
    courses = Course._default_manager.using(events.db)
    while chunk := list(itertools.islice(merged, EXPORT_CHUNK)):
        names = dict(
            courses.filter(pk__in={row["course_id"] for row in chunk}).values_list("pk", "name")
        )
        for row in chunk:
            row["course__name"] = names.get(row["course_id"])
        yield from chunk


def _position(row: dict[str, Any]) -> tuple[dt.datetime, int]:
    return row["created_at"], row["id"]


def _walk_range(
    rows_of: QuerySet[Any], chunk: int, most: int, branches: Branches
) -> Iterator[dict[str, Any]]:
    """One index range's rows, newest first, in chunks doubling from ``chunk`` to
    ``most``."""
    after = None
    while True:
        rows, more = keyset_rows(rows_of, limit=chunk, after=after, branches=branches)
        yield from rows
        if not more:
            return
        after = _position(rows[-1])
        chunk = min(chunk * 2, most)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(events: Iterator[dict[str, Any]], zone: dt.tzinfo) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for event in events:
        row = export_row(event, zone)
        row["event_data"] = json.dumps(row["event_data"], cls=DjangoJSONEncoder)
        # A cell a spreadsheet would read as a formula is neutralised (OWASP's CSV injection
        # advice), inline: a call per cell was a tenth of an export's time.
        yield writer.writerow(
            [
                "'" + cell
                if isinstance(cell, str) and cell.startswith(_FORMULA_START)
                else ("" if cell is None else cell)
                for cell in row.values()
            ]
        )


def jsonl_lines(events: Iterator[dict[str, Any]], zone: dt.tzinfo) -> Iterator[str]:
    for event in events:
        yield json.dumps(export_row(event, zone), cls=DjangoJSONEncoder) + "\n"
