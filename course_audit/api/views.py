"""The REST API: Canvas's Course Audit log endpoints and the objects they link to.

Every viewset declares its own authentication, permission, filter, pagination, renderer
and exception handling: a host's ``REST_FRAMEWORK`` defaults never widen access.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from course_audit import selectors
from course_audit.api.authentication import BearerTokenAuthentication
from course_audit.api.exceptions import exception_handler
from course_audit.api.pagination import KeysetPagination
from course_audit.api.permissions import AccountGrantPermission, grants_for
from course_audit.api.serializers import (
    AccountSerializer,
    CourseEventPageSerializer,
    CourseSerializer,
    compound_document,
)
from course_audit.filters import CourseEventFilterSet
from course_audit.models import Account, Course, CourseEvent, Permission

MAX_ID = 2**63 - 1
SIS_COURSE_PREFIX = "sis_course_id:"
SIS_ACCOUNT_PREFIX = "sis_account_id:"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class CourseAuditAPIView(GenericViewSet):
    """Base of the API's viewsets."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [AccountGrantPermission]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes: list[Any] = []
    filter_backends: list[Any] = []
    pagination_class: Any = None
    required_permission = Permission.VIEW_COURSE_CHANGES

    def get_exception_handler(self) -> Any:
        return exception_handler

    def _scoped_roots(self) -> set[int] | None:
        grants = grants_for(self.request, self.required_permission)
        return None if grants.superuser else set(grants.roots)

    def get_course(self, raw_id: str) -> Course:
        """The course named by a numeric id or ``sis_course_id:<value>``, checked."""
        courses = Course.objects.select_related("account")
        if raw_id.startswith(SIS_COURSE_PREFIX):
            roots = self._scoped_roots()
            matches = courses.filter(sis_course_id=raw_id[len(SIS_COURSE_PREFIX) :])
            if roots is not None:
                matches = matches.filter(root_account_id__in=roots)
            found = list(matches[:2])
            if len(found) > 1:
                raise exceptions.ValidationError(
                    {"course_id": "matches courses in several root accounts; use the numeric id"}
                )
            course = found[0] if found else None
        else:
            course = courses.filter(pk=_numeric_id(raw_id)).first()
        if course is None:
            raise exceptions.NotFound()
        self.check_object_permissions(self.request, course)
        return course

    def get_account(self, raw_id: str) -> Account:
        """The active account named by a numeric id or ``sis_account_id:<value>``, checked."""
        accounts = Account.objects.filter(workflow_state=Account.WorkflowState.ACTIVE)
        if raw_id.startswith(SIS_ACCOUNT_PREFIX):
            roots = self._scoped_roots()
            matches = accounts.filter(sis_account_id=raw_id[len(SIS_ACCOUNT_PREFIX) :])
            if roots is not None:
                matches = matches.filter(pk__in=roots) | matches.filter(root_account_id__in=roots)
            found = list(matches[:2])
            if len(found) > 1:
                raise exceptions.ValidationError(
                    {"account_id": "matches accounts in several root accounts; use the numeric id"}
                )
            account = found[0] if found else None
        else:
            account = accounts.filter(pk=_numeric_id(raw_id)).first()
        if account is None:
            raise exceptions.NotFound()
        self.check_object_permissions(self.request, account)
        return account


def _numeric_id(raw_id: str) -> int:
    if not raw_id.isdigit() or int(raw_id) > MAX_ID:
        raise exceptions.NotFound()
    return int(raw_id)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise exceptions.ValidationError({name: f"must be true or false, got {raw!r}"})


class CourseAuditViewSet(CourseAuditAPIView):
    """``GET /api/v1/audit/course/courses/<course_id>`` and ``.../accounts/<account_id>``."""

    queryset = CourseEvent.objects.all()
    serializer_class = CourseEventPageSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = CourseEventFilterSet
    pagination_class = KeysetPagination

    def for_course(self, request: Request, course_id: str) -> Response:
        course = self.get_course(course_id)
        return self._page(selectors.course_events(course))

    def for_account(self, request: Request, account_id: str) -> Response:
        account = self.get_account(account_id)
        if _flag(request, "include_subaccounts"):
            grants = grants_for(request, self.required_permission)
            account_ids = [
                sub.pk for sub in selectors.subtree_accounts(account) if grants.allows(sub)
            ]
        else:
            account_ids = [account.pk]
        return self._page(selectors.account_events(account_ids))

    def _page(self, events: QuerySet[CourseEvent]) -> Response:
        events = self.filter_queryset(events)
        page = self.paginate_queryset(events)
        assert page is not None
        template = self.request.build_absolute_uri(
            reverse("course_audit_api:course", kwargs={"course_id": "__course__"})
        ).replace("__course__", "{events.course}")
        return self.get_paginated_response(compound_document(page, template))


class CourseViewSet(CourseAuditAPIView):
    """``GET /api/v1/courses/<course_id>``."""

    serializer_class = CourseSerializer

    def retrieve(self, request: Request, course_id: str) -> Response:
        course = self.get_course(course_id)
        return Response(CourseSerializer(course, ids_as_strings=False).data)


class AccountViewSet(CourseAuditAPIView):
    """``GET /api/v1/accounts/<account_id>``."""

    serializer_class = AccountSerializer

    def retrieve(self, request: Request, account_id: str) -> Response:
        return Response(AccountSerializer(self.get_account(account_id)).data)
