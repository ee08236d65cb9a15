"""Migration 0004 on a table that already holds events: the rows stay where they are (the
old table becomes the partition ``..._legacy``), and the migration reverses."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from course_audit import partitions

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions need PostgreSQL"),
]

BEFORE = [("course_audit", "0003_search_and_source_indexes")]
AFTER = [("course_audit", "0004_courseevent_partitions")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'course_audit_courseevent'::regclass"
        )
        return str(cursor.fetchone()[0])


@pytest.fixture
def at_0003():
    apps = migrate(BEFORE)
    yield apps
    # Leave the table as a fresh migrate makes it: empty, no legacy partition.
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE course_audit_courseevent")
    migrate(BEFORE)
    migrate(AFTER)
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())
    partitions.ensure_partitions()


def test_existing_rows_become_the_legacy_partition_and_ids_carry_on(at_0003):
    apps = at_0003
    account = apps.get_model("course_audit", "Account").objects.create(name="Root")
    course = apps.get_model("course_audit", "Course").objects.create(
        account=account, root_account=account, name="Old course"
    )
    Event = apps.get_model("course_audit", "CourseEvent")
    old = [
        Event.objects.create(
            uuid=uuid.uuid4(),
            created_at=dt.datetime(2021, month, 1, tzinfo=dt.UTC),
            course=course,
            account=account,
            event_type="updated",
            event_source="manual",
        )
        for month in (1, 2, 3)
    ]
    assert relkind() == "r"

    apps = migrate(AFTER)
    assert relkind() == "p"
    Event = apps.get_model("course_audit", "CourseEvent")
    legacy = partitions.list_partitions()[0]
    assert legacy.name == partitions.LEGACY_PARTITION
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {partitions.LEGACY_PARTITION}")
        assert cursor.fetchone()[0] == 3
    assert legacy.start is None and legacy.end > dt.datetime.now(dt.UTC)
    assert sorted(Event.objects.values_list("pk", flat=True)) == [e.pk for e in old]
    newer = Event.objects.create(
        uuid=uuid.uuid4(),
        created_at=dt.datetime.now(dt.UTC),
        course_id=course.pk,
        account_id=account.pk,
        event_type="updated",
        event_source="manual",
    )
    assert newer.pk > old[-1].pk

    apps = migrate(BEFORE)  # and back: one plain table with every row
    assert relkind() == "r"
    Event = apps.get_model("course_audit", "CourseEvent")
    assert Event.objects.count() == 4
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = %s", [partitions.GUARD_FUNCTION]
        )
        assert cursor.fetchone()[0] == 0
