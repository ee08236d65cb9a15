"""A change and its events commit together or not at all."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from course_audit import recording, services
from course_audit.models import Course, CourseEvent
from tests.helpers import fail_event_writes

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def test_an_exception_after_the_change_rolls_back_change_and_event(course):
    with pytest.raises(Boom), transaction.atomic():
        services.course_update(course=course, name="Never")
        assert CourseEvent.objects.filter(course=course, event_type="updated").exists()
        raise Boom
    assert Course.objects.get(pk=course.pk).name == "Biology 101"
    assert not CourseEvent.objects.filter(course=course, event_type="updated").exists()


def _fail_event_writes(monkeypatch):
    fail_event_writes(monkeypatch, DatabaseError("event insert failed"))


@pytest.mark.parametrize(
    "write",
    [
        lambda course: services.course_update(course=course, name="Never"),
        lambda course: services.course_publish(course=course),
        lambda course: Course.objects.filter(pk=course.pk).update(name="Never"),
        lambda course: Course.objects.bulk_update([_renamed(course)], ["name"]),
        lambda course: services.course_reset(course=course),
        lambda course: services.course_copy(source=course),
    ],
    ids=["service", "lifecycle", "queryset-update", "bulk-update", "reset", "copy"],
)
def test_a_recorder_failure_fails_the_change(course, monkeypatch, write):
    _fail_event_writes(monkeypatch)
    with pytest.raises(DatabaseError):
        write(course)
    fresh = Course.objects.get(pk=course.pk)
    assert (fresh.name, fresh.workflow_state, fresh.sis_course_id) == (
        "Biology 101",
        "unpublished",
        "BIO101-F25",
    )
    assert Course.objects.count() == 1
    assert CourseEvent.objects.count() == 1


def test_a_recorder_failure_fails_creation(department, monkeypatch):
    _fail_event_writes(monkeypatch)
    with pytest.raises(DatabaseError):
        services.course_create(account=department, name="Never")
    with pytest.raises(DatabaseError):
        Course.objects.bulk_create([Course(account=department, name="Never")])
    with pytest.raises(DatabaseError):
        Course.objects.create(account=department, name="Never")
    assert not Course.objects.exists()
    assert not CourseEvent.objects.exists()


def make_event_inserts_fail(monkeypatch) -> None:
    """From now on, the event INSERT itself fails in the database (a key to nothing): the
    events name a SIS batch that does not exist, whoever writes them."""
    original = recording.current_attribution

    def broken():
        attribution, created_at = original()
        return {**attribution, "sis_batch_id": 987654321}, created_at

    monkeypatch.setattr(recording, "current_attribution", broken)


def test_a_database_level_event_failure_rolls_back_the_change(course, monkeypatch):
    """The INSERT itself fails in the database (an event pointing at no account)."""
    make_event_inserts_fail(monkeypatch)
    with pytest.raises(IntegrityError):
        services.course_update(course=course, name="Never")
    assert Course.objects.get(pk=course.pk).name == "Biology 101"
    assert CourseEvent.objects.count() == 1


def _renamed(course: Course) -> Course:
    course.name = "Never"
    return course


def test_a_failing_bulk_event_insert_rolls_back_the_bulk_write(department, monkeypatch):
    """Big batches go in with COPY on PostgreSQL: a failure there undoes the courses too."""
    make_event_inserts_fail(monkeypatch)
    with pytest.raises(IntegrityError):
        Course.objects.bulk_create(
            [Course(account=department, name=f"B{i}") for i in range(recording.COPY_MIN_ROWS)]
        )
    assert not Course.objects.exists()
    assert not CourseEvent.objects.exists()
