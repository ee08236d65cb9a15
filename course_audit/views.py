"""The registrar's pages: course and account histories, their exports, and the home page.

They answer exactly as the API does: 404 for an unknown object or one in another tenant,
403 for a member without ``view_course_changes`` on it. Filters are the API's
(``CourseEventFilterSet``) and paging is the API's keyset (``course_audit.pagination``), in
both directions. Access is the API's rule too (``selectors.authorize_account``).

The object named in the URL and the viewer's grants are read from the primary, since
they decide access; the events, the chart, the exports and the search's results go
through ``selectors.for_reading``, to ``COURSE_AUDIT_READ_DATABASE`` when it is set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import re
import zoneinfo
from functools import cache
from typing import Any
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from course_audit import (
    access_log,
    charts,
    exports,
    integrity,
    presentation,
    replay,
    selectors,
    services,
    tasks,
)
from course_audit.access_log import Scope, Surface, Target
from course_audit.conf import conf
from course_audit.diff import TRACKED_FIELDS, json_value
from course_audit.filters import AccessRecordFilterSet, CourseEventFilterSet
from course_audit.forms import AsOfForm
from course_audit.models import (
    AccessRecord,
    Account,
    Course,
    CourseEvent,
    ExportJob,
    PageView,
    Permission,
    SisBatch,
)
from course_audit.pagination import (
    Cursor,
    InvalidCursor,
    Partitions,
    Position,
    fetch_ordered,
    keyset_page,
)
from course_audit.querysets import SEARCH_MAX_LENGTH

PER_PAGE = 25
PER_PAGE_CHOICES = (10, 25, 50, 100)
CHART_FLOOR = dt.date(1901, 1, 1)
CHART_CEILING = dt.date(9998, 12, 30)
# The chart counts at most this many of the newest matching events (see ``_chart``).
CHART_MAX_EVENTS = 5000
# Events on the home page's recent activity.
RECENT_EVENTS = 20
# A background export's page reloads itself this often until the job finishes.
JOB_REFRESH_SECONDS = 3
ONE_DAY = dt.timedelta(days=1)
TIMEZONE_SESSION_KEY = "course_audit_timezone"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LIST_PARAMS = ("event_type", "event_source", "field")


# --- access --------------------------------------------------------------------------------


def _course(request: HttpRequest, course_id: int) -> Course:
    course = Course.objects.select_related("account").filter(pk=course_id).first()
    if course is None:
        raise Http404
    selectors.authorize_account(request, course.account)
    return course


def _account(request: HttpRequest, account_id: int) -> Account:
    account = Account.objects.filter(
        pk=account_id, workflow_state=Account.WorkflowState.ACTIVE
    ).first()
    if account is None:
        raise Http404
    selectors.authorize_account(request, account)
    return account


def _course_target(course: Course) -> Target:
    return Target(Scope.COURSE, course.pk, course.root_account_id)


def _account_target(account: Account) -> Target:
    return Target(Scope.ACCOUNT, account.pk, account.resolved_root_id)


def _account_scope(
    request: HttpRequest, account: Account
) -> tuple[QuerySet[CourseEvent], Partitions]:
    if not _include_subaccounts(request):
        return selectors.account_events([account.pk]), None
    account_ids = selectors.auditable_subtree(request, account)
    return selectors.account_events(account_ids), ("account_id", account_ids)


def _sis_batch(request: HttpRequest, batch_id: int) -> tuple[SisBatch, QuerySet[CourseEvent]]:
    batch = SisBatch.objects.select_related("root_account", "user").filter(pk=batch_id).first()
    if batch is None:
        raise Http404
    return batch, selectors.sis_batch_events(request, batch)


def _batch_target(batch: SisBatch) -> Target:
    return Target(Scope.SIS_BATCH, batch.pk, batch.root_account.resolved_root_id)


def _include_subaccounts(request: HttpRequest) -> bool:
    return request.GET.get("include_subaccounts", "") in {"1", "true", "on", "yes"}


# --- time zone -----------------------------------------------------------------------------


@cache
def _time_zones() -> list[str]:
    return sorted(
        name
        for name in zoneinfo.available_timezones()
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )


def _viewer_zone(request: HttpRequest) -> dt.tzinfo:
    name = request.session.get(TIMEZONE_SESSION_KEY)
    if name in _time_zones() or name == "UTC":
        return zoneinfo.ZoneInfo(name)
    return timezone.get_default_timezone()


@require_POST
def set_timezone(request: HttpRequest) -> HttpResponse:
    """Remember the viewer's time zone in the session (an empty value: the site's).

    Only a logged-in viewer's (the pages that offer the choice need a login): for anyone
    else it stores nothing, so an anonymous POST cannot make the site write a session row.
    """
    if request.user.is_authenticated:
        name = request.POST.get("timezone", "")
        if name in _time_zones() or name == "UTC":
            request.session[TIMEZONE_SESSION_KEY] = name
        else:
            request.session.pop(TIMEZONE_SESSION_KEY, None)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "course_audit:home"
    return redirect(target)


# --- filters and paging --------------------------------------------------------------------


def _filter_data(
    params: QueryDict,
    fields: tuple[str, ...] = ("start_time", "end_time", "user_id", "sis_batch_id"),
    lists: tuple[str, ...] = _LIST_PARAMS,
) -> dict[str, str]:
    """The page's GET form as the API's parameters: checkboxes become comma lists and an
    end date means the end of that day."""
    data = {key: params.get(key, "").strip() for key in fields}
    for key in lists:
        data[key] = ",".join(value for value in params.getlist(key) if value)
    if _DATE.match(data["end_time"]):
        data["end_time"] += "T23:59:59"
    return {key: value for key, value in data.items() if value}


def _filter_label(field: str) -> str:
    labels = {
        "start_time": _("From"),
        "end_time": _("To"),
        "user_id": _("User id"),
        "event_type": _("Event types"),
        "event_source": _("Sources"),
        "field": _("Changed fields"),
        "sis_batch_id": _("SIS import"),
        "who": _("Who"),
        "surface": _("Where"),
    }
    return labels.get(field, field)


def _filtered(
    request: HttpRequest, events: QuerySet[CourseEvent]
) -> tuple[CourseEventFilterSet, QuerySet[CourseEvent] | None]:
    filterset = CourseEventFilterSet(_filter_data(request.GET), queryset=events)
    if not filterset.is_valid():
        return filterset, None
    return filterset, filterset.qs


def _per_page(request: HttpRequest) -> int:
    """``per_page``, one of ``PER_PAGE_CHOICES``; anything else is the default."""
    raw = request.GET.get("per_page", "")
    return int(raw) if raw in {str(choice) for choice in PER_PAGE_CHOICES} else PER_PAGE


def _query(request: HttpRequest, **changes: str | None) -> str:
    params = request.GET.copy()
    for key, value in changes.items():
        params.pop(key, None)
        if value is not None:
            params[key] = value
    return params.urlencode()


def _position(request: HttpRequest, cursor: Cursor, param: str) -> Position | None:
    token = request.GET.get(param)
    return cursor.decode(token, param=param) if token else None


def _pick_person(request: HttpRequest, context: dict[str, Any]) -> HttpResponse | None:
    """The person picker, without JavaScript: the filter form's ``person`` text (part of a
    name or login) becomes ``user_id`` when one person the viewer may see matches (a
    redirect); several are offered as links; none is a filter error. The person filtered
    by (``user_id``) is named on the form."""
    grants = selectors.request_grants(request, Permission.VIEW_COURSE_CHANGES)
    user_id = request.GET.get("user_id", "").strip()
    if user_id:
        context["person_shown"] = selectors.person_seen(request.user, user_id, grants=grants)
    text = request.GET.get("person", "").replace("\x00", "").strip()
    if not text:
        return None
    if len(text) > SEARCH_MAX_LENGTH:
        context["person_error"] = _(
            "The person's name is too long (%(length)d characters; at most %(limit)d)."
        ) % {"length": len(text), "limit": SEARCH_MAX_LENGTH}
        return None
    matches = selectors.people_matching(request.user, text, grants=grants)
    if len(matches) == 1:
        return redirect(
            f"{request.path}?{_query(request, person=None, user_id=str(matches[0].pk))}"
        )
    if not matches:
        context["person_error"] = _("No one you may see caused events and matches “%(text)s”.") % {
            "text": text
        }
        return None
    context["person_matches"] = [
        (person, _query(request, person=None, user_id=str(person.pk), after=None, before=None))
        for person in matches
    ]
    return None


def _history(
    request: HttpRequest,
    events: QuerySet[CourseEvent],
    partitions: Partitions,
    context: dict[str, Any],
    target: Target,
) -> HttpResponse:
    if "person" not in context:  # a person's own page has no picker
        picked = _pick_person(request, context)
        if picked is not None:
            return picked
        context["without_person_query"] = _query(
            request, user_id=None, person=None, after=None, before=None
        )
    context["time_zones"] = _time_zones()
    context["event_types"] = CourseEvent.EventType.choices
    context["event_sources"] = CourseEvent.EventSource.choices
    context["selected_types"] = request.GET.getlist("event_type")
    context["selected_sources"] = request.GET.getlist("event_source")
    context["tracked_fields"] = [(name, presentation.field_label(name)) for name in TRACKED_FIELDS]
    # Checked whether they came as checkboxes or as the API's comma list.
    context["selected_fields"] = [
        name for value in request.GET.getlist("field") for name in value.split(",")
    ]
    filterset, filtered = _filtered(request, events)
    context["filter_errors"] = [
        (_filter_label(field), errors) for field, errors in filterset.errors.items()
    ]
    if "person_error" in context:
        context["filter_errors"].append((_("Person"), [context["person_error"]]))
        return render(request, "course_audit/history.html", context, status=400)
    if filtered is None:
        return render(request, "course_audit/history.html", context, status=400)
    cursor = Cursor(request.path.rstrip("/"))
    try:
        after = _position(request, cursor, "after")
        before = _position(request, cursor, "before")
    except InvalidCursor:
        context["page_error"] = _("This page link is out of date; start again from the newest.")
        return render(request, "course_audit/history.html", context, status=400)
    per_page = _per_page(request)
    partitions, branches = filterset.ranges(partitions)
    page = keyset_page(
        filtered,
        cursor,
        limit=per_page,
        after=after,
        before=before,
        partitions=partitions,
        branches=branches,
    )
    if target.per_tenant:
        access_log.record_per_tenant(
            request,
            surface=Surface.PAGE,
            scope=target.scope,
            scope_id=target.scope_id,
            tenants=(event.course.root_account_id for event in page.rows),
        )
    else:
        access_log.record(request, surface=Surface.PAGE, target=target, count=len(page.rows))
    context.update(
        per_page=per_page,
        per_page_choices=PER_PAGE_CHOICES,
        events=presentation.present_all(page.rows),
        seals=_seals(page.rows, filtered.db),
        older_query=_query(request, after=page.older, before=None) if page.older else None,
        newer_query=_query(request, before=page.newer, after=None) if page.newer else None,
        first_query=_query(request, after=None, before=None) if before or after else None,
        export_query=_query(request, after=None, before=None, format=None),
        chart=_chart(filterset, filtered, partitions),
    )
    return render(request, "course_audit/history.html", context)


def _seals(rows: list[CourseEvent], alias: str) -> integrity.Seals | None:
    """Which checkpoint seals each event of the page, in one query whatever the page's
    size; ``None`` (no seals shown) when sealing is not in use: no checkpoint, no key."""
    if not rows:
        return None
    seals = integrity.sealed_in((event.pk for event in rows), using=alias)
    return seals if seals.any or conf.SIGNING_KEY else None


@dataclasses.dataclass(frozen=True)
class Verification:
    """What the account page shows of ``integrity.verify_events``: a report (``None``
    when there was nothing to check against) and why not (``notes``)."""

    report: integrity.Report | None
    notes: list[str]
    # Each kind of problem found, translated, with how many events or checkpoints it concerns.
    counts: list[tuple[str, int]]
    # The first problems' messages (``integrity``'s, in English: they name ids and hashes).
    shown: list[str]
    hidden: int


# The account page lists at most this many problems' messages (all are counted).
SHOWN_PROBLEMS = 50


def _verify_account(events: QuerySet[CourseEvent], partitions: Partitions) -> Verification:
    """Check the newest ``integrity.PAGE_CHECK_EVENTS`` events of the page's scope against
    their checkpoints (``integrity.verify_events``), from the database the page reads."""
    notes: list[str] = []
    try:
        keys = integrity.trusted_keys()
    except ImproperlyConfigured:
        # Which file, and why, is the system check's to say (E012), not the page's.
        notes.append(
            _(
                "The signing or trusted keys cannot be read (the system check "
                "course_audit.E012 says why): nothing can be checked."
            )
        )
        return Verification(None, notes, [], [], 0)
    if not keys:
        notes.append(
            _(
                "No key is configured (COURSE_AUDIT_SIGNING_KEY or COURSE_AUDIT_TRUSTED_KEYS): "
                "no checkpoint's signature can be trusted."
            )
        )
    alias = events.db
    if integrity.latest_checkpoint(alias) is None:
        notes.append(_("No checkpoint has been made yet: no event is sealed, none can be checked."))
        return Verification(None, notes, [], [], 0)
    rows = [
        tuple(row[column] for column in integrity.SEALED_COLUMNS)
        for row in fetch_ordered(
            events, integrity.PAGE_CHECK_EVENTS, partitions, fields=integrity.SEALED_COLUMNS
        )
    ]
    report = integrity.verify_events(rows, using=alias, keys=keys)
    counts = [(str(integrity.PROBLEM_KINDS[kind]), n) for kind, n in report.counts().items()]
    shown = [problem.message for problem in report.problems[:SHOWN_PROBLEMS]]
    return Verification(report, notes, counts, shown, len(report.problems) - len(shown))


def _chart(
    filterset: CourseEventFilterSet, events: QuerySet[CourseEvent], partitions: Partitions
) -> charts.Chart:
    """The filtered range, per day or week, bounded in the work it costs.

    A bound the viewer did not set is the date of the newest (or oldest) matching event,
    so an old course's chart shows its history. Only the newest ``CHART_MAX_EVENTS`` are
    counted: when the range holds more, the chart starts on the first whole day they
    cover (and says so), so a subtree of millions of events costs what a course does. A
    range longer than ``charts.MAX_DAYS`` is drawn for its last ``MAX_DAYS`` days.

    One query answers all of it: the newest ``CHART_MAX_EVENTS + 1`` matching events
    counted per day and type (``selectors.newest_day_counts``). Their newest and oldest
    days are the range's ends; when the one beyond the cap is there, its day is left out.
    """
    zone = timezone.get_current_timezone()
    end_time = filterset.form.cleaned_data.get("end_time")
    start_time = filterset.form.cleaned_data.get("start_time")
    if end_time is not None:
        end = _chart_day(end_time, zone)
        window_end = dt.datetime.combine(end + ONE_DAY, dt.time(), tzinfo=zone)
        events = events.filter(created_at__lt=window_end)
    # A subtree's newest are read on the time index, where its events are dense; one
    # range's (a course's, an account's) changed fields each on its own index.
    fields = (filterset.form.cleaned_data.get("field") or ()) if partitions is None else ()
    counts = selectors.newest_day_counts(
        events, CHART_MAX_EVENTS + 1, tzinfo=zone, changed_fields=fields
    )
    days = sorted(counts)
    if end_time is None:
        end = _chart_day(days[-1] if days else timezone.now(), zone)
    capped = sum(sum(per_type.values()) for per_type in counts.values()) > CHART_MAX_EVENTS
    if capped:
        # The oldest day counted holds the event beyond the cap: the chart starts after it.
        wanted_start = min(days[0] + ONE_DAY, end)
    elif start_time is not None:
        wanted_start = min(_chart_day(start_time, zone), end)
    else:
        wanted_start = min(_chart_day(days[0], zone), end) if days else end
    start = max(wanted_start, end - dt.timedelta(days=charts.MAX_DAYS - 1))
    weekly = (end - start).days >= charts.DAILY_LIMIT
    if capped and days[0] >= end:
        # More than the cap on the last day itself: that day counted in full.
        window_start = dt.datetime.combine(start, dt.time(), tzinfo=zone)
        window_end = dt.datetime.combine(end + ONE_DAY, dt.time(), tzinfo=zone)
        buckets = selectors.event_counts(
            events.filter(created_at__gte=window_start, created_at__lt=window_end),
            weekly=weekly,
            tzinfo=zone,
        )
    else:
        buckets = {}
        for day in days:
            if start <= day <= end:
                bucket = day - dt.timedelta(days=day.weekday()) if weekly else day
                per_type = buckets.setdefault(bucket, {})
                for event_type, count in counts[day].items():
                    per_type[event_type] = per_type.get(event_type, 0) + count
    chart = charts.build_chart(buckets, start, end, weekly=weekly)
    return dataclasses.replace(
        chart, clipped=wanted_start < start, capped_at=CHART_MAX_EVENTS if capped else 0
    )


def _chart_day(moment: dt.datetime | dt.date, zone: dt.tzinfo) -> dt.date:
    """The viewer's day of ``moment``, clamped away from the ends of the calendar, where
    the day arithmetic overflows."""
    day = timezone.localtime(moment, zone).date() if isinstance(moment, dt.datetime) else moment
    return min(max(day, CHART_FLOOR), CHART_CEILING)


# --- pages ---------------------------------------------------------------------------------


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    # PostgreSQL refuses NUL in a string literal, and no stored name holds one.
    query = request.GET.get("q", "").replace("\x00", "").strip()
    # The viewer's grants, loaded once for the tree, the search and the recent activity.
    grants = selectors.request_grants(request, Permission.VIEW_COURSE_CHANGES)
    context: dict[str, Any] = {"tree": selectors.auditable_account_tree(request.user, grants)}
    if len(query) > SEARCH_MAX_LENGTH:
        context["search_error"] = _(
            "The search text is too long (%(length)d characters; at most %(limit)d)."
        ) % {"length": len(query), "limit": SEARCH_MAX_LENGTH}
        return render(request, "course_audit/home.html", context, status=400)
    context["query"] = query
    context["courses"] = (
        selectors.auditable_courses(request.user, query, grants=grants) if query else None
    )
    if query:
        return render(request, "course_audit/home.html", context)
    with timezone.override(_viewer_zone(request)):
        context["recent_days"] = _recent_activity(request, grants)
        context["recent_events"] = RECENT_EVENTS
        return render(request, "course_audit/home.html", context)


def _recent_activity(
    request: HttpRequest, grants: selectors.Grants
) -> list[tuple[dt.date, list[presentation.ShownEvent]]]:
    """The newest ``RECENT_EVENTS`` events the viewer may audit, grouped by day (the
    viewer's days, newest first): the account page's read with every auditable account."""
    scope = selectors.auditable_events(request.user, grants)
    if scope is None:
        return []
    events, partitions = scope
    rows = fetch_ordered(events, RECENT_EVENTS, partitions)
    if rows:
        access_log.record_per_tenant(
            request,
            surface=Surface.PAGE,
            scope=Scope.RECENT,
            scope_id=None,
            tenants=(event.course.root_account_id for event in rows),
        )
    shown = presentation.present_all(rows)
    zone = timezone.get_current_timezone()
    return [
        (day, list(items))
        for day, items in itertools.groupby(
            shown, key=lambda item: timezone.localtime(item["event"].created_at, zone).date()
        )
    ]


@require_GET
@login_required
def course_history(request: HttpRequest, course_id: int) -> HttpResponse:
    course = _course(request, course_id)
    with timezone.override(_viewer_zone(request)):
        return _history(
            request,
            selectors.course_events(course),
            None,
            {"course": course, "export_url_name": "course_audit:course_export", "subject": course},
            _course_target(course),
        )


@require_http_methods(["GET", "POST"])
@login_required
def account_history(request: HttpRequest, account_id: int) -> HttpResponse:
    """The account's history; a POST (the page's "Verify" button) also checks its newest
    events against the signed checkpoints and shows the result above the timeline."""
    account = _account(request, account_id)
    events, partitions = _account_scope(request, account)
    context: dict[str, Any] = {
        "account": account,
        "subject": account,
        "export_url_name": "course_audit:account_export",
        "include_subaccounts": _include_subaccounts(request),
        "show_course": True,
        "check_events": integrity.PAGE_CHECK_EVENTS,
        "check_checkpoints": integrity.PAGE_CHECK_CHECKPOINTS,
    }
    if request.method == "POST":
        context["verification"] = _verify_account(events, partitions)
    with timezone.override(_viewer_zone(request)):
        return _history(request, events, partitions, context, _account_target(account))


def _person_scope(
    request: HttpRequest, user_id: str
) -> tuple[selectors.Person, QuerySet[CourseEvent]]:
    """The person and the events they caused that the viewer may audit: 403 without any
    grant, 404 when the viewer may see no event of theirs (as for a course outside the
    viewer's tenant: the page does not say whether such a person exists)."""
    grants = selectors.request_grants(request, Permission.VIEW_COURSE_CHANGES)
    allowed = selectors.allowed_account_ids(request.user, Permission.VIEW_COURSE_CHANGES, grants)
    if allowed is not None and not allowed:
        raise PermissionDenied
    person = selectors.person_seen(request.user, user_id, grants=grants)
    if person is None:
        raise Http404
    return person, selectors.person_events(person.pk, allowed)


@require_GET
@login_required
def person_history(request: HttpRequest, user_id: str) -> HttpResponse:
    """Every event one person caused in the courses the viewer may audit."""
    person, events = _person_scope(request, user_id)
    context: dict[str, Any] = {
        "person": person,
        "subject": person,
        "show_course": True,
        "export_url_name": "course_audit:person_export",
    }
    target = Target(Scope.PERSON, person.pk, None, per_tenant=True)
    with timezone.override(_viewer_zone(request)):
        return _history(request, events, None, context, target)


@require_http_methods(["GET", "POST"])
@login_required
def person_export(request: HttpRequest, user_id: str) -> HttpResponseBase:
    person, events = _person_scope(request, user_id)
    # An export's rows do not carry their tenant: the viewer's, when they have one.
    roots = selectors.request_grants(request, Permission.VIEW_COURSE_CHANGES).roots
    root_id = next(iter(roots)) if len(roots) == 1 else None
    target = Target(Scope.PERSON, person.pk, root_id)
    scope = ExportScope(ExportJob.Scope.PERSON, person.pk, person.name)
    return _export(request, events, None, f"person-{person.pk}-history", scope, target)


@require_GET
@login_required
def sis_batch_history(request: HttpRequest, batch_id: int) -> HttpResponse:
    """A SIS import's changes, in the accounts the viewer may audit (the access rule on its
    root account: ``selectors.sis_batch_events``)."""
    batch, events = _sis_batch(request, batch_id)
    context: dict[str, Any] = {
        "batch": batch,
        "subject": batch,
        "export_url_name": "course_audit:sis_batch_export",
        "show_course": True,
    }
    with timezone.override(_viewer_zone(request)):
        return _history(request, events, None, context, _batch_target(batch))


@require_GET
@login_required
def page_view(request: HttpRequest, request_id: UUID) -> HttpResponse:
    view = PageView.objects.select_related("user", "account").filter(pk=request_id).first()
    if view is None:
        raise Http404
    account = view.account
    course = None
    if view.context_type == "Course" and view.context_id is not None:
        course = Course.objects.select_related("account").filter(pk=view.context_id).first()
        account = account or (course.account if course else None)
    if account is not None:
        selectors.authorize_account(request, account)
    elif not request.user.is_superuser:
        # A request that changed courses of several tenants names none of them (see the
        # middleware): it belongs to no tenant, and only a superuser sees every tenant.
        raise Http404
    events = []
    if course is not None:
        # The course's index serves this; the request id alone has none.
        events = presentation.present_all(
            list(selectors.course_events(course).filter(page_view_id=view.pk)[:100])
        )
    root_id = account.resolved_root_id if account is not None else None
    access_log.record(
        request,
        surface=Surface.PAGE,
        target=Target(Scope.REQUEST, view.pk, root_id),
        count=len(events),
    )
    with timezone.override(_viewer_zone(request)):
        return render(
            request,
            "course_audit/page_view.html",
            {"view": view, "course": course, "events": events, "time_zones": _time_zones()},
        )


_EVENT_TYPES = dict(CourseEvent.EventType.choices)


@dataclasses.dataclass(frozen=True)
class AsOfCell:
    """One field's value at one moment, as the as-of page shows it."""

    moment: dt.datetime
    setting: replay.Setting
    shown: SafeString  # the value's HTML
    link: str  # the event that set it, on the course's history page
    event_label: str  # its type, translated
    # The log records the course's creation after this moment: nothing to show.
    absent: bool = False


@dataclasses.dataclass(frozen=True)
class AsOfRow:
    name: str
    label: str
    cells: list[AsOfCell]
    differs: bool


def _event_link(course: Course, setting: replay.Setting) -> str:
    """The history page narrowed to the second of the event that set ``setting``, at it."""
    if setting.event is None:
        return ""
    second = json_value(setting.event.created_at)
    query = QueryDict(mutable=True)
    query.update({"start_time": second, "end_time": second})
    url = reverse("course_audit:course_history", args=[course.pk])
    return f"{url}?{query.urlencode()}#event-{setting.event.uuid}"


def _as_of_rows(course: Course, states: list[replay.CourseAsOf]) -> list[AsOfRow]:
    ids = {
        state.fields["account_id"].value
        for state in states
        if isinstance(state.fields["account_id"].value, int)
    }
    names = dict(Account.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    shown = [
        presentation.value_cells({n: s.value for n, s in state.fields.items()}, names)
        for state in states
    ]
    differing = replay.differences(*states) if len(states) == 2 else set()
    rows = []
    for name in states[0].settings:
        cells = []
        for state, values in zip(states, shown, strict=True):
            setting = state.settings[name]
            if name == "workflow_state":
                html = escape(Course.WorkflowState(setting.value).label if setting.known else "")
            else:
                html = values[name]
            event_type = setting.event.event_type if setting.event else ""
            cells.append(
                AsOfCell(
                    state.at,
                    setting,
                    html,
                    _event_link(course, setting),
                    str(_EVENT_TYPES.get(event_type, event_type)),
                    absent=state.existed is False,
                )
            )
        label = _("state") if name == "workflow_state" else presentation.field_label(name)
        rows.append(AsOfRow(name, label, cells, name in differing))
    return rows


@require_GET
@login_required
def course_as_of(request: HttpRequest, course_id: int) -> HttpResponse:
    """The course as its log replays it at a moment (``?at=``, now when left out), and
    beside it at another (``&compare=``), the fields that differ marked."""
    course = _course(request, course_id)
    with timezone.override(_viewer_zone(request)):
        form = AsOfForm(request.GET)
        context: dict[str, Any] = {"course": course, "form": form, "time_zones": _time_zones()}
        if not form.is_valid():
            context["form_errors"] = [
                (form.fields[field].label, errors) for field, errors in form.errors.items()
            ]
            return render(request, "course_audit/as_of.html", context, status=400)
        at = form.cleaned_data["at"] or timezone.now()
        compare = form.cleaned_data["compare"]
        moments = [at] if compare is None else [at, compare]
        states = selectors.course_as_of(course, moments)
        access_log.record(
            request,
            surface=Surface.PAGE,
            target=_course_target(course),
            count=access_log.events_shown(states),
        )
        context.update(
            at=at,
            compare=compare,
            states=states,
            rows=_as_of_rows(course, states),
            inputs={
                name: timezone.localtime(moment).replace(tzinfo=None).isoformat("T", "seconds")
                for name, moment in (("at", at), ("compare", compare))
                if moment is not None
            },
        )
        return render(request, "course_audit/as_of.html", context)


# --- exports -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportScope:
    """What an export reads, as a background job records it (``ExportJob``)."""

    kind: str
    object_id: Any
    name: str
    include_subaccounts: bool = False


def _export(
    request: HttpRequest,
    events: QuerySet[CourseEvent],
    partitions: Partitions,
    name: str,
    scope: ExportScope,
    target: Target,
) -> HttpResponseBase:
    """The filtered events as a file: streamed now, or, above
    ``COURSE_AUDIT_EXPORT_BACKGROUND_ROWS`` events, a page offering a background job (a
    GET changes nothing); its POST queues the job and leads to its page."""
    kind = request.GET.get("format", "csv")
    if kind not in ("csv", "jsonl"):
        return HttpResponse(
            _("Unknown export format; use csv or jsonl."), status=400, content_type="text/plain"
        )
    zone = _viewer_zone(request)
    with timezone.override(zone):
        filterset, filtered = _filtered(request, events)
    if filtered is None:
        lines = [f"{field}: {' '.join(errors)}" for field, errors in filterset.errors.items()]
        return HttpResponse("\n".join(lines), status=400, content_type="text/plain")
    if request.method == "POST":
        job = services.export_job_create(
            user=request.user,
            scope=scope.kind,
            scope_id=scope.object_id,
            subject_name=scope.name,
            include_subaccounts=scope.include_subaccounts,
            filters=_filter_data(request.GET),
            time_zone=str(zone),
            format=kind,
            request_id=getattr(request, "course_audit_request_id", None),
            client_addr=access_log.client_address(request),
        )
        return redirect("course_audit:export_job", job.pk)
    threshold = conf.EXPORT_BACKGROUND_ROWS
    if threshold is not None and _count_up_to(filtered, threshold + 1) > threshold:
        return render(
            request,
            "course_audit/export_background.html",
            {"threshold": threshold, "format": kind, "subject": name},
        )
    rows = exports.walk(filtered, *filterset.ranges(partitions))
    # The first chunk is read now, not once the 200 and its headers are out: a database
    # that is away then answers 503 (AuditContextMiddleware) instead of an empty file.
    rows = itertools.chain(list(itertools.islice(rows, 1)), rows)
    render_lines = exports.csv_lines if kind == "csv" else exports.jsonl_lines
    response = StreamingHttpResponse(
        # The access record is written when the stream ends (see ``access_log``).
        access_log.recorded_stream(
            request,
            rows,
            lambda counted: render_lines(counted, zone),
            surface=Surface.EXPORT,
            target=target,
        ),
        content_type="text/csv; charset=utf-8" if kind == "csv" else "application/x-ndjson",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    return response


def _count_up_to(events: QuerySet[CourseEvent], limit: int) -> int:
    """How many events match, counted up to ``limit`` only (a LIMIT subquery): a cheap
    bound whatever the scope's size."""
    return events.order_by().values("pk")[:limit].count()


@require_http_methods(["GET", "POST"])
@login_required
def course_export(request: HttpRequest, course_id: int) -> HttpResponseBase:
    course = _course(request, course_id)
    return _export(
        request,
        selectors.course_events(course),
        None,
        f"course-{course.pk}-history",
        ExportScope(ExportJob.Scope.COURSE, course.pk, course.name),
        _course_target(course),
    )


@require_http_methods(["GET", "POST"])
@login_required
def account_export(request: HttpRequest, account_id: int) -> HttpResponseBase:
    account = _account(request, account_id)
    events, partitions = _account_scope(request, account)
    scope = ExportScope(
        ExportJob.Scope.ACCOUNT, account.pk, account.name, _include_subaccounts(request)
    )
    return _export(
        request,
        events,
        partitions,
        f"account-{account.pk}-history",
        scope,
        _account_target(account),
    )


@require_http_methods(["GET", "POST"])
@login_required
def sis_batch_export(request: HttpRequest, batch_id: int) -> HttpResponseBase:
    batch, events = _sis_batch(request, batch_id)
    scope = ExportScope(ExportJob.Scope.SIS_BATCH, batch.pk, batch.filename or str(batch.pk))
    return _export(
        request, events, None, f"sis-batch-{batch.pk}-changes", scope, _batch_target(batch)
    )


# --- background exports --------------------------------------------------------------------
# A job is its requester's: anyone else (a superuser excepted) gets the 404 of a job that
# does not exist, even in the same tenant. Its file is served only while the requester may
# still see the scope (``selectors.export_job_events`` with their grants of now).


def _job(request: HttpRequest, job_id: int) -> ExportJob:
    job = selectors.export_jobs_of(request.user).filter(pk=job_id).first()
    if job is None:
        raise Http404
    return job


def _downloadable(job: ExportJob) -> Target:
    """404 unless the job's file is there and its requester may still see its scope; what
    the file holds, for its access record."""
    if job.state != ExportJob.State.DONE or not job.file_name:
        raise Http404
    grants = selectors.load_grants(job.requested_by, Permission.VIEW_COURSE_CHANGES)
    root_id = selectors.export_job_events(job, grants).root_account_id
    return Target(Scope(job.scope), job.scope_id, root_id)


@require_GET
@login_required
def export_jobs(request: HttpRequest) -> HttpResponse:
    """The viewer's background exports, newest first."""
    jobs = list(selectors.export_jobs_of(request.user)[:100])
    with timezone.override(_viewer_zone(request)):
        return render(request, "course_audit/export_jobs.html", {"jobs": jobs})


@require_GET
@login_required
def export_job(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's progress (the page refreshes itself, without JavaScript, until it finishes),
    its cancel button, and once done its download and manifest."""
    job = _job(request, job_id)
    context: dict[str, Any] = {"job": job, "refresh_seconds": JOB_REFRESH_SECONDS}
    if job.state == ExportJob.State.DONE:
        context["manifest"] = json.dumps(tasks.manifest(job), cls=DjangoJSONEncoder, indent=2)
    with timezone.override(_viewer_zone(request)):
        return render(request, "course_audit/export_job.html", context)


@require_POST
@login_required
def export_job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job(request, job_id)
    services.export_job_cancel(job=job)
    return redirect("course_audit:export_job", job.pk)


@require_GET
@login_required
def export_job_download(request: HttpRequest, job_id: int) -> HttpResponseBase:
    job = _job(request, job_id)
    target = _downloadable(job)
    try:
        handle = tasks.open_file(job)
    except OSError as error:
        raise Http404 from error
    # Written before the file goes: a download that cannot be recorded is a 503.
    try:
        access_log.record(
            request,
            surface=Surface.EXPORT,
            target=target,
            count=job.rows_written,
            filters=access_log.job_filters(job),
        )
    except DatabaseError:
        handle.close()
        raise
    content_type = "text/csv; charset=utf-8" if job.format == "csv" else "application/x-ndjson"
    return FileResponse(
        handle, as_attachment=True, filename=tasks.download_name(job), content_type=content_type
    )


@require_GET
@login_required
def export_job_manifest(request: HttpRequest, job_id: int) -> HttpResponseBase:
    job = _job(request, job_id)
    _downloadable(job)
    response = HttpResponse(tasks.manifest_bytes(job), content_type="application/json")
    name = f"{tasks.download_name(job)}.manifest.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- the access log ------------------------------------------------------------------------


@require_GET
@login_required
def access_log_page(request: HttpRequest, account_id: int) -> HttpResponse:
    """Who read a tenant's audit data: its access records, newest first, filtered by who,
    where and when. For the tenant's root admins (a grant with ``view_course_changes`` on
    the root account) and superusers; the access rule answers anyone else (404 outside the
    tenant, 403 inside it). Reading it is recorded too."""
    root = Account.objects.filter(pk=account_id, parent__isnull=True).first()
    if root is None:
        raise Http404
    selectors.authorize_account(request, root)
    context: dict[str, Any] = {
        "account": root,
        "time_zones": _time_zones(),
        "surfaces": AccessRecord.Surface.choices,
        "selected_surfaces": request.GET.getlist("surface"),
        "per_page_choices": PER_PAGE_CHOICES,
    }
    with timezone.override(_viewer_zone(request)):
        data = _filter_data(request.GET, ("start_time", "end_time", "who"), ("surface",))
        filterset = AccessRecordFilterSet(data, queryset=selectors.access_records(root))
        valid = filterset.is_valid()
        context["filter_errors"] = [
            (_filter_label(field), errors) for field, errors in filterset.errors.items()
        ]
        if not valid:
            return render(request, "course_audit/access_log.html", context, status=400)
        cursor = Cursor(request.path.rstrip("/"))
        try:
            after = _position(request, cursor, "after")
            before = _position(request, cursor, "before")
        except InvalidCursor:
            context["page_error"] = _("This page link is out of date; start again from the newest.")
            return render(request, "course_audit/access_log.html", context, status=400)
        per_page = _per_page(request)
        page = keyset_page(filterset.qs, cursor, limit=per_page, after=after, before=before)
        access_log.record(
            request,
            surface=Surface.PAGE,
            target=Target(Scope.ACCESS_LOG, root.pk, root.pk),
            count=len(page.rows),
        )
        context.update(
            per_page=per_page,
            records=[_present_record(record) for record in page.rows],
            older_query=_query(request, after=page.older, before=None) if page.older else None,
            newer_query=_query(request, before=page.newer, after=None) if page.newer else None,
            first_query=_query(request, after=None, before=None) if before or after else None,
        )
        return render(request, "course_audit/access_log.html", context)


_SCOPE_PAGES = {
    AccessRecord.Scope.COURSE.value: "course_audit:course_history",
    AccessRecord.Scope.ACCOUNT.value: "course_audit:account_history",
    AccessRecord.Scope.REQUEST.value: "course_audit:page_view",
}


def _present_record(record: AccessRecord) -> dict[str, Any]:
    """A record as the page shows it: its filters as pairs (in a template,
    ``filters.items`` of a query string with a parameter named "items" is that parameter)
    and the page of its scope, if any."""
    url_name = _SCOPE_PAGES.get(record.scope)
    scope_url = None
    if url_name is not None and record.scope_id:
        try:
            scope_url = reverse(url_name, args=[record.scope_id])
        except NoReverseMatch:
            scope_url = None
    filters = record.filters if isinstance(record.filters, dict) else {}
    return {
        "record": record,
        "filters": [
            (key, ", ".join(map(str, value)) if isinstance(value, list) else value)
            for key, value in filters.items()
        ],
        "scope_url": scope_url,
    }
