"""The demo project's URLs, plus what the benchmark compares the app against.

- ``bench/offset/...`` and ``bench/cursor/...``: the audit endpoints with the same
  queryset, filters and serializer, paged by DRF's stock ``PageNumberPagination`` (a COUNT
  and an OFFSET) and by DRF's ``CursorPagination`` (position and offset) instead of the
  app's keyset pager.
- ``bench/trivial/``: a JSON view doing no work, the framework's own floor.
- ``bench/floor/courses/<id>``: the HTTP floor of the API's course listing: the bare keyset
  SQL of a page (``per_page``) and its JSON, behind the same server; no authentication,
  no access check, no links.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path
from rest_framework.pagination import CursorPagination, PageNumberPagination

from auditlog_project.urls import urlpatterns as project_urlpatterns
from course_audit.api.pagination import MAX_PER_PAGE
from course_audit.api.views import CourseAuditViewSet


class OffsetPagination(PageNumberPagination):
    page_size_query_param = "per_page"
    max_page_size = MAX_PER_PAGE


class StockCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size_query_param = "per_page"
    max_page_size = MAX_PER_PAGE


class _ValuesAuditViewSet(CourseAuditViewSet):
    """The app's viewset, its page read as the same values by a stock DRF paginator (the
    app's own paginator reads ``keyset_fields`` itself)."""

    def filter_queryset(self, queryset: Any) -> Any:
        return super().filter_queryset(queryset).values(*self.keyset_fields or ())


class OffsetAuditViewSet(_ValuesAuditViewSet):
    pagination_class = OffsetPagination


class StockCursorAuditViewSet(_ValuesAuditViewSet):
    pagination_class = StockCursorPagination


def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


def floor(request: HttpRequest, course_id: int) -> HttpResponse:
    from bench._api import floor_page, floor_query

    per_page = min(MAX_PER_PAGE, max(1, int(request.GET.get("per_page", "10"))))
    sql, params = floor_query("course_id", course_id, per_page)
    return HttpResponse(floor_page(sql, params, per_page), content_type="application/json")


def _audit_routes(prefix: str, viewset: Any) -> list[Any]:
    return [
        re_path(
            rf"^bench/{prefix}/audit/course/courses/(?P<course_id>[^/]+)/?$",
            viewset.as_view({"get": "for_course"}),
        ),
        re_path(
            rf"^bench/{prefix}/audit/course/accounts/(?P<account_id>[^/]+)/?$",
            viewset.as_view({"get": "for_account"}),
        ),
    ]


urlpatterns = [
    path("bench/trivial/", trivial),
    path("bench/floor/courses/<int:course_id>", floor),
    *_audit_routes("offset", OffsetAuditViewSet),
    *_audit_routes("cursor", StockCursorAuditViewSet),
    *project_urlpatterns,
]
