"""Errors in the contract's shape, whatever the host's ``REST_FRAMEWORK`` settings say.

- 401 ``{"status": "unauthenticated", "errors": [{"message": "user authorization required"}]}``
  with ``WWW-Authenticate: Bearer realm="course_audit"``
- 403 ``{"status": "unauthorized", "errors": [{"message": "user not authorized to ..."}]}``
- 404 ``{"errors": [{"message": "The specified resource does not exist."}]}``
- 400 ``{"errors": [{"message": "<what is wrong, naming the parameter>"}]}``, also for a
  body with too many fields or files and for malformed JSON
- 413 ``{"errors": [{"message": "The request body is larger than ... bytes."}]}`` for a body
  over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
- 411 ``{"errors": [{"message": "A request body needs a Content-Length header ..."}]}`` for
  a chunked body, which Django's WSGI request never reads (it would be a silent no-op)
- 404, 405, 406 and 415 in the same form (an unknown path under ``api/v1/`` too)
- 503 ``{"errors": [{"message": "The database could not ..."}]}`` with ``Retry-After``, for a
  ``DatabaseError`` (the database is away, or refused the change or its events): the
  transaction was rolled back, so nothing was saved; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from course_audit import replication
from course_audit.conf import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE = 'Bearer realm="course_audit"'
NOT_FOUND_MESSAGE = "The specified resource does not exist."
UNAVAILABLE_MESSAGE = (
    "The database could not complete the request; nothing was changed. Try again later."
)
TOO_MANY_FIELDS_MESSAGE = "The request has more than %(limit)s fields."
TOO_MANY_FILES_MESSAGE = "The request has more than %(limit)s files."


def _messages(detail: Any, prefix: str = "") -> list[str]:
    """Flatten DRF's error detail (nested dicts and lists) to messages naming the field."""
    if isinstance(detail, dict):
        found: list[str] = []
        for key, value in detail.items():
            name = key if key != api_settings.NON_FIELD_ERRORS_KEY else ""
            found.extend(
                _messages(value, f"{prefix}[{name}]" if prefix and name else prefix or name)
            )
        return found
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item, prefix)]
    text = str(detail)
    return [f"{prefix}: {text}" if prefix and not text.startswith(prefix) else text]


class RequestTooLarge(exceptions.APIException):
    """413: the body is over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's limit, which DRF's
    JSON and form parsers apply as well, so one setting bounds every body)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than {limit} bytes.")


class LengthRequired(exceptions.APIException):
    """411: a chunked body without ``Content-Length``, which WSGI servers hand to Django as
    an empty body: answering 200 for a write whose fields were never read would lie."""

    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_code = "length_required"
    default_detail = "A request body needs a Content-Length header; a chunked body is not read."


def error_body(*messages: str, status_word: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if status_word:
        body["status"] = status_word
    body["errors"] = [{"message": message} for message in messages]
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler producing the contract's error bodies."""
    if isinstance(exc, DatabaseError):
        return _database_unavailable(exc, context)
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, TooManyFieldsSent):
        exc = exceptions.ParseError(
            TOO_MANY_FIELDS_MESSAGE % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}
        )
    elif isinstance(exc, TooManyFilesSent):
        exc = exceptions.ParseError(
            TOO_MANY_FILES_MESSAGE % {"limit": settings.DATA_UPLOAD_MAX_NUMBER_FILES}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return Response(
            error_body("user authorization required", status_word="unauthenticated"),
            status=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )
    if isinstance(exc, exceptions.PermissionDenied):
        return Response(
            error_body("user not authorized to perform that action", status_word="unauthorized"),
            status=status.HTTP_403_FORBIDDEN,
        )
    if isinstance(exc, exceptions.NotFound):
        return Response(error_body(NOT_FOUND_MESSAGE), status=status.HTTP_404_NOT_FOUND)
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(int(wait))
    if isinstance(exc, exceptions.MethodNotAllowed):
        headers["Allow"] = ", ".join(context["view"].allowed_methods)
    return Response(error_body(*_messages(exc.detail)), status=exc.status_code, headers=headers)


def _database_unavailable(exc: DatabaseError, context: dict[str, Any]) -> Response:
    """503 for a database error: the change (and its events) rolled back with the write's
    atomic block; the SQL and the driver's message go to the log, never to the client."""
    # Under a host's ATOMIC_REQUESTS the request's own transaction must not commit either.
    set_rollback()
    request = context.get("request")
    if request is not None:
        # A safe request whose primary (or standby) is away runs again (read-only mode).
        replication.note_database_error(request._request)
    logger.error(
        "Database error answering %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc_info=exc,
    )
    return Response(
        error_body(UNAVAILABLE_MESSAGE),
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
