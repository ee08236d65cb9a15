"""When the event INSERT fails, nothing of the change is left half-done (issue #6, item 4).

Two ways to break the insert:

- ``patch``: writing the events raises ``OperationalError`` (the database went away
  mid-request), on every backend (``tests.helpers.fail_event_writes``);
- ``trigger``: on PostgreSQL a real ``BEFORE INSERT`` trigger on the event table raises,
  so the failure comes from the database itself, through multi-row INSERTs and COPY alike.

The API answers 503 in the contract's error form and the ORM raises to its caller; either
way the course rows and the event rows are exactly as they were before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import DatabaseError, OperationalError, connection

from course_audit import recording, services, sis
from course_audit.models import Account, Course, CourseEvent, SisBatch
from tests.api_fixtures import ApiCaller
from tests.helpers import fail_event_writes

FORM = "application/x-www-form-urlencoded"
UNAVAILABLE = {
    "errors": [
        {
            "message": "The database could not complete the request; nothing was changed. "
            "Try again later."
        }
    ]
}
PATCH_MESSAGE = "server closed the connection unexpectedly"
TRIGGER_MESSAGE = "injected fault: course event insert refused"
TRIGGER = "course_audit_faults_refuse_event"


class EventInsertFault:
    """A broken event insert, removable mid-test (``remove``) and always removed after."""

    def __init__(self, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind = kind
        self._monkeypatch = monkeypatch
        if kind == "patch":
            fail_event_writes(monkeypatch, OperationalError(PATCH_MESSAGE))
        else:
            table = connection.ops.quote_name(CourseEvent._meta.db_table)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{TRIGGER_MESSAGE}'; END $$"
                )
                cursor.execute(
                    f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
                )

    @property
    def message(self) -> str:
        return PATCH_MESSAGE if self.kind == "patch" else TRIGGER_MESSAGE

    def remove(self) -> None:
        if self.kind == "patch":
            self._monkeypatch.undo()
            return
        table = connection.ops.quote_name(CourseEvent._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")


@pytest.fixture(params=["patch", "trigger"])
def fault_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "trigger" and connection.vendor != "postgresql":
        pytest.skip("the trigger-based fault is PostgreSQL's; the patch covers this backend")
    return request.param


@pytest.fixture
def break_event_insert(
    fault_kind: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], EventInsertFault]]:
    """Call it once the test's own rows exist: from then on every event insert fails."""
    faults: list[EventInsertFault] = []

    def make() -> EventInsertFault:
        faults.append(EventInsertFault(fault_kind, monkeypatch))
        return faults[-1]

    yield make
    for fault in faults:
        fault.remove()


