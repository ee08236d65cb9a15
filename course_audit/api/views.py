"""The REST API: Canvas's Course Audit log endpoints, the objects they link to, and
Canvas's write endpoints for courses (which record ``api`` events through the services).

Every viewset declares its own authentication, permission, filter, pagination, renderer
and exception handling: a host's ``REST_FRAMEWORK`` defaults never widen access.

The token, the grants and the course or account named in the path are read from the
primary; the audit listings' events and their linked objects (one joined query) from
``COURSE_AUDIT_READ_DATABASE`` when it is set (``selectors.course_events`` and
``account_events``). The write endpoints read and write on the primary.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import router
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest, JsonResponse
from django.urls import get_script_prefix, get_urlconf, reverse
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from course_audit import access_log, integrity, selectors, services
from course_audit.access_log import Scope, Surface, Target
from course_audit.api.authentication import BearerTokenAuthentication
from course_audit.api.exceptions import (
    NOT_FOUND_MESSAGE,
    LengthRequired,
    RequestTooLarge,
    error_body,
    exception_handler,
)
from course_audit.api.openapi import (
    ACCOUNT_ID,
    AS_OF_AT,
    COURSE_ID,
    EVENT_UUID,
    INCLUDE_SUBACCOUNTS,
    LINK_HEADER,
    LISTING_PARAMETERS,
    document,
    errors,
    request_bodies,
)
from course_audit.api.pagination import KeysetPagination
from course_audit.api.permissions import AccountGrantPermission
from course_audit.api.serializers import (
    AccountSerializer,
    ContentMigrationSerializer,
    ContentMigrationWriteSerializer,
    CourseAsOfSerializer,
    CourseDeleteSerializer,
    CourseEventPageSerializer,
    CourseSerializer,
    CourseUpdateSerializer,
    CourseWriteSerializer,
    ListingColumns,
    as_of_json,
    compound_document,
    service_errors,
)
from course_audit.compiled import CompiledLookup
from course_audit.context import audit_context
from course_audit.filters import (
    MAX_BIGINT,
    MAX_PARAMETER_LENGTH,
    CourseEventFilterSet,
    TimestampFormField,
    too_long_message,
)
from course_audit.models import Account, Course, CourseEvent, Permission
from course_audit.pagination import Branches

SIS_COURSE_PREFIX = "sis_course_id:"
SIS_ACCOUNT_PREFIX = "sis_account_id:"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
# The listings' filter parameters (``CourseEventFilterSet``).
_FILTER_PARAMETERS = tuple(CourseEventFilterSet.base_filters)


class ListingFilterBackend(DjangoFilterBackend):
    """django-filter's backend, telling the view (``on_filterset``) what the valid filter
    form asked for beyond the queryset it filtered."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if filterset.is_valid():
            view.on_filterset(filterset)
        elif self.raise_exception:
            raise translate_validation(filterset.errors)
        return filterset.qs


