"""The Django admin for course_audit.

Course events are read-only for everyone, and their changelist is built for a table of
millions (see ``CourseEventAdmin``); they, and a course page's recent changes, are read
from ``COURSE_AUDIT_READ_DATABASE`` when the site sets one, everything else from the
primary. Courses are never hard-deleted: deleting one in the admin is a soft delete
through the service, recorded like any other change. API tokens are issued here (the
plaintext is shown once) and revoked, never shown again.

Staff who are not superusers see and change only their tenants' rows (``TenantAdmin``):
Django's model permissions say which models, the app's grants say which rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import DatabaseError, connections
from django.db.models import ForeignKey, Q, QuerySet
from django.forms import ModelChoiceField
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from course_audit import access_log, presentation, services
from course_audit.access_log import Scope, Surface, Target
from course_audit.middleware import service_unavailable
from course_audit.models import (
    AccessRecord,
    Account,
    AccountMembership,
    ApiToken,
    Checkpoint,
    Course,
    CourseEvent,
    ExportJob,
    LegalHold,
    PageView,
    PruneNote,
    Role,
    RoleOverride,
    SisBatch,
)
from course_audit.pagination import Cursor, InvalidCursor, Position, keyset_page
from course_audit.querysets import SEARCH_MAX_LENGTH
from course_audit.selectors import (
    Access,
    account_access,
    for_reading,
    in_tenants,
    tenant_roots,
    tenant_users,
)


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a big table exactly.

    The whole table (an unfiltered queryset) is counted from PostgreSQL's planner estimate,
    ``pg_class.reltuples``, kept fresh by autovacuum; anything else, and every table on
    other databases, is counted up to ``count_limit`` rows, shown as "10,000+" beyond: the
    count stops at the ``count_limit + 1``-th matching row instead of reading them all.
    Pages past the bound are not offered; a narrower filter or search reaches them.
    """

    count_limit = 10_000
    count_is_estimate = False
    count_is_truncated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and _is_whole_table(queryset):
            estimate = _estimated_rows(queryset)
            if estimate is not None and estimate > self.count_limit:
                self.count_is_estimate = True
                return estimate
        if not isinstance(queryset, QuerySet):
            return super().count
        bounded = queryset.order_by()[: self.count_limit + 1].count()
        self.count_is_truncated = bounded > self.count_limit
        return bounded

    @property
    def count_label(self) -> str:
        """The count as the changelist shows it: "about 1,500,000", "10,000+" or "42"."""
        count = self.count
        if self.count_is_estimate:
            return gettext("about %(count)s") % {"count": f"{count:,}"}
        if self.count_is_truncated:
            return f"{self.count_limit:,}+"
        return f"{count:,}"


def _is_whole_table(queryset: QuerySet[Any]) -> bool:
    query = queryset.query
    return (
        not query.where
        and not query.distinct
        and not query.combinator
        and query.low_mark == 0
        and query.high_mark is None
    )


def _estimated_rows(queryset: QuerySet[Any]) -> int | None:
    """PostgreSQL's row estimate for the queryset's table (summed over its partitions,
    should it be partitioned); None elsewhere or if the table was never analysed."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            # A partitioned table's own figure is set only by a manual ANALYZE (which
            # also sets its partitions'): add up the partitions' alone.
            "SELECT sum(reltuples) FILTER (WHERE reltuples >= 0 AND relkind <> 'p')"
            " FROM pg_class"
            " WHERE oid = to_regclass(%s)"
            " OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%s))",
            [connection.ops.quote_name(queryset.model._meta.db_table)] * 2,
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _admin_link(model: Any, pk: Any, label: Any) -> SafeString | str:
    if pk is None:
        return "—"
    opts = model._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    except NoReverseMatch:  # a model the host does not show in the admin (its user model)
        return format_html("{}", label)
    return format_html('<a href="{}">{}</a>', url, label)


# Where ``note_history_url`` keeps a course's history link for the request's viewer.
HISTORY_URL_ATTRIBUTE = "_course_audit_history_url"


def course_history_url(course_id: int) -> str | None:
    """The course history page, if the host serves it."""
    try:
        return reverse("course_audit:course_history", kwargs={"course_id": course_id})
    except NoReverseMatch:
        return None


def note_history_url(request: HttpRequest, course: Course | None) -> None:
    """Note on ``course`` the link to its history page for this viewer: None when the host
    does not serve the page or the page would answer the viewer 404 or 403 (its access rule,
    ``selectors.account_access``). The change pages note it when they load their object, as
    the admin's display methods are given the object, not the request."""
    if course is None:
        return
    url = course_history_url(course.pk)
    if url is not None:
        # From the primary, as the page reads it: it decides access.
        account = Account.objects.filter(pk=course.account_id).first()
        if account is None or account_access(request, account) is not Access.ALLOWED:
            url = None
    setattr(course, HISTORY_URL_ATTRIBUTE, url)


