"""The database records (PostgreSQL): the course table's triggers write the events of every
change, whatever issued it, exactly as the Python rules (``course_audit.diff``) say.

- The SQL rules against the Python ones, value for value (a Hypothesis property).
- The same scripted changes recorded by the app's Python recorder and by the triggers give
  the same events (a differential test).
- Each path outside the app's own methods: raw SQL, ``loaddata``, a data migration's
  historical model, an ``UPDATE ... FROM`` of 10,000 rows in one statement, another role
  on another connection.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from contextlib import contextmanager

import psycopg
import pytest
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import F, Value
from django.db.models.functions import Concat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from course_audit import checks, diff, recording, services, triggers
from course_audit.choices import CourseState
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers need PostgreSQL"),
]

STATES = [state.value for state in CourseState]
UTC_MIN = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
UTC_MAX = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)


def _sql_data(old, new, limit):
    """``course_audit_event_data`` of two snapshots (``old`` None: a new course)."""

    def record(snapshot):
        return json.dumps(snapshot, cls=DjangoJSONEncoder) if snapshot is not None else None

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT course_audit_event_data("
            " jsonb_populate_record(NULL::course_audit_course, %s::jsonb),"
            " jsonb_populate_record(NULL::course_audit_course, %s::jsonb), %s)",
            [record(old), record(new), limit],
        )
        return json.loads(cursor.fetchone()[0])  # Django reads jsonb as text


texts = st.one_of(
    st.none(),
    st.just(""),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
)
times = st.one_of(
    st.none(),
    st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [dt.UTC, zoneinfo.ZoneInfo("America/Denver"), zoneinfo.ZoneInfo("Asia/Kolkata")]
        ),
    ),
)
snapshots = st.fixed_dictionaries(
    {
        "name": texts,
        "course_code": texts,
        "sis_course_id": texts,
        "account_id": st.integers(1, 2**40),
        "start_at": times,
        "conclude_at": times,
        "is_public": st.booleans(),
        "public_description": texts,
        "workflow_state": st.sampled_from(STATES),
    }
)


@given(old=st.one_of(st.none(), snapshots), new=snapshots, limit=st.sampled_from([3, 20, 1000]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(old=None, new={**dict.fromkeys(diff.SNAPSHOT_FIELDS), "is_public": False}, limit=1000)
@example(
    old={**dict.fromkeys(diff.SNAPSHOT_FIELDS), "name": "x" * 30, "start_at": UTC_MIN},
    new={**dict.fromkeys(diff.SNAPSHOT_FIELDS), "name": "x" * 29 + "y", "start_at": UTC_MAX},
    limit=20,
)
def test_the_sql_diff_is_the_python_diff(old, new, limit):
    assert _sql_data(old, new, limit) == diff.build_diff(old, new, max_string_length=limit)


def test_the_sql_lifecycle_is_the_python_lifecycle():
    with connection.cursor() as cursor:
        for old in STATES:
            for new in STATES:
                cursor.execute("SELECT course_audit_lifecycle(%s, %s)", [old, new])
                assert cursor.fetchone()[0] == diff.lifecycle_events(old, new), (old, new)


# --- the differential test: the Python recorder against the triggers ---------------------


@contextmanager
def python_recorder(monkeypatch):
    """Record with the app's Python recorder, the triggers off (inside the test's
    transaction: both come back when it rolls back)."""
    with connection.cursor() as cursor:
        for name in triggers.TRIGGERS:
            cursor.execute(f"ALTER TABLE {triggers.COURSE_TABLE} DISABLE TRIGGER {name}")
    monkeypatch.setattr(recording, "database_records", lambda using: False)
    yield
    monkeypatch.undo()
    with connection.cursor() as cursor:
        # Django's foreign keys are checked at commit; the table cannot change with
        # checks pending, so they run now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for name in triggers.TRIGGERS:
            cursor.execute(f"ALTER TABLE {triggers.COURSE_TABLE} ENABLE TRIGGER {name}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _script(department, other, actor, tag):
    """Changes of every field and every transition, through every ORM path."""
    far_past = dt.datetime(1, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    far_future = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    denver = zoneinfo.ZoneInfo("America/Denver")
    with audit_context(user=actor, source="api"):
        course = services.course_create(
            account=department,
            name=f"Ünïcødé {tag} 📚",
            course_code="",
            sis_course_id=f"SIS-{tag}",
            start_at=dt.datetime(2026, 1, 5, 8, 30, 15, 999, tzinfo=denver),
            publish=True,
        )
        services.course_update(course=course, name="x" * 255, public_description="z" * 1500)
        services.course_update(course=course, course_code="C", sis_course_id="")
        services.course_update(course=course, start_at=far_past, conclude_at=far_future)
        services.course_update(course=course, account=other, is_public=True)
        services.course_update(course=course, public_description="y" * 999 + "é")
        for action in ("claim", "conclude", "unconclude", "delete", "undelete", "offer"):
            services.course_transition(course=course, action=action)
    with audit_context(source="sis"):
        Course.objects.filter(pk=course.pk).update(
            workflow_state=CourseState.DELETED, course_code=Concat(F("course_code"), Value("!"))
        )
        Course.objects.filter(pk=course.pk).update(workflow_state=CourseState.AVAILABLE)
        Course.objects.filter(pk=course.pk).update(workflow_state=CourseState.COMPLETED)
        Course.objects.filter(pk=course.pk).update(workflow_state=CourseState.UNPUBLISHED)
        course.refresh_from_db()
        course.name, course.start_at = "Bulk", None
        Course.objects.bulk_update([course], ["name", "start_at"])
        made = Course.objects.bulk_create(
            [
                Course(account=department, name=f"B{tag}{i}", workflow_state=s)
                for i, s in enumerate(STATES)
            ]
        )
    with audit_context(user=actor):
        services.course_copy(source=course, name="Copy")
        services.course_reset(course=course)
    return [course, *made]


def _shape(events):
    return [
        (
            e.event_type,
            e.event_source,
            e.event_data,
            e.user_id,
            e.user_name,
            e.account_id,
            e.related_course_id is not None,
            e.db_role,
        )
        for e in events
    ]


def _events_of(courses):
    return [
        _shape(CourseEvent.objects.filter(course=course).order_by("created_at", "id"))
        for course in courses
    ]


def test_the_triggers_record_what_the_python_recorder_records(
    department, college, make_user, monkeypatch
):
    actor = make_user("priya")
    with python_recorder(monkeypatch):
        by_python = _events_of(_script(department, college, actor, "py"))
    by_triggers = _events_of(_script(department, college, actor, "db"))

    def untagged(history):
        return json.loads(json.dumps(history, cls=DjangoJSONEncoder).replace("db", "py"))

    assert untagged(by_triggers) == untagged(by_python)
    assert sum(len(events) for events in by_triggers) >= 30


def test_the_app_write_carries_its_attribution(course, make_user):
    registrar = make_user("registrar")
    with audit_context(user=registrar, source="api"):
        services.course_update(course=course, name="Attributed")
    event = CourseEvent.objects.filter(course=course).latest("created_at", "id")
    assert (event.user_id, event.user_name, event.event_source) == (
        registrar.pk,
        recording.display_name(registrar),
        "api",
    )
    assert event.user_name
    assert (event.db_role, event.db_application, event.db_client_addr) == ("", "", None)
    assert not event.outside_app


# --- paths outside the app's own methods ---------------------------------------------------


def _outside(event):
    return (event.event_source, event.user_id, event.user_name, event.db_role)


@pytest.mark.django_db(transaction=True)
def test_raw_sql_from_djangos_cursor_is_recorded_as_outside_the_app(course):
    """In a transaction of its own: the app's attribution lasts as long as the transaction
    of the app's write (a raw write after it in the same transaction is the app's)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE course_audit_course SET name = name || ' (fix)' WHERE id = %s", [course.pk]
        )
    event = CourseEvent.objects.filter(course=course).latest("created_at", "id")
    assert event.event_type == "updated"
    assert event.event_data == {"name": ["Biology 101", "Biology 101 (fix)"]}
    assert _outside(event) == ("manual", None, "", "postgres")
    assert event.outside_app


