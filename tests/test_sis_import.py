"""The SIS import of Canvas's courses.csv: one batch per run, recorded in bulk."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from course_audit import recording, services, sis
from course_audit.models import Account, Course, CourseEvent, SisBatch
from course_audit.querysets import CourseQuerySet
from tests.helpers import event_types, event_write_points, events_of

pytestmark = pytest.mark.django_db

HEADER = "course_id,short_name,long_name,account_id,status,start_date,end_date"
UTC = dt.UTC


def _write(path: Path, *lines: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def import_csv(tmp_path: Path, root_account: Account) -> Callable[..., SisBatch]:
    """Write the lines (after a header) to a courses.csv and import it."""

    def run(*lines: str, header: str = HEADER, **kwargs: Any) -> SisBatch:
        path = _write(tmp_path / "courses.csv", *lines, header=header)
        return sis.import_courses_csv(file=path, root_account=root_account, **kwargs)

    return run


def _sis_events(course: Course) -> list[str]:
    return [event.event_type for event in events_of(course) if event.event_source == "sis"]


def test_new_courses_are_created_with_sis_events(import_csv, root_account, department, make_user):
    registrar = make_user("registrar")
    batch = import_csv(
        "BIO-1,BIO1,Biology One,BIO,active,2025-01-10T08:00:00Z,2025-05-10",
        "CHEM-1,,Chemistry,,active,,",
        user=registrar,
    )
    assert (batch.workflow_state, batch.messages, batch.filename) == ("imported", [], "courses.csv")
    assert (batch.rows_total, batch.rows_applied, batch.rows_skipped) == (2, 2, 0)
    assert (batch.courses_created, batch.courses_updated) == (2, 0)
    assert batch.user == registrar and batch.root_account == root_account
    assert batch.ended_at is not None

    biology = Course.objects.get(sis_course_id="BIO-1")
    assert (biology.name, biology.course_code, biology.workflow_state) == (
        "Biology One",
        "BIO1",
        "unpublished",
    )
    assert (biology.account, biology.root_account) == (department, root_account)
    assert biology.start_at == dt.datetime(2025, 1, 10, 8, tzinfo=UTC)
    assert biology.conclude_at == dt.datetime(2025, 5, 10, tzinfo=UTC)
    [event] = events_of(biology)
    assert (event.event_type, event.event_source) == ("created", "sis")
    assert (event.sis_batch, event.user) == (batch, registrar)
    assert event.user_name == recording.display_name(registrar)
    assert event.account == department
    assert event.event_data == {
        "name": [None, "Biology One"],
        "course_code": [None, "BIO1"],
        "sis_course_id": [None, "BIO-1"],
        "account_id": [None, department.pk],
        "start_at": [None, "2025-01-10T08:00:00Z"],
        "conclude_at": [None, "2025-05-10T00:00:00Z"],
        "is_public": [None, False],
        "created_source": "sis",
    }

    chemistry = Course.objects.get(sis_course_id="CHEM-1")
    assert (chemistry.account, chemistry.course_code) == (root_account, "")
    assert (chemistry.start_at, chemistry.conclude_at) == (None, None)
    assert CourseEvent.objects.get(course=chemistry).event_data == {
        "name": [None, "Chemistry"],
        "sis_course_id": [None, "CHEM-1"],
        "account_id": [None, root_account.pk],
        "is_public": [None, False],
        "created_source": "sis",
    }
    assert set(CourseEvent.objects.values_list("sis_batch", flat=True)) == {batch.pk}


@pytest.mark.parametrize(
    ("status", "state", "events"),
    [
        ("active", "unpublished", ["created"]),
        ("unpublished", "unpublished", ["created"]),
        ("published", "available", ["created", "published"]),
        ("completed", "completed", ["created", "concluded"]),
        ("deleted", "deleted", ["created", "deleted"]),
        ("PUBLISHED", "available", ["created", "published"]),
    ],
)
def test_status_of_a_new_course(import_csv, status, state, events):
    batch = import_csv(f"NEW-1,,New,,{status},,")
    course = Course.objects.get(sis_course_id="NEW-1")
    assert course.workflow_state == state
    assert event_types(course) == events
    assert {(e.event_source, e.sis_batch_id) for e in events_of(course)} == {("sis", batch.pk)}


def test_an_update_run_records_exact_diffs(import_csv, course, department, college, monkeypatch):
    untouched = services.course_create(
        account=department, name="Chemistry", course_code="CHEM", sis_course_id="CHEM-F25"
    )
    written: list[tuple[list[str], list[str]]] = []
    bulk_update = CourseQuerySet.bulk_update

    def spy(self: CourseQuerySet, objs: Any, fields: Any, batch_size: Any = None) -> int:
        objs, fields = list(objs), list(fields)
        written.append(([obj.sis_course_id for obj in objs], fields))
        return bulk_update(self, objs, fields, batch_size=batch_size)

    monkeypatch.setattr(CourseQuerySet, "bulk_update", spy)
    batch = import_csv(
        "BIO101-F25,BIO-101,Biology 101 (Fall),SCI,published,2025-09-01T09:00:00Z,",
        "CHEM-F25,CHEM,Chemistry,BIO,unpublished,,",
    )
    assert (batch.workflow_state, batch.rows_applied) == ("imported", 2)
    assert (batch.courses_created, batch.courses_updated) == (0, 1)
    # Only the row that changes is written, and only the fields that change in it.
    assert written == [
        (
            ["BIO101-F25"],
            ["account", "course_code", "name", "start_at", "updated_at", "workflow_state"],
        )
    ]

    course.refresh_from_db()
    assert (course.name, course.course_code, course.account, course.workflow_state) == (
        "Biology 101 (Fall)",
        "BIO-101",
        college,
        "available",
    )
    assert course.root_account_id == college.root_account_id
    assert event_types(course) == ["created", "updated", "published"]
    updated, published = events_of(course)[1:]
    assert updated.event_data == {
        "name": ["Biology 101", "Biology 101 (Fall)"],
        "course_code": ["BIO101", "BIO-101"],
        "account_id": [department.pk, college.pk],
        "start_at": [None, "2025-09-01T09:00:00Z"],
    }
    assert published.event_data == {}
    for event in (updated, published):
        assert (event.event_source, event.sis_batch, event.account) == ("sis", batch, college)
    assert event_types(untouched) == ["created"]


def _available(course: Course) -> None:
    services.course_publish(course=course)


def _completed(course: Course) -> None:
    services.course_conclude(course=course)


def _deleted(course: Course) -> None:
    services.course_delete(course=course)


@pytest.mark.parametrize(
    ("prepare", "status", "state", "events"),
    [
        (_available, "completed", "completed", ["concluded"]),
        (_completed, "published", "available", ["unconcluded"]),
        (_available, "unpublished", "unpublished", ["unpublished"]),
        (_available, "deleted", "deleted", ["deleted"]),
        (_deleted, "active", "unpublished", ["restored"]),
        (_deleted, "published", "available", ["restored", "published"]),
        (_available, "active", "available", []),
        (_completed, "active", "completed", []),
    ],
)
def test_status_of_an_existing_course(
    import_csv, course, department, prepare, status, state, events
):
    prepare(course)
    batch = import_csv(f"BIO101-F25,BIO101,Biology 101,BIO,{status},,")
    course.refresh_from_db()
    assert course.workflow_state == state
    assert _sis_events(course) == events
    assert batch.courses_updated == (1 if events else 0)


def test_rerunning_the_same_file_records_nothing(import_csv, course):
    lines = (
        "BIO101-F25,BIO101,Biology 101,BIO,published,2025-09-01T09:00:00-06:00,2025-12-20",
        "NEW-1,N1,New one,SCI,completed,2025-01-10 08:30,",
        "NEW-2,,New two,,deleted,,",
        "NEW-3,,New three,SU,active,2025-01-10T08:30:00.750Z,",
    )
    first = import_csv(*lines)
    assert (first.courses_created, first.courses_updated) == (3, 1)
    events = CourseEvent.objects.count()
    updated_at = dict(Course.objects.values_list("pk", "updated_at"))

    second = import_csv(*lines)
    assert second.pk != first.pk
    assert (second.workflow_state, second.messages) == ("imported", [])
    assert (second.rows_total, second.rows_applied, second.rows_skipped) == (4, 4, 0)
    assert (second.courses_created, second.courses_updated) == (0, 0)
    assert CourseEvent.objects.count() == events
    assert not CourseEvent.objects.filter(sis_batch=second).exists()
    assert dict(Course.objects.values_list("pk", "updated_at")) == updated_at


def test_dates_compare_at_whole_seconds(import_csv, make_course):
    course = make_course(
        sis_course_id="MICRO", name="Micro", start_at=dt.datetime(2025, 1, 10, 8, 0, 0, 123456, UTC)
    )
    batch = import_csv("MICRO,,Micro,BIO,active,2025-01-10T08:00:00Z,")
    assert batch.courses_updated == 0
    assert event_types(course) == ["created"]


def test_bad_rows_are_reported_and_skipped(import_csv, root_account, college):
    Account.objects.create(
        name="Closed", parent=root_account, sis_account_id="OLD", workflow_state="deleted"
    )
    other_root = Account.objects.create(name="Other University", sis_account_id="OU")
    Account.objects.create(name="Elsewhere", parent=other_root, sis_account_id="ELSEWHERE")
    batch = import_csv(
        "OK-1,,Good one,,active,,",  # line 2
        ",,No id,,active,,",
        "BAD-ACCOUNT,,X,NOWHERE,active,,",
        "BAD-DATE,,X,,active,2025-13-01,",  # line 5
        "BAD-STATUS,,X,,archived,,",
        "BAD-ORDER,,X,,active,2025-05-01,2025-01-01",
        "NO-NAME,,,,active,,",
        "OK-1,,Again,,published,,",
        "OK-2,,Good two,SCI,published,,",  # line 10
        "SHORT,,X",
        "NO-STATUS,,X,,,,",
        'MULTI,,"Two\nlines",,active,,',  # lines 13-14
        "OTHER-ROOT,,X,ELSEWHERE,active,,",  # line 15
        "CLOSED,,X,OLD,active,,",
        f"LONG,,{'x' * 256},,active,,",
        "BAD-END,,X,,active,,tomorrow",
        ",,,,,,",  # a blank record: not a row
        "EXTRA,,X,,active,,,surplus",  # line 20
    )
    assert batch.messages == [
        "line 3: course_id is missing",
        'line 4: account_id "NOWHERE" is not an account of this root account',
        'line 5: start_date "2025-13-01" is not an ISO 8601 date or date-time',
        'line 6: status "archived" is not one of active, published, unpublished, completed, '
        "deleted",
        "line 7: end_date is before start_date",
        "line 8: long_name is missing (required for a new course)",
        'line 9: course_id "OK-1" is already on line 2',
        "line 11: 3 fields, but the header has 7",
        "line 12: status is missing",
        'line 15: account_id "ELSEWHERE" is not an account of this root account',
        'line 16: account_id "OLD" is a deleted account',
        "line 17: long_name is longer than 255 characters",
        'line 18: end_date "tomorrow" is not an ISO 8601 date or date-time',
        "line 20: 8 fields, but the header has 7",
    ]
    assert batch.workflow_state == "imported_with_messages"
    assert (batch.rows_total, batch.rows_applied, batch.rows_skipped) == (17, 3, 14)
    assert (batch.courses_created, batch.courses_updated) == (3, 0)
    assert set(Course.objects.values_list("sis_course_id", "name")) == {
        ("OK-1", "Good one"),
        ("OK-2", "Good two"),
        ("MULTI", "Two\nlines"),
    }
    assert CourseEvent.objects.filter(sis_batch=batch).count() == 4  # 3 created, 1 published


def test_account_id_is_a_sis_account_id_in_the_root(import_csv, root_account, college, department):
    import_csv(
        "IN-DEPT,,X,BIO,active,,",
        "IN-COLLEGE,,X,SCI,active,,",
        "IN-ROOT-BY-ID,,X,SU,active,,",
        "IN-ROOT-BLANK,,X,,active,,",
    )
    accounts = dict(Course.objects.values_list("sis_course_id", "account"))
    assert accounts == {
        "IN-DEPT": department.pk,
        "IN-COLLEGE": college.pk,
        "IN-ROOT-BY-ID": root_account.pk,
        "IN-ROOT-BLANK": root_account.pk,
    }
    assert set(Course.objects.values_list("root_account", flat=True)) == {root_account.pk}


def test_a_blank_account_id_moves_an_existing_course_to_the_root(
    import_csv, course, department, root_account
):
    import_csv("BIO101-F25,BIO101,Biology 101,,active,,")
    course.refresh_from_db()
    assert course.account == root_account
    assert CourseEvent.objects.get(course=course, event_source="sis").event_data == {
        "account_id": [department.pk, root_account.pk]
    }


def test_absent_optional_columns_and_a_blank_name_keep_the_course_values(import_csv, make_course):
    start = dt.datetime(2025, 9, 1, 9, tzinfo=UTC)
    course = make_course(sis_course_id="KEEP", name="Kept", course_code="K1", start_at=start)
    batch = import_csv("KEEP,,completed", "FRESH,Fresh,active", header="course_id,long_name,status")
    course.refresh_from_db()
    assert (course.name, course.course_code, course.start_at) == ("Kept", "K1", start)
    assert course.account.sis_account_id == "BIO"
    assert course.workflow_state == "completed"
    assert _sis_events(course) == ["concluded"]
    fresh = Course.objects.get(sis_course_id="FRESH")
    assert (fresh.account_id, fresh.course_code) == (batch.root_account_id, "")


def test_dates_without_an_offset_are_in_the_active_time_zone(import_csv):
    with timezone.override(zoneinfo.ZoneInfo("America/Denver")):
        import_csv(
            "NAIVE,,X,,active,2025-01-10T08:00:00,2025-07-01",
            "OFFSET,,X,,active,2025-01-10T08:00:00+02:00,2025-07-01T00:00:00Z",
        )
    naive = Course.objects.get(sis_course_id="NAIVE")
    assert naive.start_at == dt.datetime(2025, 1, 10, 15, tzinfo=UTC)
    assert naive.conclude_at == dt.datetime(2025, 7, 1, 6, tzinfo=UTC)  # MDT midnight
    offset = Course.objects.get(sis_course_id="OFFSET")
    assert offset.start_at == dt.datetime(2025, 1, 10, 6, tzinfo=UTC)
    assert offset.conclude_at == dt.datetime(2025, 7, 1, tzinfo=UTC)


def test_large_files_go_through_the_bulk_paths_in_chunks(import_csv, monkeypatch):
    def no_single_saves(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the import must not save courses one by one")

    monkeypatch.setattr(sis, "CHUNK_SIZE", 3)
    monkeypatch.setattr(Course, "save", no_single_saves)
    lines = [f"C-{i},,Course {i},,active,," for i in range(10)]
    first = import_csv(*lines)
    assert (first.courses_created, first.rows_applied) == (10, 10)
    renamed = [line.replace("Course", "Renamed") for line in lines]
    renamed[4] = "C-4,,Course 4,,published,,"
    second = import_csv(*renamed, "C-0,,Duplicate,,active,,")
    assert (second.courses_created, second.courses_updated, second.rows_skipped) == (0, 10, 1)
    assert second.messages == ['line 12: course_id "C-0" is already on line 2']
    assert CourseEvent.objects.filter(sis_batch=second, event_type="updated").count() == 9
    assert CourseEvent.objects.filter(sis_batch=second, event_type="published").count() == 1


def test_the_queries_do_not_grow_with_the_rows(import_csv):
    def queries(count: int, prefix: str, status: str) -> int:
        lines = [f"{prefix}-{i},,Course {i},,{status},," for i in range(count)]
        with CaptureQueriesContext(connection) as captured:
            import_csv(*lines)
        return len(captured)

    # New courses, then every one of them changed. (Not many more: SQLite takes 999
    # parameters a statement, so a multi-row INSERT of events holds 999 // columns rows.)
    assert queries(5, "FEW", "active") == queries(40, "MANY", "active")
    assert queries(5, "FEW", "published") == queries(40, "MANY", "published")
    # A rerun that changes nothing writes no course at all.
    assert queries(40, "MANY", "published") < queries(40, "OTHER", "active")


def test_a_failing_chunk_is_rolled_back_and_the_batch_fails(import_csv, monkeypatch):
    before_events, _ = event_write_points()
    write_events = getattr(recording, before_events)
    calls = 0

    def fail_second_time(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseError("disk full")
        return write_events(*args, **kwargs)

    monkeypatch.setattr(sis, "CHUNK_SIZE", 2)
    monkeypatch.setattr(recording, before_events, fail_second_time)
    with pytest.raises(DatabaseError):
        import_csv(*(f"C-{i},,Course {i},,active,," for i in range(5)))
    assert sorted(Course.objects.values_list("sis_course_id", flat=True)) == ["C-0", "C-1"]
    assert CourseEvent.objects.filter(event_type="created").count() == 2
    batch = SisBatch.objects.get()
    assert batch.workflow_state == "failed"
    assert batch.messages == ["Import failed at lines 4-5: DatabaseError('disk full')"]
    assert (batch.rows_total, batch.rows_applied, batch.courses_created) == (5, 2, 2)
    assert batch.ended_at is not None


def test_a_header_without_a_required_column_changes_nothing(import_csv):
    with pytest.raises(sis.SisImportError) as raised:
        import_csv("C-1,C1,active", header="course_id,short_name,status")
    message = (
        "The header has no long_name column; a courses.csv needs course_id, long_name, status."
    )
    assert str(raised.value) == message
    assert not Course.objects.exists()
    batch = SisBatch.objects.get()
    assert (batch.workflow_state, batch.messages) == ("failed", [message])


def test_a_file_object_with_a_byte_order_mark(root_account):
    stream = StringIO("\ufeff" + HEADER + "\nSTREAM-1,,From a stream,,published,,\n")
    batch = sis.import_courses_csv(file=stream, root_account=root_account, filename="feed.csv")
    assert (batch.filename, batch.courses_created) == ("feed.csv", 1)
    assert event_types(Course.objects.get(sis_course_id="STREAM-1")) == ["created", "published"]


def test_the_importer_needs_a_root_account(tmp_path, department):
    with pytest.raises(sis.SisImportError, match="is not a root account"):
        sis.import_courses_csv(file=_write(tmp_path / "c.csv"), root_account=department)
    assert not SisBatch.objects.exists()


def test_progress_is_drawn_on_stderr_only_when_asked(import_csv, capsys):
    import_csv("P-1,,X,,active,,")
    assert capsys.readouterr().err == ""
    import_csv("P-1,,X,,active,,", progress=True)
    assert "1/1" in capsys.readouterr().err


def _command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sis_import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_prints_a_summary_and_each_bad_row(tmp_path, root_account, college, make_user):
    user = make_user("registrar")
    path = _write(
        tmp_path / "fall.csv",
        "C-1,,One,,published,,",
        "C-2,,Two,NOWHERE,active,,",
        "C-3,,Three,SCI,active,,",
    )
    out, err = _command(str(path), "--account", str(root_account.pk), "--user", user.get_username())
    batch = SisBatch.objects.get()
    assert out.splitlines() == [
        f"SIS batch {batch.pk} (fall.csv): Imported with messages",
        "rows read: 3",
        "rows applied: 2",
        "rows skipped: 1",
        "courses created: 2",
        "courses changed: 0",
    ]
    assert err.splitlines() == [
        'line 3: account_id "NOWHERE" is not an account of this root account'
    ]
    assert batch.user == user
    assert set(CourseEvent.objects.values_list("event_source", "user", "sis_batch")) == {
        ("sis", user.pk, batch.pk)
    }

    out, err = _command(str(path), "--account", str(root_account.pk), "--no-progress")
    assert "courses created: 0\ncourses changed: 0" in out
    assert CourseEvent.objects.count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "999999"], "No account with id 999999."),
        (
            ["--account", "{college}"],
            "Account {college} (College of Science) is not a root account.",
        ),
        (["--account", "{root}", "--user", "nobody"], "No user with login 'nobody'."),
    ],
)
def test_the_command_refuses_a_bad_account_or_user(tmp_path, root_account, college, args, message):
    ids = {"root": root_account.pk, "college": college.pk}
    path = _write(tmp_path / "c.csv", "C-1,,One,,active,,")
    with pytest.raises(CommandError) as raised:
        _command(str(path), *(arg.format(**ids) for arg in args))
    assert str(raised.value) == message.format(**ids)
    assert not Course.objects.exists()


def test_the_command_refuses_a_missing_file_or_header(tmp_path, root_account):
    missing = tmp_path / "missing.csv"
    with pytest.raises(CommandError, match=re.escape(f"No such file: {missing}")):
        _command(str(missing), "--account", str(root_account.pk))
    bad = _write(tmp_path / "bad.csv", "C-1,active", header="course_id,status")
    with pytest.raises(CommandError, match="The header has no long_name column"):
        _command(str(bad), "--account", str(root_account.pk))
    assert not Course.objects.exists()


def test_any_offset_python_reads_is_imported_or_reported_never_a_database_error(
    import_csv, department
):
    batch = import_csv(
        f"FAR-EAST,,Far east,{department.sis_account_id},active,2026-01-12T00:00:00+16:00,",
        f"TOO-EARLY,,Too early,{department.sis_account_id},active,0001-01-01T00:00:00+01:00,",
    )
    assert batch.messages == [
        'line 3: start_date "0001-01-01T00:00:00+01:00" is out of the supported range'
    ]
    course = Course.objects.get(sis_course_id="FAR-EAST")
    assert course.start_at == dt.datetime(2026, 1, 11, 8, 0, tzinfo=UTC)
