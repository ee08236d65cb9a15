"""What the API's views declare for the OpenAPI schema: the path and query parameters,
the response headers, the contract's error bodies, the bracket-form request bodies and
``document``, the views' ``extend_schema``.

The schema itself and the pages that serve it are in ``schema.py``, which reads the views;
this module reads no view, so the views can import it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers

from course_audit.api.exceptions import WWW_AUTHENTICATE
from course_audit.diff import TRACKED_FIELDS
from course_audit.filters import MAX_BIGINT
from course_audit.models import CourseEvent

F = TypeVar("F", bound=Callable[..., Any])

_ID_HELP = "A numeric id, or `{prefix}:<value>` (URL-encoded)."


def path_id(name: str, prefix: str) -> OpenApiParameter:
    return OpenApiParameter(
        name, str, OpenApiParameter.PATH, description=_ID_HELP.format(prefix=prefix)
    )


COURSE_ID = path_id("course_id", "sis_course_id")
EVENT_UUID = OpenApiParameter(
    "event_uuid", str, OpenApiParameter.PATH, description="The event's UUID (`id` in a listing)."
)
ACCOUNT_ID = path_id("account_id", "sis_account_id")


def comma_separated(name: str, choices: list[str], description: str) -> OpenApiParameter:
    """A comma-separated list of known values (OpenAPI's ``style: form, explode: false``)."""
    return OpenApiParameter(
        name, str, many=True, explode=False, enum=choices, description=description
    )


LISTING_PARAMETERS = [
    OpenApiParameter(
        "start_time",
        OpenApiTypes.DATETIME,
        description="ISO 8601; events with created_at >= start_time (whole seconds). "
        "A value without offset is read in the server's time zone; a bare date is the "
        "start of that day.",
    ),
    OpenApiParameter(
        "end_time", OpenApiTypes.DATETIME, description="ISO 8601; created_at <= end_time."
    ),
    OpenApiParameter("per_page", int, description="1..100 (clamped); default 10."),
    OpenApiParameter("page", str, description="`first`, or the token from a `Link` header."),
    comma_separated(
        "event_type",
        [choice.value for choice in CourseEvent.EventType],
        "Comma-separated event types, e.g. `published,deleted`.",
    ),
    comma_separated(
        "event_source",
        [choice.value for choice in CourseEvent.EventSource],
        "Comma-separated sources: `manual`, `api`, `sis`.",
    ),
    OpenApiParameter(
        "user_id",
        {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
        description="Only events by this user.",
    ),
    comma_separated(
        "field",
        list(TRACKED_FIELDS),
        "Beyond Canvas: only `updated` events whose `event_data` changed any of these "
        "comma-separated fields, e.g. `start_at,conclude_at` (`created` events, which hold "
        "a course's first values, never match). An unknown field is a 400 naming it.",
    ),
    OpenApiParameter(
        "sis_batch_id",
        {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
        description="Beyond Canvas: only events recorded by this SIS import (`links.sis_batch`).",
    ),
]
AS_OF_AT = OpenApiParameter(
    "at",
    OpenApiTypes.DATETIME,
    required=True,
    description="ISO 8601; the moment, including every event whose created_at is shown at "
    "that second. A value without offset is read in the server's time zone; a bare date is "
    "the start of that day.",
)
INCLUDE_SUBACCOUNTS = OpenApiParameter(
    "include_subaccounts", bool, description="Also the events of every sub-account's courses."
)
LINK_HEADER = OpenApiParameter(
    "Link",
    str,
    OpenApiParameter.HEADER,
    # Only a page of events has one; an error answer never does.
    response=[200],
    required=True,
    description='Canvas\'s pagination links: rel="current", "next", "first" and "last".',
)
WWW_AUTHENTICATE_HEADER = OpenApiParameter(
    "WWW-Authenticate",
    {"type": "string", "enum": [WWW_AUTHENTICATE]},
    OpenApiParameter.HEADER,
    response=[401],
    required=True,
    description="How to authenticate: a bearer token.",
)
RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    int,
    OpenApiParameter.HEADER,
    response=[503],
    required=True,
    description="Seconds to wait before trying again.",
)


class ErrorMessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """``{"errors": [{"message": ...}]}``: 400 (naming the parameter), 404, 406, 409, 411,
    413, 415, 503."""

    errors = ErrorMessageSerializer(many=True)  # type: ignore[assignment]


@extend_schema_field({"type": "string", "enum": ["unauthenticated"]})
class _UnauthenticatedField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "enum": ["unauthorized"]})
class _UnauthorizedField(serializers.CharField):
    pass


