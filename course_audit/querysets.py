"""QuerySets of course_audit.

``CourseQuerySet`` makes the bulk write paths record events: ``update()``,
``bulk_update()`` and ``bulk_create()`` lock and snapshot the rows they change and insert
the events of the whole batch with a few multi-row INSERTs, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import NotSupportedError, connections, models, transaction
from django.db.models import F, Q
from django.db.models.fields.json import HasKey

from course_audit import recording
from course_audit.choices import EventType
from course_audit.diff import SNAPSHOT_FIELDS, TRACKED_FIELDS

if TYPE_CHECKING:
    from course_audit.models import Account, Course, CourseEvent  # noqa: F401


# A course search matches substrings from this many characters on, prefixes below.
SEARCH_SUBSTRING_MIN = 3
# The longest name, course code or SIS id a course can have: a longer search matches
# nothing, and a trigram search of a huge text is slow work for nothing.
SEARCH_MAX_LENGTH = 255


class CourseQuerySet(models.QuerySet["Course"]):
    def matching(self, query: str) -> CourseQuerySet:
        """Courses whose name, code or SIS id contains ``query`` (starts with it, for a
        query shorter than ``SEARCH_SUBSTRING_MIN``); nothing for one longer than
        ``SEARCH_MAX_LENGTH``.

        On PostgreSQL, trigram indexes (migration 0003) serve the substring match; they
        cannot serve one or two characters, a prefix the (name, id) index can.
        """
        if len(query) > SEARCH_MAX_LENGTH:
            return self.none()
        lookup = "icontains" if len(query) >= SEARCH_SUBSTRING_MIN else "istartswith"
        return self.filter(
            Q(**{f"name__{lookup}": query})
            | Q(**{f"course_code__{lookup}": query})
            | Q(**{f"sis_course_id__{lookup}": query})
        )

    def update(self, **kwargs: Any) -> int:
        """Update the rows and record an event for each row that really changed."""
        if not kwargs:
            return 0
        if recording.database_records(self.db):
            with transaction.atomic(using=self.db, savepoint=False):
                self._sync_moved_root(kwargs)
                recording.bind_context(self.db)
                count = super().update(**kwargs)
                recording.collect_recorded(self.db)
                return count
        with transaction.atomic(using=self.db, savepoint=False):
            pks = list(self.order_by().values_list("pk", flat=True))
            if not pks:
                return 0
            old = recording.lock_snapshots(self.model, self.db, pks)
            self._sync_moved_root(kwargs)
            base = self.model._base_manager.using(self.db)
            count = 0
            for chunk in recording.chunks(list(old), recording.CHUNK_SIZE):
                count += base.filter(pk__in=chunk).update(**kwargs)
            new = recording.read_snapshots(self.model, self.db, old)
            recording.record_changes(((pk, old[pk], new[pk]) for pk in old if pk in new), self.db)
            return count

    update.alters_data = True  # type: ignore[attr-defined]

    def _sync_moved_root(self, changes: dict[str, Any]) -> None:
        """An update that moves courses to an account moves them to its root too."""
        moves = "account" in changes or "account_id" in changes
        if moves and "root_account" not in changes and "root_account_id" not in changes:
            changes["root_account_id"] = _root_of(
                self.model, changes.get("account", changes.get("account_id")), self.db
            )

    def bulk_update(
        self, objs: Iterable[Course], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """``QuerySet.bulk_update`` that records an event for each row that really changed.

        On PostgreSQL, plain values are written with one ``UPDATE ... FROM (VALUES ...)``
        per batch (Django's generic form builds a CASE per row and field, which is slow
        for big batches); elsewhere, or with expressions, Django runs it as one
        ``update()`` per batch, which records the same way.
        """
        objs = list(objs)
        fields = list(fields)
        if objs and "account_id" in recording.attnames(self.model, fields):
            _sync_root_accounts(self.model, objs, self.db)
            fields.append("root_account")
        connection = connections[self.db]
        attnames = recording.attnames(self.model, fields)
        if (
            not objs
            or not fields
            or connection.vendor != "postgresql"
            or any(
                recording.has_expression(getattr(obj, name) for name in attnames) for obj in objs
            )
        ):
            return super().bulk_update(objs, fields, batch_size=batch_size)
        with transaction.atomic(using=self.db, savepoint=False):
            latest = {obj.pk: obj for obj in objs}  # the last of duplicates wins
            if recording.database_records(self.db):
                recording.bind_context(self.db)
                count = 0
                for batch in recording.chunks(list(latest.values()), batch_size or 1000):
                    count += _update_from_values(self.model, connection, batch, fields)
                recording.collect_recorded(self.db)
                return count
            old = recording.lock_snapshots(self.model, self.db, latest)
            count = 0
            for batch in recording.chunks(list(latest.values()), batch_size or 1000):
                count += _update_from_values(self.model, connection, batch, fields)
            # Only the written fields are read from the objects: others may be deferred.
            written = attnames & set(SNAPSHOT_FIELDS)
            recording.record_changes(
                (
                    (pk, old[pk], {**old[pk], **{name: getattr(obj, name) for name in written}})
                    for pk, obj in latest.items()
                    if pk in old
                ),
                self.db,
            )
            return count

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Iterable[Course], *args: Any, **kwargs: Any) -> list[Course]:
        """``QuerySet.bulk_create`` that records a ``created`` event (and the initial
        lifecycle event) for each course.

        Conflict handling is refused: with ``ignore_conflicts`` or ``update_conflicts`` the
        database does not say which rows were inserted, so nothing could be recorded
        faithfully. Use ``update_or_create()`` or an explicit update instead.
        """
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise NotSupportedError(
                "Course.objects.bulk_create() does not support ignore_conflicts or "
                "update_conflicts: the audit log could not tell inserted rows from updated ones."
            )
        objs = list(objs)
        if not objs:
            return objs
        with transaction.atomic(using=self.db, savepoint=False):
            _sync_root_accounts(self.model, objs, self.db)
            recording.stamp_created(objs)
            if recording.database_records(self.db):
                recording.bind_context(self.db)
                created = super().bulk_create(objs, *args, **kwargs)
                recording.collect_recorded(self.db)
                return created
            created = super().bulk_create(objs, *args, **kwargs)
            missing = [obj for obj in created if obj.pk is None]
            if missing:
                # Backends that cannot return ids from a multi-row INSERT: find them by uuid.
                ids = dict(
                    self.model._base_manager.using(self.db)
                    .filter(uuid__in=[obj.uuid for obj in missing])
                    .values_list("uuid", "pk")
                )
                for obj in missing:
                    obj.pk = ids[obj.uuid]
            if recording.has_expression(
                value for obj in created for value in recording.snapshot_of(obj).values()
            ):
                news = recording.read_snapshots(self.model, self.db, [obj.pk for obj in created])
            else:
                news = {obj.pk: recording.snapshot_of(obj) for obj in created}
            recording.record_changes(((pk, None, new) for pk, new in news.items()), self.db)
            return created

    bulk_create.alters_data = True  # type: ignore[attr-defined]


def _update_from_values(
    model: type[Course], connection: Any, objs: Sequence[Course], fields: Sequence[str]
) -> int:
    """``UPDATE course SET f = v.f ... FROM (VALUES (id, f, ...), ...) v WHERE id = v.id``."""
    opts = model._meta
    model_fields = [opts.get_field(name) for name in dict.fromkeys(fields)]
    qn = connection.ops.quote_name
    columns = [qn(field.column) for field in model_fields]  # type: ignore[union-attr]
    assignments = ", ".join(
        f"{column} = v.{column}::{field.db_type(connection)}"  # type: ignore[union-attr]
        for column, field in zip(columns, model_fields, strict=True)
    )
    row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    params: list[Any] = []
    for obj in objs:
        params.append(obj.pk)
        for field in model_fields:
            value = getattr(obj, field.attname)  # type: ignore[union-attr]
            params.append(field.get_db_prep_save(value, connection))  # type: ignore[union-attr]
    table = qn(opts.db_table)
    sql = (
        f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row] * len(objs))}) "
        f"AS v(id, {', '.join(columns)}) WHERE {table}.{qn(opts.pk.column)} = v.id::bigint"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _account_model(model: type[Course]) -> type[Account]:
    return model._meta.get_field("account").related_model  # type: ignore[return-value]


def _root_of(model: type[Course], account: Any, using: str) -> int:
    account_model = _account_model(model)
    if not isinstance(account, account_model):
        account = account_model._default_manager.using(using).get(pk=account)
    return account.resolved_root_id


def _sync_root_accounts(model: type[Course], objs: Sequence[Course], using: str) -> None:
    """Keep each course's ``root_account`` that of its account."""
    account_ids = {obj.account_id for obj in objs}
    roots = {
        account.pk: account.resolved_root_id
        for account in _account_model(model)
        ._default_manager.using(using)
        .filter(pk__in=account_ids)
        .only("pk", "root_account_id")
    }
    for obj in objs:
        obj.root_account_id = roots[obj.account_id]