class BaseAPIViewSet(GenericViewSet):
    """Base of the API's viewsets: what they all declare (authentication, permission,
    parsers, renderer, no throttling or versioning, the error handler) and the lookup of the
    course or account named in the path. The schema documents only its subclasses."""

    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [AccountGrantPermission]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes: list[Any] = []
    filter_backends: list[Any] = []
    pagination_class: Any = None
    # Canvas's paths carry no version; a host's DEFAULT_VERSIONING_CLASS must not 404 them.
    versioning_class = None
    required_permission = Permission.VIEW_COURSE_CHANGES
    schema = AutoSchema()

    def get_exception_handler(self) -> Any:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Refused on its declared length, before a byte is read: DRF's JSON and form parsers
        # check DATA_UPLOAD_MAX_MEMORY_SIZE only once they read, and a multipart body's files
        # would be spooled to disk first. None of the API's bodies carries a file.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = _content_length(request)
        if limit is not None and length > limit:
            raise RequestTooLarge()
        if (
            request.method not in SAFE_METHODS
            and "HTTP_TRANSFER_ENCODING" in request.META
            and not length
        ):
            raise LengthRequired()

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Whatever path the host mounts the API under, its changes are ``api`` events.
        with audit_context(source=CourseEvent.EventSource.API):
            return super().dispatch(request, *args, **kwargs)

    def get_course(self, raw_id: str) -> Course:
        """The course named by a numeric id or ``sis_course_id:<value>``, checked."""
        course = self._lookup(
            Course,
            lambda: Course.objects.select_related("account"),
            _COURSE_BY_ID,
            raw_id,
            prefix=SIS_COURSE_PREFIX,
            sis_field="sis_course_id",
            root_filter=lambda roots: Q(root_account_id__in=roots),
            param="course_id",
        )
        self.check_object_permissions(self.request, course)
        return course

    def get_account(self, raw_id: str) -> Account:
        """The active account named by a numeric id or ``sis_account_id:<value>``, checked."""
        account = self._lookup(
            Account,
            _active_accounts,
            _ACCOUNT_BY_ID,
            raw_id,
            prefix=SIS_ACCOUNT_PREFIX,
            sis_field="sis_account_id",
            root_filter=lambda roots: Q(pk__in=roots) | Q(root_account_id__in=roots),
            param="account_id",
        )
        self.check_object_permissions(self.request, account)
        return account

    def _lookup(
        self,
        model: type[Model],
        objects: Callable[[], QuerySet[Any]],
        by_id: CompiledLookup,
        raw_id: str,
        *,
        prefix: str,
        sis_field: str,
        root_filter: Callable[[set[int]], Q],
        param: str,
    ) -> Any:
        """One object by numeric id (``by_id``, compiled once), or by SIS id within the
        caller's root accounts (``objects()``, a queryset built only then)."""
        if not raw_id.startswith(prefix):
            found = by_id.get(router.db_for_read(model), _numeric_id(raw_id))
            if found is None:
                raise exceptions.NotFound()
            return found
        sis_id = raw_id[len(prefix) :]
        if "\x00" in sis_id:  # no stored id has one, and PostgreSQL refuses it in a query
            raise exceptions.NotFound()
        grants = selectors.request_grants(self.request, self.required_permission)
        matches = objects().filter(**{sis_field: sis_id})
        if not grants.superuser:
            matches = matches.filter(root_filter(set(grants.roots)))
        candidates = list(matches[:2])
        if not candidates:
            raise exceptions.NotFound()
        if len(candidates) > 1:
            raise exceptions.ValidationError(
                {param: "matches objects in several root accounts; use the numeric id"}
            )
        return candidates[0]


def _active_accounts() -> QuerySet[Account]:
    return Account.objects.filter(workflow_state=Account.WorkflowState.ACTIVE)


# Every listing's request looks up its course or account by id: compiled once.
_COURSE_BY_ID = CompiledLookup(
    lambda pk, using: Course.objects.select_related("account").filter(pk=pk),
    stand_ins=[-770_001],
)
_ACCOUNT_BY_ID = CompiledLookup(
    lambda pk, using: _active_accounts().filter(pk=pk), stand_ins=[-770_002]
)


def _course_path_template() -> str:
    """The course endpoint's path with ``__course__`` for its id (``{events.course}`` once
    the URL is absolute: ``build_absolute_uri`` would quote the braces), reversed once per
    URLconf and script prefix."""
    return _reversed_course_path(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())


@functools.lru_cache(maxsize=64)
def _reversed_course_path(urlconf: str, prefix: str) -> str:
    # ``prefix`` is the script prefix ``reverse`` reads (it is the cache's key, not passed).
    return reverse("course_audit_api:course", urlconf=urlconf, kwargs={"course_id": "__course__"})


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:  # not a number: the server reads no body, nor do the parsers
        return 0


def _numeric_id(raw_id: str) -> int:
    # The length first: int() refuses more than 4,300 digits with a ValueError (a 500).
    if (
        len(raw_id.lstrip("0")) > len(str(MAX_BIGINT))
        or not (raw_id.isascii() and raw_id.isdigit())
        or int(raw_id) > MAX_BIGINT
    ):
        raise exceptions.NotFound()
    return int(raw_id)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if len(raw) > MAX_PARAMETER_LENGTH:
        raise exceptions.ValidationError({name: too_long_message(len(raw))})
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise exceptions.ValidationError({name: f"must be true or false, got {raw!r}"})


