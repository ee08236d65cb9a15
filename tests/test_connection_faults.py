"""The database connection drops in the middle of a write (issue #6, item 4).

A second connection ends the test's own session with ``pg_terminate_backend`` at a chosen
point: after the course's UPDATE and before its events' INSERT, after the INSERT and
before the COMMIT, after the COMMIT and before the request's page view is saved, or
between and inside the chunks of a SIS import. Then:

- no course change is left without its event (the database's rows, read afresh);
- the API answers the contract's 503 (never a 500) and the ORM caller gets the
  ``OperationalError``; the next request or query works on a new connection;
- a SIS import cut short keeps its whole chunks (each with its events and counters), and
  run again it finishes the job: every row applied once, no event twice.

PostgreSQL only: the fault is a real session ended by the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection, transaction

from course_audit import recording, sis
from course_audit.middleware import AuditContextMiddleware
from course_audit.models import Account, Course, CourseEvent, PageView, SisBatch
from tests.api_fixtures import ApiCaller
from tests.helpers import event_write_points

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="ends a real PostgreSQL session (pg_terminate_backend); PostgreSQL only",
    ),
    pytest.mark.django_db(transaction=True),
]

UNAVAILABLE = {
    "errors": [
        {
            "message": "The database could not complete the request; nothing was changed. "
            "Try again later."
        }
    ]
}
FORM = "application/x-www-form-urlencoded"


def _conninfo() -> str:
    """The test server's maintenance database: a session there may refuse connections to
    the test database (``ALTER DATABASE``), which a session in it may not."""
    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname="postgres",
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=str(settings["PORT"]) if settings["PORT"] else None,
    )


class Killer:
    """Ends the Django connection's server session from a connection of its own."""

    def __init__(self) -> None:
        self.admin = psycopg.connect(_conninfo(), autocommit=True)
        self.killed = 0

    def kill(self) -> None:
        pid = connection.connection.info.backend_pid
        self.admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        # pg_terminate_backend only signals: wait until the session is gone, so the
        # fault falls exactly where the test put it.
        deadline = time.monotonic() + 10
        while self.admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the session outlived pg_terminate_backend"
            time.sleep(0.01)
        self.killed += 1

    def close(self) -> None:
        self.admin.close()


@pytest.fixture(autouse=True)
def usable_connection() -> Iterator[None]:
    """Django's test client skips the end-of-request clean-up that drops a broken
    connection in a real server; do it here, before the test database is flushed."""
    yield
    if connection.connection is not None and not connection.is_usable():
        connection.close()


@pytest.fixture
def killer() -> Iterator[Killer]:
    made = Killer()
    yield made
    made.close()


def kill_before_call(
    monkeypatch: pytest.MonkeyPatch, killer: Killer, owner: Any, name: str, *, at_call: int = 1
) -> None:
    """The session ends just before the ``at_call``-th call of ``owner.name``."""
    original = getattr(owner, name)
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at_call:
            killer.kill()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def kill_after_call(
    monkeypatch: pytest.MonkeyPatch, killer: Killer, owner: Any, name: str, *, at_call: int = 1
) -> None:
    """The session ends just after the ``at_call``-th call of ``owner.name`` returns."""
    original = getattr(owner, name)
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = original(*args, **kwargs)
        calls += 1
        if calls == at_call:
            killer.kill()
        return result

    monkeypatch.setattr(owner, name, wrapped)


def database_state() -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], int]:
    """Every course row, every event, and the number of page views."""
    return (
        list(Course.objects.order_by("pk").values()),
        list(CourseEvent.objects.order_by("pk").values_list("pk", "course_id", "event_type")),
        PageView.objects.count(),
    )


# The API -----------------------------------------------------------------------------


@pytest.fixture
def registrar(caller: Callable[..., ApiCaller], root_account: Account, admin_role: Any) -> Any:
    return caller("registrar", (root_account, admin_role))


def _rename(registrar: Any, course: Course, name: str) -> Any:
    return registrar.send(
        "put",
        f"/api/v1/courses/{course.pk}",
        data=urlencode({"course[name]": name}),
        content_type=FORM,
    )


