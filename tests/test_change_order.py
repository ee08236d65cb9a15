"""Events are in the order of the changes: concurrent writers on the same courses, and
each course's history, listed as the API lists it and read backwards, replays its values.

Only the ORM, the services and the events table are used, so the test holds whatever
records the events (the app's recorder, database triggers).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat

from course_audit import selectors, services
from course_audit.choices import CourseState, EventType
from course_audit.diff import TRACKED_FIELDS, is_blank, json_value
from course_audit.models import Course, CourseEvent

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
    ),
]

WRITERS = 4
WRITES_EACH = 25
COURSES = 3
CODE = "BIO"  # never changed: the no-op writes write it again
KINDS = ("course_update", "update", "bulk_update", "no_op", "transition")


def pause(rng: random.Random) -> None:
    time.sleep(rng.uniform(0, 0.004))


def write(
    number: int, pks: list[int], start: threading.Barrier
) -> tuple[Counter[tuple[int, str]], set[str]]:
    """One writer's transactions; returns how many of them changed each course, as
    ``(pk, event type)``, and the kinds of write it made."""
    rng = random.Random(number)
    changed: Counter[tuple[int, str]] = Counter()
    kinds: set[str] = set()
    start.wait()
    try:
        for step in range(WRITES_EACH):
            kind = rng.choice(KINDS)
            kinds.add(kind)
            single = kind in ("course_update", "transition")
            targets = sorted(rng.sample(pks, 1 if single else rng.randint(1, len(pks))))
            name = f"w{number}.{step}"
            with transaction.atomic():
                # The transaction starts before it waits for the rows: events stamped with
                # its start rather than the change's moment would come out of order.
                courses = list(Course.objects.filter(pk__in=targets).order_by("pk"))
                pause(rng)
                if len(targets) > 1:
                    # Two statements locking several rows in different orders can deadlock;
                    # an application takes them in one order.
                    list(Course.objects.filter(pk__in=targets).order_by("pk").select_for_update())
                if kind == "course_update":
                    services.course_update(
                        course=courses[0], name=name, is_public=rng.random() < 0.5
                    )
                elif kind == "update":
                    Course.objects.filter(pk__in=targets).update(
                        name=name,
                        public_description=Concat(F("public_description"), Value(str(number))),
                    )
                elif kind == "bulk_update":
                    for course in courses:
                        course.name = name
                        course.is_public = rng.random() < 0.5
                    Course.objects.bulk_update(courses, ["name", "is_public"])
                elif kind == "no_op":
                    no_op(rng, targets, courses)
                else:
                    event = transition(rng, targets[0])
                    if event:
                        changed[targets[0], event] += 1
                if kind in ("course_update", "update", "bulk_update"):
                    for pk in targets:
                        changed[pk, EventType.UPDATED] += 1
                pause(rng)
    finally:
        connections.close_all()
    return changed, kinds


def no_op(rng: random.Random, targets: list[int], courses: list[Course]) -> None:
    """A write that changes nothing: it records nothing."""
    how = rng.randrange(3)
    if how == 0:
        Course.objects.filter(pk__in=targets).update(course_code=CODE)
    elif how == 1:
        Course.objects.bulk_update(courses, ["course_code"])
    else:
        services.course_update(course=courses[0], course_code=CODE)


def transition(rng: random.Random, pk: int) -> str | None:
    """Publish or unpublish the course; the event it records, None if it was already so."""
    course = Course.objects.select_for_update().get(pk=pk)
    state = course.workflow_state
    if rng.random() < 0.5:
        services.course_publish(course=course)
        return EventType.PUBLISHED if state == CourseState.UNPUBLISHED else None
    services.course_unpublish(course=course)
    return EventType.UNPUBLISHED if state == CourseState.AVAILABLE else None


def comparable(value: Any) -> Any:
    return None if is_blank(value) else value


def replay(events: list[CourseEvent]) -> tuple[dict[str, Any], str, list[str]]:
    """The values and state a course's events, oldest first, lead to (every ``updated``
    pair starting from the value before it), and the names it had in turn."""
    created, *changes = events
    assert created.event_type == EventType.CREATED
    pairs = {field: pair for field, pair in created.event_data.items() if field in TRACKED_FIELDS}
    assert all(old is None for old, _ in pairs.values())
    values = {field: new for field, (_, new) in pairs.items()}
    state = CourseState.UNPUBLISHED
    names = [values["name"]]
    for event in changes:
        if event.event_type == EventType.UPDATED:
            for field, (old, new) in event.event_data.items():
                assert comparable(old) == comparable(values.get(field)), (event.pk, field)
                values[field] = new
            names.append(values["name"])
        elif event.event_type == EventType.PUBLISHED:
            assert state == CourseState.UNPUBLISHED, event.pk
            state = CourseState.AVAILABLE
        else:
            assert event.event_type == EventType.UNPUBLISHED, event.pk
            assert state == CourseState.AVAILABLE, event.pk
            state = CourseState.UNPUBLISHED
    return values, state, names


def test_concurrent_changes_replay_in_the_order_they_were_made(make_course):
    pks = [
        make_course(name=f"Course {n}", course_code=CODE, public_description="d").pk
        for n in range(COURSES)
    ]
    start = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(WRITERS) as pool:
        results = [
            future.result()
            for future in [pool.submit(write, number, pks, start) for number in range(WRITERS)]
        ]
    changed = sum((tally for tally, _ in results), Counter())
    assert set().union(*(kinds for _, kinds in results)) == set(KINDS)

    switches = 0
    for course in Course.objects.filter(pk__in=pks):
        events = list(selectors.course_events(course))[::-1]
        values, state, names = replay(events)
        assert {field: comparable(values.get(field)) for field in TRACKED_FIELDS} == {
            field: comparable(json_value(getattr(course, field))) for field in TRACKED_FIELDS
        }
        assert state == course.workflow_state
        # One event per write that changed the course, none for the others.
        assert Counter(event.event_type for event in events) == {
            EventType.CREATED: 1,
            **{kind: count for (pk, kind), count in changed.items() if pk == course.pk},
        }
        writers = [name.split(".")[0] for name in names[1:]]
        switches += sum(1 for a, b in itertools.pairwise(writers) if a != b)
    # The writers did interleave on the same rows.
    assert switches >= WRITERS