class CourseAuditViewSet(BaseAPIViewSet):
    """``GET /api/v1/audit/course/courses/<course_id>`` and ``.../accounts/<account_id>``."""

    queryset = CourseEvent.objects.all()
    serializer_class = CourseEventPageSerializer
    filter_backends = [ListingFilterBackend]
    filterset_class = CourseEventFilterSet
    pagination_class = KeysetPagination
    keyset_partitions: tuple[str, list[int]] | None = None
    keyset_branches: Branches = None
    # The values a page reads (``ListingColumns.names``), set by ``_page``.
    keyset_fields: tuple[str, ...] | None = None
    # The one column and value that choose the events, added by the paginator to an
    # unfiltered listing's query (``_page``).
    keyset_scope: tuple[str, int] | None = None
    # Whether the page's query may be a prepared statement (``course_audit.prepared``): an
    # unfiltered listing's, whose shape repeats from request to request.
    keyset_prepare = False
    # The page's access record, written by the page's own query where it can
    # (``access_log.PageRecord``), set by ``_page``.
    keyset_rider: access_log.PageRecord | None = None

    @document(
        summary="Query by course",
        parameters=[COURSE_ID, *LISTING_PARAMETERS, LINK_HEADER],
        responses={200: CourseEventPageSerializer, **errors(400, 401, 403, 404)},
    )
    def for_course(self, request: Request, course_id: str) -> Response:
        course = self.get_course(course_id)
        return self._page(
            selectors.course_event_scope(course),
            Target(Scope.COURSE, course.pk, course.root_account_id),
            course=course,
        )

    @document(
        summary="Query by account",
        parameters=[ACCOUNT_ID, *LISTING_PARAMETERS, INCLUDE_SUBACCOUNTS, LINK_HEADER],
        responses={200: CourseEventPageSerializer, **errors(400, 401, 403, 404)},
    )
    def for_account(self, request: Request, account_id: str) -> Response:
        account = self.get_account(account_id)
        events: QuerySet[CourseEvent] | selectors.ScopedEvents
        if _flag(request, "include_subaccounts"):
            account_ids = selectors.auditable_subtree(request, account, self.required_permission)
            # One index range per account: the paginator reads each with its own scan.
            self.keyset_partitions = ("account_id", account_ids)
            events = selectors.account_events(account_ids)
        else:
            events = selectors.account_event_scope(account.pk)
        return self._page(events, Target(Scope.ACCOUNT, account.pk, account.resolved_root_id))

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # No filter parameter, no filter form: building and validating it costs more than
        # the page's own SQL takes to run.
        if not self._filtered():
            self.keyset_prepare = True
            return queryset
        return super().filter_queryset(queryset)

    def _filtered(self) -> bool:
        return any(name in self.request.query_params for name in _FILTER_PARAMETERS)

    def on_filterset(self, filterset: CourseEventFilterSet) -> None:
        """Called by ``ListingFilterBackend`` with the valid filter form: how the page's
        rows are read (``CourseEventFilterSet.ranges``)."""
        self.keyset_partitions, self.keyset_branches = filterset.ranges(self.keyset_partitions)

    def _page(
        self,
        events: QuerySet[CourseEvent] | selectors.ScopedEvents,
        target: Target,
        *,
        course: Course | None = None,
    ) -> Response:
        """A page of ``events`` as the compound document, read as values: one query joins
        each event's linked page view, courses and user, and no model is built but the
        users (for the user serializer). Its access record is one INSERT: in the page's
        own statement where the page is read on the primary (``access_log.PageRecord``),
        else once the rows are read.

        The events of one course or account (``ScopedEvents``) are filtered by the filter
        form when the request has a filter parameter; without one, the app's paginator
        adds their one condition itself (``keyset_scope``), and no queryset filter is built.
        Any other paginator (a subclass's) gets them as a queryset."""
        columns = ListingColumns.for_listing(course_known=course is not None)
        self.keyset_fields = columns.names
        if isinstance(events, selectors.ScopedEvents):
            if self._filtered() or not isinstance(self.paginator, KeysetPagination):
                events = events.queryset()
            else:
                self.keyset_scope = (events.column, events.value)
                events = events.events
        events = self.filter_queryset(events)
        self.keyset_rider = access_log.PageRecord(self.request, surface=Surface.API, target=target)
        page: Any = self.paginate_queryset(events)
        assert page is not None
        self.keyset_rider.write(count=len(page))
        template = self.request.build_absolute_uri(_course_path_template()).replace(
            "__course__", "{events.course}"
        )
        return self.get_paginated_response(
            compound_document(
                page,
                columns,
                template,
                course=course,
                context=self.get_serializer_context(),
                using=events.db,
            )
        )