# Where the session ends during an API write: (write, object, function, before or after
# it, at which call). ``database_state`` counts page views too: a write whose first events
# were inserted before the fault must not leave one behind.
BEFORE_EVENTS, AFTER_EVENTS = event_write_points()
API_FAULTS = {
    "update-before-event-insert": ("put", recording, BEFORE_EVENTS, "before", 1),
    "update-after-event-insert": ("put", recording, AFTER_EVENTS, "after", 1),
    # A reset writes its events in three statements (created, reset_from, reset_to): cut
    # between the first and the last (the pair goes through insert_events everywhere).
    "reset-between-inserts": (
        "reset",
        recording,
        "insert_events",
        "before",
        3 if BEFORE_EVENTS == "insert_events" else 1,
    ),
}


@pytest.mark.parametrize("fault", list(API_FAULTS))
def test_an_api_write_cut_off_from_the_database_is_503_and_changes_nothing(
    registrar, course, killer, monkeypatch, caplog, fault
):
    write, owner, name, when, at_call = API_FAULTS[fault]
    before = database_state()
    if when == "before":
        kill_before_call(monkeypatch, killer, owner, name, at_call=at_call)
    else:
        kill_after_call(monkeypatch, killer, owner, name, at_call=at_call)

    with caplog.at_level(logging.ERROR, logger="course_audit.api.exceptions"):
        if write == "put":
            response = _rename(registrar, course, "Never")
        else:
            response = registrar.send("post", f"/api/v1/courses/{course.pk}/reset_content")

    assert killer.killed == 1
    assert response.status_code == 503, response.content
    assert response.json() == UNAVAILABLE
    assert response["Retry-After"] == "30"
    [record] = [r for r in caplog.records if r.name == "course_audit.api.exceptions"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], OperationalError)
    monkeypatch.undo()
    assert database_state() == before


def test_the_next_request_after_a_dropped_connection_succeeds(
    registrar, course, killer, monkeypatch
):
    kill_before_call(monkeypatch, killer, recording, BEFORE_EVENTS)
    assert _rename(registrar, course, "Never").status_code == 503
    monkeypatch.undo()

    response = _rename(registrar, course, "Renamed")

    assert response.status_code == 200, response.content
    assert Course.objects.get(pk=course.pk).name == "Renamed"
    updated = CourseEvent.objects.filter(course=course, event_type="updated")
    assert [e.event_data["name"] for e in updated] == [["Biology 101", "Renamed"]]
    # Linked to the request, whose page view was saved.
    assert PageView.objects.filter(request_id=updated[0].page_view_id).exists()


def test_a_connection_dropped_after_the_commit_keeps_the_answer_and_the_change(
    registrar, course, killer, monkeypatch, caplog
):
    """The change and its event are committed when the page view is written: a lost
    connection then costs the page view row, not the answer (a 500 would tell the client
    its committed change failed, and a retry would make it twice)."""
    kill_before_call(monkeypatch, killer, AuditContextMiddleware, "save_page_view")

    with caplog.at_level(logging.WARNING, logger="course_audit.middleware"):
        response = _rename(registrar, course, "Renamed")

    assert killer.killed == 1
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Renamed"
    monkeypatch.undo()
    # What a server does at the end of each request (the test client does not).
    close_old_connections()
    assert Course.objects.get(pk=course.pk).name == "Renamed"
    [event] = CourseEvent.objects.filter(course=course, event_type="updated")
    assert event.event_data == {"name": ["Biology 101", "Renamed"]}
    assert str(event.page_view_id) == response["X-Request-Id"]
    assert not PageView.objects.exists()
    [record] = [r for r in caplog.records if r.name == "course_audit.middleware"]
    assert response["X-Request-Id"] in record.getMessage()


def test_a_kept_connection_the_database_dropped_is_replaced_before_the_next_request(killer):
    """The demo keeps connections between requests; one the server ended while it was
    idle (a restart) must not fail the request that reuses it."""
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    assert Course.objects.count() == 0
    killer.kill()
    # What a server does when the next request starts.
    close_old_connections()

    assert Course.objects.count() == 0


# The ORM -----------------------------------------------------------------------------


