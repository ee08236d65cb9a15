"""Helpers for reading what was recorded."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from course_audit.models import Course, CourseEvent


def events_of(course: Course) -> list[CourseEvent]:
    """A course's events, oldest first."""
    return list(CourseEvent.objects.filter(course=course).order_by("created_at", "id"))


def event_types(course: Course) -> list[str]:
    return [event.event_type for event in events_of(course)]


def last_event(course: Course) -> CourseEvent:
    return CourseEvent.objects.filter(course=course).order_by("-created_at", "-id")[0]


# The contract's error bodies (API.md §5).
UNAUTHENTICATED = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}
FORBIDDEN = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}


# Where the events of a write are written, for tests that break or cut off that moment.
# The app's recorder writes them in ``recording.insert_events``; where the database records
# (PostgreSQL's triggers), they go in with the write itself, which comes right after
# ``recording.bind_context`` (the app telling the triggers who acts) and right before
# ``recording.collect_recorded``. The copy and reset pairs go through ``insert_events``
# everywhere.
def event_write_points() -> tuple[str, str]:
    """The recording functions called right before and right after a write's events."""
    from django.db import connection

    from course_audit import recording

    if recording.database_records(connection.alias):
        return "bind_context", "collect_recorded"
    return "insert_events", "insert_events"


def fail_event_writes(monkeypatch, error: Exception) -> None:
    """From now on every write of events raises ``error``."""
    from course_audit import recording

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(recording, "insert_events", fail)
    monkeypatch.setattr(recording, "bind_context", fail)


def named(first: str, last: str) -> dict[str, str]:
    """A user's name in the fields the user model has (Django's, or a custom one's)."""
    fields = {field.name for field in get_user_model()._meta.get_fields()}
    if "first_name" in fields:
        return {"first_name": first, "last_name": last}
    return {"display_name": f"{first} {last}"}