@pytest.mark.django_db(transaction=True)
def test_a_fixture_load_is_recorded(course, tmp_path):
    fixture = tmp_path / "courses.json"
    row = {
        "model": "course_audit.course",
        "pk": course.pk,
        "fields": {
            "account": course.account_id,
            "root_account": course.root_account_id,
            "name": "Loaded name",
            "course_code": course.course_code,
            "sis_course_id": course.sis_course_id,
            "uuid": str(course.uuid),
            "start_at": None,
            "conclude_at": None,
            "is_public": False,
            "public_description": "",
            "workflow_state": "unpublished",
            "created_at": course.created_at.isoformat(),
            "updated_at": course.updated_at.isoformat(),
        },
    }
    fixture.write_text(json.dumps([row]))
    call_command("loaddata", str(fixture), verbosity=0)
    events = list(CourseEvent.objects.filter(course=course).order_by("created_at", "id"))
    assert [e.event_type for e in events] == ["created", "updated"]
    assert events[-1].event_data == {"name": ["Biology 101", "Loaded name"]}
    assert events[-1].outside_app


@pytest.mark.django_db(transaction=True)
def test_a_data_migrations_historical_model_is_recorded(course):
    state = MigrationExecutor(connection).loader.project_state(
        ("course_audit", "0004_courseevent_partitions")
    )
    historical = state.apps.get_model("course_audit", "Course")
    row = historical.objects.get(pk=course.pk)
    row.name = "Renamed by a migration"
    row.save()
    historical.objects.filter(pk=course.pk).update(course_code="MIG")
    events = list(CourseEvent.objects.filter(course=course).order_by("created_at", "id"))
    assert [e.event_type for e in events] == ["created", "updated", "updated"]
    assert events[1].event_data == {"name": ["Biology 101", "Renamed by a migration"]}
    assert events[2].event_data == {"course_code": ["BIO101", "MIG"]}


