"""JSON shapes of the API (Canvas's), written out by hand for speed.

The declared fields describe each shape for the OpenAPI schema; ``to_representation``
builds the dict directly, because a page of 100 events with its linked objects would
otherwise spend most of its time in DRF's per-field machinery.

The write endpoints' input serializers (at the end) validate the parameters, name each
bad one in a 400, and hand the rest to ``course_audit.services``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework import serializers
from rest_framework.settings import api_settings

from course_audit import services
from course_audit.conf import conf
from course_audit.diff import TRANSITIONS, in_field_order
from course_audit.filters import parse_timestamp
from course_audit.models import Account, Course, CourseEvent, PageView
from course_audit.services import CourseStateError, CourseTransitionError

_COPY_RESET = {
    CourseEvent.EventType.COPIED_FROM,
    CourseEvent.EventType.COPIED_TO,
    CourseEvent.EventType.RESET_FROM,
    CourseEvent.EventType.RESET_TO,
}


def format_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 in whole seconds in the active time zone, ``Z`` for UTC."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


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


def course_json(course: Course, *, ids_as_strings: bool) -> dict[str, Any]:
    ident = _str if ids_as_strings else _identity
    return {
        "id": ident(course.pk),
        "name": course.name,
        "course_code": course.course_code,
        "account_id": ident(course.account_id),
        "root_account_id": ident(course.root_account_id),
        "uuid": str(course.uuid),
        "sis_course_id": course.sis_course_id,
        "created_at": format_time(course.created_at),
        "start_at": format_time(course.start_at),
        "end_at": format_time(course.conclude_at),
        "is_public": course.is_public,
        "workflow_state": course.workflow_state,
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
        return {
            "id": str(instance.request_id),
            "url": instance.url,
            "context_type": instance.context_type or None,
            "controller": instance.controller,
            "action": instance.action,
            "http_method": instance.http_method.lower(),
            "user_agent": instance.user_agent,
            "remote_ip": instance.remote_ip,
            "created_at": format_time(instance.created_at),
            "render_time": instance.render_time,
            "interaction_seconds": instance.interaction_seconds,
            "user_request": instance.user_request,
            "participated": False,
            "contributed": False,
            "app_name": None,
            "links": {
                "user": _str(instance.user_id),
                "context": _str(instance.context_id),
                "asset": None,
                "real_user": _str(instance.real_user_id),
                "account": _str(instance.account_id),
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
        links: dict[str, Any] = {}
        if instance.event_type in _COPY_RESET:
            links[instance.event_type] = instance.related_course_id
        links["course"] = str(instance.course_id)
        # Only a page view row that exists is linked (the join finds none otherwise).
        links["page_view"] = _str(instance.page_view.request_id) if instance.page_view else None
        links["user"] = _str(instance.user_id)
        links["sis_batch"] = _str(instance.sis_batch_id)
        data = instance.event_data
        if len(data) > 1:
            data = in_field_order(data)
        return {
            "id": str(instance.uuid),
            "created_at": format_time(instance.created_at),
            "event_type": instance.event_type,
            "event_source": instance.event_source,
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


def _unique(objects: Iterable[Any], key: str = "pk") -> list[Any]:
    seen: dict[Any, Any] = {}
    for obj in objects:
        if obj is not None:
            seen.setdefault(getattr(obj, key), obj)
    return list(seen.values())


def compound_document(
    events: list[CourseEvent], course_url_template: str, context: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A page of events with its linked page views, courses and users, each once.

    ``context`` (the view's serializer context, with the request) goes to the user
    serializer, which a host may have chosen (``COURSE_AUDIT_USER_SERIALIZER``).
    """
    event_serializer = CourseEventSerializer()
    page_views = _unique((event.page_view for event in events), key="request_id")
    courses = _unique(course for event in events for course in (event.course, event.related_course))
    users = _unique(event.user for event in events)
    page_view_serializer = PageViewSerializer()
    user_serializer = user_serializer_class()(context=context or {})
    return {
        "links": {
            "events.course": course_url_template,
            "events.user": None,
            "events.sis_batch": None,
        },
        "events": [event_serializer.to_representation(event) for event in events],
        "linked": {
            "page_views": [page_view_serializer.to_representation(view) for view in page_views],
            "courses": [course_json(course, ids_as_strings=True) for course in courses],
            "users": [user_serializer.to_representation(user) for user in users],
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