def _bulk_update(course: Course) -> Any:
    courses = [
        Course(account_id=course.account_id, root_account_id=course.root_account_id, name=f"N{i}")
        for i in range(recording.COPY_MIN_ROWS)
    ]
    Course.objects.bulk_create(courses)
    for each in courses:
        each.name = f"{each.name} renamed"
    return lambda: Course.objects.bulk_update(courses, ["name"])


ORM_WRITES: dict[str, Callable[[Course], Callable[[], Any]]] = {
    "save": lambda course: lambda: _saved(course),
    "queryset-update": lambda course: (
        lambda: Course.objects.filter(pk=course.pk).update(name="Never")
    ),
    "bulk-update-copy": _bulk_update,
    "bulk-create-copy": lambda course: (
        lambda: Course.objects.bulk_create(
            [Course(account=course.account, name=f"N{i}") for i in range(recording.COPY_MIN_ROWS)]
        )
    ),
}


def _saved(course: Course) -> None:
    course.name = "Never"
    course.save()


@pytest.mark.parametrize("when", ["before-event-insert", "before-commit"])
@pytest.mark.parametrize("write", list(ORM_WRITES))
def test_an_orm_write_cut_off_raises_and_commits_nothing(course, killer, monkeypatch, write, when):
    call = ORM_WRITES[write](course)
    before = database_state()
    if when == "before-event-insert":
        kill_before_call(monkeypatch, killer, recording, BEFORE_EVENTS)
    else:
        kill_after_call(monkeypatch, killer, recording, AFTER_EVENTS)

    # The caller's own transaction, as a job would hold one.
    with pytest.raises(OperationalError), transaction.atomic():
        call()

    assert killer.killed == 1
    monkeypatch.undo()
    # The connection is usable again: these queries run on a new one.
    assert database_state() == before


# The SIS import ----------------------------------------------------------------------

COURSES_CSV = "\n".join(
    [
        "course_id,short_name,long_name,account_id,status,start_date,end_date",
        "BIO101-F25,BIO101,Biology 101: Cells,BIO,published,,",  # chunk 1: a change
        "BIO-2,BIO2,Biology Two,BIO,active,,",
        "BIO-3,BIO3,Biology Three,BIO,published,,",
        "SCI-1,SCI1,Science One,SCI,active,,",  # chunk 2
        "SCI-2,SCI2,Science Two,SCI,completed,,",
        "BAD-1,B1,Bad One,SCI,archived,,",
        "SCI-3,SCI3,Science Three,,active,,",  # chunk 3
        "",
    ]
)
# (created, updated) and events per chunk of three rows, as a clean run records them.
CHUNK_COUNTS = [(2, 1), (2, 0), (1, 0)]
EXPECTED_EVENTS = [
    ("BIO-2", "created"),
    ("BIO-3", "created"),
    ("BIO-3", "published"),
    ("BIO101-F25", "published"),
    ("BIO101-F25", "updated"),
    ("SCI-1", "created"),
    ("SCI-2", "concluded"),
    ("SCI-2", "created"),
    ("SCI-3", "created"),
]

# Where the session ends: before chunk N's rows are applied, or inside chunk N, after its
# new courses and their events were written and before its changed courses' events.
SIS_FAULTS = {
    "before-chunk-2": (sis, "_apply", "before", 2, 1),
    "inside-chunk-1": (recording, BEFORE_EVENTS, "before", 2, 0),
    "before-chunk-3": (sis, "_apply", "before", 3, 2),
    # After chunk 2's last statement (its counters; the batch's first save is its INSERT)
    # and before its COMMIT.
    "before-commit-of-chunk-2": (SisBatch, "save", "after", 3, 1),
}


@pytest.fixture
def courses_csv(tmp_path: Path) -> Path:
    path = tmp_path / "courses.csv"
    path.write_text(COURSES_CSV, encoding="utf-8")
    return path


def _sis_events(*batches: SisBatch) -> list[tuple[str, str]]:
    return sorted(
        CourseEvent.objects.filter(sis_batch__in=batches).values_list(
            "course__sis_course_id", "event_type"
        )
    )


