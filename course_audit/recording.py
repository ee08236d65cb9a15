"""Turning changes to courses into ``CourseEvent`` rows.

The ORM entry points (``Course.save``, ``CourseQuerySet.update``, ``bulk_update`` and
``bulk_create``) lock the rows they change, take a snapshot before and after, and call
:func:`record_changes`, which applies the contract's diff rules and inserts every event of
the batch in one ``bulk_create``. All of it runs inside the caller's transaction, so a
change and its events commit together or not at all; ``signals.events_recorded`` is sent
for each batch after that transaction commits.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction
from django.db.models.expressions import Combinable
from django.utils import timezone

from course_audit.conf import conf
from course_audit.context import get_audit_context
from course_audit.models import Course, CourseEvent
from course_audit.signals import events_recorded

EventType = CourseEvent.EventType
State = Course.WorkflowState

# Fields whose changes make ``created``/``updated`` events, by attribute name.
TRACKED_FIELDS: tuple[str, ...] = (
    "name",
    "course_code",
    "sis_course_id",
    "account_id",
    "start_at",
    "conclude_at",
    "is_public",
    "public_description",
)
SNAPSHOT_FIELDS: tuple[str, ...] = (*TRACKED_FIELDS, "workflow_state")

# The PostgreSQL driver takes at most 65,535 parameters per statement.
CHUNK_SIZE = 5000

Snapshot = dict[str, Any]
# An event as column values by attribute name (cheaper than a model instance in bulk).
EventRow = dict[str, Any]
# Batches at least this big go in with COPY on PostgreSQL.
COPY_MIN_ROWS = 200


def json_value(value: Any) -> Any:
    """A field value as it appears in ``event_data``: JSON, dates as ISO 8601 in UTC."""
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
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


def build_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: [old, new]}`` for each tracked field that changed, by Canvas's rules:
    blank-to-blank is no change, dates compare as printed, long strings are cut."""
    diff: dict[str, Any] = {}
    limit = conf.MAX_DIFF_STRING_LENGTH
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
    if new_state == State.DELETED:
        return [EventType.DELETED]
    if old_state == State.DELETED:
        return [EventType.RESTORED, *lifecycle_events(State.UNPUBLISHED, new_state)]
    if new_state == State.COMPLETED:
        return [EventType.CONCLUDED]
    if old_state == State.COMPLETED:
        return [EventType.UNCONCLUDED, *lifecycle_events(State.AVAILABLE, new_state)]
    if new_state == State.AVAILABLE:
        return [EventType.PUBLISHED]
    return [EventType.UNPUBLISHED]


def snapshot_of(course: Course) -> Snapshot:
    return {field: getattr(course, field) for field in SNAPSHOT_FIELDS}


def lock_snapshots(using: str, pks: Iterable[Any]) -> dict[Any, Snapshot]:
    """Lock the rows (``SELECT ... FOR UPDATE``) and return their current values."""
    found: dict[Any, Snapshot] = {}
    for chunk in chunks(list(pks), CHUNK_SIZE):
        rows = (
            Course._base_manager.using(using)
            .filter(pk__in=chunk)
            .order_by()
            .select_for_update()
            .values("pk", *SNAPSHOT_FIELDS)
        )
        for row in rows:
            found[row.pop("pk")] = row
    return found


def read_snapshots(using: str, pks: Iterable[Any]) -> dict[Any, Snapshot]:
    found: dict[Any, Snapshot] = {}
    for chunk in chunks(list(pks), CHUNK_SIZE):
        rows = Course._base_manager.using(using).filter(pk__in=chunk).values("pk", *SNAPSHOT_FIELDS)
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


def events_for_change(
    *,
    course_id: int,
    old: Snapshot | None,
    new: Snapshot,
    created_at: dt.datetime,
    attribution: Mapping[str, Any],
) -> list[EventRow]:
    """The events one course's change records: ``created``/``updated``, then lifecycle."""
    account_id = new["account_id"]
    events: list[EventRow] = []
    diff = build_diff(old, new)
    if old is None:
        diff["created_source"] = attribution["event_source"]
        events.append(
            _event(course_id, account_id, EventType.CREATED, diff, created_at, attribution)
        )
        old_state = State.UNPUBLISHED
    else:
        if diff:
            events.append(
                _event(course_id, account_id, EventType.UPDATED, diff, created_at, attribution)
            )
        old_state = old["workflow_state"]
    for event_type in lifecycle_events(old_state, new["workflow_state"]):
        events.append(_event(course_id, account_id, event_type, {}, created_at, attribution))
    return events


