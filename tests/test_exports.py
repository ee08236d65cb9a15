"""course_audit.exports: the columns and their order, the event data in the order the
pages show it, times in the viewer's zone, formulas neutralised, and the keyset walk
(over one account or a partitioned subtree) reading every event once."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
import zoneinfo

import pytest

from course_audit import exports
from course_audit.diff import TRACKED_FIELDS
from course_audit.exports import EXPORT_COLUMNS, csv_lines, jsonl_lines, walk
from course_audit.models import Account, CourseEvent

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")
REQUEST = uuid.UUID("87654321-4321-8765-4321-876543210987")


def walked(**overrides):
    """A row as ``walk`` yields it."""
    row = {
        "id": 41,
        "uuid": UUID,
        "created_at": T0,
        "course_id": 7,
        "course__name": "Biology 101",
        "account_id": 3,
        "event_type": "updated",
        "event_source": "api",
        "user_id": 5,
        "user_name": "Some One",
        "sis_batch_id": None,
        "page_view_id": REQUEST,
        "related_course_id": None,
        # as jsonb gives it back: not in the tracked order
        "event_data": {"public_description": ["", "x"], "name": ["a", "b"], "account_id": [3, 4]},
    }
    row.update(overrides)
    return row


def test_the_columns_and_their_order():
    assert EXPORT_COLUMNS == [
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


def test_a_csv_row():
    header, line = csv.reader(io.StringIO("".join(csv_lines(iter([walked()]), dt.UTC))))
    assert header == EXPORT_COLUMNS
    assert dict(zip(header, line, strict=True)) == {
        "id": str(UUID),
        "created_at": "2025-03-03T12:00:00+00:00",
        "course_id": "7",
        "course_name": "Biology 101",
        "account_id": "3",
        "event_type": "updated",
        "event_source": "api",
        "user_id": "5",
        "user_name": "Some One",
        "sis_batch_id": "",  # None is an empty cell
        "request_id": str(REQUEST),
        "related_course_id": "",
        # the tracked-field order, as the pages and the API show it
        "event_data": '{"name": ["a", "b"], "account_id": [3, 4], "public_description": ["", "x"]}',
    }


def test_a_jsonl_line():
    (line,) = jsonl_lines(iter([walked(page_view_id=None, sis_batch_id=9)]), dt.UTC)
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert list(record) == EXPORT_COLUMNS
    assert record["id"] == str(UUID)
    assert record["request_id"] is None
    assert record["sis_batch_id"] == 9
    assert record["user_id"] == 5  # numbers stay numbers
    assert list(record["event_data"]) == ["name", "account_id", "public_description"]


def test_event_data_follows_the_tracked_fields_then_created_source():
    data = {name: [None, "x"] for name in reversed(TRACKED_FIELDS)}
    data["created_source"] = "sis"
    (line,) = jsonl_lines(iter([walked(event_data=data)]), dt.UTC)
    assert list(json.loads(line)["event_data"]) == [*TRACKED_FIELDS, "created_source"]


def test_times_are_in_the_viewers_zone_to_the_second():
    row = walked(created_at=T0.replace(microsecond=123456))
    (line,) = jsonl_lines(iter([row]), PARIS)
    assert json.loads(line)["created_at"] == "2025-03-03T13:00:00+01:00"
    summer = walked(created_at=dt.datetime(2025, 7, 1, 22, 30, tzinfo=dt.UTC))
    rows = list(csv.reader(io.StringIO("".join(csv_lines(iter([summer]), PARIS)))))
    assert rows[1][1] == "2025-07-02T00:30:00+02:00"  # the next day in Paris


def test_formulas_are_neutralised_in_csv_only():
    row = walked(course__name="=1+1", user_name="@SUM(A1)", event_data={"name": ["-2", "+3"]})
    _, line = csv.reader(io.StringIO("".join(csv_lines(iter([row]), dt.UTC))))
    cells = dict(zip(EXPORT_COLUMNS, line, strict=True))
    assert cells["course_name"] == "'=1+1"
    assert cells["user_name"] == "'@SUM(A1)"
    assert cells["event_data"] == '{"name": ["-2", "+3"]}'  # starts with "{": left alone
    (record,) = jsonl_lines(iter([row]), dt.UTC)
    assert json.loads(record)["course_name"] == "=1+1"  # JSON is not read as a formula


def test_an_empty_walk_is_a_header_alone():
    assert list(csv_lines(iter([]), dt.UTC)) == [",".join(EXPORT_COLUMNS) + "\r\n"]
    assert list(jsonl_lines(iter([]), dt.UTC)) == []


# --- the walk (database) -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_walk_reads_every_event_once_newest_first_in_chunks(
    course, add_events, monkeypatch, django_assert_num_queries
):
    # seven events on one timestamp (a bulk import) and three a second apart
    add_events(course, 7, when=T0)
    add_events(course, 3, when=T0 + dt.timedelta(seconds=1), step=dt.timedelta(seconds=1))
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 3)
    events = CourseEvent.objects.filter(course=course, created_at__year=2025)
    expected = list(events.order_by("-created_at", "-id").values_list("uuid", flat=True))

    with django_assert_num_queries(4):  # 3 + 3 + 3 + 1 rows, no query beyond the last
        rows = list(walk(events, None))

    assert [row["uuid"] for row in rows] == expected
    assert len(rows) == 10
    assert set(rows[0]) == {"id", *(field for _, field in exports._COLUMNS)}
    assert rows[0]["course__name"] == "Biology 101"


@pytest.mark.django_db
def test_the_walk_over_partitions_merges_the_accounts(
    make_course, college, department, add_events, monkeypatch
):
    chemistry = Account.objects.create(name="Chemistry", parent=college)
    biology = make_course(name="Biology 101")
    organic = make_course(name="Organic chemistry", account=chemistry)
    # interleaved in time, so every chunk mixes the two accounts
    add_events(biology, 4, when=T0, step=dt.timedelta(minutes=2))
    add_events(organic, 4, when=T0 + dt.timedelta(minutes=1), step=dt.timedelta(minutes=2))
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 3)
    account_ids = [college.pk, department.pk, chemistry.pk]
    events = CourseEvent.objects.filter(account_id__in=account_ids, created_at__year=2025)

    rows = list(walk(events, ("account_id", account_ids)))

    assert [row["course__name"] for row in rows] == ["Organic chemistry", "Biology 101"] * 4
    times = [row["created_at"] for row in rows]
    assert times == sorted(times, reverse=True)
    assert times[0] == T0 + dt.timedelta(minutes=7)
    assert rows == list(walk(events, None))  # the same rows as the plain walk


@pytest.mark.django_db
def test_the_merged_walk_is_the_ordered_union_across_chunks_and_ties(
    make_course, college, department, add_events, monkeypatch
):
    chemistry = Account.objects.create(name="Chemistry", parent=college)
    physics = Account.objects.create(name="Physics", parent=college)
    courses = [
        make_course(name="Biology 101"),
        make_course(name="Organic chemistry", account=chemistry),
        make_course(name="Optics", account=physics),
    ]
    for index, course in enumerate(courses):
        # a bulk import on one timestamp in every account: ties across the ranges, which
        # only the id orders; then events interleaved in time across the accounts
        add_events(course, 5 + index, when=T0)
        add_events(course, 4, when=T0 + dt.timedelta(seconds=index), step=dt.timedelta(seconds=3))
    # chunks smaller than a range's share, so that every range is read in several chunks
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 4)
    account_ids = [college.pk, department.pk, chemistry.pk, physics.pk]
    events = CourseEvent.objects.filter(account_id__in=account_ids)
    expected = list(events.order_by("-created_at", "-id").values(*exports._ROW_FIELDS))
    assert len(expected) > 5 * exports.EXPORT_CHUNK

    rows = list(walk(events, ("account_id", account_ids)))

    assert rows == expected
    assert {row["course__name"] for row in rows} == {course.name for course in courses}