class Unsealed(exceptions.APIException):
    """409: the event exists but no checkpoint seals it yet (the next run will)."""

    status_code = 409
    default_code = "unsealed"
    default_detail = "The event is not sealed in a checkpoint yet; ask again after the next one."


class EventProofViewSet(BaseAPIViewSet):
    """``GET /api/v1/audit/course/events/<event_uuid>/proof``: the event's sealed fields,
    its checkpoint's signed header and the Merkle audit path between them, which
    ``python -m course_audit.proof`` checks with the signing key's public half. Access is
    the event's course's."""

    @document(
        summary="Prove an event is sealed",
        parameters=[EVENT_UUID],
        responses={
            200: inline_serializer(
                "EventProof",
                {
                    "format": serializers.CharField(),
                    "event": serializers.DictField(),
                    "leaf_index": serializers.IntegerField(),
                    "tree_size": serializers.IntegerField(),
                    "audit_path": serializers.ListField(child=serializers.CharField()),
                    "checkpoint": serializers.DictField(),
                },
            ),
            **errors(401, 403, 404, 409),
        },
    )
    def retrieve(self, request: Request, event_uuid: str) -> Response:
        try:
            parsed = uuid.UUID(event_uuid)
        except ValueError:
            raise exceptions.NotFound() from None
        event = CourseEvent.objects.select_related("course__account").filter(uuid=parsed).first()
        if event is None:
            raise exceptions.NotFound()
        self.check_object_permissions(request, event.course)
        try:
            proof = integrity.event_proof(event)
        except integrity.NotSealed as error:
            raise Unsealed() from error
        access_log.record(
            request,
            surface=Surface.API,
            target=Target(Scope.EVENT, event.pk, event.course.root_account_id),
            count=1,
        )
        return Response(proof)


