"""Attribution for HTTP requests.

``AuditContextMiddleware`` gives each request an id and an audit context (``api`` for
API requests, ``manual`` for pages and the admin; the actor is the request's user, read
when an event is recorded, so DRF's token authentication is seen too). A request that
recorded events leaves a ``PageView`` row, which the events link to. A page of the app
whose database fails answers 503, as the API does.

With a read database (``COURSE_AUDIT_READ_DATABASE``), a request that recorded events keeps
the primary's position in the caller's session or API token, so that the caller's next
reads see its write (``replication``); a safe request whose primary failed under it is run
once more, reading from the standby (read-only mode).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus

from django.db import DatabaseError
from django.db.models.expressions import RawSQL
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from course_audit import replication
from course_audit.conf import RETRY_AFTER_SECONDS, conf
from course_audit.context import RequestTrace, audit_context
from course_audit.models import Account, ApiToken, CourseEvent, PageView

REQUEST_ID_HEADER = "X-Request-Id"

logger = logging.getLogger(__name__)


def request_source(request: HttpRequest) -> str:
    """``api`` for a REST API request (by path or bearer token), else ``manual``."""
    authorization = request.headers.get("Authorization", "")
    if request.path.startswith(conf.API_PATH_PREFIX) or authorization[:7].lower() == "bearer ":
        return CourseEvent.EventSource.API
    return CourseEvent.EventSource.MANUAL


def spans_root_accounts(account_ids: set[int]) -> bool:
    """Whether these accounts belong to more than one root account (tenant)."""
    rows = Account.objects.filter(pk__in=account_ids).values_list("pk", "root_account_id")
    return len({root_id or pk for pk, root_id in rows}) > 1


def service_unavailable() -> HttpResponse:
    """The 503 page, with ``Retry-After``: the database failed, try again shortly."""
    # Rendered without the request: the site's context processors read the session.
    response = HttpResponse(
        render_to_string("course_audit/unavailable.html"),
        status=HTTPStatus.SERVICE_UNAVAILABLE,
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class AuditContextMiddleware:
    """Put after ``AuthenticationMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = uuid.uuid4()
        request.course_audit_request_id = request_id  # type: ignore[attr-defined]
        trace = RequestTrace()
        started = time.perf_counter()
        with audit_context(
            user=None,
            source=request_source(request),
            sis_batch=None,
            request_id=request_id,
            request=request,
            occurred_at=None,
            trace=trace,
        ):
            with replication.reading(request):
                response = self.get_response(request)
                retry = replication.retry_wanted()
            if retry:
                # Only safe requests are retried: they changed nothing.
                with replication.reading(request):
                    response = self.get_response(request)
        # An error answer means the request's changes were rolled back (the API answers 503
        # when the database fails mid-write, 400 when a write is refused), even if some of
        # its events had been inserted first: such a request leaves no page view.
        if trace.events_recorded and conf.RECORD_PAGE_VIEWS and response.status_code < 400:
            try:
                self.save_page_view(request, request_id, trace, time.perf_counter() - started)
            except DatabaseError:
                # The change and its events are committed: the answer must say so (a 500
                # would make the client retry a change that was made). The events' page
                # view link stays empty, as for a request that kept no page view.
                logger.warning(
                    "Page view %s not saved: the database failed after the request's changes "
                    "were committed",
                    request_id,
                    exc_info=True,
                )
        if trace.events_recorded and response.status_code < 400:
            self.remember_write(request)
        response[REQUEST_ID_HEADER] = str(request_id)
        return response

    def remember_write(self, request: HttpRequest) -> None:
        """Keep the primary's position after the request's committed write as the caller's
        floor (read-your-writes): on its API token, else in its session."""
        replication.primary_is_up()
        if not replication.tracks_writes():
            return
        try:
            token = getattr(request, "auth", None)
            if isinstance(token, ApiToken):
                # One statement, which never moves the token's position back.
                ApiToken.objects.filter(pk=token.pk).update(
                    write_lsn=RawSQL(replication.TOKEN_POSITION_SQL, ())
                )
            elif hasattr(request, "session"):
                kept = request.session.get(replication.SESSION_KEY)
                request.session[replication.SESSION_KEY] = replication.later_position(
                    kept, replication.write_position()
                )
        except DatabaseError:
            # The write is committed and answered; the caller's next reads may miss it
            # until the standby replays it, as without this.
            logger.warning("Write position of request not kept", exc_info=True)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A page of this app whose database failed (away, restarting, the connection
        dropped) answers 503 and ``Retry-After``, as the API does, instead of a 500: the
        request's changes were rolled back, and the reader may simply try again. Other
        views' errors are the host's to answer."""
        match = request.resolver_match
        if (
            not isinstance(exception, DatabaseError)
            or match is None
            or not match.func.__module__.startswith(f"{__package__}.")
        ):
            return None
        replication.note_database_error(request)
        logger.error(
            "Database error answering %s %s", request.method, request.path, exc_info=exception
        )
        return service_unavailable()

    def save_page_view(
        self, request: HttpRequest, request_id: uuid.UUID, trace: RequestTrace, seconds: float
    ) -> None:
        user = getattr(request, "user", None)
        account_id, course_id = trace.account_id, trace.course_id
        url = request.build_absolute_uri()
        if len(trace.account_ids) > 1 and spans_root_accounts(trace.account_ids):
            # One request changed courses of several tenants (a superuser's bulk action in
            # the admin). Each tenant's events link its page view, so it must name no
            # tenant's course or account, nor carry a query string (a search, say).
            account_id = course_id = None
            url = request.build_absolute_uri(request.path)
        match = request.resolver_match
        controller, action = "", ""
        if match is not None:
            controller = match._func_path
            action = match.url_name or ""
        PageView.objects.create(
            request_id=request_id,
            user=user if user is not None and user.is_authenticated else None,
            account_id=account_id,
            context_type="Course" if course_id is not None else "",
            context_id=course_id,
            url=url[:4096],
            controller=controller[:255],
            action=action[:255],
            http_method=request.method or "",
            user_agent=request.headers.get("User-Agent", ""),
            remote_ip=request.META.get("REMOTE_ADDR") or None,
            render_time=round(seconds, 6),
        )
