"""The app's pages, in the ``course_audit`` namespace: the registrar's pages under
``audit/`` and the API's schema and docs under ``api/``. Included by ``course_audit.urls``
(a host includes that one): ``reverse("course_audit:course_history", args=[course.pk])``.
"""

from __future__ import annotations

from django.urls import path

from course_audit import views
from course_audit.api.schema import DocsView, SchemaView

app_name = "course_audit"

urlpatterns = [
    path("audit/", views.home, name="home"),
    path("audit/courses/<int:course_id>/", views.course_history, name="course_history"),
    path("audit/courses/<int:course_id>/export/", views.course_export, name="course_export"),
    path("audit/courses/<int:course_id>/as-of/", views.course_as_of, name="course_as_of"),
    path("audit/accounts/<int:account_id>/", views.account_history, name="account_history"),
    path("audit/accounts/<int:account_id>/export/", views.account_export, name="account_export"),
    path("audit/people/<str:user_id>/", views.person_history, name="person_history"),
    path("audit/people/<str:user_id>/export/", views.person_export, name="person_export"),
    path("audit/sis-batches/<int:batch_id>/", views.sis_batch_history, name="sis_batch_history"),
    path(
        "audit/sis-batches/<int:batch_id>/export/",
        views.sis_batch_export,
        name="sis_batch_export",
    ),
    path("audit/page-views/<uuid:request_id>/", views.page_view, name="page_view"),
    path("audit/exports/", views.export_jobs, name="export_jobs"),
    path("audit/exports/<int:job_id>/", views.export_job, name="export_job"),
    path("audit/exports/<int:job_id>/cancel/", views.export_job_cancel, name="export_job_cancel"),
    path(
        "audit/exports/<int:job_id>/download/",
        views.export_job_download,
        name="export_job_download",
    ),
    path(
        "audit/exports/<int:job_id>/manifest/",
        views.export_job_manifest,
        name="export_job_manifest",
    ),
    path("audit/accounts/<int:account_id>/access-log/", views.access_log_page, name="access_log"),
    path("audit/timezone/", views.set_timezone, name="set_timezone"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(), name="docs"),
]
