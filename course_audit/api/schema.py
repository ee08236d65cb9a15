"""OpenAPI 3.1 for course_audit's API, served by the app itself at ``api/schema/``.

The schema covers only this app's endpoints, whatever else the host serves, and the docs
page (Redoc) loads its script from the host's static files, so it needs no internet. What
each view declares for it (parameters, error bodies, request bodies) is in ``openapi.py``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.permissions import AllowAny
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.views import APIView

import course_audit
from course_audit.api.enum_names import ENUM_NAME_OVERRIDES
from course_audit.api.views import BaseAPIViewSet

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
    return [
        (path.rstrip("/"), path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if isinstance(getattr(callback, "cls", None), type)
        and issubclass(callback.cls, BaseAPIViewSet)
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
    url_name = "course_audit:schema"
    title = SCHEMA_SETTINGS["TITLE"]
    # Our own page: the stock one loads web fonts from the internet.
    template_name = "course_audit/api_docs.html"

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        """The page, with ``DOCS_CONTENT_SECURITY_POLICY``."""
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
        return response
