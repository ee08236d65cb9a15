"""Course events cannot change or vanish: PostgreSQL triggers reject UPDATE, DELETE and
TRUNCATE, whether they come from the ORM or from raw SQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.test import override_settings

from course_audit import partitions, services
from course_audit.models import CourseEvent
from tests.helpers import last_event

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers need PostgreSQL"),
]

REJECTED = "course events are append-only"


def rejected(operation: str):
    return pytest.raises(IntegrityError, match=f"{REJECTED}: {operation}")


def raw(sql: str, params: list | None = None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])


@pytest.fixture
def event(course) -> CourseEvent:
    services.course_update(course=course, name="Renamed")
    return last_event(course)


def test_the_orm_cannot_update_an_event(event):
    with rejected("UPDATE"), transaction.atomic():
        CourseEvent.objects.filter(pk=event.pk).update(user_name="someone else")
    event.user_name = "someone else"
    with rejected("UPDATE"), transaction.atomic():
        event.save()
    assert CourseEvent.objects.get(pk=event.pk).user_name != "someone else"


def test_the_orm_cannot_delete_an_event(event):
    with rejected("DELETE"), transaction.atomic():
        CourseEvent.objects.filter(pk=event.pk).delete()
    with rejected("DELETE"), transaction.atomic():
        event.delete()
    assert CourseEvent.objects.filter(pk=event.pk).exists()


def test_raw_sql_cannot_update_or_delete_an_event(event):
    with rejected("UPDATE"):
        raw("UPDATE course_audit_courseevent SET event_type = 'deleted' WHERE id = %s", [event.pk])
    with rejected("DELETE"):
        raw("DELETE FROM course_audit_courseevent WHERE id = %s", [event.pk])
    month = partitions.month_partition_name(partitions.month_start(event.created_at))
    with rejected("DELETE"):
        raw(f"DELETE FROM {month}")  # nor by naming its partition
    assert CourseEvent.objects.get(pk=event.pk).event_type == "updated"


@pytest.mark.parametrize("table", ["course_audit_courseevent", "month", "default"])
def test_truncate_is_rejected_on_the_table_and_each_partition(event, table):
    name = {
        "month": partitions.month_partition_name(partitions.month_start(event.created_at)),
        "default": partitions.DEFAULT_PARTITION,
    }.get(table, table)
    with rejected("TRUNCATE"), transaction.atomic(), connection.cursor() as cursor:
        # This suite's connections allow TRUNCATE for flush; take that back here. (And
        # PostgreSQL refuses to truncate a table with deferred checks still pending.)
        cursor.execute("SET LOCAL course_audit.allow_truncate = 'off'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {name}")
    assert CourseEvent.objects.filter(pk=event.pk).exists()


def test_partitions_made_later_are_guarded_too(course):
    partitions.ensure_partitions(months_ahead=8)
    newest = partitions.list_partitions()[-2]  # the last month; the default comes after
    with rejected("TRUNCATE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL course_audit.allow_truncate = 'off'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {newest.name}")


def test_allow_truncate_is_set_on_new_connections_only_when_the_setting_says_so():
    def setting_on_a_new_connection() -> str | None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT current_setting('course_audit.allow_truncate', true)")
                return cursor.fetchone()[0]
        finally:
            other.close()

    assert setting_on_a_new_connection() == "on"  # tests/settings.py turns it on
    with override_settings(COURSE_AUDIT_ALLOW_TRUNCATE=False):
        assert setting_on_a_new_connection() in (None, "")


def test_deleting_a_user_leaves_their_events_as_they_were(course, make_user):
    leaver = make_user("leaver")
    services.course_publish(course=course, user=leaver)
    event = last_event(course)
    leaver_pk = leaver.pk
    leaver.delete()
    kept = CourseEvent.objects.select_related("user").get(pk=event.pk)
    assert kept.user_id == leaver_pk
    assert kept.user is None
    assert kept.user_name == event.user_name != ""