@pytest.mark.parametrize("fault", list(SIS_FAULTS))
def test_a_sis_import_cut_off_keeps_whole_chunks_and_a_rerun_finishes_it(
    course, root_account, courses_csv, killer, monkeypatch, fault
):
    owner, name, when, at_call, chunks_kept = SIS_FAULTS[fault]
    monkeypatch.setattr(sis, "CHUNK_SIZE", 3)
    kill = kill_before_call if when == "before" else kill_after_call
    kill(monkeypatch, killer, owner, name, at_call=at_call)

    with pytest.raises(OperationalError):
        sis.import_courses_csv(file=courses_csv, root_account=root_account)

    assert killer.killed == 1
    monkeypatch.undo()
    failed = SisBatch.objects.get()
    assert failed.workflow_state == SisBatch.WorkflowState.FAILED
    created = sum(c for c, _ in CHUNK_COUNTS[:chunks_kept])
    updated = sum(u for _, u in CHUNK_COUNTS[:chunks_kept])
    assert (failed.courses_created, failed.courses_updated) == (created, updated)
    # The rows of the chunks committed; the counters never claim the rolled-back chunk's.
    assert failed.rows_applied == 3 * chunks_kept - (1 if chunks_kept >= 2 else 0)
    # Whole chunks only: each course written has all its events, none other was written.
    kept = {sis_id for sis_id, _ in _sis_events(failed)}
    assert Course.objects.filter(sis_course_id__isnull=False).count() == 1 + created
    for sis_id in kept:
        assert sis_id in set(Course.objects.values_list("sis_course_id", flat=True))
    assert _sis_events(failed) == [e for e in EXPECTED_EVENTS if e[0] in kept]

    monkeypatch.setattr(sis, "CHUNK_SIZE", 3)
    rerun = sis.import_courses_csv(file=courses_csv, root_account=root_account)

    assert rerun.workflow_state == SisBatch.WorkflowState.IMPORTED_WITH_MESSAGES
    assert rerun.messages == ['line 7: status "archived" is not one of active, published, '
                              "unpublished, completed, deleted"]  # fmt: skip
    assert (rerun.rows_total, rerun.rows_applied, rerun.rows_skipped) == (7, 6, 1)
    assert (
        failed.courses_created + rerun.courses_created,
        failed.courses_updated + rerun.courses_updated,
    ) == (5, 1)
    # Every row applied exactly once, across the two batches, and no event twice.
    assert _sis_events(failed, rerun) == EXPECTED_EVENTS
    assert sorted(Course.objects.values_list("sis_course_id", "workflow_state")) == [
        ("BIO-2", "unpublished"),
        ("BIO-3", "available"),
        ("BIO101-F25", "available"),
        ("SCI-1", "unpublished"),
        ("SCI-2", "completed"),
        ("SCI-3", "unpublished"),
    ]
    again = sis.import_courses_csv(file=courses_csv, root_account=root_account)
    assert (again.courses_created, again.courses_updated) == (0, 0)
    assert not CourseEvent.objects.filter(sis_batch=again).exists()


def test_a_sis_import_marks_its_batch_failed_when_the_database_is_back_a_moment_later(
    course, root_account, courses_csv, killer, monkeypatch
):
    """The connection drops and, for a second, the database takes no new connection (a
    restart): the batch still ends ``failed``, not ``importing`` for ever."""
    refuse = "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}"
    name = connection.settings_dict["NAME"]
    original = killer.kill

    def kill_and_refuse() -> None:
        killer.admin.execute(refuse.format(f'"{name}"', "false"))
        original()
        timer = threading.Timer(1.0, killer.admin.execute, [refuse.format(f'"{name}"', "true")])
        timer.start()

    killer.kill = kill_and_refuse  # type: ignore[method-assign]
    monkeypatch.setattr(sis, "CHUNK_SIZE", 3)
    kill_before_call(monkeypatch, killer, sis, "_apply", at_call=2)
    try:
        with pytest.raises(OperationalError):
            sis.import_courses_csv(file=courses_csv, root_account=root_account)
    finally:
        time.sleep(1.2)
        killer.admin.execute(refuse.format(f'"{name}"', "true"))

    batch = SisBatch.objects.get()
    assert batch.workflow_state == SisBatch.WorkflowState.FAILED
    assert (batch.courses_created, batch.courses_updated) == CHUNK_COUNTS[0], batch.messages
    assert "Import failed at lines 5-7" in batch.messages[-1]
