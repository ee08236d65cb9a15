"""Turning changes to courses into ``CourseEvent`` rows: the database work.

On PostgreSQL the database records: triggers on the course table write the events of
every change (``course_audit.triggers``), and the app's part is to say who acts
(:func:`bind_context`, before each write) and to hear what was recorded
(:func:`collect_recorded`, for the page view and ``events_recorded``). Elsewhere the app
records them itself, as follows.

The ORM entry points (``Course.save``, ``CourseQuerySet.update``, ``bulk_update`` and
``bulk_create``) lock the rows they change, take a snapshot before and after, and call
:func:`record_changes`, which applies the rules of ``course_audit.diff`` and inserts every
event of the batch at once (a ``COPY`` for a big batch on PostgreSQL). All of it runs inside
the caller's transaction, so a change and its events commit together or not at all;
``signals.events_recorded`` is sent for each batch after that transaction commits.

This module sits below the models (``models`` and ``querysets`` call it), so it takes the
course model from its caller and finds the event model in the app registry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.db.models.expressions import Combinable
from django.utils import timezone

from course_audit import diff, triggers
from course_audit.conf import conf
from course_audit.context import get_audit_context
from course_audit.diff import SNAPSHOT_FIELDS, EventRow, Snapshot
from course_audit.signals import events_recorded
from course_audit.types import User

if TYPE_CHECKING:
    from course_audit.models import Course, CourseEvent

__all__ = [
    "CHUNK_SIZE",
    "COPY_MIN_ROWS",
    "attnames",
    "bind_context",
    "chunks",
    "collect_recorded",
    "current_attribution",
    "database_records",
    "display_name",
    "has_expression",
    "insert_events",
    "lock_snapshots",
    "merge_written",
    "read_snapshots",
    "record_changes",
    "record_event",
    "record_save",
    "recorded_by_caller",
    "snapshot_of",
    "stamp_created",
]

# The PostgreSQL driver takes at most 65,535 parameters per statement.
CHUNK_SIZE = 5000
# Batches at least this big go in with COPY on PostgreSQL.
COPY_MIN_ROWS = 200


def _event_model() -> type[CourseEvent]:
    return apps.get_model("course_audit", "CourseEvent")


def database_records(using: str) -> bool:
    """Whether the database's triggers record changes to courses (PostgreSQL)."""
    return bool(connections[using].vendor == "postgresql")


def _collecting() -> bool:
    return get_audit_context().trace is not None or events_recorded.has_listeners(_event_model())


def bind_context(using: str, *, skip: Iterable[Any] = ()) -> None:
    """Tell the database's triggers who acts, for the rest of the transaction (a
    transaction-local setting, so it never outlives it, even through a pooler).

    ``skip``: courses whose next change the caller records itself (a reset's old course).
    Call it inside ``transaction.atomic`` right before a write.
    """
    attribution, _ = current_attribution()
    context = get_audit_context()
    payload = {
        "source": attribution["event_source"],
        "user_id": attribution["user_id"],
        "user_name": attribution["user_name"],
        "sis_batch_id": attribution["sis_batch_id"],
        "request_id": str(attribution["page_view_id"]) if attribution["page_view_id"] else None,
        "occurred_at": context.occurred_at.isoformat() if context.occurred_at else None,
        "max_length": conf.MAX_DIFF_STRING_LENGTH,
        "collect": _collecting(),
        "skip_courses": [int(pk) for pk in skip],
    }
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, %s, true)",
            [triggers.CONTEXT_SETTING, json.dumps(payload, cls=DjangoJSONEncoder)],
        )


def collect_recorded(using: str) -> list[CourseEvent]:
    """The events the triggers recorded since the last call in this transaction, told to
    the request's trace and, after the commit, to ``events_recorded``'s receivers.

    Costs two queries, and only when someone listens (a request's trace, a receiver)."""
    if not _collecting():
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting(%s, true), set_config(%s, '', true)",
            [triggers.RECORDED_SETTING, triggers.RECORDED_SETTING],
        )
        raw = cursor.fetchone()[0] or ""
    ids = [int(part) for part in raw.split(",") if part]
    if not ids:
        return []
    event_model = _event_model()
    events = list(event_model._default_manager.using(using).filter(pk__in=ids).order_by("pk"))
    _announce(event_model, events, using)
    return events