class UnauthenticatedErrorSerializer(ErrorSerializer):
    """401: ``{"status": "unauthenticated", "errors": [...]}``."""

    status = _UnauthenticatedField()


class UnauthorizedErrorSerializer(ErrorSerializer):
    """403: ``{"status": "unauthorized", "errors": [...]}``."""

    status = _UnauthorizedField()


_ERROR_SHAPES: dict[int, Any] = {
    400: ErrorSerializer,
    401: UnauthenticatedErrorSerializer,
    403: UnauthorizedErrorSerializer,
    404: ErrorSerializer,
    406: ErrorSerializer,
    411: ErrorSerializer,
    413: ErrorSerializer,
    409: ErrorSerializer,
    415: ErrorSerializer,
    503: ErrorSerializer,
}


def errors(*codes: int) -> dict[int, Any]:
    """The contract's error bodies for these status codes."""
    return {code: _ERROR_SHAPES[code] for code in codes}


class BracketForm(serializers.Serializer):
    """A write serializer's fields as Canvas's clients send them in a form or multipart
    body: a nested field's keys in brackets (``course[name]``), which
    ``unflatten_brackets`` reads. For the schema only (``bracket_form``).

    A nested object in such a body would otherwise be documented as one field, which
    OpenAPI serializes as ``name=...`` (a form) or a JSON part (multipart): neither is
    what the API reads.
    """

    nested: type[serializers.Serializer]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields: dict[str, serializers.Field] = {}
        for field_name, field in self.nested().fields.items():
            if not isinstance(field, serializers.Serializer):
                fields[field_name] = copy.deepcopy(field)
                continue
            for key, leaf in field.fields.items():
                flat = copy.deepcopy(leaf)
                # A key is needed only when its object is.
                flat.required = leaf.required and field.required
                # A form has no null: a blank value clears a field that JSON sets to null.
                flat.allow_null = False
                fields[f"{field_name}[{key}]"] = flat
        return fields


def bracket_form(name: str, serializer_class: type[serializers.Serializer]) -> type[BracketForm]:
    """The ``BracketForm`` of ``serializer_class``, named ``name`` in the schema."""
    return type(name, (BracketForm,), {"nested": serializer_class, "__module__": __name__})


def request_bodies(serializer_class: type[serializers.Serializer], form_name: str) -> Any:
    """A JSON body of ``serializer_class``'s shape, or the same as bracketed form keys."""
    form = bracket_form(form_name, serializer_class)
    return {
        "application/json": serializer_class,
        "application/x-www-form-urlencoded": form,
        "multipart/form-data": form,
    }


def document(**kwargs: Any) -> Callable[[F], F]:
    """``extend_schema`` built on drf-spectacular's ``AutoSchema`` even when the host's
    ``DEFAULT_SCHEMA_CLASS`` is DRF's own (the default).

    Every operation can also answer 406 (an ``Accept`` without JSON), 413 (a body over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, whatever the method) and 503 (a database error,
    ``exceptions.py``), and its 401 and 503 carry their headers.
    """
    kwargs["responses"] = {**kwargs.get("responses", {}), **errors(406, 413, 503)}
    kwargs["parameters"] = [
        *kwargs.get("parameters", []),
        WWW_AUTHENTICATE_HEADER,
        RETRY_AFTER_HEADER,
    ]

    def decorate(view_method: F) -> F:
        existing = getattr(view_method, "kwargs", {})
        view_method.kwargs = {**existing, "schema": AutoSchema}  # type: ignore[attr-defined]
        return extend_schema(**kwargs)(view_method)

    return decorate
