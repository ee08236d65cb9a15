"""OpenAPI 3.1 for course_audit's API, served by the app itself at ``api/schema/``.

The schema covers only this app's endpoints, whatever else the host serves, and the docs
page (Redoc) loads its script from the host's static files, so it needs no internet.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.views import APIView

import course_audit
from course_audit.api.enum_names import ENUM_NAME_OVERRIDES
from course_audit.api.exceptions import WWW_AUTHENTICATE
from course_audit.filters import MAX_BIGINT
from course_audit.models import CourseEvent

F = TypeVar("F", bound=Callable[..., Any])

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "course_audit API",
    "DESCRIPTION": (
        "Canvas LMS's Course Audit log API (and the course endpoints whose changes it "
        "records), served by the course_audit Django app."
    ),
    "VERSION": course_audit.__version__,
    "OAS_VERSION": "3.1.0",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": ENUM_NAME_OVERRIDES,
    "PREPROCESSING_HOOKS": ["course_audit.api.schema.only_course_audit_endpoints"],
}


def only_course_audit_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """Keep the endpoints served by course_audit's own API views, with Canvas's paths
    (no trailing slash, though one is accepted)."""
    from course_audit.api.views import CourseAuditAPIView

    return [
        (path.rstrip("/"), path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if isinstance(getattr(callback, "cls", None), type)
        and issubclass(callback.cls, CourseAuditAPIView)
    ]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "course_audit.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from `manage.py create_api_token <username>`.",
        }


class PublicView(APIView):
    """The schema and its docs are public, whatever the host's DRF defaults say: they
    describe the API and hold no audit data. (DRF's views are exempt from the host's
    ``LoginRequiredMiddleware``.)"""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    versioning_class = None


class SchemaView(PublicView, SpectacularAPIView):
    """The OpenAPI document (YAML, or JSON with ``?format=json``)."""

    # Not an endpoint of any schema: drf-spectacular's deploy check (``check --deploy``)
    # walks every view of the site, and these two, decorated for DRF's default schema
    # class, made it fail (drf_spectacular.E001).
    schema = None
    custom_settings = SCHEMA_SETTINGS


# Redoc's bundle (drf-spectacular-sidecar) injects two kinds of <style> element: empty ones
# that styled-components fills through the CSSOM (the hash of "") and perfect-scrollbar's
# fixed stylesheet (the second hash). Their hashes let them in without 'unsafe-inline' for
# the page's styles; its scripts come from the site alone, and its search runs in a blob:
# worker. Redoc's own "by Redocly" logo, from the internet, is refused on purpose. A new
# Redoc may change the scrollbar's text: tests/browser/test_security_headers.py then fails.
REDOC_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
)
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        " ".join(["style-src 'self'", *REDOC_STYLE_HASHES]),
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""The API docs page's own Content-Security-Policy, sent with it whatever the host's
policy (django-csp's middleware keeps a header a view has set)."""


class DocsView(PublicView, SpectacularRedocView):
    """Browsable API documentation, from static files only."""

    schema = None  # as SchemaView's
    renderer_classes = [TemplateHTMLRenderer]
    url_name = "course_audit_schema"
    title = SCHEMA_SETTINGS["TITLE"]
    # Our own page: the stock one loads web fonts from the internet.
    template_name = "course_audit/api_docs.html"

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        """The page, with ``DOCS_CONTENT_SECURITY_POLICY``."""
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response


# --- what the views declare --------------------------------------------------------------

_ID_HELP = "A numeric id, or `{prefix}:<value>` (URL-encoded)."


def path_id(name: str, prefix: str) -> OpenApiParameter:
    return OpenApiParameter(
        name, str, OpenApiParameter.PATH, description=_ID_HELP.format(prefix=prefix)
    )


COURSE_ID = path_id("course_id", "sis_course_id")
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
]
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
    """``{"errors": [{"message": ...}]}``: 400 (naming the parameter), 404, 406, 411, 413,
    415, 503."""

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