def _announce(event_model: type[CourseEvent], events: Sequence[Any], using: str) -> None:
    """Count ``events`` (model instances or rows) in the request's trace; send them to
    ``events_recorded``'s receivers once the transaction commits."""
    trace = get_audit_context().trace
    if trace is not None and events:
        trace.events_recorded += len(events)
        trace.account_ids.update(_value(event, "account_id") for event in events)
        if trace.course_id is None:
            trace.course_id = _value(events[0], "course_id")
            trace.account_id = _value(events[0], "account_id")
    if events and events_recorded.has_listeners(event_model):
        recorded = [
            event if isinstance(event, event_model) else event_model(**event) for event in events
        ]
        transaction.on_commit(
            partial(events_recorded.send_robust, event_model, events=recorded, using=using),
            using=using,
        )


def _value(event: Any, name: str) -> Any:
    return event[name] if isinstance(event, dict) else getattr(event, name)


def snapshot_of(course: Course) -> Snapshot:
    return {field: getattr(course, field) for field in SNAPSHOT_FIELDS}


def lock_snapshots(model: type[Course], using: str, pks: Iterable[Any]) -> dict[Any, Snapshot]:
    """Lock the rows (``SELECT ... FOR UPDATE``) and return their current values."""
    found: dict[Any, Snapshot] = {}
    for chunk in chunks(list(pks), CHUNK_SIZE):
        rows = (
            model._base_manager.using(using)
            .filter(pk__in=chunk)
            .order_by()
            .select_for_update()
            .values("pk", *SNAPSHOT_FIELDS)
        )
        for row in rows:
            found[row.pop("pk")] = row
    return found


def read_snapshots(model: type[Course], using: str, pks: Iterable[Any]) -> dict[Any, Snapshot]:
    """The rows' current values, without locking them."""
    found: dict[Any, Snapshot] = {}
    for chunk in chunks(list(pks), CHUNK_SIZE):
        rows = model._base_manager.using(using).filter(pk__in=chunk).values("pk", *SNAPSHOT_FIELDS)
        for row in rows:
            found[row.pop("pk")] = row
    return found


def has_expression(values: Iterable[Any]) -> bool:
    return any(
        isinstance(value, Combinable) or hasattr(value, "resolve_expression") for value in values
    )


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def display_name(user: User) -> str:
    """The actor's name as events keep it, so history survives the user's deletion."""
    full_name = getattr(user, "get_full_name", None)
    name = full_name() if callable(full_name) else ""
    return str(name or user.get_username())[:255]


def current_attribution() -> tuple[dict[str, Any], dt.datetime]:
    """Column values every event recorded now shares, and its timestamp."""
    context = get_audit_context()
    actor = context.actor()
    attribution = {
        "event_source": context.source,
        "user_id": actor.pk if actor is not None else None,
        "user_name": display_name(actor) if actor is not None else "",
        "sis_batch_id": context.sis_batch.pk if context.sis_batch is not None else None,
        "page_view_id": context.request_id,
        # A backfill dates its events (``occurred_at``); when they were really recorded
        # is kept beside it, and sealed, so that verification tells it from a forgery.
        "recorded_at": timezone.now() if context.occurred_at is not None else None,
    }
    return attribution, context.occurred_at or timezone.now()


def insert_events(events: list[EventRow], using: str) -> list[CourseEvent] | None:
    """Insert the rows: a COPY for a big batch on PostgreSQL (psycopg 3), else multi-row
    INSERTs. ``events_recorded`` is sent with them once the transaction commits.

    Returns the saved instances of an INSERT (with their ids), None for a COPY batch,
    whose rows are not turned into instances unless a receiver listens."""
    if not events:
        return []
    event_model = _event_model()
    connection = connections[using]
    written: list[CourseEvent] | None = None
    if len(events) >= COPY_MIN_ROWS and _can_copy(connection):
        _copy_events(event_model, events, connection)
    else:
        written = event_model._default_manager.using(using).bulk_create(
            [event_model(**row) for row in events], batch_size=CHUNK_SIZE
        )
    # Instances are built for a COPY batch only when someone listens.
    _announce(event_model, written if written is not None else events, using)
    return written


