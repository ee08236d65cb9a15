"""``course_audit.diff``, the pure rules: no database, so these run in milliseconds.

The same rules through real saves are in ``test_diff_rules.py``; the API's and recording's
properties in ``test_properties.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
import zoneinfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from course_audit import diff, services
from course_audit.choices import CourseState, EventType
from course_audit.models import Course

STATES = [state.value for state in CourseState]
ATTRIBUTION = {
    "event_source": "api",
    "user_id": 7,
    "user_name": "Priya Raman",
    "sis_batch_id": None,
    "page_view_id": None,
}
WHEN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def snapshot(**values):
    base = dict.fromkeys(diff.TRACKED_FIELDS)
    base.update(name="Biology", account_id=1, is_public=False, workflow_state="unpublished")
    base.update(values)
    return base


def test_the_fields_declaration_names_real_course_fields_in_display_order():
    for field in diff.COURSE_FIELDS:
        model_field = Course._meta.get_field(field.name)
        assert model_field.attname == field.attname  # type: ignore[union-attr]
    assert diff.TRACKED_FIELDS[:4] == ("name", "course_code", "sis_course_id", "account_id")
    assert (*diff.TRACKED_FIELDS, "workflow_state") == diff.SNAPSHOT_FIELDS
    assert {
        "name",
        "course_code",
        "sis_course_id",
        "account",
        "start_at",
        "conclude_at",
        "is_public",
        "public_description",
    } == diff.EDITABLE_FIELDS
    # A copy never takes the source's SIS id (unique in the root); a reset hands it on.
    assert "sis_course_id" not in diff.COPIED_FIELDS
    assert "sis_course_id" in diff.RESET_FIELDS
    assert dict(diff.SIS_COLUMNS) == {
        "long_name": "name",
        "short_name": "course_code",
        "course_id": "sis_course_id",
        "account_id": "account_id",
        "start_date": "start_at",
        "end_date": "conclude_at",
    }


def test_every_transition_names_a_service_and_records_its_lifecycle_events():
    for action, transition in diff.TRANSITIONS.items():
        assert transition.action == action
        assert callable(getattr(services, transition.service))
        assert transition.target not in transition.allowed_from or transition.idempotent
        for state in transition.allowed_from:
            events = diff.lifecycle_events(state, transition.target)
            assert len(events) == 1, (action, state, events)


def test_the_state_machine_reaches_every_state_from_every_state():
    reachable = {state: {state} for state in STATES}
    for _ in STATES:
        for state in STATES:
            for transition in diff.TRANSITIONS.values():
                for start in list(reachable[state]):
                    if start in transition.allowed_from:
                        reachable[state].add(transition.target)
    assert all(reachable[state] == set(STATES) for state in STATES)


def test_json_value_prints_dates_in_utc_whole_seconds():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    assert diff.json_value(dt.datetime(2026, 7, 1, 14, 0, 0, 999, tzinfo=paris)) == (
        "2026-07-01T12:00:00Z"
    )
    assert diff.json_value(dt.datetime(5, 1, 1, tzinfo=dt.UTC)) == "0005-01-01T00:00:00Z"
    assert diff.json_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert diff.json_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert diff.json_value("x") == "x"


def test_build_diff_applies_canvas_rules():
    old = snapshot(course_code="", public_description=None)
    new = snapshot(course_code=None, public_description="", name="Biology II")
    assert diff.build_diff(old, new) == {"name": ["Biology", "Biology II"]}
    assert diff.build_diff(None, snapshot()) == {
        "name": [None, "Biology"],
        "account_id": [None, 1],
        "is_public": [None, False],
    }
    cut = diff.build_diff(snapshot(), snapshot(name="é" * 20), max_string_length=5)
    assert cut == {"name": ["Biolo", "ééééé"]}
    # Dates equal to the second print alike: no change.
    a = dt.datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    assert diff.build_diff(snapshot(start_at=a), snapshot(start_at=a.replace(microsecond=9))) == {}


def test_lifecycle_chains():
    assert diff.lifecycle_events("deleted", "available") == ["restored", "published"]
    assert diff.lifecycle_events("completed", "unpublished") == ["unconcluded", "unpublished"]
    assert diff.lifecycle_events("deleted", "completed") == ["restored", "concluded"]
    assert diff.lifecycle_events("available", "available") == []


def test_events_for_change_orders_created_or_updated_before_lifecycle():
    created = diff.events_for_change(
        course_id=3,
        old=None,
        new=snapshot(workflow_state="available"),
        created_at=WHEN,
        attribution=ATTRIBUTION,
    )
    assert [row["event_type"] for row in created] == ["created", "published"]
    assert created[0]["event_data"]["created_source"] == "api"
    assert created[1]["event_data"] == {}
    assert {row["course_id"] for row in created} == {3}
    assert all(row["user_name"] == "Priya Raman" and row["created_at"] == WHEN for row in created)
    assert len({row["uuid"] for row in created}) == 2

    updated = diff.events_for_change(
        course_id=3,
        old=snapshot(workflow_state="deleted"),
        new=snapshot(workflow_state="available", name="New"),
        created_at=WHEN,
        attribution=ATTRIBUTION,
    )
    assert [row["event_type"] for row in updated] == ["updated", "restored", "published"]
    assert updated[0]["event_data"] == {"name": ["Biology", "New"]}
    assert (
        diff.events_for_change(
            course_id=3, old=snapshot(), new=snapshot(), created_at=WHEN, attribution=ATTRIBUTION
        )
        == []
    )


field_values = {
    "name": st.text(max_size=30),
    "course_code": st.one_of(st.none(), st.text(max_size=10)),
    "sis_course_id": st.one_of(st.none(), st.text(max_size=10)),
    "account_id": st.integers(1, 5),
    "start_at": st.one_of(st.none(), st.datetimes(timezones=st.just(dt.UTC))),
    "conclude_at": st.one_of(st.none(), st.datetimes(timezones=st.just(dt.UTC))),
    "is_public": st.booleans(),
    "public_description": st.one_of(st.none(), st.text(max_size=30)),
    "workflow_state": st.sampled_from(STATES),
}
snapshots = st.fixed_dictionaries(field_values)


@given(old=snapshots, new=snapshots)
@settings(max_examples=300)
@example(old=snapshot(name=""), new=snapshot(name=""))
def test_a_diff_replays_old_to_new(old, new):
    """Applying a diff's new values to the old printed values gives the new printed values
    (up to blanks, which are all alike), and an empty diff means they print alike."""
    changes = diff.build_diff(old, new, max_string_length=10_000)
    for field in diff.TRACKED_FIELDS:
        before, after = diff.json_value(old[field]), diff.json_value(new[field])
        if field in changes:
            assert changes[field] == [before, after]
            assert not (diff.is_blank(before) and diff.is_blank(after))
        else:
            assert before == after or (diff.is_blank(before) and diff.is_blank(after))


@given(states=st.lists(st.sampled_from(STATES), min_size=2, max_size=6))
def test_lifecycle_events_compose_along_any_path(states):
    """Events recorded step by step end where a direct move's events end."""

    def end_state(start, events):
        ends = {
            EventType.PUBLISHED: "available",
            EventType.UNPUBLISHED: "unpublished",
            EventType.CONCLUDED: "completed",
            EventType.UNCONCLUDED: "available",
            EventType.DELETED: "deleted",
            EventType.RESTORED: "unpublished",
        }
        for event in events:
            start = ends[event]
        return start

    for old, new in itertools.pairwise(states):
        assert end_state(old, diff.lifecycle_events(old, new)) == new
