"""JSON shapes of the API (Canvas's), written out by hand for speed.

The declared fields describe each shape for the OpenAPI schema; ``to_representation``
builds the dict directly, because a page of 100 events with its linked objects would
otherwise spend most of its time in DRF's per-field machinery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from course_audit.models import Account, Course, CourseEvent, PageView
from course_audit.recording import TRACKED_FIELDS

_COPY_RESET = {
    CourseEvent.EventType.COPIED_FROM,
    CourseEvent.EventType.COPIED_TO,
    CourseEvent.EventType.RESET_FROM,
    CourseEvent.EventType.RESET_TO,
}
_DATA_ORDER = {field: index for index, field in enumerate((*TRACKED_FIELDS, "created_source"))}


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
    """Canvas's course JSON (``ids_as_strings`` for the ``linked`` collection)."""

    id = serializers.CharField()
    name = serializers.CharField()
    course_code = serializers.CharField()
    account_id = serializers.CharField()
    root_account_id = serializers.CharField()
    uuid = serializers.UUIDField()
    sis_course_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    start_at = serializers.DateTimeField(allow_null=True)
    end_at = serializers.DateTimeField(allow_null=True)
    is_public = serializers.BooleanField()
    workflow_state = serializers.ChoiceField(choices=Course.WorkflowState.choices)

    def __init__(self, *args: Any, ids_as_strings: bool = True, **kwargs: Any) -> None:
        self.ids_as_strings = ids_as_strings
        super().__init__(*args, **kwargs)

    def to_representation(self, instance: Course) -> dict[str, Any]:
        return course_json(instance, ids_as_strings=self.ids_as_strings)


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
    """A user in ``linked.users``; works with any user model."""

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
            # jsonb does not keep key order; show fields in the model's order.
            data = dict(sorted(data.items(), key=lambda item: _DATA_ORDER.get(item[0], 99)))
        return {
            "id": str(instance.uuid),
            "created_at": format_time(instance.created_at),
            "event_type": instance.event_type,
            "event_source": instance.event_source,
            "event_data": data,
            "links": links,
        }


class LinkedSerializer(serializers.Serializer):
    page_views = PageViewSerializer(many=True)
    courses = CourseSerializer(many=True)
    users = UserSerializer(many=True)


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


def compound_document(events: list[CourseEvent], course_url_template: str) -> dict[str, Any]:
    """A page of events with its linked page views, courses and users, each once."""
    event_serializer = CourseEventSerializer()
    page_views = _unique((event.page_view for event in events), key="request_id")
    courses = _unique(course for event in events for course in (event.course, event.related_course))
    users = _unique(event.user for event in events)
    page_view_serializer = PageViewSerializer()
    user_serializer = UserSerializer()
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
