"""JSON shapes of the API (Canvas's), written out by hand for speed.

The declared fields describe each shape for the OpenAPI schema; ``to_representation``
builds the dict directly, because a page of 100 events with its linked objects would
otherwise spend most of its time in DRF's per-field machinery.

The write endpoints' input serializers (at the end) validate the parameters, name each
bad one in a 400, and hand the rest to ``course_audit.services``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Model
from django.utils import timezone
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from course_audit import services
from course_audit.conf import conf
from course_audit.diff import TRACKED_FIELDS, TRANSITIONS, in_field_order
from course_audit.filters import parse_timestamp
from course_audit.models import Account, Course, CourseEvent, PageView
from course_audit.replay import CourseAsOf, Setting
from course_audit.services import CourseStateError, CourseTransitionError

_COPY_RESET = {
    CourseEvent.EventType.COPIED_FROM,
    CourseEvent.EventType.COPIED_TO,
    CourseEvent.EventType.RESET_FROM,
    CourseEvent.EventType.RESET_TO,
}


def format_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 in whole seconds in the active time zone, ``Z`` for UTC."""
    return time_formatter()(value)


TimeFormatter = Callable[[dt.datetime | None], str | None]


def time_formatter() -> TimeFormatter:
    """``format_time`` for the time zone active now, looked up once (a page formats
    hundreds of times)."""
    zone = timezone.get_current_timezone()

    def format_in_zone(value: dt.datetime | None) -> str | None:
        if value is None:
            return None
        text = value.astimezone(zone).isoformat(timespec="seconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return format_in_zone


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _identity(value: Any) -> Any:
    return value


class CourseSerializer(serializers.Serializer):
    """Canvas's course JSON, as ``GET /api/v1/courses/<id>`` answers it."""

    ids_as_strings = False

    id = serializers.IntegerField()
    name = serializers.CharField()
    course_code = serializers.CharField()
    account_id = serializers.IntegerField()
    root_account_id = serializers.IntegerField()
    uuid = serializers.UUIDField()
    sis_course_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    start_at = serializers.DateTimeField(allow_null=True)
    end_at = serializers.DateTimeField(allow_null=True)
    is_public = serializers.BooleanField()
    workflow_state = serializers.ChoiceField(choices=Course.WorkflowState.choices)

    def to_representation(self, instance: Course) -> dict[str, Any]:
        return course_json(instance, ids_as_strings=self.ids_as_strings)


class LinkedCourseSerializer(CourseSerializer):
    """A course in ``linked.courses``: ids are strings there, as in Canvas."""

    ids_as_strings = True

    id = serializers.CharField()  # type: ignore[assignment]
    account_id = serializers.CharField()  # type: ignore[assignment]
    root_account_id = serializers.CharField()  # type: ignore[assignment]


# The course columns ``course_json`` shows, as model fields.
COURSE_JSON_FIELDS = (
    "id",
    "name",
    "course_code",
    "account_id",
    "root_account_id",
    "uuid",
    "sis_course_id",
    "created_at",
    "start_at",
    "conclude_at",
    "is_public",
    "workflow_state",
)


def course_json(course: Course, *, ids_as_strings: bool) -> dict[str, Any]:
    return course_row_json(
        {field: getattr(course, field) for field in COURSE_JSON_FIELDS},
        ids_as_strings=ids_as_strings,
    )


def course_row_json(
    row: Mapping[str, Any], *, ids_as_strings: bool, fmt: TimeFormatter = format_time
) -> dict[str, Any]:
    """Canvas's course JSON from a row of ``COURSE_JSON_FIELDS`` (values, not a model)."""
    ident = _str if ids_as_strings else _identity
    return {
        "id": ident(row["id"]),
        "name": row["name"],
        "course_code": row["course_code"],
        "account_id": ident(row["account_id"]),
        "root_account_id": ident(row["root_account_id"]),
        "uuid": str(row["uuid"]),
        "sis_course_id": row["sis_course_id"],
        "created_at": fmt(row["created_at"]),
        "start_at": fmt(row["start_at"]),
        "end_at": fmt(row["conclude_at"]),
        "is_public": row["is_public"],
        "workflow_state": row["workflow_state"],
    }


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    parent_account_id = serializers.IntegerField(allow_null=True)
    root_account_id = serializers.IntegerField(allow_null=True)
    sis_account_id = serializers.CharField(allow_null=True)
    workflow_state = serializers.ChoiceField(choices=Account.WorkflowState.choices)

    def to_representation(self, instance: Account) -> dict[str, Any]:
        return {
            "id": instance.pk,
            "name": instance.name,
            "parent_account_id": instance.parent_id,
            "root_account_id": instance.root_account_id,
            "sis_account_id": instance.sis_account_id,
            "workflow_state": instance.workflow_state,
        }


class UserSerializer(serializers.Serializer):
    """A user in ``linked.users``; works with any user model.

    A host renders its users its own way with ``COURSE_AUDIT_USER_SERIALIZER``: the dotted
    path of a serializer (a subclass of this one, or any DRF serializer) whose
    ``to_representation`` gets a user instance. Keep ``id`` a string, as Canvas does.
    """

    id = serializers.CharField()
    name = serializers.CharField()
    sortable_name = serializers.CharField()
    short_name = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    login_id = serializers.CharField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        first = getattr(instance, "first_name", "") or ""
        last = getattr(instance, "last_name", "") or ""
        full_name = getattr(instance, "get_full_name", None)
        name = (full_name() if callable(full_name) else "") or instance.get_username()
        return {
            "id": str(instance.pk),
            "name": name,
            "sortable_name": f"{last}, {first}" if first and last else name,
            "short_name": first or name,
            "created_at": format_time(getattr(instance, "date_joined", None)),
            "login_id": instance.get_username(),
        }


def user_row_reader(
    serializer_class: type[serializers.BaseSerializer], user_model: Any, fields: Sequence[str]
) -> Callable[[Mapping[str, Any], str, TimeFormatter], dict[str, Any]] | None:
    """``UserSerializer``'s JSON of a user read straight from a row's columns (``fields``,
    each under a prefix), without building the user model's instance; None unless that is
    exactly what the serializer would show.

    It is so when the serializer's ``to_representation`` is ``UserSerializer``'s own and the
    user model's name methods are Django's own (``AbstractUser.get_full_name``,
    ``AbstractBaseUser.get_username``), which read only these columns, and it builds its
    instances from rows as Django does (``Model.from_db``). A host's serializer or a user
    model that renders names its own way gets instances, as before.
    """
    if (
        getattr(serializer_class, "to_representation", None) is not UserSerializer.to_representation
        or not isinstance(user_model, type)
        or not issubclass(user_model, AbstractUser)
        or user_model.get_full_name is not AbstractUser.get_full_name
        or user_model.get_username is not AbstractBaseUser.get_username
        or user_model.from_db.__func__ is not Model.from_db.__func__  # type: ignore[attr-defined]
    ):
        return None
    opts: Any = user_model._meta
    username = opts.get_field(user_model.USERNAME_FIELD).attname
    pk = opts.pk.attname
    if not {pk, username, "first_name", "last_name", "date_joined"} <= set(fields):
        return None

    def read(row: Mapping[str, Any], prefix: str, fmt: TimeFormatter) -> dict[str, Any]:
        first_name, last_name = row[prefix + "first_name"], row[prefix + "last_name"]
        login = row[prefix + username]
        name = f"{first_name} {last_name}".strip() or login
        first, last = first_name or "", last_name or ""
        return {
            "id": str(row[prefix + pk]),
            "name": name,
            "sortable_name": f"{last}, {first}" if first and last else name,
            "short_name": first or name,
            "created_at": fmt(row[prefix + "date_joined"]),
            "login_id": login,
        }

    return read


class PageViewSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    context_type = serializers.CharField(allow_null=True)
    controller = serializers.CharField()
    action = serializers.CharField()
    http_method = serializers.CharField()
    user_agent = serializers.CharField()
    remote_ip = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    render_time = serializers.FloatField(allow_null=True)
    interaction_seconds = serializers.FloatField(allow_null=True)
    user_request = serializers.BooleanField()
    participated = serializers.BooleanField()
    contributed = serializers.BooleanField()
    app_name = serializers.CharField(allow_null=True)
    # user, context, asset, real_user, account
    links = serializers.DictField(child=serializers.CharField(allow_null=True))

    def to_representation(self, instance: PageView) -> dict[str, Any]:
        return page_view_row_json(
            {field: getattr(instance, field) for field in PAGE_VIEW_JSON_FIELDS}
        )


# The page view columns ``page_view_row_json`` shows, as model fields.
PAGE_VIEW_JSON_FIELDS = (
    "request_id",
    "url",
    "context_type",
    "controller",
    "action",
    "http_method",
    "user_agent",
    "remote_ip",
    "created_at",
    "render_time",
    "interaction_seconds",
    "user_request",
    "user_id",
    "context_id",
    "real_user_id",
    "account_id",
)


def page_view_row_json(row: Mapping[str, Any], fmt: TimeFormatter = format_time) -> dict[str, Any]:
    """Canvas's page view JSON from a row of ``PAGE_VIEW_JSON_FIELDS``."""
    return {
        "id": str(row["request_id"]),
        "url": row["url"],
        "context_type": row["context_type"] or None,
        "controller": row["controller"],
        "action": row["action"],
        "http_method": row["http_method"].lower(),
        "user_agent": row["user_agent"],
        "remote_ip": row["remote_ip"],
        "created_at": fmt(row["created_at"]),
        "render_time": row["render_time"],
        "interaction_seconds": row["interaction_seconds"],
        "user_request": row["user_request"],
        "participated": False,
        "contributed": False,
        "app_name": None,
        "links": {
            "user": _str(row["user_id"]),
            "context": _str(row["context_id"]),
            "asset": None,
            "real_user": _str(row["real_user_id"]),
            "account": _str(row["account_id"]),
        },
    }


class CourseEventLinksSerializer(serializers.Serializer):
    course = serializers.CharField()
    page_view = serializers.CharField(allow_null=True)
    user = serializers.CharField(allow_null=True)
    sis_batch = serializers.CharField(allow_null=True)
    copied_from = serializers.IntegerField(required=False)
    copied_to = serializers.IntegerField(required=False)
    reset_from = serializers.IntegerField(required=False)
    reset_to = serializers.IntegerField(required=False)


class CourseEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    event_type = serializers.ChoiceField(choices=CourseEvent.EventType.choices)
    event_source = serializers.ChoiceField(choices=CourseEvent.EventSource.choices)
    event_data = serializers.DictField()
    links = CourseEventLinksSerializer()

    def to_representation(self, instance: CourseEvent) -> dict[str, Any]:
        row = {field: getattr(instance, field) for field in EVENT_JSON_FIELDS}
        row[PAGE_VIEW_PRESENT] = instance.page_view.created_at if instance.page_view else None
        return event_row_json(row)


# The event columns ``event_row_json`` shows. Its request id is linked only when its page
# view row exists: the joined page view's ``PAGE_VIEW_PRESENT`` (never null) says so.
EVENT_JSON_FIELDS = (
    "uuid",
    "created_at",
    "course_id",
    "event_type",
    "event_source",
    "event_data",
    "related_course_id",
    "user_id",
    "sis_batch_id",
    "page_view_id",
)
PAGE_VIEW_PRESENT = "page_view__created_at"


def event_row_json(row: Mapping[str, Any], fmt: TimeFormatter = format_time) -> dict[str, Any]:
    """Canvas's event JSON from a row of ``EVENT_JSON_FIELDS``."""
    event_type = row["event_type"]
    links: dict[str, Any] = {}
    if event_type in _COPY_RESET:
        links[event_type] = row["related_course_id"]
    links["course"] = str(row["course_id"])
    links["page_view"] = None if row[PAGE_VIEW_PRESENT] is None else str(row["page_view_id"])
    links["user"] = _str(row["user_id"])
    links["sis_batch"] = _str(row["sis_batch_id"])
    data = row["event_data"]
    if len(data) > 1:
        data = in_field_order(data)
    return {
        "id": str(row["uuid"]),
        "created_at": fmt(row["created_at"]),
        "event_type": event_type,
        "event_source": row["event_source"],
        "event_data": data,
        "links": links,
    }


def user_serializer_class() -> type[serializers.BaseSerializer]:
    """The serializer of ``linked.users``: ``COURSE_AUDIT_USER_SERIALIZER``."""
    return import_string(conf.USER_SERIALIZER)


class LinkedSerializer(serializers.Serializer):
    page_views = PageViewSerializer(many=True)
    courses = LinkedCourseSerializer(many=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # Chosen when used (not at import), so the schema shows the host's user shape.
        return {**super().get_fields(), "users": user_serializer_class()(many=True)}


class CourseEventPageSerializer(serializers.Serializer):
    """The compound document: ``links``, ``events``, ``linked``."""

    links = serializers.DictField(child=serializers.CharField(allow_null=True))
    events = CourseEventSerializer(many=True)
    linked = LinkedSerializer()


@extend_schema_field({"type": ["string", "integer", "boolean", "null"]})
class FieldValueField(serializers.JSONField):
    """A course field's value as ``event_data`` holds it: text, a date as ISO 8601 text,
    an account id, a flag, or null."""


class AsOfValueSerializer(serializers.Serializer):
    """One field of a course as of a moment (``replay.Setting``)."""

    value = FieldValueField(help_text="As `event_data` holds it: dates in ISO 8601 UTC.")
    known = serializers.BooleanField(
        help_text="False when no event of the log set it (it was set before recording "
        "began): `value` is then null, not a guess."
    )
    event_id = serializers.IntegerField(
        allow_null=True, help_text="The internal id of the event that set it."
    )
    event_uuid = serializers.UUIDField(
        allow_null=True, help_text="The UUID of that event (`id` in a listing)."
    )
    set_at = serializers.DateTimeField(allow_null=True, help_text="That event's `created_at`.")
    truncated = serializers.BooleanField(
        help_text="A string the log holds at the diff's length limit: it may have been cut."
    )


class AsOfFieldsSerializer(serializers.Serializer):
    """The tracked fields (``diff.TRACKED_FIELDS``)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {name: AsOfValueSerializer() for name in TRACKED_FIELDS}


class CourseAsOfSerializer(serializers.Serializer):
    """``GET .../courses/<course_id>/as_of``: the course as its log replays it at ``at``."""

    at = serializers.DateTimeField()
    course_id = serializers.IntegerField()
    existed = serializers.BooleanField(
        allow_null=True,
        help_text="False: the log records the course's creation after `at`; null: the log "
        "holds no event of the course up to `at`.",
    )
    created_at = serializers.DateTimeField(
        allow_null=True, help_text="When the log records the course's creation, if it does."
    )
    fields = AsOfFieldsSerializer()  # type: ignore[assignment]
    workflow_state = AsOfValueSerializer()


def as_of_json(course_id: int, state: CourseAsOf) -> dict[str, Any]:
    """``CourseAsOfSerializer``'s shape, built directly."""
    fmt = time_formatter()

    def value(setting: Setting) -> dict[str, Any]:
        event = setting.event
        return {
            "value": setting.value,
            "known": setting.known,
            "event_id": event.id if event else None,
            "event_uuid": str(event.uuid) if event else None,
            "set_at": fmt(event.created_at) if event else None,
            "truncated": setting.cut,
        }

    return {
        "at": fmt(state.at),
        "course_id": course_id,
        "existed": state.existed,
        "created_at": fmt(state.created_at),
        "fields": {name: value(setting) for name, setting in state.fields.items()},
        "workflow_state": value(state.workflow_state),
    }


@dataclasses.dataclass(frozen=True)
class ListingColumns:
    """What a listing's page reads, as ``QuerySet.values()`` names: each event's columns and
    those of its linked page view, courses and user, joined in the same query.

    ``course_known``: the listing is one course's, whose row the view already holds, so
    the events' own course is not joined again.
    """

    user_fields: tuple[str, ...]
    # A user column that is never null: not null in a row when its user exists. (The key
    # cannot say so: Django reads ``user__id`` from the event's own ``user_id``.)
    user_present: str
    course_known: bool

    @classmethod
    @functools.cache
    def for_listing(cls, *, course_known: bool) -> ListingColumns:
        """The columns of a listing (computed once: the user model is the site's for good)."""
        user_model: Any = get_user_model()
        opts = user_model._meta
        fields = tuple(field.attname for field in opts.concrete_fields)
        candidates = [opts.get_field(user_model.USERNAME_FIELD), *opts.concrete_fields]
        present = next(
            field.attname
            for field in candidates
            if getattr(field, "concrete", False)
            and not getattr(field, "null", True)
            and not getattr(field, "primary_key", False)
        )
        return cls(user_fields=fields, user_present=present, course_known=course_known)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        names = ["id", *EVENT_JSON_FIELDS]
        names += [f"page_view__{field}" for field in PAGE_VIEW_JSON_FIELDS[1:]]
        names += [f"related_course__{field}" for field in COURSE_JSON_FIELDS]
        if not self.course_known:
            names += [f"course__{field}" for field in COURSE_JSON_FIELDS]
        names += [f"user__{field}" for field in self.user_fields]
        return tuple(names)


def _linked_row(row: Mapping[str, Any], prefix: str, fields: Iterable[str]) -> dict[str, Any]:
    return {field: row[prefix + field] for field in fields}


def compound_document(
    rows: list[dict[str, Any]],
    columns: ListingColumns,
    course_url_template: str,
    *,
    course: Course | None = None,
    context: dict[str, Any] | None = None,
    using: str | None = None,
) -> dict[str, Any]:
    """A page of events (rows of ``columns.names``) with its linked page views, courses and
    users, each once, in the order they first appear.

    ``course``: the listing's course when ``columns.course_known``. Each user is built as
    an instance of the user model (``Model.from_db``, no query) for the user serializer,
    which a host may have chosen (``COURSE_AUDIT_USER_SERIALIZER``); ``context`` (the view's
    serializer context, with the request) goes to it. With the default serializer and
    Django's own name methods the row is read as it stands (``user_row_reader``).
    """
    page_views: dict[Any, dict[str, Any]] = {}
    courses: dict[Any, dict[str, Any]] = {}
    users: dict[Any, Any] = {}
    user_model = get_user_model()
    serializer_class = user_serializer_class()
    read_user = user_row_reader(serializer_class, user_model, columns.user_fields)
    user_present = f"user__{columns.user_present}"
    known = None if course is None else course_json(course, ids_as_strings=True)
    fmt = time_formatter()
    events = []
    for row in rows:
        events.append(event_row_json(row, fmt))
        request_id = row["page_view_id"]
        if row[PAGE_VIEW_PRESENT] is not None and request_id not in page_views:
            view = _linked_row(row, "page_view__", PAGE_VIEW_JSON_FIELDS[1:])
            view["request_id"] = request_id
            page_views[request_id] = page_view_row_json(view, fmt)
        if known is not None:
            courses.setdefault(row["course_id"], known)
        elif row["course_id"] not in courses:
            courses[row["course_id"]] = course_row_json(
                _linked_row(row, "course__", COURSE_JSON_FIELDS), ids_as_strings=True, fmt=fmt
            )
        related = row["related_course_id"]
        # As for users: the course's own uuid says whether the joined row exists.
        if row["related_course__uuid"] is not None and related not in courses:
            courses[related] = course_row_json(
                _linked_row(row, "related_course__", COURSE_JSON_FIELDS),
                ids_as_strings=True,
                fmt=fmt,
            )
        user_pk = row["user_id"]
        if row[user_present] is not None and user_pk not in users:
            if read_user is not None:
                users[user_pk] = read_user(row, "user__", fmt)
            else:
                users[user_pk] = user_model.from_db(
                    using,
                    list(columns.user_fields),
                    [row[f"user__{field}"] for field in columns.user_fields],
                )
    if read_user is None:
        user_serializer = serializer_class(context=context or {})
        linked_users = [user_serializer.to_representation(user) for user in users.values()]
    else:
        linked_users = list(users.values())
    return {
        "links": {
            "events.course": course_url_template,
            "events.user": None,
            "events.sis_batch": None,
        },
        "events": events,
        "linked": {
            "page_views": list(page_views.values()),
            "courses": list(courses.values()),
            "users": linked_users,
        },
    }


# Write endpoints: their parameters, validated, and what they hand to the services.

_BRACKETED_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_BRACKET_PART = re.compile(r"\[([^\[\]]*)\]")
# Model field names as the API calls them, for errors raised by the model's validation.
_PARAMETER_NAMES = {"conclude_at": "end_at", "account": "account_id"}
SIS_ID_CONSTRAINT = "course_audit_course_sis_id_unique_in_root"


def unflatten_brackets(data: Mapping[str, Any]) -> dict[str, Any]:
    """Rails-style form keys as nested dicts: ``course[name]=x`` -> ``{"course": {"name": x}}``.

    Canvas's clients send form-encoded bodies keyed like that; a JSON body is already
    nested and passes through unchanged. A ``QueryDict`` gives each key's last value.
    """
    nested: dict[str, Any] = {}
    for key in data:
        value = data[key]
        match = _BRACKETED_KEY.match(key) if isinstance(key, str) else None
        if match is None:
            nested[key] = value
            continue
        *parents, leaf = [match.group(1), *_BRACKET_PART.findall(match.group(2))]
        node = nested
        for part in parents:
            child = node.get(part)
            # Copied, so that merging into a nested JSON object never changes request.data.
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    return nested


def _nested(path: Sequence[str], messages: list[str]) -> Any:
    detail: Any = messages
    for part in reversed(path):
        detail = {part: detail}
    return detail


@contextmanager
def service_errors(*path: str, action_path: tuple[str, ...] | None = None) -> Iterator[None]:
    """Turn the services' errors into 400s naming the request's parameters.

    A model validation error names its fields as ``course[<field>]``; a lifecycle error
    (``CourseStateError``) or an error without fields is reported under ``path``, a
    refused lifecycle action under ``action_path`` when given.
    """
    try:
        yield
    except CourseTransitionError as error:
        where = path if action_path is None else action_path
        raise serializers.ValidationError(_nested(where, [str(error)])) from error
    except CourseStateError as error:
        raise serializers.ValidationError(_nested(path, [str(error)])) from error
    except IntegrityError as error:
        # A concurrent request took the SIS id between validation and the write.
        if SIS_ID_CONSTRAINT not in str(error):
            raise
        raise serializers.ValidationError(
            {
                "course": {
                    "sis_course_id": [
                        "is already the SIS id of another course in this root account."
                    ]
                }
            }
        ) from error
    except DjangoValidationError as error:
        if not hasattr(error, "error_dict"):
            raise serializers.ValidationError(_nested(path, error.messages)) from error
        fields: dict[str, list[str]] = {}
        detail: dict[str, Any] = {}
        for field, messages in error.message_dict.items():
            if field == NON_FIELD_ERRORS:
                detail[api_settings.NON_FIELD_ERRORS_KEY] = messages
            else:
                fields[_PARAMETER_NAMES.get(field, field)] = messages
        if fields:
            detail["course"] = fields
        raise serializers.ValidationError(detail) from error


class CanvasTimestampField(serializers.DateTimeField):
    """A course's date as Canvas's write endpoints take it: an ISO 8601 date-time or date,
    read by ``course_audit.filters.parse_timestamp``; blank or null clears the date."""

    default_error_messages = {
        "invalid": "{value!r} is not an ISO 8601 date-time (e.g. 2012-07-19T15:00:00-06:00)",
    }

    def to_internal_value(self, value: Any) -> dt.datetime | None:  # type: ignore[override]
        if value == "":
            return None
        if not isinstance(value, str):
            self.fail("invalid", value=value)
        try:
            parsed = parse_timestamp(value)
            # An offset can carry a date at either end of the calendar out of range in UTC.
            parsed.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            self.fail("invalid", value=value)
        return parsed


class BracketParamsSerializer(serializers.Serializer):
    """A serializer reading ``course[name]=...`` form bodies like nested JSON bodies."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = unflatten_brackets(data)
        return super().to_internal_value(data)


class CourseFieldsSerializer(serializers.Serializer):
    """The ``course[...]`` parameters of creating and updating a course."""

    name = serializers.CharField(max_length=255)
    course_code = serializers.CharField(max_length=255, required=False, allow_blank=True)
    start_at = CanvasTimestampField(required=False, allow_null=True)
    end_at = CanvasTimestampField(required=False, allow_null=True, source="conclude_at")
    is_public = serializers.BooleanField(required=False)
    sis_course_id = serializers.CharField(
        max_length=255, required=False, allow_blank=True, allow_null=True
    )

    def validate_sis_course_id(self, value: str | None) -> str | None:
        # The model reports a clash only as an unnamed constraint violation.
        if value:
            course = self.root.instance
            root_id = course.root_account_id if course else self.context["account"].resolved_root_id
            taken = Course.objects.filter(root_account_id=root_id, sis_course_id=value)
            if course is not None:
                taken = taken.exclude(pk=course.pk)
            if taken.exists():
                raise serializers.ValidationError(
                    f"{value!r} is already the SIS id of another course in this root account."
                )
        return value


# Canvas's ``course[event]``: the lifecycle actions of ``diff.TRANSITIONS`` that its
# course update takes (``unconclude`` is not one of them).
COURSE_EVENT_ACTIONS: tuple[str, ...] = tuple(
    action for action in TRANSITIONS if action != "unconclude"
)


class CourseUpdateFieldsSerializer(CourseFieldsSerializer):
    """``course[...]`` of an update, with Canvas's ``course[event]``."""

    # An update changes only the fields it names (the view validates it as partial).
    name = serializers.CharField(max_length=255, required=False)
    event = serializers.ChoiceField(choices=COURSE_EVENT_ACTIONS, required=False)


class CourseWriteSerializer(BracketParamsSerializer):
    """``POST /api/v1/accounts/<account_id>/courses``: ``course[...]`` and ``offer``.

    Needs ``account`` in its context (the SIS id is unique within the account's root).
    """

    course = CourseFieldsSerializer()
    offer = serializers.BooleanField(default=False)

    def create(self, validated_data: dict[str, Any]) -> Course:
        with service_errors("course"):
            return services.course_create(
                account=validated_data["account"],
                publish=validated_data["offer"],
                **validated_data["course"],
            )


class CourseUpdateSerializer(CourseWriteSerializer):
    """``PUT /api/v1/courses/<course_id>``: any of ``course[...]``, ``course[event]``, ``offer``.

    All in one transaction: ``undelete`` comes before the field changes (a deleted course
    cannot change), every other event after them.
    """

    course = CourseUpdateFieldsSerializer(required=False)
    offer = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        event = attrs.get("course", {}).get("event")
        if attrs.get("offer") and event not in (None, "offer"):
            raise serializers.ValidationError({"offer": f"contradicts course[event]={event}"})
        return attrs

    def update(self, instance: Course, validated_data: dict[str, Any]) -> Course:
        changes = dict(validated_data.get("course", {}))
        event = changes.pop("event", None) or ("offer" if validated_data.get("offer") else None)
        with service_errors("course", action_path=("course", "event")):
            return services.course_apply_update(course=instance, changes=changes, action=event)


class CourseDeleteSerializer(serializers.Serializer):
    """``DELETE /api/v1/courses/<course_id>?event=delete|conclude``."""

    event = serializers.ChoiceField(choices=["delete", "conclude"])

    def update(self, instance: Course, validated_data: dict[str, Any]) -> Course:
        with service_errors("event"):
            return services.course_transition(course=instance, action=validated_data["event"])


class ContentMigrationSettingsSerializer(serializers.Serializer):
    source_course_id = serializers.CharField(
        help_text="The course to copy: a numeric id or sis_course_id:<value>."
    )


class ContentMigrationWriteSerializer(BracketParamsSerializer):
    """``POST /api/v1/courses/<destination_id>/content_migrations``: a course copy.

    The copy runs synchronously, so the migration is ``completed`` when answered. Its
    ``id`` is the integer key of the ``copied_from`` event the copy recorded on the
    destination: the copy's own record, so there is no migrations table to keep.
    """

    migration_type = serializers.ChoiceField(choices=["course_copy_importer"])
    settings = ContentMigrationSettingsSerializer()

    def create(self, validated_data: dict[str, Any]) -> dict[str, Any]:
        source, destination = validated_data["source"], validated_data["destination"]
        with service_errors("settings", "source_course_id"):
            copy = services.course_copy_content(source=source, destination=destination)
        return {
            "id": copy.copied_from.pk,
            "migration_type": validated_data["migration_type"],
            "workflow_state": "completed",
        }


class ContentMigrationSerializer(serializers.Serializer):
    """The answer to a content migration (Canvas's ``ContentMigration``, in part)."""

    id = serializers.IntegerField()
    migration_type = serializers.CharField()
    workflow_state = serializers.ChoiceField(choices=["completed"])
