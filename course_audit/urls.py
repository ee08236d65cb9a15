"""Everything course_audit serves, for one ``include()`` in the host's URLconf::

    path("", include("course_audit.urls")),

The REST API is under ``api/v1/`` (Canvas's paths), its OpenAPI schema at ``api/schema/``
and its documentation at ``api/docs/``.
"""

from __future__ import annotations

from django.urls import include, path

from course_audit.api.schema import DocsView, SchemaView

urlpatterns = [
    path("api/v1/", include("course_audit.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="course_audit_schema"),
    path("api/docs/", DocsView.as_view(), name="course_audit_docs"),
]