@pytest.mark.django_db(transaction=True)
def test_one_update_from_statement_of_10000_rows_records_each_row_once(department):
    courses = Course.objects.bulk_create(
        [Course(account=department, name=f"Row {i}") for i in range(10_000)]
    )
    first = min(course.pk for course in courses)
    before = CourseEvent.objects.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE course_audit_course AS c SET course_code = v.code"
            " FROM (SELECT id, 'C' || id AS code FROM course_audit_course WHERE id >= %s) v"
            " WHERE c.id = v.id",
            [first],
        )
        assert cursor.rowcount == 10_000
    assert CourseEvent.objects.count() - before == 10_000
    sample = CourseEvent.objects.filter(course_id=first, event_type="updated").get()
    assert sample.event_data == {"course_code": ["", f"C{first}"]}
    assert sample.outside_app


@pytest.fixture
def sync_role(db):
    with connection.cursor() as cursor:
        cursor.execute("DROP ROLE IF EXISTS registrar_sync")
        cursor.execute("CREATE ROLE registrar_sync LOGIN")
        cursor.execute(
            "GRANT SELECT, UPDATE ON course_audit_course TO registrar_sync;"
            "GRANT INSERT ON course_audit_courseevent TO registrar_sync;"
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO registrar_sync"
        )
    yield "registrar_sync"
    with connection.cursor() as cursor:
        cursor.execute("DROP OWNED BY registrar_sync; DROP ROLE registrar_sync")


@pytest.mark.django_db(transaction=True)
def test_another_program_as_another_role_is_recorded_with_its_role_and_application(
    department, sync_role
):
    course = services.course_create(account=department, name="Chemistry")
    params = connection.get_connection_params()
    with psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        dbname=connection.settings_dict["NAME"],
        user=sync_role,
        application_name="nightly-sis",
        autocommit=True,
    ) as other:
        other.execute("UPDATE course_audit_course SET is_public = true WHERE id = %s", [course.pk])
    event = CourseEvent.objects.filter(course=course).latest("created_at", "id")
    assert event.event_data == {"is_public": [False, True]}
    assert (event.db_role, event.db_application) == ("registrar_sync", "nightly-sis")
    assert event.db_client_addr == "127.0.0.1"
    assert (event.user_id, event.event_source) == (None, "manual")


