"""The site's conventions for its own REST API."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error of the site's API is ``{"error": ...}``."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = {"error": response.data}
    return response
