"""The replay rule (``course_audit.replay``): a course's state at a moment, from its log.

The first half is the pure rule on hand-made events, one event type at a time; the second
holds it to the real thing: a course changed through the services at known times, and
its state as of several moments equals what the course was then.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import uuid
from typing import Any

import pytest
from django.db import connection

from course_audit import replay as replay_module
from course_audit import selectors, services
from course_audit.choices import CourseState, EventType
from course_audit.context import audit_context
from course_audit.diff import TRACKED_FIELDS, is_blank, json_value, lifecycle_events
from course_audit.models import Course, CourseEvent
from course_audit.replay import STATE_AFTER, differences, replay, seen_by
from tests.test_import_graph import ROOT, _imports, import_graph

T0 = dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC)
_ids = itertools.count(1)

CREATED_DATA = {
    "name": [None, "Biology 101"],
    "course_code": [None, "BIO101"],
    "sis_course_id": [None, "BIO101-F25"],
    "account_id": [None, 7],
    "start_at": [None, "2025-09-01T08:00:00Z"],
    "is_public": [None, False],
    "created_source": "manual",
}


def event(event_type: str, minutes: float, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": next(_ids),
        "uuid": uuid.uuid4(),
        "created_at": T0 + dt.timedelta(minutes=minutes),
        "event_type": event_type,
        "event_data": data or {},
    }


def values(state: Any) -> dict[str, Any]:
    return {name: setting.value for name, setting in state.settings.items()}


# --- the pure rule ---------------------------------------------------------------------


def test_created_sets_every_field_and_unpublished():
    created = event("created", 0, CREATED_DATA)
    state = replay([created], T0)
    assert state.existed is True and state.complete
    assert values(state) == {
        "name": "Biology 101",
        "course_code": "BIO101",
        "sis_course_id": "BIO101-F25",
        "account_id": 7,
        "start_at": "2025-09-01T08:00:00Z",
        # Left out of a created event's data: blank when it was created.
        "conclude_at": None,
        "is_public": False,
        "public_description": None,
        "workflow_state": "unpublished",
    }
    assert {setting.event.id for setting in state.settings.values()} == {created["id"]}
    assert state.fields["name"].event.uuid == created["uuid"]
    assert state.fields["name"].event.created_at == T0
    assert state.created_at == T0


def test_updated_sets_only_the_fields_it_names():
    created = event("created", 0, CREATED_DATA)
    renamed = event("updated", 5, {"name": ["Biology 101", "Cells"], "is_public": [False, True]})
    state = replay([created, renamed], T0 + dt.timedelta(minutes=5))
    assert (state.fields["name"].value, state.fields["is_public"].value) == ("Cells", True)
    assert state.fields["name"].event.id == renamed["id"]
    assert state.fields["course_code"].event.id == created["id"]
    assert state.workflow_state.event.id == created["id"]


@pytest.mark.parametrize(
    ("event_type", "state"),
    [
        ("published", "available"),
        ("unpublished", "unpublished"),
        ("concluded", "completed"),
        ("unconcluded", "available"),
        ("deleted", "deleted"),
        ("restored", "unpublished"),
    ],
)
def test_each_lifecycle_event_sets_the_state_it_ends_in(event_type, state):
    created = event("created", 0, CREATED_DATA)
    lifecycle = event(event_type, 1)
    replayed = replay([created, lifecycle], T0 + dt.timedelta(minutes=1))
    assert replayed.workflow_state.value == state
    assert replayed.workflow_state.event.id == lifecycle["id"]
    assert values(replayed) == {**values(replay([created], T0)), "workflow_state": state}


def test_the_state_table_agrees_with_the_lifecycle_rule():
    # Every move's events, applied in turn from its old state, end in its new state.
    for old, new in itertools.permutations(CourseState.values, 2):
        assert [STATE_AFTER[kind] for kind in lifecycle_events(old, new)][-1] == new
    lifecycle_types = {
        kind
        for old, new in itertools.permutations(CourseState.values, 2)
        for kind in lifecycle_events(old, new)
    }
    assert lifecycle_types | {"created", "reset_to"} == set(STATE_AFTER)


def test_reset_to_deletes_the_old_course_and_moves_its_sis_id():
    created = event("created", 0, CREATED_DATA)
    reset = event("reset_to", 3)
    state = replay([created, reset], T0 + dt.timedelta(minutes=3))
    assert (state.workflow_state.value, state.fields["sis_course_id"].value) == ("deleted", None)
    assert state.fields["sis_course_id"].event.id == reset["id"]
    assert state.fields["name"].event.id == created["id"]


@pytest.mark.parametrize("event_type", ["copied_from", "copied_to", "reset_from"])
def test_copies_and_a_reset_from_set_nothing(event_type):
    created = event("created", 0, CREATED_DATA)
    other = event(event_type, 2)
    later = T0 + dt.timedelta(minutes=2)
    assert replay([created, other], later) == replay([created], later)


def test_every_event_type_is_covered():
    handled = set(STATE_AFTER) | {"updated", "copied_from", "copied_to", "reset_from"}
    assert handled == set(EventType.values)


def test_without_a_created_event_the_log_cannot_say():
    # The course existed before recording began: only what changed since is known.
    renamed = event("updated", 10, {"name": ["Old name", "New name"]})
    published = event("published", 11)
    state = replay([renamed, published], T0 + dt.timedelta(minutes=11))
    assert state.existed is True and not state.complete
    assert state.fields["name"] == replay_module.Setting(
        "New name", known=True, event=replay_module._setter(renamed)
    )
    assert state.workflow_state.value == "available"
    unknown = [name for name, setting in state.fields.items() if not setting.known]
    assert unknown == [name for name in TRACKED_FIELDS if name != "name"]
    assert all(state.fields[name].event is None for name in unknown)
    # Before any event: nothing known, and the log does not say it did not exist.
    before = replay([renamed, published], T0)
    assert before.existed is None and not any(s.known for s in before.settings.values())


def test_before_its_creation_the_course_did_not_exist():
    created = event("created", 30, CREATED_DATA)
    state = replay([created], T0)
    assert state.existed is False and state.created_at == created["created_at"]
    assert not any(setting.known for setting in state.settings.values())
    # The caller may know of the creation without passing the event.
    assert replay([], T0, created_at=created["created_at"]).existed is False


def test_a_moment_includes_its_whole_second():
    created = event("created", 0, CREATED_DATA)
    created["created_at"] = T0.replace(microsecond=900_000)
    assert replay([created], T0).existed is True
    assert replay([created], T0 - dt.timedelta(seconds=1)).existed is False
    assert seen_by(T0) == T0.replace(microsecond=999_999)


def test_later_events_are_ignored():
    created = event("created", 0, CREATED_DATA)
    later = event("updated", 60, {"name": ["Biology 101", "Later"]})
    assert replay([created, later], T0 + dt.timedelta(minutes=59)).fields["name"].value == (
        "Biology 101"
    )


def test_a_malformed_change_makes_the_field_unknown_not_guessed():
    created = event("created", 0, CREATED_DATA)
    odd = event("updated", 1, {"name": "no pair", "not_a_field": [1, 2]})
    state = replay([created, odd], T0 + dt.timedelta(minutes=1))
    assert state.fields["name"].known is False
    assert state.fields["name"].event.id == odd["id"]
    assert "not_a_field" not in state.fields


def test_a_string_at_the_cut_length_may_be_cut():
    created = event("created", 0, {**CREATED_DATA, "public_description": [None, "x" * 10]})
    state = replay([created], T0, max_string_length=10)
    assert state.fields["public_description"].cut is True
    assert state.fields["course_code"].cut is False
    assert replay([created], T0, max_string_length=11).fields["public_description"].cut is False


def test_differences_between_two_moments():
    created = event("created", 0, CREATED_DATA)
    renamed = event("updated", 5, {"name": ["Biology 101", "Cells"], "course_code": ["BIO101", ""]})
    published = event("published", 6)
    early, late = (
        replay([created, renamed, published], T0 + dt.timedelta(minutes=m)) for m in (1, 6)
    )
    assert differences(early, late) == {"name", "course_code", "workflow_state"}
    assert differences(early, early) == set()
    # Blank is blank: "" and a value left out of a created event are the same.
    cleared = event("updated", 7, {"conclude_at": [None, ""]})
    assert differences(replay([created], T0), replay([created, cleared], T0 + dt.timedelta(1))) == (
        set()
    )
    # Known at one moment and not at the other is a difference.
    unknown = replay([renamed], T0)
    assert "course_code" in differences(unknown, late)


def test_the_rule_is_pure():
    assert import_graph()["course_audit.replay"] <= {
        "course_audit.choices",
        "course_audit.conf",
        "course_audit.diff",
    }
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in _imports(ast.parse((ROOT / "replay.py").read_text()))
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith("django")}


# --- against the recorded history --------------------------------------------------------


def snapshot(course: Course) -> dict[str, Any]:
    """The course's tracked fields as the log prints them, and its state."""
    course.refresh_from_db()
    shown = {name: json_value(getattr(course, name)) for name in TRACKED_FIELDS}
    shown = {name: None if is_blank(value) else value for name, value in shown.items()}
    return {**shown, "workflow_state": course.workflow_state}


