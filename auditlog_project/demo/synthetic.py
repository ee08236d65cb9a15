"""Synthetic event rows for load: the one place that makes them up.

Two shapes, for two users:

- ``synthetic_rows``: ``updated`` events over the demo university's live courses
  (``manage.py seed_demo --events N``), inserted by ``insert_synthetic``;
- ``long_tail_rows``: the benchmark's university (``bench/_data.py``), one deep course,
  a few big ones and a long tail, in bursts sharing one timestamp.

Each row is built by the recorder's own row builder (``diff.event_row``, through
``synthetic_row``), so a synthetic row has exactly the keys and defaults of a recorded one.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, transaction

from auditlog_project.demo.catalogue import NAME_SUFFIXES
from course_audit import diff, recording
from course_audit.diff import EventRow, json_value
from course_audit.models import Account, Course, CourseEvent, SisBatch
from course_audit.recording import display_name

State = Course.WorkflowState
Source = CourseEvent.EventSource
MANUAL, API, SIS = Source.MANUAL.value, Source.API.value, Source.SIS.value
UPDATED = CourseEvent.EventType.UPDATED.value

CHUNK = 100_000  # rows per transaction


def synthetic_row(
    *,
    course_id: int,
    account_id: int,
    created_at: datetime,
    source: str,
    data: dict[str, Any],
    event_type: str = UPDATED,
    user_id: int | None = None,
    user_name: str = "",
    sis_batch_id: int | None = None,
    page_view_id: uuid.UUID | None = None,
) -> EventRow:
    """One row for ``recording.insert_events``, built as the recorder builds its own
    (``diff.event_row``)."""
    attribution = {
        "event_source": source,
        "user_id": user_id,
        "user_name": user_name,
        "sis_batch_id": sis_batch_id,
        "page_view_id": page_view_id,
    }
    return diff.event_row(
        course_id=course_id,
        account_id=account_id,
        event_type=event_type,
        data=data,
        created_at=created_at,
        attribution=attribution,
    )


# -- the demo university's synthetic events ---------------------------------------------


def iso(value: datetime) -> str:
    return str(json_value(value))


def synthetic_diffs(
    name: str, conclude_at: datetime | None, start_at: datetime | None
) -> list[dict[str, Any]]:
    """Plausible ``updated`` diffs for one course (the contract's ``{field: [old, new]}``)."""
    diffs: list[dict[str, Any]] = [{"is_public": [False, True]}, {"is_public": [True, False]}]
    for suffix in NAME_SUFFIXES:
        diffs.append({"name": [name, f"{name}{suffix}"]})
        diffs.append({"name": [f"{name}{suffix}", name]})
    base = conclude_at or (start_at + timedelta(days=110) if start_at else None)
    if base is not None:
        for days in (3, 7, 14):
            diffs.append({"conclude_at": [iso(base), iso(base + timedelta(days=days))]})
    return diffs


def synthetic_rows(
    root: Account, count: int, rng: random.Random, now: datetime
) -> Iterator[EventRow]:
    """``count`` event rows: ``updated`` events over the demo's live courses, each after its
    course's creation and not in the future."""
    # Read everything now: the rows are consumed while a COPY holds the connection.
    courses = []
    for pk, account_id, name, start_at, conclude_at, created_at in (
        Course.objects.filter(root_account=root)
        .exclude(workflow_state=State.DELETED)
        .values_list("pk", "account_id", "name", "start_at", "conclude_at", "created_at")
    ):
        diffs = synthetic_diffs(name, conclude_at, start_at)
        courses.append((pk, account_id, min(created_at, now).timestamp(), diffs))
    if not courses:
        raise CommandError("The demo has no live course to add events to.")
    subtree = Account.objects.filter(root.subtree_q())
    actors = [
        (user.pk, display_name(user))
        for user in get_user_model()
        ._default_manager.filter(course_audit_memberships__account__in=subtree)
        .distinct()
        .order_by("pk")
    ]
    batches = [
        (
            batch.created_at.timestamp(),
            batch.pk,
            batch.user_id,
            display_name(batch.user) if batch.user else "",
        )
        for batch in SisBatch.objects.filter(root_account=root)
        .select_related("user")
        .order_by("created_at")
    ]
    return _generate_rows(count, rng, now, courses, actors, batches)


def _generate_rows(
    count: int,
    rng: random.Random,
    now: datetime,
    courses: list[tuple[int, int, float, list[Any]]],
    actors: list[tuple[int, str]],
    batches: list[tuple[float, int, int | None, str]],
) -> Iterator[EventRow]:
    batch_times = [batch[0] for batch in batches]
    now_ts = now.timestamp()
    random_, randrange, from_ts = rng.random, rng.randrange, datetime.fromtimestamp
    n_courses, n_actors = len(courses), len(actors)
    for _ in range(count):
        pk, account_id, created_ts, diffs = courses[randrange(n_courses)]
        ts = created_ts + random_() * (now_ts - created_ts)
        data = diffs[randrange(len(diffs))]
        roll = random_()
        batch_index = bisect.bisect_right(batch_times, ts) - 1 if roll >= 0.85 else -1
        if batch_index >= 0:
            _at, batch_id, user_id, user_name = batches[batch_index]
            source = SIS
        else:
            source, batch_id = (MANUAL if roll < 0.55 else API), None
            user_id, user_name = actors[randrange(n_actors)] if n_actors else (None, "")
        yield synthetic_row(
            course_id=pk,
            account_id=account_id,
            created_at=from_ts(ts, UTC),
            source=source,
            data=data,
            user_id=user_id,
            user_name=user_name,
            sis_batch_id=batch_id,
        )


def insert_synthetic(
    rows: Iterator[EventRow], count: int, progress: Callable[[int], object]
) -> None:
    """Insert the rows through the recorder's bulk path (``COPY`` on PostgreSQL), a chunk
    per transaction so the deferred foreign-key checks stay bounded; ``progress`` is told
    the size of each chunk committed."""
    # In (account, time) order, each chunk walks the (account|course, created_at, id)
    # indexes once instead of jumping about them.
    in_index_order = operator.itemgetter("account_id", "created_at")
    left = count
    while left:
        size = min(CHUNK, left)
        chunk = sorted(itertools.islice(rows, size), key=in_index_order)
        with transaction.atomic():
            recording.insert_events(chunk, DEFAULT_DB_ALIAS)
        progress(size)
        left -= size


# -- the benchmark's long-tail university ---------------------------------------------

TIES = 5  # events sharing one timestamp, as a SIS import writes them
# A few big courses besides the deep one, each with this share of the events.
OTHER_BIG_COURSES = 4
OTHER_BIG_SHARE = 0.01
# (value, weight): how often each event type and source occurs.
EVENT_KINDS: list[tuple[str, int]] = [
    ("updated", 880),
    ("published", 40),
    ("unpublished", 15),
    ("concluded", 30),
    ("unconcluded", 10),
    ("deleted", 8),
    ("restored", 7),
]
SOURCES: list[tuple[str, int]] = [("api", 50), ("manual", 30), ("sis", 20)]


# Which fields an ``updated`` event of the long tail changes, by its number modulo 100: the
# name most often, then the public flag, the dates (start and end together now and then)
# and the code. The description, SIS id and account never change, so a filter on them
# matches nothing. Drawn from the number, not the random stream: the rest of the data is
# the same as before the fields varied.
LONG_TAIL_FIELDS: list[tuple[int, tuple[str, ...]]] = [
    (5, ("start_at",)),
    (15, ("conclude_at",)),
    (16, ("start_at", "conclude_at")),
    (26, ("is_public",)),
    (30, ("course_code",)),
    (100, ("name",)),
]


def long_tail_diff(course_id: int, number: int, start: datetime) -> dict[str, Any]:
    """The diff of the long tail's ``updated`` event ``number`` (``LONG_TAIL_FIELDS``)."""
    bucket = number % 100
    fields = next(fields for bound, fields in LONG_TAIL_FIELDS if bucket < bound)
    diff: dict[str, Any] = {}
    for field in fields:
        if field == "name":
            diff[field] = [f"Course {course_id} v{number}", f"Course {course_id} v{number + 1}"]
        elif field == "course_code":
            diff[field] = [f"C{course_id:05d}", f"C{course_id:05d}-{number % 7}"]
        elif field == "is_public":
            diff[field] = [bool(number % 2), not number % 2]
        else:
            day = start + timedelta(days=number % 400)
            diff[field] = [iso(day), iso(day + timedelta(days=7))]
    return diff


def long_tail_rows(
    count: int,
    rng: random.Random,
    *,
    big_course_events: int,
    course_accounts: list[tuple[int, int]],
    actors: list[tuple[int, str]],
    batch_ids: list[int],
    view_ids: list[uuid.UUID],
    start: datetime,
    end: datetime,
) -> Iterator[EventRow]:
    """``count`` event rows, oldest first, spread evenly from ``start`` to ``end`` in bursts
    of ``TIES`` sharing one timestamp.

    The first course of ``course_accounts`` (``(course id, account id)`` pairs) gets about
    ``big_course_events`` of them, spread evenly among the rest; the others are drawn with
    weights: the next few courses get ``OTHER_BIG_SHARE`` of them each, the rest a long tail
    (weight 1 / rank).
    """
    big_share = min(1.0, big_course_events / count)
    others = course_accounts[1:]
    tail = [1 / (rank + 1) for rank in range(len(others) - OTHER_BIG_COURSES)]
    big = OTHER_BIG_SHARE / (1 - OTHER_BIG_COURSES * OTHER_BIG_SHARE) * sum(tail)
    weights = [big] * OTHER_BIG_COURSES + tail
    cumulative = list(itertools.accumulate(weights))
    kinds, kind_weights = zip(*EVENT_KINDS, strict=True)
    sources, source_weights = zip(*SOURCES, strict=True)
    step = (end - start) / max(1, count // TIES)
    block = 10_000
    user_id: int | None
    for offset in range(0, count, block):
        size = min(block, count - offset)
        picks = rng.choices(others, cum_weights=cumulative, k=size)
        types = rng.choices(kinds, weights=kind_weights, k=size)
        origins = rng.choices(sources, weights=source_weights, k=size)
        for index in range(size):
            number = offset + index
            is_big = int((number + 1) * big_share) > int(number * big_share)
            course_id, account_id = course_accounts[0] if is_big else picks[index]
            source = origins[index]
            user_id, user_name = actors[number % len(actors)]
            if source == SIS:
                user_id, user_name = None, ""
            event_type = types[index]
            yield synthetic_row(
                course_id=course_id,
                account_id=account_id,
                created_at=start + step * (number // TIES),
                source=source,
                event_type=event_type,
                data=long_tail_diff(course_id, number, start) if event_type == UPDATED else {},
                user_id=user_id,
                user_name=user_name,
                page_view_id=view_ids[number % len(view_ids)]
                if source != SIS and number % 3 == 0
                else None,
                sis_batch_id=batch_ids[number % len(batch_ids)] if source == SIS else None,
            )