def _event(
    course_id: int,
    account_id: int,
    event_type: str,
    data: dict[str, Any],
    created_at: dt.datetime,
    attribution: Mapping[str, Any],
    related_course_id: int | None = None,
) -> EventRow:
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


def display_name(user: Any) -> str:
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
    }
    return attribution, context.occurred_at or timezone.now()


def insert_events(events: list[EventRow], using: str) -> None:
    """Insert the rows: a COPY for a big batch on PostgreSQL (psycopg 3), else multi-row
    INSERTs. ``events_recorded`` is sent with them once the transaction commits."""
    if not events:
        return
    connection = connections[using]
    written: list[CourseEvent] | None = None
    if len(events) >= COPY_MIN_ROWS and _can_copy(connection):
        _copy_events(events, connection)
    else:
        written = CourseEvent.objects.using(using).bulk_create(
            [CourseEvent(**row) for row in events], batch_size=CHUNK_SIZE
        )
    trace = get_audit_context().trace
    if trace is not None:
        trace.events_recorded += len(events)
        trace.account_ids.update(row["account_id"] for row in events)
        if trace.course_id is None:
            trace.course_id = events[0]["course_id"]
            trace.account_id = events[0]["account_id"]
    # Instances are built for a COPY batch only when someone listens.
    if events_recorded.has_listeners(CourseEvent):
        recorded = written if written is not None else [CourseEvent(**row) for row in events]
        transaction.on_commit(
            partial(events_recorded.send_robust, CourseEvent, events=recorded, using=using),
            using=using,
        )


def _can_copy(connection: Any) -> bool:
    if connection.vendor != "postgresql":
        return False
    # psycopg2 has no COPY of Python rows; Django still supports it, so fall back to INSERTs.
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _copy_events(events: list[EventRow], connection: Any) -> None:
    opts = CourseEvent._meta
    attnames = list(events[0])
    columns = ", ".join(
        connection.ops.quote_name(opts.get_field(name).column)  # type: ignore[union-attr]
        for name in attnames
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
                [
                    encoder.encode(row[name]) if name == "event_data" else row[name]
                    for name in attnames
                ]
            )


def record_changes(changes: Iterable[tuple[int, Snapshot | None, Snapshot]], using: str) -> None:
    """Record ``(course_id, old, new)`` changes (``old`` is None for a new course)."""
    attribution, created_at = current_attribution()
    events: list[EventRow] = []
    for course_id, old, new in changes:
        events.extend(
            events_for_change(
                course_id=course_id,
                old=old,
                new=new,
                created_at=created_at,
                attribution=attribution,
            )
        )
    insert_events(events, using)


def record_event(
    *,
    course: Course,
    event_type: str,
    related_course: Course | None = None,
    using: str,
) -> CourseEvent:
    """Record one event that is not a field change (copy and reset pairs)."""
    attribution, created_at = current_attribution()
    row = _event(
        course.pk,
        course.account_id,
        event_type,
        {},
        created_at,
        attribution,
        related_course_id=related_course.pk if related_course is not None else None,
    )
    insert_events([row], using)
    return CourseEvent(**row)


def record_save(
    course: Course, old: Snapshot | None, save_kwargs: Mapping[str, Any], using: str
) -> None:
    """Record what ``Course.save()`` just wrote."""
    if course.__dict__.pop("_audit_recorded_by_caller", False):
        return
    new = snapshot_of(course)
    if has_expression(new.values()):
        new = read_snapshots(using, [course.pk])[course.pk]
    update_fields = save_kwargs.get("update_fields")
    if old is not None and update_fields is not None:
        new = merge_written(old, new, update_fields)
    record_changes([(course.pk, old, new)], using)


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


def attnames(field_names: Iterable[str]) -> set[str]:
    """Attribute names of model fields named either way (``account`` or ``account_id``)."""
    names = set()
    for name in field_names:
        field = Course._meta.get_field(name)
        assert isinstance(field, models.Field)
        names.add(field.attname)
    return names


def merge_written(old: Snapshot, new: Snapshot, field_names: Iterable[str]) -> Snapshot:
    """The row after a write of only ``field_names``: their new values, the rest as before."""
    written = attnames(field_names)
    return {key: (new[key] if key in written else value) for key, value in old.items()}