def replayed(state: Any) -> dict[str, Any]:
    assert state.complete
    return {name: None if is_blank(value) else value for name, value in values(state).items()}


@pytest.mark.django_db
def test_the_replay_equals_what_the_course_was(department, college, make_user):
    registrar = make_user("replayer")
    moments: list[tuple[dt.datetime, dict[str, Any]]] = []

    def at(minutes: int) -> Any:
        return audit_context(user=registrar, occurred_at=T0 + dt.timedelta(minutes=minutes))

    with at(0):
        course = services.course_create(
            account=department, name="Biology 101", course_code="BIO101", sis_course_id="B-1"
        )
    moments.append((T0, snapshot(course)))
    with at(10):
        services.course_update(
            course=course,
            name="Cells",
            start_at=dt.datetime(2025, 9, 8, 9, 30, tzinfo=dt.UTC),
            public_description="All about cells",
        )
    moments.append((T0 + dt.timedelta(minutes=10), snapshot(course)))
    with at(20):
        services.course_publish(course=course)
    with at(21):
        services.course_update(course=course, account=college, is_public=True, course_code="")
    moments.append((T0 + dt.timedelta(minutes=21), snapshot(course)))
    with at(30):
        services.course_conclude(course=course)
    moments.append((T0 + dt.timedelta(minutes=35), snapshot(course)))
    with at(40):
        services.course_unconclude(course=course)
    with at(41):
        services.course_delete(course=course)
    moments.append((T0 + dt.timedelta(minutes=41), snapshot(course)))
    with at(50):
        services.course_restore(course=course)
    with at(51):
        services.course_update(course=course, sis_course_id="B-2", start_at=None)
    moments.append((T0 + dt.timedelta(minutes=51), snapshot(course)))
    with at(60):
        copy = services.course_copy(source=course, name="Cells (copy)")
    moments.append((T0 + dt.timedelta(minutes=60), snapshot(course)))
    with at(70):
        fresh = services.course_reset(course=course)
    moments.append((T0 + dt.timedelta(minutes=70), snapshot(course)))

    states = selectors.course_as_of(course, [moment for moment, _ in moments])
    for (moment, expected), state in zip(moments, states, strict=True):
        assert replayed(state) == expected, moment
        assert state.existed is True
    # Each value names the event that set it.
    final = states[-1]
    reset_to = CourseEvent.objects.get(course=course, event_type="reset_to")
    assert final.workflow_state.event.id == reset_to.pk
    assert final.workflow_state.event.uuid == reset_to.uuid
    renamed = CourseEvent.objects.get(
        course=course, event_type="updated", event_data__has_key="name"
    )
    assert final.fields["name"].event.id == renamed.pk
    assert final.fields["name"].event.created_at == T0 + dt.timedelta(minutes=10)
    # A moment before the creation: the course did not exist yet.
    (before,) = selectors.course_as_of(course, [T0 - dt.timedelta(days=1)])
    assert before.existed is False and before.created_at == T0
    # The copy and the course that replaced it replay as they are.
    for other in (copy, fresh):
        (state,) = selectors.course_as_of(other, [T0 + dt.timedelta(minutes=70)])
        assert replayed(state) == snapshot(other)
    # Comparing two moments: what the log says changed between them.
    assert differences(states[0], states[1]) == {"name", "start_at", "public_description"}


