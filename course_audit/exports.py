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

from course_audit.models import CourseEvent
from course_audit.pagination import Partitions, keyset_rows

EXPORT_CHUNK = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = [
    "id",
    "created_at",
    "course_id",
    "course_name",
    "account_id",
    "event_type",
    "event_source",
    "user_id",
    "user_name",
    "sis_batch_id",
    "request_id",
    "related_course_id",
    "event_data",
]
_ROW_FIELDS = (
    "id",
    "uuid",
    "created_at",
    "course_id",
    "course__name",
    "account_id",
    "event_type",
    "event_source",
    "user_id",
    "user_name",
    "sis_batch_id",
    "page_view_id",
    "related_course_id",
    "event_data",
)


def neutralise(cell: Any) -> Any:
    """Keep a spreadsheet from reading a cell as a formula (OWASP's CSV injection advice)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def export_row(row: dict[str, Any], zone: dt.tzinfo) -> dict[str, Any]:
    """One exported record (``EXPORT_COLUMNS``) from a row of ``walk``."""
    return {
        "id": str(row["uuid"]),
        "created_at": row["created_at"].astimezone(zone).isoformat(timespec="seconds"),
        "course_id": row["course_id"],
        "course_name": row["course__name"],
        "account_id": row["account_id"],
        "event_type": row["event_type"],
        "event_source": row["event_source"],
        "user_id": row["user_id"],
        "user_name": row["user_name"],
        "sis_batch_id": row["sis_batch_id"],
        "request_id": str(row["page_view_id"]) if row["page_view_id"] else None,
        "related_course_id": row["related_course_id"],
        "event_data": row["event_data"],
    }


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
        row["event_data"] = json.dumps(row["event_data"], cls=DjangoJSONEncoder, sort_keys=True)
        yield writer.writerow(
            [neutralise("" if row[key] is None else row[key]) for key in EXPORT_COLUMNS]
        )


def jsonl_lines(events: Iterator[dict[str, Any]], zone: dt.tzinfo) -> Iterator[str]:
    for event in events:
        yield json.dumps(export_row(event, zone), cls=DjangoJSONEncoder) + "\n"