def _can_copy(connection: Any) -> bool:
    if connection.vendor != "postgresql":
        return False
    # Imported only on PostgreSQL: it needs a driver, which a SQLite site may not have.
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    # psycopg2 has no COPY of Python rows; Django still supports it, so fall back to INSERTs.
    return bool(is_psycopg3)


def _copy_events(event_model: type[CourseEvent], events: list[EventRow], connection: Any) -> None:
    opts = event_model._meta
    names = list(events[0])
    columns = ", ".join(
        connection.ops.quote_name(opts.get_field(name).column)  # type: ignore[union-attr]
        for name in names
    )
    encoder = DjangoJSONEncoder()
    table = connection.ops.quote_name(opts.db_table)
    # The raw psycopg cursor skips Django's wrapper: without it a failed COPY would raise
    # psycopg's own errors, which callers catching ``django.db.DatabaseError`` would miss.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in events:
            copy.write_row(
                [encoder.encode(row[name]) if name == "event_data" else row[name] for name in names]
            )


def record_changes(
    changes: Iterable[tuple[int, Snapshot | None, Snapshot]], using: str
) -> list[EventRow]:
    """Record ``(course_id, old, new)`` changes (``old`` is None for a new course).

    Returns the rows written, in order."""
    attribution, created_at = current_attribution()
    events: list[EventRow] = []
    for course_id, old, new in changes:
        events.extend(
            diff.events_for_change(
                course_id=course_id,
                old=old,
                new=new,
                created_at=created_at,
                attribution=attribution,
            )
        )
    insert_events(events, using)
    return events


def record_event(
    *,
    course: Course,
    event_type: str,
    related_course: Course | None = None,
    using: str,
) -> CourseEvent:
    """Record one event that is not a field change (copy and reset pairs); returns it
    saved, with its id."""
    attribution, created_at = current_attribution()
    row = diff.event_row(
        course_id=course.pk,
        account_id=course.account_id,
        event_type=event_type,
        data={},
        created_at=created_at,
        attribution=attribution,
        related_course_id=related_course.pk if related_course is not None else None,
    )
    written = insert_events([row], using)
    assert written  # one row always goes in by INSERT
    return written[0]


def record_save(
    course: Course, old: Snapshot | None, save_kwargs: Mapping[str, Any], using: str
) -> list[EventRow]:
    """Record what ``Course.save()`` just wrote; returns the rows written."""
    if course.__dict__.pop("_audit_recorded_by_caller", False):
        return []
    model = type(course)
    new = snapshot_of(course)
    if has_expression(new.values()):
        new = read_snapshots(model, using, [course.pk])[course.pk]
    update_fields = save_kwargs.get("update_fields")
    if old is not None and update_fields is not None:
        new = merge_written(model, old, new, update_fields)
    return record_changes([(course.pk, old, new)], using)


def recorded_by_caller(course: Course) -> None:
    """Make the next ``course.save()`` record nothing, because its caller records the
    events itself in the same transaction.

    Only for services whose events describe the change better than a field diff: a reset
    records the old course's deletion (and its SIS id moving) as the ``reset_to`` event.
    """
    course.__dict__["_audit_recorded_by_caller"] = True


def stamp_created(courses: Iterable[Course]) -> None:
    """New courses of a backfill (``audit_context(occurred_at=...)``) were created then."""
    occurred_at = get_audit_context().occurred_at
    if occurred_at is not None:
        for course in courses:
            course.created_at = occurred_at


def attnames(model: type[models.Model], field_names: Iterable[str]) -> set[str]:
    """Attribute names of model fields named either way (``account`` or ``account_id``)."""
    names = set()
    for name in field_names:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field)
        names.add(field.attname)
    return names


def merge_written(
    model: type[models.Model], old: Snapshot, new: Snapshot, field_names: Iterable[str]
) -> Snapshot:
    """The row after a write of only ``field_names``: their new values, the rest as before."""
    written = attnames(model, field_names)
    return {key: (new[key] if key in written else value) for key, value in old.items()}