def _history_url(course: Course) -> str | None:
    return getattr(course, HISTORY_URL_ATTRIBUTE, None)


def course_events_url(course_id: int) -> str:
    """The course event changelist filtered to one course (served by its index)."""
    return f"{reverse('admin:course_audit_courseevent_changelist')}?course__id__exact={course_id}"


class ScopedRawIdWidget(ForeignKeyRawIdWidget):
    """A raw id input that names only a row of its field's choices: Django's names any
    row whose id is typed in, which would tell another tenant's names."""

    def __init__(self, *args: Any, queryset: QuerySet[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queryset = queryset

    def label_and_url_for_value(self, value: Any) -> tuple[str, str]:
        key = self.rel.get_related_field().name
        try:
            among_choices = self.queryset.filter(**{key: value}).exists()
        except (ValueError, ValidationError):
            return "", ""
        return super().label_and_url_for_value(value) if among_choices else ("", "")


class TenantAdmin(admin.ModelAdmin):
    """Shows a user who is not a superuser only the rows of their tenants: the root
    accounts where they hold a grant (``selectors.tenant_roots``, the pages' not-found rule).

    Everything the admin shows of a model reads ``get_queryset``: the changelist, its search
    and actions, the autocomplete of the foreign keys to it, and the object pages, so
    another tenant's row is a 404 there, as a missing one is, as on the pages. The choices
    of a foreign key to another such model (autocomplete, raw id or select) are its rows of
    the user's tenants too. Superusers see everything.

    A model says where its tenant is: ``tenant_field``, the path to its root account
    (``"course__root_account"``), or ``tenant_account_field``, the path to an account
    anywhere in the tenant (``"account"``); or it overrides ``tenant_q``. A model that says
    neither belongs to no tenant: only superusers see its rows.
    """

    tenant_field: str | None = None
    tenant_account_field: str | None = None

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        """The rows of the root accounts ``roots``."""
        if self.tenant_field is not None:
            return Q(**{f"{self.tenant_field}__in": roots})
        if self.tenant_account_field is not None:
            return in_tenants(roots, self.tenant_account_field)
        return Q(pk__in=[])

    def scope(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """``queryset``'s rows that the request's user may see here."""
        roots = tenant_roots(request)
        return queryset if roots is None else queryset.filter(self.tenant_q(request, roots))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.scope(request, super().get_queryset(request))

    def scope_other(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """``queryset`` (of another model) as its own admin scopes it for the request's
        user; users, those of the user's tenants alone (``selectors.tenant_users``)."""
        roots = tenant_roots(request)
        if roots is None:
            return queryset
        if queryset.model is get_user_model():
            return queryset.filter(pk__in=tenant_users(roots))
        try:
            other_admin = self.admin_site.get_model_admin(queryset.model)
        except NotRegistered:
            return queryset.none()  # nothing says whose its rows are
        if isinstance(other_admin, TenantAdmin):
            return other_admin.scope(request, queryset)
        return queryset

    def get_field_queryset(
        self, db: str | None, db_field: Any, request: HttpRequest
    ) -> QuerySet[Any] | None:
        queryset = super().get_field_queryset(db, db_field, request)
        if tenant_roots(request) is None:
            return queryset
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db)
        return self.scope_other(request, queryset)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        using = kwargs.get("using")
        if db_field.name in self.raw_id_fields and "widget" not in kwargs:
            queryset = kwargs.get("queryset")
            if queryset is None:
                queryset = self.get_field_queryset(using, db_field, request)
            if queryset is not None:
                kwargs["queryset"] = queryset
                kwargs["widget"] = ScopedRawIdWidget(
                    db_field.remote_field, self.admin_site, queryset=queryset, using=using
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        # Django redirects to the index, saying the id does not exist; another tenant's
        # row answers the same, and both are the pages' 404.
        raise Http404


class ReadOnlyAdmin(TenantAdmin):
    """Rows that are records of what happened: nobody adds, changes or deletes them here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(TenantAdmin):
    list_display = ("name", "sis_account_id", "parent", "root_account", "workflow_state")
    list_filter = ("workflow_state",)
    search_fields = ("name", "sis_account_id")
    list_select_related = ("parent", "root_account")
    autocomplete_fields = ("parent",)

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        return in_tenants(roots)

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        # A root account is a tenant: where it sits is the operators' to decide.
        if obj is not None and obj.is_root and not request.user.is_superuser:
            return (*fields, "parent")
        return fields

    def get_form(
        self, request: HttpRequest, obj: Account | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        # Nor is a new root account (a new tenant) a tenant's to make.
        if "parent" in form.base_fields and not request.user.is_superuser:
            form.base_fields["parent"].required = True
        return form


@admin.register(Role)
class RoleAdmin(TenantAdmin):
    """A tenant's own roles, and the shared ones (no root account), which every tenant sees
    and only superusers change: they hold in every tenant."""

    list_display = ("name", "root_account", "view_course_changes", "manage_courses")
    list_select_related = ("root_account",)

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        return Q(root_account__in=roots) | Q(root_account__isnull=True)

    def has_change_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        shared = obj is not None and obj.root_account_id is None
        if shared and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Role | None = None) -> bool:
        shared = obj is not None and obj.root_account_id is None
        if shared and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "root_account":
            roots = Account.objects.filter(parent__isnull=True)
            kwargs["queryset"] = self.scope_other(request, roots)
            if not request.user.is_superuser:
                kwargs["required"] = True  # a shared role is the operators' to make
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(AccountMembership)
class AccountMembershipAdmin(TenantAdmin):
    tenant_account_field = "account"
    list_display = ("user", "account", "role", "workflow_state", "created_at")
    # Only the roles the listed memberships hold: the others may be another tenant's.
    list_filter = ("workflow_state", ("role", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "account", "role")
    autocomplete_fields = ("account",)
    raw_id_fields = ("user",)

    def get_readonly_fields(
        self, request: HttpRequest, obj: AccountMembership | None = None
    ) -> Any:
        fields = super().get_readonly_fields(request, obj)
        # Who holds a membership is fixed once made (revoke it, grant another): the user's
        # choices are the tenant's own users, and may not hold one who is also elsewhere.
        if obj is not None and not request.user.is_superuser:
            return (*fields, "user")
        return fields


@admin.register(RoleOverride)
class RoleOverrideAdmin(TenantAdmin):
    tenant_account_field = "account"
    list_display = ("role", "permission", "enabled", "account")
    list_select_related = ("role", "account")
    autocomplete_fields = ("account",)


@admin.register(Course)
class CourseAdmin(TenantAdmin):
    tenant_field = "root_account"
    list_display = (
        "name",
        "course_code",
        "sis_course_id",
        "account",
        "workflow_state",
        "updated_at",
    )
    list_filter = ("workflow_state", "is_public")
    search_fields = ("name", "course_code", "sis_course_id")
    list_select_related = ("account",)
    autocomplete_fields = ("account",)
    readonly_fields = ("uuid", "root_account", "created_at", "updated_at", "recent_events")
    actions = ("soft_delete",)
    # Recent events shown on the change page; the rest are a link away.
    recent_events_shown = 10

    @admin.display(description=_("recent changes"))
    def recent_events(self, course: Course) -> SafeString | str:
        if course.pk is None:
            return "—"
        recent = CourseEvent.objects.filter(course=course).order_by("-created_at", "-id")
        events = list(for_reading(recent)[: self.recent_events_shown])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _admin_link(CourseEvent, event.pk, f"{event.created_at:%Y-%m-%d %H:%M:%S}"),
                    event.get_event_type_display(),
                    event.get_event_source_display(),
                    event.user_name or "—",
                )
                for event in events
            ),
        )
        links = [format_html('<a href="{}">{}</a>', course_events_url(course.pk), _("all events"))]
        history = _history_url(course)
        if history is not None:
            links.append(format_html('<a href="{}">{}</a>', history, _("history page")))
        return format_html(
            "<table>{}</table><p>{}</p>",
            rows,
            format_html_join(" · ", "{}", ((link,) for link in links)),
        )

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Course | None:
        course = super().get_object(request, object_id, from_field)
        note_history_url(request, course)
        return course

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(
        description=_("Delete selected courses (soft delete, recorded)"), permissions=["change"]
    )
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Course]) -> None:
        count = 0
        for course in queryset:
            services.course_delete(course=course, user=request.user)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d course deleted.", "%(count)d courses deleted.", count)
            % {"count": count},
            messages.SUCCESS,
        )


class KeysetChangeList(ChangeList):
    """A changelist paged by position, not by page number.

    "Older" and "Newer" links carry a signed (created_at, id) position, so the millionth
    page is one index range read like the first (``WHERE (created_at, id) < (t, i) ORDER
    BY created_at DESC, id DESC LIMIT n + 1``), where page numbers would be an OFFSET over
    everything before them. The count shown is the paginator's (estimated or bounded).
    """

    AFTER_VAR = "after"
    BEFORE_VAR = "before"
    cursor_error = False

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        # The positions are not lookups: keep them out of the filters and of every link
        # the changelist builds (a new filter or search starts again from the newest).
        params = request.GET.copy()
        self.after_token = params.pop(self.AFTER_VAR, [""])[-1]
        self.before_token = params.pop(self.BEFORE_VAR, [""])[-1]
        params._mutable = False
        request.GET = params  # type: ignore[assignment]
        self.cursor = Cursor(f"admin:{request.path.rstrip('/')}")
        super().__init__(request, *args, **kwargs)

    def _position(self, token: str, param: str) -> Position | None:
        if not token:
            return None
        try:
            return self.cursor.decode(token, param=param)
        except InvalidCursor:
            self.cursor_error = True  # an out-of-date link: start again from the newest
            return None

    def get_results(self, request: HttpRequest) -> None:
        paginator = self.model_admin.get_paginator(request, self.queryset, self.list_per_page)
        after = self._position(self.after_token, self.AFTER_VAR)
        before = self._position(self.before_token, self.BEFORE_VAR) if after is None else None
        page = keyset_page(
            self.queryset, self.cursor, limit=self.list_per_page, after=after, before=before
        )
        self.older_query = (
            self.get_query_string({self.AFTER_VAR: page.older}) if page.older else None
        )
        self.newer_query = (
            self.get_query_string({self.BEFORE_VAR: page.newer}) if page.newer else None
        )
        self.newest_query = (
            self.get_query_string() if after is not None or before is not None else None
        )
        self.result_list = page.rows
        self.paginator = paginator
        self.result_count = paginator.count
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = self.older_query is not None or self.newer_query is not None


class RecordedReadsMixin(admin.ModelAdmin):
    """Writes the access records of the changelist and the object pages of audit data
    (``course_audit.access_log``): the list, one per tenant whose rows it shows; an object's
    page, one. A record that cannot be written refuses the page (503)."""

    list_access_scope: str
    object_access_scope: str

    def access_tenant(self, obj: Any) -> int | None:
        """The root account whose data ``obj`` is."""
        raise NotImplementedError

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = _context(response).get("cl")
        if changelist is None:  # a redirect, or the page of an out-of-date filter
            return response
        try:
            access_log.record_per_tenant(
                request,
                surface=Surface.ADMIN,
                scope=self.list_access_scope,
                scope_id=None,
                tenants=(self.access_tenant(obj) for obj in changelist.result_list),
            )
        except DatabaseError:
            return service_unavailable()
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        obj = _context(response).get("original")
        if obj is None or response.status_code != 200:
            return response
        target = Target(self.object_access_scope, obj.pk, self.access_tenant(obj))
        try:
            access_log.record(request, surface=Surface.ADMIN, target=target, count=1)
        except DatabaseError:
            return service_unavailable()
        return response


@admin.register(CourseEvent)
class CourseEventAdmin(RecordedReadsMixin, ReadOnlyAdmin):
    """Stays fast on a table of millions: no exact count, an index behind the ordering and
    each filter, and search that finds the courses and actors first."""

    tenant_field = "course__root_account"
    list_access_scope = Scope.EVENTS
    object_access_scope = Scope.EVENT

    list_display = ("created_at", "event_type", "event_source", "course", "user_name")
    list_filter = ("event_type", "event_source")
    list_select_related = ("course",)
    # Shown in the search box's help; the matching is get_search_results'.
    search_fields = ("course__name", "course__course_code", "course__sis_course_id", "user_name")
    search_help_text = _("Course name, code or SIS id, or the actor's user name.")
    ordering = ("-created_at", "-id")
    # Sorting by any other column, or facet counts, would read the whole table.
    sortable_by = ()
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Matching courses or users beyond this many are ignored: refine the search.
    search_match_limit = 200
    fieldsets = (
        (None, {"fields": ("uuid", "created_at", "event_type", "event_source")}),
        (_("Change"), {"fields": ("diff",)}),
        (_("Courses"), {"fields": ("course_link", "related_course_link", "account_link")}),
        (
            _("Attribution"),
            {
                "fields": (
                    "actor",
                    "sis_batch_link",
                    "page_view_link",
                    "db_role",
                    "db_application",
                    "db_client_addr",
                )
            },
        ),
    )
    readonly_fields = (
        "diff",
        "course_link",
        "related_course_link",
        "account_link",
        "actor",
        "sis_batch_link",
        "page_view_link",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[CourseEvent]:
        return for_reading(super().get_queryset(request).select_related("course"))

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> CourseEvent | None:
        event = super().get_object(request, object_id, from_field)
        if event is not None:
            note_history_url(request, event.course)
            note_history_url(request, event.related_course)
        return event

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeysetChangeList

    def access_tenant(self, obj: CourseEvent) -> int | None:
        return obj.course.root_account_id

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[CourseEvent], search_term: str
    ) -> tuple[QuerySet[CourseEvent], bool]:
        """Find the matching courses and users first (small tables), then their events
        through the (course, created_at, id) and user indexes: a LIKE joined over every
        event would read the whole table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if len(term) > SEARCH_MAX_LENGTH:  # matches no course, and no user name either
            return queryset.none(), False
        limit = self.search_match_limit
        # The viewer's own courses: another tenant's would only fill the limit.
        course_ids = list(
            for_reading(self.scope_other(request, Course.objects.matching(term)))
            .order_by()
            .values_list("pk", flat=True)[:limit]
        )
        user_model = get_user_model()
        user_ids = list(
            for_reading(user_model._default_manager.all())
            .filter(**{f"{user_model.USERNAME_FIELD}__icontains": term})
            .order_by()
            .values_list("pk", flat=True)[:limit]
        )
        return queryset.filter(Q(course_id__in=course_ids) | Q(user_id__in=user_ids)), False

    @admin.display(description=_("change"))
    def diff(self, event: CourseEvent) -> SafeString | str:
        shown = presentation.present_all([event])[0]
        if not shown["diff"]:
            return "—"
        return presentation.diff_table(shown["diff"])

    @admin.display(description=_("course"))
    def course_link(self, event: CourseEvent) -> SafeString | str:
        return _course_links(event.course)

    @admin.display(description=_("other course"))
    def related_course_link(self, event: CourseEvent) -> SafeString | str:
        return _course_links(event.related_course)

    @admin.display(description=_("account at the time"))
    def account_link(self, event: CourseEvent) -> SafeString | str:
        return _admin_link(Account, event.account_id, event.account)

    @admin.display(description=_("user"))
    def actor(self, event: CourseEvent) -> SafeString | str:
        if event.user_id is None and event.db_role:
            return presentation.outside_app(event)
        if event.user_id is None:
            return event.user_name or "—"
        return _admin_link(get_user_model(), event.user_id, event.user_name or event.user_id)

    @admin.display(description=_("SIS batch"))
    def sis_batch_link(self, event: CourseEvent) -> SafeString | str:
        return _admin_link(SisBatch, event.sis_batch_id, event.sis_batch)

    @admin.display(description=_("page view"))
    def page_view_link(self, event: CourseEvent) -> SafeString | str:
        if event.page_view_id is None:
            return "—"
        # No constraint: the page view may not have been written (or was pruned).
        page_view = for_reading(PageView.objects.filter(pk=event.page_view_id)).first()
        label = str(page_view) if page_view is not None else str(event.page_view_id)
        return _admin_link(PageView, event.page_view_id, label)


def _context(response: HttpResponse) -> dict[str, Any]:
    """What an admin view's template is rendered with (nothing for a redirect)."""
    if isinstance(response, TemplateResponse) and response.context_data is not None:
        return dict(response.context_data)
    return {}


def _course_links(course: Course | None) -> SafeString | str:
    if course is None:
        return "—"
    admin_link = _admin_link(
        Course, course.pk, f"{course.name} ({course.sis_course_id or course.course_code})"
    )
    history = _history_url(course)
    if history is None:
        return admin_link
    return format_html('{} · <a href="{}">{}</a>', admin_link, history, gettext("history"))


@admin.register(SisBatch)
class SisBatchAdmin(ReadOnlyAdmin):
    tenant_field = "root_account"
    list_display = (
        "id",
        "root_account",
        "filename",
        "workflow_state",
        "rows_applied",
        "rows_skipped",
        "created_at",
    )
    list_filter = ("workflow_state",)
    list_select_related = ("root_account",)
    exclude = ("messages",)
    readonly_fields = ("message_list",)

    @admin.display(description=_("messages"))
    def message_list(self, batch: SisBatch) -> SafeString | str:
        if not batch.messages:
            return "—"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((m,) for m in batch.messages))
        )


@admin.register(PageView)
class PageViewAdmin(ReadOnlyAdmin):
    # A request that changed several tenants' courses names no account: a superuser's only.
    tenant_account_field = "account"
    list_display = ("created_at", "http_method", "url", "user", "render_time")
    list_filter = ("http_method",)
    list_select_related = ("user",)
    # Only the primary key: a LIKE on url would read the whole table.
    search_fields = ("=request_id",)
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = EstimatedCountPaginator


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    """The signed checkpoints (``course_audit.integrity``): read-only, like the events. They
    seal every tenant's events together, so they belong to no tenant: superusers' only."""

    list_display = ("sequence", "created_at", "count", "first_id", "last_id", "key_id", "root")
    # The sealed list can be megabytes: the change page shows the signed fields only.
    exclude = ("leaves",)
    show_facets = admin.ShowFacets.NEVER


@admin.register(PruneNote)
class PruneNoteAdmin(ReadOnlyAdmin):
    """What retention dropped, and where its sealed archive is (``course_audit.archives``).
    A month of every tenant's events: superusers' only, as the checkpoints."""

    list_display = ("partition", "month", "count", "archive", "created_at", "key_id")
    show_facets = admin.ShowFacets.NEVER


@admin.register(LegalHold)
class LegalHoldAdmin(TenantAdmin):
    """Legal holds: placed here or with ``course_audit_hold``; released by the action, never
    deleted, so who held what, when and why stays on record. A hold is its course's or its
    account's tenant's."""

    list_display = ("__str__", "reason", "created_at", "created_by", "released_at", "released_by")
    list_filter = (("released_at", admin.EmptyFieldListFilter),)
    list_select_related = ("course", "account", "created_by", "released_by")
    autocomplete_fields = ("course", "account")
    actions = ("release",)

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        return Q(course__root_account__in=roots) | in_tenants(roots, "account")

    def get_fields(self, request: HttpRequest, obj: LegalHold | None = None) -> Any:
        if obj is None:
            return ("course", "account", "reason")
        return (
            "course",
            "account",
            "reason",
            "created_at",
            "created_by",
            "released_at",
            "released_by",
        )

    def get_readonly_fields(self, request: HttpRequest, obj: LegalHold | None = None) -> Any:
        if obj is None:
            return ()
        # A hold is a record: what it holds and why do not change; releasing is the action's.
        return self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: LegalHold, form: Any, change: bool) -> None:
        if change:
            return
        placed = services.legal_hold_place(
            course=obj.course, account=obj.account, reason=obj.reason, user=request.user
        )
        obj.pk = placed.pk
        obj.refresh_from_db()

    @admin.action(description=_("Release selected legal holds"), permissions=["change"])
    def release(self, request: HttpRequest, queryset: QuerySet[LegalHold]) -> None:
        released = 0
        for hold in queryset.filter(released_at__isnull=True):
            services.legal_hold_release(hold=hold, user=request.user)
            released += 1
        self.message_user(
            request,
            ngettext("%(count)d legal hold released.", "%(count)d legal holds released.", released)
            % {"count": released},
            messages.SUCCESS,
        )


@admin.register(ApiToken)
class ApiTokenAdmin(TenantAdmin):
    """Tokens are issued and revoked here. Outside superusers, only those of users who
    belong to the viewer's tenants alone (``selectors.tenant_users``), and only to them:
    a token of anyone else would read another tenant's data."""

    list_display = (
        "user",
        "name",
        "hint",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = ("revoke",)

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        return Q(user__in=tenant_users(roots))

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None:
            return ("user", "name", "expires_at")
        return ("user", "name", "hint", "created_at", "expires_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        if obj is None:
            return ()
        # Revoking is the action's job; a revoked token is never brought back.
        return ("user", "hint", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued, plaintext = ApiToken.issue(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk = issued.pk
        obj.refresh_from_db()
        # The plaintext is not kept: it goes through the message storage (session or signed
        # cookie) to the next page only, and is gone once that page has shown it.
        self.message_user(
            request,
            format_html(
                gettext(
                    # Translators: {token} is the token itself; keep it as it is.
                    "The new token is {token}. Copy it now: it is stored hashed and cannot be "
                    "shown again."
                ),
                token=format_html("<code>{}</code>", plaintext),
            ),
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request,
            ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    """Background exports, read-only: a job is its requester's, so outside superusers only
    the jobs of users who belong to the viewer's tenants alone (as the API tokens)."""

    list_display = (
        "pk",
        "requested_by",
        "subject_name",
        "scope",
        "scope_id",
        "format",
        "state",
        "created_at",
    )
    list_filter = ("state", "format")
    list_select_related = ("requested_by",)
    show_facets = admin.ShowFacets.NEVER

    def tenant_q(self, request: HttpRequest, roots: frozenset[int]) -> Q:
        return Q(requested_by__in=tenant_users(roots))


@admin.register(AccessRecord)
class AccessRecordAdmin(RecordedReadsMixin, ReadOnlyAdmin):
    """Who read audit data (``course_audit.access_log``): read-only, like the events. A
    record's tenant is ``root_account``; one of no tenant (a read across tenants) only
    superusers see. Reading it is recorded too."""

    tenant_field = "root_account"
    list_access_scope = object_access_scope = Scope.ACCESS_LOG

    list_display = (
        "created_at",
        "user_name",
        "surface",
        "scope",
        "scope_id",
        "count",
        "root_account_id",
        "http_method",
        "path",
    )
    list_filter = ("surface", "scope")
    # Only an exact match: a LIKE would read the whole table.
    search_fields = ("=user_name",)
    search_help_text = _("The reader's user name, exactly.")
    ordering = ("-created_at", "-id")
    sortable_by = ()
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeysetChangeList

    def access_tenant(self, obj: AccessRecord) -> int | None:
        return obj.root_account_id
