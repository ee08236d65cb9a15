"""The history exports: CSV and JSON Lines of exactly the filtered events, streamed.

Rows are read one keyset page at a time (``EXPORT_CHUNK``), so memory stays flat whatever
the size; dates are ISO 8601 in the viewer's time zone; CSV cells that a spreadsheet would
read as a formula are neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from course_audit.diff import in_field_order
from course_audit.models import CourseEvent
from course_audit.pagination import Partitions, keyset_rows

EXPORT_CHUNK = 1000
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


def neutralise(cell: Any) -> Any:
    """Keep a spreadsheet from reading a cell as a formula (OWASP's CSV injection advice)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


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


def walk(events: QuerySet[CourseEvent], partitions: Partitions) -> Iterator[dict[str, Any]]:
    """Every event as a row of plain values (no model instances), newest first, one keyset
    page at a time: memory stays flat whatever the size."""
    rows_of = events.select_related(None).values(*_ROW_FIELDS)
    after = None
    while True:
        rows, more = keyset_rows(rows_of, limit=EXPORT_CHUNK, after=after, partitions=partitions)
        yield from rows
        if not more:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(events: Iterator[dict[str, Any]], zone: dt.tzinfo) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for event in events:
        row = export_row(event, zone)
        row["event_data"] = json.dumps(row["event_data"], cls=DjangoJSONEncoder)
        yield writer.writerow(
            [neutralise("" if row[key] is None else row[key]) for key in EXPORT_COLUMNS]
        )


def jsonl_lines(events: Iterator[dict[str, Any]], zone: dt.tzinfo) -> Iterator[str]:
    for event in events:
        yield json.dumps(export_row(event, zone), cls=DjangoJSONEncoder) + "\n"