class CourseAsOfViewSet(BaseAPIViewSet):
    """``GET /api/v1/audit/course/courses/<course_id>/as_of?at=<ISO 8601>``, beyond Canvas:
    the course's tracked fields and workflow state as its log replays them at ``at``
    (``selectors.course_as_of``), each with the event that set it. Access is the course
    listing's."""

    @document(
        summary="A course as of a moment",
        parameters=[COURSE_ID, AS_OF_AT],
        responses={200: CourseAsOfSerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, course_id: str) -> Response:
        course = self.get_course(course_id)
        (state,) = selectors.course_as_of(course, [_moment(request, "at")])
        access_log.record(
            request,
            surface=Surface.API,
            target=Target(Scope.COURSE, course.pk, course.root_account_id),
            count=access_log.events_shown([state]),
        )
        return Response(as_of_json(course.pk, state))


def _moment(request: Request, name: str) -> dt.datetime:
    """The required date-time parameter ``name``, read as the listings read theirs."""
    raw = request.query_params.get(name, "")
    if not raw.strip():
        raise exceptions.ValidationError({name: "is required: an ISO 8601 date-time"})
    try:
        moment: dt.datetime = TimestampFormField().clean(raw)
    except DjangoValidationError as error:
        raise exceptions.ValidationError({name: error.messages}) from None
    return moment


class CourseViewSet(BaseAPIViewSet):
    """``GET``, ``PUT`` and ``DELETE /api/v1/courses/<course_id>`` and
    ``POST /api/v1/courses/<course_id>/reset_content``.

    Reading a course needs ``view_course_changes``; changing it needs ``manage_courses``.
    """

    serializer_class = CourseSerializer

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.required_permission = (
            Permission.VIEW_COURSE_CHANGES
            if self.action == "retrieve"
            else Permission.MANAGE_COURSES
        )
        super().initial(request, *args, **kwargs)

    def get_serializer_class(self) -> Any:
        if self.action == "update":
            return CourseUpdateSerializer
        if self.action == "destroy":
            return CourseDeleteSerializer
        return CourseSerializer

    def get_object(self) -> Course:
        return self.get_course(self.kwargs["course_id"])

    @document(
        summary="Get a course",
        parameters=[COURSE_ID],
        # 400: a SIS id that names courses in several of the caller's root accounts.
        responses={200: CourseSerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, course_id: str) -> Response:
        return Response(CourseSerializer(self.get_object()).data)

    @document(
        summary="Update a course",
        parameters=[COURSE_ID],
        request=request_bodies(CourseUpdateSerializer, "CourseUpdateForm"),
        responses={200: CourseSerializer, **errors(400, 401, 403, 404, 411, 415)},
    )
    def update(self, request: Request, course_id: str) -> Response:
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        course = serializer.save()
        return Response(CourseSerializer(course).data)

    @document(
        summary="Delete or conclude a course",
        parameters=[
            COURSE_ID,
            OpenApiParameter("event", str, enum=["delete", "conclude"], required=True),
        ],
        request=None,
        responses={
            200: inline_serializer(
                "CourseDeleted",
                {
                    "delete": serializers.BooleanField(required=False),
                    "conclude": serializers.BooleanField(required=False),
                },
            ),
            **errors(400, 401, 403, 404, 411, 415),
        },
    )
    def destroy(self, request: Request, course_id: str) -> Response:
        """Canvas reads ``event`` from the query string or, as canvasapi sends it, the body."""
        course = self.get_object()
        params = request.query_params if "event" in request.query_params else request.data
        serializer = self.get_serializer(course, data=params)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response({serializer.validated_data["event"]: True})

    @document(
        summary="Reset a course's content",
        parameters=[COURSE_ID],
        request=None,
        responses={200: CourseSerializer, **errors(400, 401, 403, 404)},
    )
    def reset_content(self, request: Request, course_id: str) -> Response:
        """Answers the new course that replaced this one."""
        course = self.get_object()
        with service_errors():
            new_course = services.course_reset(course=course)
        return Response(CourseSerializer(new_course).data)


class AccountViewSet(BaseAPIViewSet):
    """``GET /api/v1/accounts/<account_id>``."""

    serializer_class = AccountSerializer

    @document(
        summary="Get an account",
        parameters=[ACCOUNT_ID],
        # 400: a SIS id that names accounts in several of the caller's root accounts.
        responses={200: AccountSerializer, **errors(400, 401, 403, 404)},
    )
    def retrieve(self, request: Request, account_id: str) -> Response:
        return Response(AccountSerializer(self.get_account(account_id)).data)


class AccountCourseViewSet(BaseAPIViewSet):
    """``POST /api/v1/accounts/<account_id>/courses``: create a course in the account."""

    required_permission = Permission.MANAGE_COURSES
    serializer_class = CourseWriteSerializer

    @document(
        summary="Create a course",
        parameters=[ACCOUNT_ID],
        request=request_bodies(CourseWriteSerializer, "CourseWriteForm"),
        responses={200: CourseSerializer, **errors(400, 401, 403, 404, 411, 415)},
    )
    def create(self, request: Request, account_id: str) -> Response:
        account = self.get_account(account_id)
        serializer = self.get_serializer(
            data=request.data, context={**self.get_serializer_context(), "account": account}
        )
        serializer.is_valid(raise_exception=True)
        course = serializer.save(account=account)
        return Response(CourseSerializer(course).data)


class ContentMigrationViewSet(BaseAPIViewSet):
    """``POST /api/v1/courses/<destination_id>/content_migrations``: copy a course into it.

    Only ``migration_type=course_copy_importer``. ``manage_courses`` is needed on both the
    destination and the source (``settings[source_course_id]``); an unknown or foreign
    source is a 404, as in Canvas. See ``ContentMigrationWriteSerializer`` for the answer.
    """

    required_permission = Permission.MANAGE_COURSES
    serializer_class = ContentMigrationWriteSerializer

    @document(
        summary="Copy a course into this one",
        parameters=[COURSE_ID],
        request=request_bodies(ContentMigrationWriteSerializer, "ContentMigrationWriteForm"),
        responses={200: ContentMigrationSerializer, **errors(400, 401, 403, 404, 411, 415)},
    )
    def create(self, request: Request, course_id: str) -> Response:
        destination = self.get_course(course_id)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = self.get_course(serializer.validated_data["settings"]["source_course_id"])
        migration = serializer.save(source=source, destination=destination)
        return Response(ContentMigrationSerializer(migration).data)


@csrf_exempt  # it changes nothing; a POST to a mistyped path gets the 404, not a CSRF page
@login_not_required
def not_found(request: HttpRequest) -> JsonResponse:
    """Any other path under the API: the contract's 404, whatever the method and caller (a
    path says nothing about any tenant's data, so it needs no credentials)."""
    return JsonResponse(error_body(NOT_FOUND_MESSAGE), status=404)
