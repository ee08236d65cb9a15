"""How an event is shown, everywhere it is shown: who did it, and its diff as rows.

The history pages, the page-view page and the admin all render ``present_all``'s result
through one template, ``course_audit/_diff.html``; the API and the exports order an
event's data with ``in_field_order``. Nothing here is marked safe: the template escapes
every value (a course renamed to ``<script>`` shows that text).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from django.core.exceptions import FieldDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from course_audit.diff import in_field_order
from course_audit.models import Account, Course, CourseEvent

# Values longer than this many characters show their start, the rest on demand.
FOLD_AT = 120

_DIFF_TYPES = (CourseEvent.EventType.CREATED, CourseEvent.EventType.UPDATED)


@dataclasses.dataclass(frozen=True)
class Value:
    """One value of a diff as the template shows it: blank, a date, or text (folded when
    longer than ``FOLD_AT``, ``folded`` then holding its start)."""

    text: str = ""
    empty: bool = False
    date: dt.datetime | None = None
    folded: str = ""


@dataclasses.dataclass(frozen=True)
class Row:
    """One field of an event's data: ``(before, after)`` for a change, one value otherwise."""

    field: str
    label: str
    sides: tuple[Value, ...]


class ShownEvent(TypedDict):
    """An event as the timeline and the admin show it (a dict: templates and tests read
    ``item.event`` and ``item["event"]`` alike)."""

    event: CourseEvent
    who: str
    diff: list[Row]


def field_label(name: str) -> str:
    """The course field's verbose name (``account_id`` is "account")."""
    if name == "created_source":
        return _("created from")
    field = _course_field(name)
    return str(field.verbose_name) if field is not None else name


def _course_field(name: str) -> models.Field[Any, Any] | None:
    """The course's field by name or attribute name (``account_id``), if it has one."""
    try:
        field = Course._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.Field) else None


def diff_value(name: str, value: Any) -> Value:
    """One value of the field ``name`` as shown."""
    if value is None or value == "":
        return Value(empty=True)
    if isinstance(value, bool):
        return Value(text=_("Yes") if value else _("No"))
    if isinstance(value, str) and isinstance(_course_field(name), models.DateTimeField):
        parsed = parse_datetime(value)
        if parsed is not None:
            return Value(text=value, date=parsed)
    text = value if isinstance(value, str) else json.dumps(value, cls=DjangoJSONEncoder)
    if len(text) > FOLD_AT:
        return Value(text=text, folded=text[:FOLD_AT])
    return Value(text=text)


def _account(value: Any, account_names: Mapping[int, str]) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return account_names.get(value, f"#{value}")
    return value


def _created_source(value: Any) -> Any:
    if value in CourseEvent.EventSource.values:
        return str(CourseEvent.EventSource(value).label)
    return value


def diff_rows(data: Mapping[str, Any], account_names: Mapping[int, str]) -> list[Row]:
    """An event's data as rows in ``FIELD_ORDER``, labelled; account ids by their names in
    ``account_names`` (``#id`` for an account not there)."""
    rows = []
    for name, change in in_field_order(data).items():
        values = change if isinstance(change, list) and len(change) == 2 else [change]
        if name == "account_id":
            values = [_account(value, account_names) for value in values]
        elif name == "created_source":
            values = [_created_source(value) for value in values]
        rows.append(
            Row(name, field_label(name), tuple(diff_value(name, value) for value in values))
        )
    return rows


def account_ids(events: Iterable[CourseEvent]) -> set[int]:
    """The accounts named in these events' diffs."""
    return {
        value
        for event in events
        if event.event_type in _DIFF_TYPES and isinstance(event.event_data, dict)
        for value in _as_list(event.event_data.get("account_id"))
        if isinstance(value, int) and not isinstance(value, bool)
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def present_all(events: list[CourseEvent]) -> list[ShownEvent]:
    """The events as shown, with the accounts their diffs name read in one query."""
    ids = account_ids(events)
    names = dict(Account.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    return [present(event, names) for event in events]


def outside_app(event: CourseEvent) -> str:
    """Who made a change outside the app, as the database saw it."""
    if event.db_application:
        return _("outside the app: role %(role)s, application %(application)s") % {
            "role": event.db_role,
            "application": event.db_application,
        }
    return _("outside the app: role %(role)s") % {"role": event.db_role}


def present(event: CourseEvent, account_names: Mapping[int, str]) -> ShownEvent:
    """One event as shown; ``account_names`` names the accounts its diff holds."""
    diff = []
    if event.event_type in _DIFF_TYPES and isinstance(event.event_data, dict):
        diff = diff_rows(event.event_data, account_names)
    if event.sis_batch_id is not None:
        who = _("SIS import #%(id)s") % {"id": event.sis_batch_id}
    elif event.user_name or event.user_id is not None:
        who = event.user_name or str(event.user)
    elif event.db_role:
        who = outside_app(event)
    else:
        who = _("system")
    return {"event": event, "who": who, "diff": diff}