def forget_history(course: Course) -> None:
    """Remove the course's events past the append-only triggers: as if it had been there
    before recording began."""
    table = connection.ops.quote_name(CourseEvent._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(f"DELETE FROM {table} WHERE course_id = %s", [course.pk])
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")


@pytest.mark.django_db
def test_a_course_from_before_recording_began(department):
    course = services.course_create(
        account=department, name="Legacy 0", course_code="LEG", sis_course_id="LEG-0"
    )
    forget_history(course)
    assert selectors.course_as_of(course, [T0])[0].existed is None
    with audit_context(occurred_at=T0):
        services.course_update(course=course, name="Legacy 1")
    with audit_context(occurred_at=T0 + dt.timedelta(minutes=1)):
        services.course_publish(course=course)
    before, renamed, published = selectors.course_as_of(
        course, [T0 - dt.timedelta(minutes=1), T0, T0 + dt.timedelta(minutes=1)]
    )
    assert before.existed is None and not any(s.known for s in before.settings.values())
    assert renamed.existed is True
    assert (renamed.fields["name"].known, renamed.fields["name"].value) == (True, "Legacy 1")
    assert renamed.workflow_state.known is False
    assert [name for name, s in renamed.fields.items() if not s.known] == [
        name for name in TRACKED_FIELDS if name != "name"
    ]
    assert published.workflow_state.value == "available"
    assert published.fields["course_code"].known is False  # never guessed from the row
