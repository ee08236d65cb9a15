"""How an event is shown, everywhere it is shown: who did it, and its diff as rows.

The history pages, the page-view page and the admin all show ``present_all``'s result as
the HTML of ``event_item`` and ``diff_table`` (the templates ``_event.html`` and
``_diff.html`` call them): built here in Python, because a page of 100 events rendered
through a template per event and per cell cost more than all its SQL. Every value is
escaped (``html.escape``, as Django's ``escape``): a course renamed to ``<script>`` shows that text.
The API and the exports order an event's data with ``in_field_order``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import dateformat, formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from course_audit.diff import in_field_order
from course_audit.integrity import Seals
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
        rows.append(
            Row(
                name,
                field_label(name),
                tuple(shown_value(name, value, account_names) for value in values),
            )
        )
    return rows


def shown_value(name: str, value: Any, account_names: Mapping[int, str]) -> Value:
    """One value of the field ``name`` as shown: an account by its name in
    ``account_names``, a created course's source by its label."""
    if name == "account_id":
        value = _account(value, account_names)
    elif name == "created_source":
        value = _created_source(value)
    return diff_value(name, value)


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


# --- HTML ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Words:
    """What every event of a list says in the current language, translated and escaped
    once per list: a label per event (``get_event_type_display``) cost more than the SQL."""

    before: str
    after: str
    empty: str
    changed_fields: str
    field: str
    by: str
    source: str
    other_course: str
    request: str
    only_user: str
    their_changes: str
    person_url: str
    sealed_in: str
    not_sealed_yet: str
    in_no_checkpoint: str
    datetime_format: str
    types: Mapping[str, str]
    sources: Mapping[str, str]

    @classmethod
    def now(cls) -> _Words:
        """The words in the current language, escaped."""
        return cls(
            before=_e(_("Before")),
            after=_e(_("After")),
            empty=_e(_("empty")),
            changed_fields=_e(_("Changed fields")),
            field=_e(_("Field")),
            by=_e(_("by")),
            source=_e(_("source:")),
            other_course=_e(_("other course:")),
            request=_e(_("request")),
            only_user=_e(_("Show only events by this user")),
            their_changes=_e(_("all their changes")),
            # The person page's path with a stand-in id: reversed once per list.
            person_url=reverse("course_audit:person_history", args=["0"]).removesuffix("0/"),
            sealed_in=_e(_("sealed in checkpoint #%(sequence)s")),
            not_sealed_yet=_e(_("not yet sealed")),
            in_no_checkpoint=_e(_("in no checkpoint")),
            datetime_format=formats.get_format("DATETIME_FORMAT"),
            types={value: _e(label) for value, label in CourseEvent.EventType.choices},
            sources={value: _e(label) for value, label in CourseEvent.EventSource.choices},
        )


def _dates(value: dt.datetime, words: _Words, title_format: str) -> tuple[str, str, str]:
    """``value`` as the template filter ``date`` shows it (in the current time zone),
    escaped: ISO 8601 (``c``), in ``title_format``, and in ``DATETIME_FORMAT``."""
    local = timezone.localtime(value) if settings.USE_TZ and timezone.is_aware(value) else value
    shown = dateformat.DateFormat(local)
    return (
        _e(local.isoformat()),
        _e(shown.format(title_format)),
        _e(shown.format(words.datetime_format)),
    )


def _e(value: Any) -> str:
    """``value`` escaped as Django's ``escape`` does it, without its lazy-string wrapper
    and safe-string result, which cost more than the escaping on a page of events."""
    return html.escape(str(value))


def _cell(value: Value, words: _Words) -> str:
    if value.empty:
        return f'<span class="null" title="{words.empty}">—</span>'
    if value.date is not None:
        iso, title, shown = _dates(value.date, words, "Y-m-d H:i:s T")
        return f'<time datetime="{iso}" title="{title}">{shown}</time>'
    if value.folded:
        return (
            f'<details class="fold"><summary>{_e(value.folded)}…</summary>'
            f'<div class="full">{_e(value.text)}</div></details>'
        )
    return _e(value.text)


def diff_table(rows: Iterable[Row], words: _Words | None = None) -> SafeString:
    """An event's data (``diff_rows``) as a table of field, before and after."""
    words = words or _Words.now()
    lines = []
    for row in rows:
        if len(row.sides) == 1:
            labels = [' colspan="2"']
        else:
            labels = [
                f' data-label="{words.before}"',
                *[f' data-label="{words.after}"'] * (len(row.sides) - 1),
            ]
        cells = "".join(
            f"<td{label}>{_cell(value, words)}</td>"
            for label, value in zip(labels, row.sides, strict=True)
        )
        lines.append(f'\n    <tr><th scope="row">{_e(capfirst(row.label))}</th>{cells}</tr>\n    ')
    # Every piece is escaped: the labels, the values and the translated words.
    return mark_safe(
        f'\n\n<table class="diff">\n  <caption class="visually-hidden">{words.changed_fields}'
        f'</caption>\n  <thead><tr><th scope="col">{words.field}</th><th scope="col">'
        f'{words.before}</th><th scope="col"><span aria-hidden="true">→ </span>{words.after}'
        f"</th></tr></thead>\n  <tbody>\n    {''.join(lines)}\n  </tbody>\n</table>\n"
    )


