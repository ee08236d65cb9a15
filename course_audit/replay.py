"""A course's state at a moment, as its log replays it: pure, no models, no database.

Given one course's events in the order they happened (``created_at``, then id), each
tracked field (``diff.TRACKED_FIELDS``) and the workflow state take the value the last
event that set them left, and each value keeps that event. What sets what:

- ``created``: every tracked field (a field its data leaves out was blank) and the state
  (a new course starts unpublished; its lifecycle events follow it);
- ``updated``: the fields its data names, to their new (second) value;
- ``published``, ``unpublished``, ``concluded``, ``unconcluded``, ``deleted``,
  ``restored``: the state they end in (``diff.lifecycle_events``' rule, read backwards);
- ``reset_to``: the old course of a reset ends deleted and gives its SIS id to the new
  one (``services.course_reset`` records that change as this event alone);
- ``reset_from``, ``copied_from``, ``copied_to``: nothing (a copy moves content, not
  these fields; a new course of a copy or reset has its own ``created``).

A field no event has set is *unknown*: the course was there before recording began (no
``created`` event), and the log cannot say its value. A string the log holds at
``COURSE_AUDIT_MAX_DIFF_STRING_LENGTH`` characters or more may have been cut there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from course_audit.choices import CourseState, EventType
from course_audit.conf import conf
from course_audit.diff import TRACKED_FIELDS, EventRow, is_blank, lifecycle_events

__all__ = [
    "EVENT_COLUMNS",
    "STATE_AFTER",
    "CourseAsOf",
    "Setter",
    "Setting",
    "differences",
    "replay",
    "seen_by",
]

# The columns of an event the replay reads (a selector reads them as values rows).
EVENT_COLUMNS = ("id", "uuid", "created_at", "event_type", "event_data")
WORKFLOW_STATE = "workflow_state"

# The workflow state each lifecycle event ends in, read from ``diff.lifecycle_events``:
# a move's last event ends in the move's target state.
STATE_AFTER: Mapping[str, str] = {
    **{
        lifecycle_events(old, new)[-1]: new
        for old in CourseState.values
        for new in CourseState.values
        if old != new
    },
    EventType.CREATED.value: CourseState.UNPUBLISHED.value,
    EventType.RESET_TO.value: CourseState.DELETED.value,
}


def seen_by(at: dt.datetime) -> dt.datetime:
    """The last instant a moment ``at`` includes: times are shown in whole seconds, so
    the state at ``12:00:00`` holds every event shown at ``12:00:00`` (the listings'
    ``end_time`` rule)."""
    return at.replace(microsecond=999_999)


@dataclasses.dataclass(frozen=True)
class Setter:
    """The event that set a value."""

    id: int
    uuid: UUID
    created_at: dt.datetime
    event_type: str


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field's value at a moment: ``known`` False when no event of the log set it;
    ``cut`` when the log may hold only its start."""

    value: Any = None
    known: bool = False
    event: Setter | None = None
    cut: bool = False


@dataclasses.dataclass(frozen=True)
class CourseAsOf:
    """A course at a moment: its tracked fields (``TRACKED_FIELDS`` order) and workflow
    state. ``existed`` is False when the log records the course's creation after ``at``
    (``created_at``), None when the log says nothing of the course by then."""

    at: dt.datetime
    fields: dict[str, Setting]
    workflow_state: Setting
    existed: bool | None
    created_at: dt.datetime | None = None

    @property
    def settings(self) -> dict[str, Setting]:
        """The fields and, last, the workflow state."""
        return {**self.fields, WORKFLOW_STATE: self.workflow_state}

    @property
    def complete(self) -> bool:
        """Whether the log replays every field."""
        return all(setting.known for setting in self.settings.values())


def _setter(event: EventRow) -> Setter:
    return Setter(
        id=event["id"],
        uuid=event["uuid"],
        created_at=event["created_at"],
        event_type=event["event_type"],
    )


def replay(
    events: Iterable[EventRow],
    at: dt.datetime,
    *,
    created_at: dt.datetime | None = None,
    max_string_length: int | None = None,
) -> CourseAsOf:
    """The course as of ``at`` (``seen_by``): ``events`` are its events oldest first
    (``EVENT_COLUMNS``; those after ``at`` only tell when it was created). ``created_at``:
    when the log records the course's creation, for a caller that read no event after
    ``at`` but knows of a later creation.
    """
    limit = conf.MAX_DIFF_STRING_LENGTH if max_string_length is None else max_string_length
    bound = seen_by(at)
    fields: dict[str, Setting] = {name: Setting() for name in TRACKED_FIELDS}
    state = Setting()
    seen_any = False

    def setting(value: Any, setter: Setter) -> Setting:
        cut = isinstance(value, str) and len(value) >= limit
        return Setting(value=value, known=True, event=setter, cut=cut)

    for event in events:
        if event["created_at"] > bound:
            if event["event_type"] == EventType.CREATED and created_at is None:
                created_at = event["created_at"]
            continue
        seen_any = True
        event_type = event["event_type"]
        data = event["event_data"] if isinstance(event["event_data"], dict) else {}
        setter = _setter(event)
        if event_type == EventType.CREATED:
            created_at = event["created_at"]
            for name in TRACKED_FIELDS:
                change = data.get(name)
                # The diff from nothing: [None, value], or absent for a blank value.
                value = change[1] if isinstance(change, list) and len(change) == 2 else None
                fields[name] = setting(value, setter)
        elif event_type == EventType.UPDATED:
            for name, change in data.items():
                if name not in fields:
                    continue
                if isinstance(change, list) and len(change) == 2:
                    fields[name] = setting(change[1], setter)
                else:
                    # Not a change the app records: the value is no longer known.
                    fields[name] = Setting(event=setter)
        elif event_type == EventType.RESET_TO:
            fields["sis_course_id"] = setting(None, setter)
        if event_type in STATE_AFTER:
            state = setting(STATE_AFTER[event_type], setter)
    existed: bool | None = True if seen_any else None
    if created_at is not None and created_at > bound:
        existed = False
    return CourseAsOf(
        at=at, fields=fields, workflow_state=state, existed=existed, created_at=created_at
    )


def differences(first: CourseAsOf, second: CourseAsOf) -> set[str]:
    """The fields (and ``workflow_state``) whose values differ between two moments, or that
    the log knows at one moment and not at the other."""
    theirs = second.settings
    return {
        name for name, mine in first.settings.items() if _compared(mine) != _compared(theirs[name])
    }


def _compared(setting: Setting) -> tuple[bool, Any]:
    # Blank is blank, however it was written ("" or null): build_diff's rule.
    return setting.known, None if is_blank(setting.value) else setting.value
