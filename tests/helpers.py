"""Helpers for reading what was recorded."""

from __future__ import annotations

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
