"""URLs of the REST API. Paths work with and without a trailing slash, without redirects."""

from __future__ import annotations

from django.urls import re_path

from course_audit.api import views

app_name = "course_audit_api"

urlpatterns = [
    re_path(
        r"^audit/course/courses/(?P<course_id>[^/]+)/?$",
        views.CourseAuditViewSet.as_view({"get": "for_course"}),
        name="audit-course",
    ),
    re_path(
        r"^audit/course/courses/(?P<course_id>[^/]+)/as_of/?$",
        views.CourseAsOfViewSet.as_view({"get": "retrieve"}),
        name="audit-course-as-of",
    ),
    re_path(
        r"^audit/course/accounts/(?P<account_id>[^/]+)/?$",
        views.CourseAuditViewSet.as_view({"get": "for_account"}),
        name="audit-account",
    ),
    re_path(
        r"^audit/course/events/(?P<event_uuid>[^/]+)/proof/?$",
        views.EventProofViewSet.as_view({"get": "retrieve"}),
        name="event-proof",
    ),
    re_path(
        r"^courses/(?P<course_id>[^/]+)/?$",
        views.CourseViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="course",
    ),
    re_path(
        r"^courses/(?P<course_id>[^/]+)/reset_content/?$",
        views.CourseViewSet.as_view({"post": "reset_content"}),
        name="course-reset-content",
    ),
    re_path(
        r"^courses/(?P<course_id>[^/]+)/content_migrations/?$",
        views.ContentMigrationViewSet.as_view({"post": "create"}),
        name="course-content-migrations",
    ),
    re_path(
        r"^accounts/(?P<account_id>[^/]+)/courses/?$",
        views.AccountCourseViewSet.as_view({"post": "create"}),
        name="account-courses",
    ),
    re_path(
        r"^accounts/(?P<account_id>[^/]+)/?$",
        views.AccountViewSet.as_view({"get": "retrieve"}),
        name="account",
    ),
    # Last: any other path under the API answers the contract's JSON 404, not the host's
    # HTML page, so a client that mistypes a path can still read the error.
    re_path(r"^", views.not_found, name="not-found"),
]
