"""How the registrar's pages show an event: who did it, and its diff as before → after rows.

Nothing here is marked safe: the templates escape every value (a course renamed to
``<script>`` shows that text).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from course_audit.models import Account, Course, CourseEvent

FOLD_AT = 120

_DATE_FIELDS = {"start_at", "conclude_at"}
_DIFF_TYPES = (CourseEvent.EventType.CREATED, CourseEvent.EventType.UPDATED)


def field_label(name: str) -> str:
    if name == "account_id":
        return str(Course._meta.get_field("account").verbose_name)
    try:
        return str(Course._meta.get_field(name).verbose_name)  # type: ignore[union-attr]
    except FieldDoesNotExist:
        return name


def diff_value(name: str, value: Any) -> dict[str, Any]:
    """One side of a diff: what the template shows, nothing marked safe."""
    if value is None or value == "":
        return {"empty": True}
    if isinstance(value, bool):
        return {"text": _("Yes") if value else _("No")}
    if name in _DATE_FIELDS and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return {"date": parsed, "text": value}
    text = value if isinstance(value, str) else json.dumps(value, cls=DjangoJSONEncoder)
    if len(text) > FOLD_AT:
        return {"text": text, "folded": text[:FOLD_AT]}
    return {"text": text}


def present_all(events: list[CourseEvent]) -> list[dict[str, Any]]:
    """The events as the timeline shows them; account ids in diffs get their names (one query)."""
    account_ids = {
        value
        for event in events
        if event.event_type in _DIFF_TYPES
        for value in (event.event_data or {}).get("account_id", ()) or ()
        if isinstance(value, int)
    }
    names = dict(Account.objects.filter(pk__in=account_ids).values_list("pk", "name"))
    return [present(event, names) for event in events]


def present(event: CourseEvent, account_names: dict[int, str]) -> dict[str, Any]:
    diff = []
    if event.event_type in _DIFF_TYPES:
        for name, change in (event.event_data or {}).items():
            if isinstance(change, list) and len(change) == 2:
                old, new = change
                if name == "account_id":
                    old, new = (account_names.get(value, value) for value in change)
                diff.append(
                    {
                        "field": field_label(name),
                        "old": diff_value(name, old),
                        "new": diff_value(name, new),
                    }
                )
    if event.sis_batch_id is not None:
        who = _("SIS import #%(id)s") % {"id": event.sis_batch_id}
    elif event.user_name or event.user_id is not None:
        who = event.user_name or str(event.user)
    else:
        who = _("system")
    return {
        "event": event,
        "who": who,
        "diff": diff,
        "created_source": (event.event_data or {}).get("created_source"),
    }