class CourseEventQuerySet(models.QuerySet["CourseEvent"]):
    def newest_first(self) -> CourseEventQuerySet:
        return self.order_by("-created_at", "-id")

    def for_course(self, course: Course | int) -> CourseEventQuerySet:
        return self.filter(course=course)

    def for_accounts(self, account_ids: Iterable[int]) -> CourseEventQuerySet:
        return self.filter(account_id__in=list(account_ids))

    def with_links(self, *, join_course: bool = True) -> CourseEventQuerySet:
        """Join what the API's ``linked`` collections show, in the same query.

        ``join_course=False`` when the events come through a course's own manager
        (``course.events``), which gives each of them that very instance.
        """
        links = ("course", "related_course", "user", "page_view")
        return self.select_related(*links[0 if join_course else 1 :])


class _HasTrackedKey(HasKey):
    """``event_data ? 'start_at'``, the key written in the SQL as a literal on PostgreSQL.

    The changed-field indexes are partial (``CourseEvent.Meta.indexes``): PostgreSQL uses
    one only when it can prove the query implies the index's predicate, which it cannot
    from a bound parameter (a prepared statement's generic plan). The key is one of
    ``TRACKED_FIELDS``, plain identifiers, so it is quoted as it stands.
    """

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        if self.rhs not in TRACKED_FIELDS:
            raise ValueError(f"{self.rhs!r} is not a tracked field")
        lhs, params = self.process_lhs(compiler, connection)
        return f"({lhs} ? '{self.rhs}')", list(params)


def changed_field_q(field: str) -> Q:
    """The events that changed ``field`` (one of ``TRACKED_FIELDS``): ``updated`` events
    whose diff (``event_data``) has it.

    A ``created`` event's data holds the values a course started with, not a change, and
    lifecycle, copy and reset events carry no field diff: none of them matches.
    """
    if field not in TRACKED_FIELDS:
        raise ValueError(f"{field!r} is not a tracked field")
    return Q(event_type=EventType.UPDATED) & Q(_HasTrackedKey(F("event_data"), field))


def changed_fields_q(fields: Iterable[str]) -> Q:
    """The events that changed any of ``fields`` (``changed_field_q``'s union)."""
    condition = Q()
    for field in dict.fromkeys(fields):
        condition |= changed_field_q(field)
    return condition