def event_items(
    items: Iterable[ShownEvent],
    *,
    show_course: bool = False,
    user_filter: bool = False,
    filter_links: str = "",
    seals: Seals | None = None,
) -> SafeString:
    """Events of a timeline as list items: each one's type, time, whether it is sealed and
    in which checkpoint (with ``seals``, from ``integrity.sealed_in``), course
    (``show_course``), who (a link filtering the page to that user with ``user_filter``,
    keeping the page's other filters ``filter_links``), source, other course, request and
    diff."""
    words = _Words.now()
    user_link = _e(f"?{filter_links}&user_id=" if filter_links else "?user_id=")
    # Every piece is escaped (_e).
    return mark_safe(
        "".join(
            _event_item(item, words, show_course, user_link if user_filter else "", seals)
            for item in items
        )
    )


def event_item(
    shown: ShownEvent,
    *,
    show_course: bool = False,
    user_filter: bool = False,
    filter_links: str = "",
    seals: Seals | None = None,
) -> SafeString:
    """One event as a list item (``event_items``)."""
    return event_items(
        [shown],
        show_course=show_course,
        user_filter=user_filter,
        filter_links=filter_links,
        seals=seals,
    )


def _seal(event_id: int, seals: Seals, words: _Words) -> str:
    """The event's seal: its checkpoint, "not yet sealed" or "in no checkpoint"."""
    state = seals.state(event_id)
    if state == "pending":
        return f'\n    <span class="seal seal-pending">{words.not_sealed_yet}</span>'
    if state == "missing":
        return f'\n    <span class="seal seal-missing">{words.in_no_checkpoint}</span>'
    label = words.sealed_in % {"sequence": state}
    return f'\n    <span class="seal seal-sealed" data-checkpoint="{state}">{label}</span>'


def _event_item(
    shown: ShownEvent, words: _Words, show_course: bool, user_link: str, seals: Seals | None
) -> str:
    event = shown["event"]
    iso, title, when = _dates(event.created_at, words, "Y-m-d H:i:s T (O)")
    kind = _e(event.event_type)
    seal = "" if seals is None else _seal(event.pk, seals, words)
    # The id: the as-of page links the event that set a value (``views.course_as_of``).
    uid = _e(event.uuid)
    parts = [
        f'\n<li class="event event-{kind}" id="event-{uid}" data-event="{uid}">\n'
        f'  <div class="event-head">\n'
        f'    <span class="badge badge-{kind}">{words.types.get(event.event_type, kind)}</span>\n'
        f'    <time class="event-time" datetime="{iso}" title="{title}">{when}</time>{seal}\n'
        f'  </div>\n  <p class="event-meta">\n    '
    ]
    if show_course:
        course_url = reverse("course_audit:course_history", args=[event.course_id])
        parts.append(f'<a href="{_e(course_url)}">{_e(event.course.name)}</a> · ')
    parts.append(f'\n    <span class="who">{words.by}\n      ')
    if event.sis_batch_id is not None:
        batch_url = reverse("course_audit:sis_batch_history", args=[event.sis_batch_id])
        parts.append(f'<a href="{_e(batch_url)}">{_e(shown["who"])}</a>')
    elif event.user_id and user_link:
        parts.append(
            f'<a href="{user_link}{_e(event.user_id)}" title="{words.only_user}">'
            f"{_e(shown['who'])}</a>"
            f' (<a href="{_e(words.person_url)}{_e(event.user_id)}/">{words.their_changes}</a>)'
        )
    else:
        parts.append(_e(shown["who"]))
    source = words.sources.get(event.event_source) or _e(event.event_source)
    parts.append(f'</span>\n    · <span class="source">{words.source} {source}</span>\n    ')
    if event.related_course_id:
        other_url = reverse("course_audit:course_history", args=[event.related_course_id])
        other = (event.related_course.name if event.related_course else "") or (
            event.related_course_id
        )
        parts.append(
            f'\n      · {words.other_course}\n      <a href="{_e(other_url)}">{_e(other)}</a>\n    '
        )
    parts.append("\n    ")
    if event.page_view:
        view_url = reverse("course_audit:page_view", args=[event.page_view_id])
        parts.append(f'\n      · <a href="{_e(view_url)}">{words.request}</a>\n    ')
    parts.append("\n  </p>\n  ")
    if shown["diff"]:
        parts.append(f"\n  {diff_table(shown['diff'], words)}\n  ")
    parts.append("\n</li>\n")
    return "".join(parts)


def value_cells(
    values: Mapping[str, Any], account_names: Mapping[int, str]
) -> dict[str, SafeString]:
    """Field values (``event_data``'s form, by attribute name) as a diff's cells show them:
    blank as a dash, dates as ``<time>``, accounts by name, long text folded."""
    words = _Words.now()
    # Every piece is escaped (_cell).
    return {
        name: mark_safe(_cell(shown_value(name, value, account_names), words))
        for name, value in values.items()
    }
