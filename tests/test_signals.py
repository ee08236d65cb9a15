"""``events_recorded``: sent once per batch, after the commit, never for a rollback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from course_audit import recording, services
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent
from course_audit.signals import events_recorded

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of every ``events_recorded`` sent while the test runs."""
    calls: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    events_recorded.connect(receiver, weak=False)
    yield calls
    events_recorded.disconnect(receiver)


def test_sent_once_per_batch_after_the_commit(
    course, make_user, received, django_capture_on_commit_callbacks
):
    editor = make_user("editor")
    with django_capture_on_commit_callbacks(execute=True), audit_context(user=editor):
        services.course_update(course=course, name="Biology 102", course_code="BIO102")
        assert received == []  # not before the commit
    [call] = received
    assert call["sender"] is CourseEvent
    assert call["signal"] is events_recorded
    assert call["using"] == "default"
    [event] = call["events"]
    stored = CourseEvent.objects.get(uuid=event.uuid)
    assert event.pk == stored.pk
    assert (event.event_type, event.course_id, event.user_id) == ("updated", course.pk, editor.pk)
    assert event.event_data == {
        "name": ["Biology 101", "Biology 102"],
        "course_code": ["BIO101", "BIO102"],
    }


def test_a_bulk_change_is_one_batch(department, received, django_capture_on_commit_callbacks):
    courses = Course.objects.bulk_create(
        [Course(account=department, name=f"C{i}") for i in range(3)]
    )
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        Course.objects.filter(pk__in=[c.pk for c in courses]).update(is_public=True)
    [call] = received
    assert sorted(event.course_id for event in call["events"]) == sorted(c.pk for c in courses)
    assert {event.event_type for event in call["events"]} == {"updated"}


def test_each_batch_of_a_transaction_is_sent_in_order(
    course, received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.course_publish(course=course)
        services.course_conclude(course=course)
    assert [[e.event_type for e in call["events"]] for call in received] == [
        ["published"],
        ["concluded"],
    ]


def test_not_sent_for_a_rolled_back_change(course, received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            services.course_update(course=course, name="Never")
            raise RuntimeError("the caller's own failure after the change")
        services.course_publish(course=course)
    assert len(callbacks) == 1
    assert [[e.event_type for e in call["events"]] for call in received] == [["published"]]
    assert not CourseEvent.objects.filter(course=course, event_type="updated").exists()


def test_a_copy_batch_is_sent_too(department, received, django_capture_on_commit_callbacks):
    count = recording.COPY_MIN_ROWS
    with django_capture_on_commit_callbacks(execute=True):
        Course.objects.bulk_create([Course(account=department, name=f"B{i}") for i in range(count)])
    [call] = received
    events = call["events"]
    assert len(events) == count
    assert {event.event_type for event in events} == {"created"}
    stored = set(CourseEvent.objects.values_list("uuid", flat=True))
    assert {event.uuid for event in events} == stored
    if connection.vendor == "postgresql":
        # PostgreSQL's triggers wrote them; the app read them back, keys and all.
        assert {event.pk for event in events} == set(
            CourseEvent.objects.values_list("pk", flat=True)
        )


def test_a_failing_receiver_neither_undoes_the_change_nor_silences_others(
    course, received, django_capture_on_commit_callbacks, caplog
):
    def broken(**kwargs: Any) -> None:
        raise ValueError("the host's receiver is broken")

    events_recorded.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True), caplog.at_level(logging.ERROR):
            services.course_update(course=course, name="Biology 102")
    finally:
        events_recorded.disconnect(broken)
    assert Course.objects.get(pk=course.pk).name == "Biology 102"
    assert len(received) == 1
    [record] = [r for r in caplog.records if r.name == "django.dispatch"]
    assert "the host's receiver is broken" in record.getMessage()


def test_nothing_is_queued_without_receivers(course, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        services.course_update(course=course, name="Biology 102")
    assert callbacks == []


@pytest.mark.django_db(transaction=True)
def test_sent_after_a_real_commit_and_not_after_a_real_rollback(department, received):
    with transaction.atomic():
        course = services.course_create(account=department, name="Physics 1")
        assert received == []
    assert [e.event_type for e in received[0]["events"]] == ["created"]
    with pytest.raises(RuntimeError), transaction.atomic():
        services.course_update(course=course, name="Never")
        raise RuntimeError("rolled back")
    assert len(received) == 1
