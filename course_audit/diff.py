"""The rules of a course's history, pure: no models, no database.

What a change to a course records: which fields are tracked and how their values print
(:func:`json_value`), when two values differ (:func:`build_diff`, Canvas's rules), which
lifecycle events a move between workflow states makes (:func:`lifecycle_events`), and the
event rows of one course's change (:func:`events_for_change`). Beside them, the two
declarations the rest of the app derives from: the course's fields and what each takes
part in (:data:`COURSE_FIELDS`), and the state machine (:data:`TRANSITIONS`).

Anything that records events (the app's recorder, database triggers) is tested against
these functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from typing import Any

from course_audit.choices import CourseState, EventType
from course_audit.conf import conf

__all__ = [
    "COPIED_FIELDS",
    "COURSE_FIELDS",
    "EDITABLE_FIELDS",
    "FIELD_ORDER",
    "RESET_FIELDS",
    "SIS_COLUMNS",
    "SNAPSHOT_FIELDS",
    "TRACKED_FIELDS",
    "TRANSITIONS",
    "CourseField",
    "EventRow",
    "Snapshot",
    "Transition",
    "build_diff",
    "event_row",
    "events_for_change",
    "in_field_order",
    "is_blank",
    "json_value",
    "lifecycle_events",
]


@dataclasses.dataclass(frozen=True)
class CourseField:
    """A course field and the parts of the app it takes part in."""

    # The attribute (and column) name: ``account_id`` for the account.
    attname: str
    # The model field's name: ``account`` for the account.
    name: str
    # Its changes make ``created``/``updated`` events (``event_data`` keys are attnames).
    tracked: bool = True
    # ``services.course_update`` (and the API's ``course[...]``) may change it.
    editable: bool = True
    # A copy into a new course carries it over.
    copied: bool = True
    # A reset carries it over to the course that replaces the old one.
    reset: bool = True
    # The SIS ``courses.csv`` column that sets it, if any.
    sis_column: str | None = None


# In the order a diff is shown and exported.
COURSE_FIELDS: tuple[CourseField, ...] = (
    CourseField("name", "name", sis_column="long_name"),
    CourseField("course_code", "course_code", sis_column="short_name"),
    CourseField("sis_course_id", "sis_course_id", copied=False, sis_column="course_id"),
    CourseField("account_id", "account", sis_column="account_id"),
    CourseField("start_at", "start_at", sis_column="start_date"),
    CourseField("conclude_at", "conclude_at", sis_column="end_date"),
    CourseField("is_public", "is_public"),
    CourseField("public_description", "public_description"),
)

# Fields whose changes make ``created``/``updated`` events, by attribute name.
TRACKED_FIELDS: tuple[str, ...] = tuple(field.attname for field in COURSE_FIELDS if field.tracked)
# What a change is compared on: the tracked fields and the workflow state.
SNAPSHOT_FIELDS: tuple[str, ...] = (*TRACKED_FIELDS, "workflow_state")
# Field names (``account``, not ``account_id``) a course update may change.
EDITABLE_FIELDS: frozenset[str] = frozenset(f.name for f in COURSE_FIELDS if f.editable)
# Field names a copy into a new course and a reset carry over.
COPIED_FIELDS: tuple[str, ...] = tuple(f.name for f in COURSE_FIELDS if f.copied)
RESET_FIELDS: tuple[str, ...] = tuple(f.name for f in COURSE_FIELDS if f.reset)
# SIS column -> the attribute it sets.
SIS_COLUMNS: Mapping[str, str] = {f.sis_column: f.attname for f in COURSE_FIELDS if f.sis_column}

# The order of an event's data wherever it is shown or exported: the tracked fields, then
# how a created course came to be; keys outside it follow by name.
FIELD_ORDER: tuple[str, ...] = (*TRACKED_FIELDS, "created_source")
_POSITION = {name: index for index, name in enumerate(FIELD_ORDER)}

# A course's values by attribute name, as compared before and after a change.
Snapshot = dict[str, Any]
# An event as column values by attribute name (cheaper than a model instance in bulk).
EventRow = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Transition:
    """A lifecycle action: the states it may start from and the state it ends in.

    ``action`` is Canvas's word (the API's ``course[event]``), ``service`` the name of the
    service in ``course_audit.services`` that performs it.
    """

    action: str
    service: str
    allowed_from: frozenset[str]
    target: str
    # Doing it again on a course already in ``target`` is a no-op, not an error.
    idempotent: bool = True


_ALL_LIVE = frozenset({CourseState.UNPUBLISHED, CourseState.AVAILABLE, CourseState.COMPLETED})

# The state machine. ``lifecycle_events`` says which events each move records.
TRANSITIONS: Mapping[str, Transition] = {
    transition.action: transition
    for transition in (
        Transition(
            "offer", "course_publish", frozenset({CourseState.UNPUBLISHED}), CourseState.AVAILABLE
        ),
        Transition(
            "claim", "course_unpublish", frozenset({CourseState.AVAILABLE}), CourseState.UNPUBLISHED
        ),
        Transition(
            "conclude",
            "course_conclude",
            frozenset({CourseState.UNPUBLISHED, CourseState.AVAILABLE}),
            CourseState.COMPLETED,
        ),
        Transition(
            "unconclude",
            "course_unconclude",
            frozenset({CourseState.COMPLETED}),
            CourseState.AVAILABLE,
        ),
        Transition("delete", "course_delete", _ALL_LIVE, CourseState.DELETED),
        Transition(
            "undelete",
            "course_restore",
            frozenset({CourseState.DELETED}),
            CourseState.UNPUBLISHED,
            idempotent=False,
        ),
    )
}


def in_field_order(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with its keys in ``FIELD_ORDER`` (jsonb does not keep key order)."""
    return {name: data[name] for name in sorted(data, key=_sort_key)}