@pytest.mark.django_db(transaction=True)
def test_a_role_that_cannot_write_events_cannot_change_courses(department, sync_role):
    """The change and its events are one statement: no event, no change."""
    course = services.course_create(account=department, name="Physics")
    with connection.cursor() as cursor:
        cursor.execute(f"REVOKE INSERT ON course_audit_courseevent FROM {sync_role}")
    params = connection.get_connection_params()
    with (
        psycopg.connect(
            host=params.get("host"),
            port=params.get("port"),
            dbname=connection.settings_dict["NAME"],
            user=sync_role,
            autocommit=True,
        ) as other,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        other.execute("UPDATE course_audit_course SET name = 'Never' WHERE id = %s", [course.pk])
    assert Course.objects.get(pk=course.pk).name == "Physics"
    assert CourseEvent.objects.filter(course=course).count() == 1


def test_a_backfill_dates_its_events_when_it_says(course, make_user):
    when = dt.datetime(2020, 2, 2, 12, 0, tzinfo=dt.UTC)
    with audit_context(occurred_at=when):
        services.course_update(course=course, name="Backfilled")
    event = CourseEvent.objects.filter(course=course, event_type="updated").get()
    assert event.created_at == when


def test_accounts_in_the_diff_are_ids(course, college):
    Course.objects.filter(pk=course.pk).update(account=college)
    event = CourseEvent.objects.filter(course=course).latest("created_at", "id")
    assert event.event_data == {"account_id": [course.account_id, college.pk]}
    assert event.account_id == college.pk


# --- the system check ------------------------------------------------------------------------


def test_the_check_is_quiet_while_the_triggers_record():
    assert checks.check_triggers(databases=["default"]) == []


@pytest.mark.parametrize("trigger", triggers.TRIGGERS)
def test_the_check_reports_a_disabled_trigger(trigger):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {triggers.COURSE_TABLE} DISABLE TRIGGER {trigger}")
    [error] = checks.check_triggers(databases=["default"])
    assert error.id == "course_audit.E011"
    assert f"{trigger} (disabled)" in error.msg


def test_the_check_reports_a_missing_trigger():
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {triggers.UPDATE_TRIGGER} ON {triggers.COURSE_TABLE}")
    [error] = checks.check_triggers(databases=["default"])
    assert error.id == "course_audit.E011"
    assert f"{triggers.UPDATE_TRIGGER} (missing)" in error.msg
    assert checks.check_triggers(databases=["replica"]) == []  # only where courses are written


@pytest.mark.django_db(transaction=True)
def test_the_history_page_and_the_admin_name_who_acted_outside_the_app(course, client, make_user):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL application_name = 'nightly-sis'")
        cursor.execute("UPDATE course_audit_course SET name = 'Fixed' WHERE id = %s", [course.pk])
    event = CourseEvent.objects.filter(course=course).latest("created_at", "id")
    client.force_login(make_user("boss", is_staff=True, is_superuser=True))
    page = client.get(f"/audit/courses/{course.pk}/")
    assert page.status_code == 200
    assert "outside the app: role postgres, application nightly-sis" in page.content.decode()
    admin_page = client.get(f"/admin/course_audit/courseevent/{event.pk}/change/")
    assert admin_page.status_code == 200
    body = admin_page.content.decode()
    assert "outside the app: role postgres, application nightly-sis" in body
    assert "127.0.0.1" in body


@pytest.mark.django_db(transaction=True)
def test_a_forged_skip_cannot_leave_a_change_unrecorded(course):
    """Only a reset leaves its old course's change to the event it writes itself: a writer
    that names a course in ``skip_courses`` without that event cannot commit."""
    forged = json.dumps({"source": "manual", "skip_courses": [course.pk]})
    with (
        pytest.raises(IntegrityError, match="changed unrecorded"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT set_config(%s, %s, true)", [triggers.CONTEXT_SETTING, forged])
        cursor.execute("UPDATE course_audit_course SET name = 'Hidden' WHERE id = %s", [course.pk])
    assert Course.objects.get(pk=course.pk).name == "Biology 101"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {triggers.UNRECORDED_TABLE}")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_reset_commits_and_leaves_nothing_pending(course):
    new = services.course_reset(course=course)
    assert [e.event_type for e in CourseEvent.objects.filter(course=course).order_by("id")] == [
        "created",
        "reset_to",
    ]
    assert CourseEvent.objects.filter(course=new, event_type="reset_from").exists()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {triggers.UNRECORDED_TABLE}")
        assert cursor.fetchone()[0] == 0
