"""A course is only ever soft-deleted: on PostgreSQL, triggers (migration 0005) refuse a
DELETE or TRUNCATE of the course table, whatever issues it, unless a test database's
flush asks to TRUNCATE (``COURSE_AUDIT_ALLOW_TRUNCATE``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models.deletion import Collector, ProtectedError

from course_audit import services
from course_audit.models import Course, CourseEvent

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers need PostgreSQL"),
]

REFUSED = "courses are soft-deleted with course_audit.services.course_delete()"
TRIGGERS = ["course_audit_course_no_delete", "course_audit_course_no_truncate"]
GUARD_FUNCTION = "course_audit_course_soft_delete_only"


def refused(operation: str, table: str = "course_audit_course"):
    message = f"{REFUSED}: {operation} of {table} is not allowed"
    return pytest.raises(IntegrityError, match=re.escape(message))


def history(course: Course) -> list[tuple[Any, ...]]:
    return list(
        CourseEvent.objects.filter(course=course)
        .order_by("id")
        .values_list("id", "created_at", "event_type", "event_data")
    )


@pytest.fixture
def changed_course(course: Course) -> Course:
    services.course_update(course=course, name="Biology 102")
    services.course_publish(course=course)
    return course


def truncate(sql: str, *, allow: bool) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        # This suite's connections allow TRUNCATE for flush; each test says what it wants.
        # (And PostgreSQL refuses to truncate a table with deferred checks still pending.)
        cursor.execute(
            "SELECT set_config('course_audit.allow_truncate', %s, true)", ["on" if allow else "off"]
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql)


@pytest.mark.django_db
def test_the_delete_the_orm_collector_issues_is_refused(changed_course):
    before = history(changed_course)
    # What QuerySet.delete() runs once nothing in Python protects the rows (a course with
    # no events, a model of the host's with another on_delete): the collector's DELETE.
    collector = Collector(using=connection.alias)
    collector.add([changed_course])
    with refused("DELETE"), transaction.atomic():
        collector.delete()
    assert Course.objects.filter(pk=changed_course.pk).exists()
    assert history(changed_course) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM course_audit_course WHERE id = %(pk)s",
        "DELETE FROM course_audit_course",
        "WITH gone AS (DELETE FROM course_audit_course RETURNING id) SELECT count(*) FROM gone",
    ],
)
def test_raw_delete_is_refused_even_where_truncate_is_let_through(changed_course, sql):
    before = history(changed_course)
    with refused("DELETE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL course_audit.allow_truncate = 'on'")
        cursor.execute(sql, {"pk": changed_course.pk})
    assert Course.objects.get(pk=changed_course.pk).name == "Biology 102"
    assert history(changed_course) == before


@pytest.mark.django_db
def test_queryset_delete_of_a_course_written_outside_the_app_is_refused(department):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO course_audit_course (account_id, root_account_id, name, course_code,"
            " uuid, is_public, public_description, workflow_state, created_at, updated_at)"
            " VALUES (%s, %s, 'Outside', '', gen_random_uuid(), false, '', 'unpublished',"
            " now(), now()) RETURNING id",
            [department.pk, department.resolved_root_id],
        )
        pk = cursor.fetchone()[0]
    if CourseEvent.objects.filter(course_id=pk).exists():
        # The database recorded the INSERT: its event protects the course in Python first.
        refusal = pytest.raises(ProtectedError)
    else:
        # Nothing in Python stands between QuerySet.delete() and its DELETE.
        refusal = refused("DELETE")
    with refusal, transaction.atomic():
        Course.objects.filter(pk=pk).delete()
    with refused("DELETE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM course_audit_course WHERE id = %s", [pk])
    assert Course.objects.filter(pk=pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "TRUNCATE course_audit_course CASCADE",
        # What flush runs: every table in one statement, so no CASCADE is needed.
        "TRUNCATE {tables}",
    ],
)
def test_truncate_is_refused(changed_course, sql):
    # The courses and every table that references them (a TRUNCATE must name them all).
    referencing = sorted(
        model._meta.db_table
        for model in apps.get_app_config("course_audit").get_models()
        if any(field.related_model is Course for field in model._meta.fields)
    )
    sql = sql.format(tables=", ".join(["course_audit_course", *referencing]))
    before = history(changed_course)
    with refused("TRUNCATE"):
        truncate(sql, allow=False)
    assert Course.objects.filter(pk=changed_course.pk).exists()
    assert history(changed_course) == before


@pytest.mark.django_db
def test_a_truncate_that_reaches_courses_by_cascade_is_refused(changed_course):
    before = history(changed_course)
    # The cascade reaches events too; which table's guard speaks first is PostgreSQL's
    # choice (today the courses').
    with pytest.raises(IntegrityError, match=r"TRUNCATE of course_audit_course(event)? is not"):
        truncate("TRUNCATE course_audit_account CASCADE", allow=False)
    assert Course.objects.filter(pk=changed_course.pk).exists()
    assert history(changed_course) == before


@pytest.mark.django_db
def test_truncate_goes_through_when_allowed(changed_course, make_course):
    make_course()
    with transaction.atomic():
        truncate("TRUNCATE course_audit_course CASCADE", allow=True)
        assert not Course.objects.exists()
        assert not CourseEvent.objects.exists()
        transaction.set_rollback(True)
    assert Course.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("allow_cascade", [False, True])
def test_flush_empties_courses_and_their_events(changed_course, allow_cascade):
    # What a TransactionTestCase runs after each test (with CASCADE when it sets
    # available_apps).
    call_command("flush", interactive=False, verbosity=0, allow_cascade=allow_cascade)
    assert not Course.objects.exists()
    assert not CourseEvent.objects.exists()


def triggers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'course_audit_course'::regclass"
            " AND tgname = ANY(%s) ORDER BY tgname",
            [TRIGGERS],
        )
        return [row[0] for row in cursor.fetchall()]


def guard_functions() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [GUARD_FUNCTION])
        return int(cursor.fetchone()[0])


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_the_migration_reverses():
    assert triggers() == TRIGGERS
    assert guard_functions() == 1
    try:
        migrate([("course_audit", "0004_courseevent_partitions")])
        assert triggers() == []
        assert guard_functions() == 0
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert triggers() == TRIGGERS
    assert guard_functions() == 1