def _sort_key(name: str) -> tuple[int, str]:
    return _POSITION.get(name, len(_POSITION)), name


def json_value(value: Any) -> Any:
    """A field value as it appears in ``event_data``: JSON, dates as ISO 8601 in UTC."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(dt.UTC)
        # Not strftime("%Y..."): it prints year 5 as "5", not "0005".
        return f"{value.replace(microsecond=0, tzinfo=None).isoformat()}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return value


def is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def build_diff(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    max_string_length: int | None = None,
) -> dict[str, Any]:
    """``{field: [old, new]}`` for each tracked field that changed, by Canvas's rules:
    blank-to-blank is no change, dates compare as printed, long strings are cut to
    ``max_string_length`` (default ``COURSE_AUDIT_MAX_DIFF_STRING_LENGTH``)."""
    limit = conf.MAX_DIFF_STRING_LENGTH if max_string_length is None else max_string_length
    diff: dict[str, Any] = {}
    for field in TRACKED_FIELDS:
        raw_after = new.get(field)
        if (
            old is not None
            and raw_after == old.get(field)
            and type(raw_after) is type(old.get(field))
        ):
            continue  # equal values print alike: the common case of a bulk change, cheaply
        before = json_value(old.get(field)) if old is not None else None
        after = json_value(raw_after)
        if (is_blank(before) and is_blank(after)) or before == after:
            continue
        diff[field] = [_cut(before, limit), _cut(after, limit)]
    return diff


def lifecycle_events(old_state: str, new_state: str) -> list[str]:
    """The events a move between workflow states records, in order.

    A restored course comes back unpublished and an unconcluded one available, so a jump
    such as deleted -> available records ``restored`` then ``published``.
    """
    if old_state == new_state:
        return []
    if new_state == CourseState.DELETED:
        return [EventType.DELETED]
    if old_state == CourseState.DELETED:
        return [EventType.RESTORED, *lifecycle_events(CourseState.UNPUBLISHED, new_state)]
    if new_state == CourseState.COMPLETED:
        return [EventType.CONCLUDED]
    if old_state == CourseState.COMPLETED:
        return [EventType.UNCONCLUDED, *lifecycle_events(CourseState.AVAILABLE, new_state)]
    if new_state == CourseState.AVAILABLE:
        return [EventType.PUBLISHED]
    return [EventType.UNPUBLISHED]


def event_row(
    *,
    course_id: int,
    account_id: int,
    event_type: str,
    data: dict[str, Any],
    created_at: dt.datetime,
    attribution: Mapping[str, Any],
    related_course_id: int | None = None,
) -> EventRow:
    """One event's column values (a fresh ``uuid``; ``attribution`` holds the source,
    user, user name, SIS batch and request id)."""
    return {
        "uuid": uuid.uuid4(),
        "created_at": created_at,
        "course_id": course_id,
        "account_id": account_id,
        "event_type": event_type,
        "event_data": data,
        "related_course_id": related_course_id,
        **attribution,
    }


def events_for_change(
    *,
    course_id: int,
    old: Snapshot | None,
    new: Snapshot,
    created_at: dt.datetime,
    attribution: Mapping[str, Any],
    max_string_length: int | None = None,
) -> list[EventRow]:
    """The events one course's change records: ``created``/``updated``, then lifecycle.

    ``old`` is None for a new course, whose ``created`` event names its source
    (``created_source``) and which starts from unpublished.
    """
    account_id = new["account_id"]
    events: list[EventRow] = []
    diff = build_diff(old, new, max_string_length=max_string_length)

    def add(event_type: str, data: dict[str, Any]) -> None:
        events.append(
            event_row(
                course_id=course_id,
                account_id=account_id,
                event_type=event_type,
                data=data,
                created_at=created_at,
                attribution=attribution,
            )
        )

    if old is None:
        diff["created_source"] = attribution["event_source"]
        add(EventType.CREATED, diff)
        old_state: str = CourseState.UNPUBLISHED
    else:
        if diff:
            add(EventType.UPDATED, diff)
        old_state = old["workflow_state"]
    for event_type in lifecycle_events(old_state, new["workflow_state"]):
        add(event_type, {})
    return events