def database_state() -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Every course row, every field, and every event."""
    return (
        list(Course.objects.order_by("pk").values()),
        list(CourseEvent.objects.order_by("pk").values_list("pk", "course_id", "event_type")),
    )


# The API -------------------------------------------------------------------------------


@pytest.fixture
def registrar(caller: Callable[..., ApiCaller], root_account: Account, admin_role: Any) -> Any:
    return caller("registrar", (root_account, admin_role))


def _form(data: dict[str, str]) -> dict[str, Any]:
    return {"data": urlencode(data), "content_type": FORM}


# (method, path, request body): {course}, {other} and {account} are filled in per test.
API_WRITES = {
    "update": ("put", "/api/v1/courses/{course}", _form({"course[name]": "Never"})),
    "update-event": ("put", "/api/v1/courses/{course}", _form({"course[event]": "offer"})),
    "create": ("post", "/api/v1/accounts/{account}/courses", _form({"course[name]": "Never"})),
    "delete": ("delete", "/api/v1/courses/{course}?event=delete", {}),
    "conclude": ("delete", "/api/v1/courses/{course}?event=conclude", {}),
    "reset-content": ("post", "/api/v1/courses/{course}/reset_content", {}),
    "content-migration": (
        "post",
        "/api/v1/courses/{other}/content_migrations",
        _form({"migration_type": "course_copy_importer", "settings[source_course_id]": "{course}"}),
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("write", list(API_WRITES))
def test_an_api_write_whose_event_insert_fails_is_503_and_changes_nothing(
    registrar, course, make_course, department, break_event_insert, write, caplog
):
    other = make_course(name="Chemistry 101")
    method, path, body = API_WRITES[write]
    ids = {"course": course.pk, "other": other.pk, "account": department.pk}
    path = path.format(**ids)
    if "data" in body:
        body = {**body, "data": body["data"].replace("%7Bcourse%7D", str(course.pk))}
    before = database_state()
    fault = break_event_insert()

    with caplog.at_level(logging.ERROR, logger="course_audit.api.exceptions"):
        response = registrar.send(method, path, **body)

    assert response.status_code == 503, response.content
    assert response.json() == UNAVAILABLE
    assert response["Retry-After"] == "30"
    assert response["Content-Type"] == "application/json"
    # The driver's message and the SQL are logged, never sent.
    content = response.content.decode()
    assert fault.message not in content
    assert "INSERT" not in content and "course_audit_courseevent" not in content
    [record] = [r for r in caplog.records if r.name == "course_audit.api.exceptions"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert isinstance(record.exc_info[1], DatabaseError)
    assert fault.message in str(record.exc_info[1])
    fault.remove()
    assert database_state() == before


@pytest.mark.django_db
def test_the_same_write_succeeds_once_the_fault_is_gone(registrar, course, break_event_insert):
    """The 503 was the fault's, not the request's: retried, it is applied and recorded once."""
    fault = break_event_insert()
    path = f"/api/v1/courses/{course.pk}"
    assert registrar.send("put", path, **_form({"course[name]": "Renamed"})).status_code == 503
    fault.remove()

    response = registrar.send("put", path, **_form({"course[name]": "Renamed"}))

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    assert Course.objects.get(pk=course.pk).name == "Renamed"
    updated = CourseEvent.objects.filter(course=course, event_type="updated")
    assert [(e.event_source, e.event_data["name"]) for e in updated] == [
        ("api", ["Biology 101", "Renamed"])
    ]


# The ORM: committed state, so these tests run outside a test transaction ----------------


def _renamed(course: Course) -> Course:
    course.name = "Never"
    return course


def _saved(course: Course) -> None:
    _renamed(course).save()


ORM_WRITES: dict[str, Callable[[Course], Any]] = {
    "service-update": lambda course: services.course_update(course=course, name="Never"),
    "service-create": lambda course: services.course_create(account=course.account, name="N"),
    "service-publish": lambda course: services.course_publish(course=course),
    "save": _saved,
    "create": lambda course: Course.objects.create(account=course.account, name="Never"),
    "queryset-update": lambda course: Course.objects.filter(pk=course.pk).update(name="Never"),
    "bulk-update": lambda course: Course.objects.bulk_update([_renamed(course)], ["name"]),
    "bulk-create": lambda course: Course.objects.bulk_create(
        [Course(account=course.account, name="Never")]
    ),
    # Enough rows for the COPY path on PostgreSQL.
    "bulk-create-copy": lambda course: Course.objects.bulk_create(
        [Course(account=course.account, name=f"N{i}") for i in range(recording.COPY_MIN_ROWS)]
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", list(ORM_WRITES))
def test_an_orm_write_whose_event_insert_fails_raises_and_commits_nothing(
    course, break_event_insert, write
):
    before = database_state()
    fault = break_event_insert()

    with pytest.raises(DatabaseError, match=fault.message):
        ORM_WRITES[write](course)

    fault.remove()
    assert database_state() == before
    assert Course.objects.get(pk=course.pk).name == "Biology 101"


# The SIS import -------------------------------------------------------------------------

COURSES_CSV = "\n".join(
    [
        "course_id,short_name,long_name,account_id,status,start_date,end_date",
        "BIO101-F25,BIO101,Biology 101: Cells,BIO,active,,",
        "BIO-2,BIO2,Biology Two,BIO,active,,",
        "BIO-3,BIO3,Biology Three,BIO,published,,",
        "SCI-1,SCI1,Science One,SCI,active,,",
        "",
    ]
)


@pytest.mark.django_db(transaction=True)
def test_a_sis_import_whose_event_insert_fails_applies_nothing_and_reruns_cleanly(
    course, root_account, tmp_path: Path, break_event_insert
):
    path = tmp_path / "courses.csv"
    path.write_text(COURSES_CSV, encoding="utf-8")
    before = database_state()
    fault = break_event_insert()

    with pytest.raises(DatabaseError, match=fault.message):
        sis.import_courses_csv(file=path, root_account=root_account)

    fault.remove()
    assert database_state() == before
    failed = SisBatch.objects.get()
    assert failed.workflow_state == SisBatch.WorkflowState.FAILED
    assert (failed.courses_created, failed.courses_updated) == (0, 0)

    batch = sis.import_courses_csv(file=path, root_account=root_account)

    assert batch.workflow_state == SisBatch.WorkflowState.IMPORTED, batch.messages
    assert (batch.courses_created, batch.courses_updated) == (3, 1)
    assert sorted(Course.objects.values_list("sis_course_id", flat=True)) == [
        "BIO-2",
        "BIO-3",
        "BIO101-F25",
        "SCI-1",
    ]
    sis_events = CourseEvent.objects.filter(sis_batch=batch)
    assert sorted(sis_events.values_list("course__sis_course_id", "event_type")) == [
        ("BIO-2", "created"),
        ("BIO-3", "created"),
        ("BIO-3", "published"),
        ("BIO101-F25", "updated"),
        ("SCI-1", "created"),
    ]
    assert not CourseEvent.objects.filter(sis_batch=failed).exists()
    # Each course exactly once, with one ``created`` event in all.
    for created in Course.objects.all():
        assert CourseEvent.objects.filter(course=created, event_type="created").count() == 1
