"""Everything course_audit serves, for one ``include()`` in the host's URLconf::

    path("", include("course_audit.urls")),

The registrar's pages are under ``audit/`` (they need a login: set ``LOGIN_URL``), the REST
API under ``api/v1/`` (Canvas's paths), its OpenAPI schema at ``api/schema/`` and its
documentation at ``api/docs/``.
"""

from __future__ import annotations

from django.urls import include, path

from course_audit import views
from course_audit.api.schema import DocsView, SchemaView

urlpatterns = [
    path("audit/", views.home, name="course_audit_home"),
    path(
        "audit/courses/<int:course_id>/",
        views.course_history,
        name="course_audit_course_history",
    ),
    path(
        "audit/courses/<int:course_id>/export/",
        views.course_export,
        name="course_audit_course_export",
    ),
    path(
        "audit/accounts/<int:account_id>/",
        views.account_history,
        name="course_audit_account_history",
    ),
    path(
        "audit/accounts/<int:account_id>/export/",
        views.account_export,
        name="course_audit_account_export",
    ),
    path(
        "audit/page-views/<uuid:request_id>/",
        views.page_view,
        name="course_audit_page_view",
    ),
    path("audit/timezone/", views.set_timezone, name="course_audit_set_timezone"),
    path("api/v1/", include("course_audit.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="course_audit_schema"),
    path("api/docs/", DocsView.as_view(), name="course_audit_docs"),
]
