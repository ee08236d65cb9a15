"""Reads: who may see or change what, and the events they may see.

Permissions come from account memberships: a role held on an account applies to that
account and every account below it. A ``RoleOverride`` on an account turns one of the
role's permissions on or off there and below; the override nearest the account wins.
Superusers may do everything. A user is a *member* of a root account when they hold any
active role anywhere in its tree, even one without permissions.

The access rule, used by the pages, the API, the exports and the admin alike: an account
outside the user's tenants is *not found* (its existence is not confirmed), one inside
them without the permission is *forbidden* (``Grants.access``, ``authorize_account``).
A request's grants are loaded once and kept on the request (``request_grants``), never
longer: a revoked grant takes effect on the next request.

Where reads go: who may see what (grants, memberships, the subtree below an account) is
read where the routers say, the primary, so a revoked grant takes effect at once. What
is shown (events, the search's courses, the home page's accounts) goes through
``for_reading``, to ``COURSE_AUDIT_READ_DATABASE`` when the host names one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeGuard, TypeVar

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, Count, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import TruncDate, TruncDay, TruncWeek
from django.http import Http404

from course_audit import replication
from course_audit.models import (
    AccessRecord,
    Account,
    AccountMembership,
    Course,
    CourseEvent,
    ExportJob,
    Permission,
    Role,
    RoleOverride,
    SisBatch,
)
from course_audit.querysets import changed_field_q
from course_audit.recording import display_name
from course_audit.replay import EVENT_COLUMNS, CourseAsOf, replay, seen_by
from course_audit.types import User, UserRequest

_QuerySet = TypeVar("_QuerySet", bound=QuerySet[Any])
# Where ``request_grants`` keeps a request's grants, on the Django ``HttpRequest``.
GRANTS_CACHE_ATTRIBUTE = "_course_audit_grants"


def for_reading(queryset: _QuerySet) -> _QuerySet:
    """``queryset`` on ``COURSE_AUDIT_READ_DATABASE`` when it is set (a standby) and the
    request reads from it (``replication.read_alias``: not when it is down, lags too far or
    has not replayed the caller's last write), else unchanged: read where the database
    routers say.

    Only for what a page, listing or export shows; never for what decides access.
    """
    return replication.for_reading(queryset)


class Access(enum.Enum):
    """What the access rule answers for an account: the 404, the 403, or yes."""

    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    ALLOWED = "allowed"


@dataclasses.dataclass(frozen=True)
class Grants:
    """A user's memberships and the relevant role overrides for one permission."""

    # (account_id, role_id, whether the role itself grants the permission)
    memberships: tuple[tuple[int, int, bool], ...] = ()
    # (role_id, account_id) -> enabled
    overrides: Mapping[tuple[int, int], bool] = dataclasses.field(default_factory=dict)
    # Root accounts the user is a member of.
    roots: frozenset[int] = frozenset()
    superuser: bool = False

    def is_member(self, root_id: int) -> bool:
        return self.superuser or root_id in self.roots

    def access(self, account: Account) -> Access:
        """The access rule: not found outside the user's tenants (another tenant's account
        is not even confirmed to exist), then forbidden without the permission."""
        if not self.is_member(account.resolved_root_id):
            return Access.NOT_FOUND
        return Access.ALLOWED if self.allows(account) else Access.FORBIDDEN

    def allows(self, account: Account) -> bool:
        """Whether the permission holds on ``account``."""
        if self.superuser:
            return True
        lineage = account.lineage_ids
        return any(
            self._effective(role_id, granted, lineage)
            for account_id, role_id, granted in self.memberships
            if account_id in lineage
        )

    def _effective(self, role_id: int, granted: bool, lineage: list[int]) -> bool:
        enabled = granted
        # Overrides from the root down to the account apply in turn: the nearest wins.
        for account_id in lineage:
            override = self.overrides.get((role_id, account_id))
            if override is not None:
                enabled = override
        return enabled


def _is_active_user(user: User | None) -> TypeGuard[User]:
    return bool(user is not None and user.is_authenticated and user.is_active)


def load_grants(user: User | None, permission: str) -> Grants:
    """The user's memberships and overrides for ``permission`` in one query (the rows of
    ``grant_rows_sql``, the rule the token's query runs too)."""
    permission = Permission(permission).value
    if not _is_active_user(user):
        return Grants()
    if user.is_superuser:
        return Grants(superuser=True)
    connection = connections[router.db_for_read(AccountMembership)]
    with connection.cursor() as cursor:
        cursor.execute(grant_rows_sql(connection, permission, "%s"), [user.pk, user.pk])
        return grants_from_rows(cursor.fetchall())


def grants_from_rows(rows: Iterable[Sequence[Any]]) -> Grants:
    """``Grants`` from (kind, account_id, role_id, flag, root) rows: ``m`` a membership with
    whether its role grants the permission, ``o`` a role override with whether it enables
    it (the rows of ``load_grants`` and of ``grants_sql``)."""
    found: list[tuple[int, int, bool]] = []
    found_overrides: dict[tuple[int, int], bool] = {}
    roots_seen: set[int] = set()
    for kind, account_id, role_id, flag, root in rows:
        if kind == "m":
            found.append((account_id, role_id, bool(flag)))
            roots_seen.add(root or account_id)
        else:
            found_overrides[(role_id, account_id)] = bool(flag)
    return Grants(memberships=tuple(found), overrides=found_overrides, roots=frozenset(roots_seen))


# How each database aggregates the grants' rows into one JSON array (``grants_sql``).
_JSON_ROWS = {
    "postgresql": "COALESCE(json_agg(json_build_array({columns})), '[]')",
    "sqlite": "json_group_array(json_array({columns}))",
}


def grant_rows_sql(connection: BaseDatabaseWrapper, permission: str, user_column: str) -> str:
    """The access rule's rows, as ``grants_from_rows`` reads them: the memberships of the
    user whose id is ``user_column`` (a column of an outer query, or a placeholder, which
    it holds twice) and the overrides of ``permission`` on the roles they hold."""
    permission = Permission(permission).value
    qn = connection.ops.quote_name
    membership, role, override, account = (
        qn(model._meta.db_table) for model in (AccountMembership, Role, RoleOverride, Account)
    )
    flag = qn(permission)  # the role's boolean column of that name
    active = AccountMembership.WorkflowState.ACTIVE.value
    # The values are the app's own (a permission's name, a state): quoted as literals, so
    # the same SQL text serves every request.
    return (
        f"SELECT 'm' AS kind, m.account_id AS account_id, m.role_id AS role_id, "
        f"r.{flag} AS flag, a.root_account_id AS root "
        f"FROM {membership} m JOIN {role} r ON r.id = m.role_id "
        f"JOIN {account} a ON a.id = m.account_id "
        f"WHERE m.user_id = {user_column} AND m.workflow_state = '{active}' "
        f"UNION ALL "
        f"SELECT 'o', o.account_id, o.role_id, o.enabled, a.root_account_id "
        f"FROM {override} o JOIN {account} a ON a.id = o.account_id "
        f"WHERE o.permission = '{permission}' AND EXISTS (SELECT 1 FROM "
        f"{membership} m WHERE m.role_id = o.role_id AND m.user_id = {user_column} "
        f"AND m.workflow_state = '{active}')"
    )


def grants_sql(connection: BaseDatabaseWrapper, permission: str, user_column: str) -> str | None:
    """SQL of one value: ``grant_rows_sql``'s rows as one JSON array, for the token's
    query to load the grants too (one query, not two). None on a database whose JSON
    aggregate this does not know: load them apart then."""
    if connection.vendor not in _JSON_ROWS:
        return None
    columns = "g.kind, g.account_id, g.role_id, g.flag, g.root"
    rows = grant_rows_sql(connection, permission, user_column)
    return f"(SELECT {_JSON_ROWS[connection.vendor].format(columns=columns)} FROM ({rows}) g)"


def remember_grants(request: UserRequest, permission: str, user: User, grants: Grants) -> None:
    """Keep ``grants`` (loaded with the request's credentials, e.g. by the token's query) as
    the request's grants of ``user`` for ``permission``, as ``request_grants`` would."""
    http_request = getattr(request, "_request", request)
    cache = vars(http_request).setdefault(GRANTS_CACHE_ATTRIBUTE, {})
    cache[(Permission(permission).value, user.pk)] = grants


def request_grants(request: UserRequest, permission: str) -> Grants:
    """The request's user's grants for ``permission``, loaded once per request (one query).

    Kept on the Django ``HttpRequest``, which DRF's ``Request`` wraps as ``_request``, so
    both objects of one request share them; never kept beyond the request, so a revoked
    grant takes effect on the next one.
    """
    http_request = getattr(request, "_request", request)
    cache: dict[tuple[str, Any], Grants] = vars(http_request).setdefault(GRANTS_CACHE_ATTRIBUTE, {})
    user = request.user
    # Keyed by the user too: DRF authenticates a token after the middleware ran.
    key = (Permission(permission).value, getattr(user, "pk", None))
    if key not in cache:
        cache[key] = load_grants(user, permission)
    return cache[key]


def account_access(
    request: UserRequest, account: Account, permission: str = Permission.VIEW_COURSE_CHANGES
) -> Access:
    """Whether the request's user may see ``account`` (and its courses): not found outside
    the user's tenants, forbidden without ``permission`` on it, else allowed."""
    return request_grants(request, permission).access(account)


def authorize_account(
    request: UserRequest, account: Account, permission: str = Permission.VIEW_COURSE_CHANGES
) -> None:
    """``account_access`` as Django's exceptions: ``Http404`` when not found,
    ``PermissionDenied`` when forbidden (DRF answers them as its 404 and 403)."""
    _authorize(request_grants(request, permission), account)


def auditable_subtree(
    request: UserRequest, account: Account, permission: str = Permission.VIEW_COURSE_CHANGES
) -> list[int]:
    """The ids of ``account`` and of the accounts below it on which the request's user
    holds ``permission``: what a listing ``include_subaccounts`` reads."""
    grants = request_grants(request, permission)
    return [sub.pk for sub in subtree_accounts(account) if grants.allows(sub)]


def in_tenants(roots: Iterable[int], account: str = "") -> Q:
    """A filter matching the rows whose account (at the path ``account``: the row itself
    when empty) is one of the root accounts ``roots`` or sits below one: their tenants'
    rows, where the access rule answers something other than not found."""
    prefix = f"{account}__" if account else ""
    ids = list(roots)
    return Q(**{f"{prefix}pk__in": ids}) | Q(**{f"{prefix}root_account__in": ids})


def tenant_roots(request: UserRequest) -> frozenset[int] | None:
    """The root accounts the request's user is a member of (``Grants.roots``: outside them
    everything is not found); None for a superuser, whom no tenant bounds."""
    grants = request_grants(request, Permission.VIEW_COURSE_CHANGES)
    return None if grants.superuser else grants.roots


def tenant_users(roots: Iterable[int]) -> QuerySet[Any]:
    """The users who belong to the root accounts ``roots`` and to no other: an active
    membership in one of them, none in any other root account, and not a superuser (who
    belongs to every one). What such a user holds (an API token, say) is theirs alone."""
    ids = list(roots)
    active = AccountMembership.objects.filter(workflow_state=AccountMembership.WorkflowState.ACTIVE)
    inside = active.filter(in_tenants(ids, "account")).values("user_id")
    outside = active.exclude(in_tenants(ids, "account")).values("user_id")
    return (
        get_user_model()
        ._default_manager.filter(pk__in=inside, is_superuser=False)
        .exclude(pk__in=outside)
    )


def allowed_account_ids(
    user: User, permission: str, grants: Grants | None = None
) -> set[int] | None:
    """Every account where the user holds ``permission``; None means all (a superuser).
    ``grants``: the user's, when already loaded (``request_grants``)."""
    grants = grants if grants is not None else load_grants(user, permission)
    if grants.superuser:
        return None
    if not grants.memberships:
        return set()
    accounts = Account.objects.filter(in_tenants(grants.roots)).only(
        "pk", "ancestor_path", "parent_id"
    )
    return {account.pk for account in accounts if grants.allows(account)}


def subtree_accounts(account: Account) -> list[Account]:
    """The account and every account below it (only what permission checks read)."""
    return list(
        Account.objects.filter(account.subtree_q()).only(
            "pk", "ancestor_path", "parent_id", "root_account_id"
        )
    )


def course_events(course: Course) -> QuerySet[CourseEvent]:
    """One course's events, newest first, with what the API links joined.

    Read through the course's own manager, so every event's ``course`` is ``course``
    itself: a page does not join the course and build it again for each of its rows.
    From another database (``COURSE_AUDIT_READ_DATABASE``) the events bring their own
    copy: Django will not relate rows of two databases.
    """
    if _read_where_the_course_is(course):
        return course.events.with_links(join_course=False).newest_first()
    return for_reading(CourseEvent.objects.for_course(course).with_links().newest_first())


def _read_where_the_course_is(course: Course) -> bool:
    """Whether a course's events are read from the database its row came from (no
    ``COURSE_AUDIT_READ_DATABASE`` for this request, or that very one)."""
    alias = replication.read_alias()
    return alias is None or alias == course._state.db


def account_events(account_ids: Iterable[int]) -> QuerySet[CourseEvent]:
    """Events of the courses that sat directly in these accounts when recorded."""
    return for_reading(CourseEvent.objects.for_accounts(account_ids).with_links().newest_first())


class ScopedEvents(NamedTuple):
    """The events of one course or one account, as the database they are read from (every
    event there, unfiltered) and the one column and value that choose them: for a reader
    that names its own columns, order and conditions (the API's listings:
    ``pagination.keyset_rows``'s ``scope``), which then builds no ORM filter per request.
    ``queryset()`` is the same rows as a queryset, for everything else."""

    events: QuerySet[CourseEvent]
    column: str
    value: int

    def queryset(self) -> QuerySet[CourseEvent]:
        return self.events.filter(**{self.column: self.value})


def course_event_scope(course: Course) -> ScopedEvents:
    """``course``'s events (``course_events``' rows, without its joins and order), read
    where it reads them: the course's own database, or ``COURSE_AUDIT_READ_DATABASE``."""
    if _read_where_the_course_is(course):
        using = router.db_for_read(CourseEvent, instance=course)
        return ScopedEvents(CourseEvent.objects.db_manager(using).all(), "course_id", course.pk)
    return ScopedEvents(for_reading(CourseEvent.objects.all()), "course_id", course.pk)


def account_event_scope(account_id: int) -> ScopedEvents:
    """The events recorded in one account (``account_events``' rows for it alone)."""
    return ScopedEvents(for_reading(CourseEvent.objects.all()), "account_id", account_id)


def _authorize(grants: Grants, account: Account) -> None:
    access = grants.access(account)
    if access is Access.NOT_FOUND:
        raise Http404
    if access is Access.FORBIDDEN:
        raise PermissionDenied


class JobEvents(NamedTuple):
    """What a background export reads: its events (before its filters), their partitions,
    and the tenant (root account) they belong to, ``None`` across tenants."""

    events: QuerySet[CourseEvent]
    partitions: tuple[str, list[int]] | None
    root_account_id: int | None


def export_job_events(job: ExportJob, grants: Grants) -> JobEvents:
    """The events a background export of ``job``'s scope reads (before its filters), with
    its partitions and tenant, by the access rule with ``grants`` (its requester's, loaded
    now: a grant revoked since the job was queued stops it): ``Http404`` or
    ``PermissionDenied`` as the pages answer. The pages' scopes: a course, an account (with
    the auditable accounts below it), a person's events in what the requester may audit, a
    SIS import's."""
    if job.scope == ExportJob.Scope.PERSON:
        user = job.requested_by
        allowed = allowed_account_ids(user, Permission.VIEW_COURSE_CHANGES, grants)
        if allowed is not None and not allowed:
            raise PermissionDenied
        person = person_seen(user, job.scope_id, grants=grants)
        if person is None:
            raise Http404
        # A person's rows do not carry their tenant: the requester's, when they have one.
        root_id = next(iter(grants.roots)) if len(grants.roots) == 1 else None
        return JobEvents(person_events(person.pk, allowed), None, root_id)
    if job.scope == ExportJob.Scope.SIS_BATCH:
        batch = SisBatch.objects.select_related("root_account").filter(pk=job.scope_id).first()
        if batch is None:
            raise Http404
        return JobEvents(batch_events(grants, batch), None, batch.root_account.resolved_root_id)
    if job.scope == ExportJob.Scope.COURSE:
        course = Course.objects.select_related("account").filter(pk=job.scope_id).first()
        if course is None:
            raise Http404
        _authorize(grants, course.account)
        return JobEvents(course_events(course), None, course.root_account_id)
    account = Account.objects.filter(
        pk=job.scope_id, workflow_state=Account.WorkflowState.ACTIVE
    ).first()
    if account is None:
        raise Http404
    _authorize(grants, account)
    if not job.include_subaccounts:
        return JobEvents(account_events([account.pk]), None, account.resolved_root_id)
    ids = [sub.pk for sub in subtree_accounts(account) if grants.allows(sub)]
    return JobEvents(account_events(ids), ("account_id", ids), account.resolved_root_id)


def export_jobs_of(user: User) -> QuerySet[ExportJob]:
    """The background exports ``user`` may see: their own; every one for a superuser."""
    jobs = ExportJob.objects.select_related("requested_by")
    return jobs if user.is_superuser else jobs.filter(requested_by_id=user.pk)


def course_as_of(course: Course, moments: Sequence[dt.datetime]) -> list[CourseAsOf]:
    """The course as its log replays it at each of ``moments`` (``replay.replay``).

    Its events up to the latest moment are read once, oldest first, as values rows (the
    course's index, read backwards). When there are none, the course's next event says
    whether it was created later (it did not exist yet) or the log cannot tell.
    """
    events = for_reading(CourseEvent.objects.for_course(course.pk)).order_by("created_at", "id")
    last = seen_by(max(moments))
    rows = list(events.filter(created_at__lte=last).values(*EVENT_COLUMNS))
    created_at = None
    if not rows:
        following = events.filter(created_at__gt=last).values("created_at", "event_type").first()
        if following is not None and following["event_type"] == CourseEvent.EventType.CREATED:
            created_at = following["created_at"]
    return [replay(rows, at, created_at=created_at) for at in moments]


def sis_batch_events(request: UserRequest, batch: SisBatch) -> QuerySet[CourseEvent]:
    """The events a SIS import recorded that the request's user may see, newest first.

    The access rule on the batch's root account: not found outside the user's tenants,
    forbidden when they may audit none of its accounts; else the batch's events in the
    accounts where they hold ``view_course_changes`` (all of them for a root's auditor).
    """
    return batch_events(request_grants(request, Permission.VIEW_COURSE_CHANGES), batch)


def batch_events(grants: Grants, batch: SisBatch) -> QuerySet[CourseEvent]:
    """``sis_batch_events`` with ``grants`` (a background export's requester's)."""
    root = batch.root_account
    if not grants.is_member(root.resolved_root_id):
        raise Http404
    events = CourseEvent.objects.filter(sis_batch_id=batch.pk)
    if not grants.superuser:
        accounts = subtree_accounts(root)
        allowed = [account.pk for account in accounts if grants.allows(account)]
        if not allowed:
            raise PermissionDenied
        if len(allowed) < len(accounts):
            events = events.filter(account_id__in=allowed)
    return for_reading(events.with_links().newest_first())


def access_records(root: Account) -> QuerySet[AccessRecord]:
    """A tenant's access records (``course_audit.access_log``), newest first."""
    records = AccessRecord.objects.filter(root_account_id=root.pk).order_by("-created_at", "-id")
    return for_reading(records)


@dataclasses.dataclass
class AccountNode:
    """An account of the tree shown on the home page, with the auditable ones below it."""

    account: Account
    children: list[AccountNode] = dataclasses.field(default_factory=list)


def auditable_courses(
    user: User, query: str, *, limit: int = 50, grants: Grants | None = None
) -> list[Course]:
    """Courses (deleted ones too) matching ``query`` (``CourseQuerySet.matching``) among
    those whose account the user may audit, in name order."""
    allowed = allowed_account_ids(user, Permission.VIEW_COURSE_CHANGES, grants)
    courses = for_reading(Course.objects.select_related("account")).matching(query)
    if allowed is not None:
        courses = courses.filter(account_id__in=allowed)
    return list(courses.order_by("name", "id")[:limit])


def auditable_account_tree(user: User, grants: Grants | None = None) -> list[AccountNode]:
    """The active accounts the user may audit, as trees (an account whose parent the user may
    not audit starts a tree of its own)."""
    allowed = allowed_account_ids(user, Permission.VIEW_COURSE_CHANGES, grants)
    accounts = for_reading(Account.objects.filter(workflow_state=Account.WorkflowState.ACTIVE))
    if allowed is not None:
        accounts = accounts.filter(pk__in=allowed)
    nodes: dict[int, AccountNode] = {}
    roots: list[AccountNode] = []
    for account in sorted(
        accounts.only("pk", "name", "parent_id", "ancestor_path", "root_account_id"),
        key=lambda account: (len(account.ancestor_ids), account.name, account.pk),
    ):
        node = nodes[account.pk] = AccountNode(account)
        parent = nodes.get(account.parent_id) if account.parent_id else None
        (parent.children if parent else roots).append(node)
    return roots


def auditable_events(
    user: User, grants: Grants | None = None
) -> tuple[QuerySet[CourseEvent], tuple[str, list[int]] | None] | None:
    """Every event the user may audit, newest first, with the accounts they are read by
    (for ``pagination.fetch_ordered``); ``None`` when the user may audit nothing."""
    allowed = allowed_account_ids(user, Permission.VIEW_COURSE_CHANGES, grants)
    if allowed is None:
        return for_reading(CourseEvent.objects.with_links().newest_first()), None
    if not allowed:
        return None
    ids = sorted(allowed)
    return account_events(ids), ("account_id", ids)


def person_events(user_id: Any, account_ids: Iterable[int] | None) -> QuerySet[CourseEvent]:
    """The events one user caused, newest first, in these accounts (``None``: everywhere).
    Served by the index on (user, created_at, id)."""
    events = CourseEvent.objects.filter(user_id=user_id)
    if account_ids is not None:
        events = events.for_accounts(account_ids)
    return for_reading(events.with_links().newest_first())


@dataclasses.dataclass(frozen=True)
class Person:
    """Someone who caused events: what the person picker offers."""

    pk: Any
    name: str
    login: str


# Fields of the host's user model a person is found by (beside its login), when the
# model has them: Django's own, and the usual names of a custom model's name field.
PERSON_SEARCH_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "display_name",
    "full_name",
    "name",
)


def people_matching(
    user: User, text: str, *, grants: Grants | None = None, limit: int = 20
) -> list[Person]:
    """Users whose login (or a name or email field of ``PERSON_SEARCH_FIELDS`` that the
    user model has) contains ``text`` and who caused at least one event the viewer may
    audit: nobody else's name is offered. In login order, at most ``limit``."""
    model = get_user_model()
    field_names = {field.name for field in model._meta.get_fields()}
    match = Q(**{f"{model.USERNAME_FIELD}__icontains": text})
    for name in PERSON_SEARCH_FIELDS:
        if name in field_names:
            match |= Q(**{f"{name}__icontains": text})
    return _people(user, grants, match, limit)


def person_seen(user: User, user_id: Any, *, grants: Grants | None = None) -> Person | None:
    """The user ``user_id`` when they caused an event the viewer may audit, else ``None``
    (also for an id that is not one of the user model's keys)."""
    try:
        found = _people(user, grants, Q(pk=user_id), 1)
    except (ValueError, ValidationError):
        return None
    return found[0] if found else None


def _people(user: User, grants: Grants | None, match: Q, limit: int) -> list[Person]:
    allowed = allowed_account_ids(user, Permission.VIEW_COURSE_CHANGES, grants)
    if allowed is not None and not allowed:
        return []
    model = get_user_model()
    acted = CourseEvent.objects.filter(user_id=OuterRef("pk"))
    if allowed is not None:
        acted = acted.for_accounts(allowed)
    people = (
        model._default_manager.filter(match)
        .filter(Exists(acted))
        .order_by(model.USERNAME_FIELD, "pk")[:limit]
    )
    return [
        Person(pk=person.pk, name=display_name(person), login=person.get_username())
        for person in people
    ]


def event_counts(
    events: QuerySet[CourseEvent], *, weekly: bool, tzinfo: dt.tzinfo
) -> dict[dt.date, dict[str, int]]:
    """Events per day (or per week, keyed by its Monday) and type, in ``tzinfo``'s days."""
    trunc = TruncWeek if weekly else TruncDay
    rows = (
        events.order_by()
        .annotate(bucket=trunc("created_at", tzinfo=tzinfo))
        .values_list("bucket", "event_type")
        .annotate(count=Count("id"))
    )
    counts: dict[dt.date, dict[str, int]] = {}
    for bucket, event_type, count in rows:
        day = bucket.astimezone(tzinfo).date() if isinstance(bucket, dt.datetime) else bucket
        per_type = counts.setdefault(day, {})
        per_type[event_type] = per_type.get(event_type, 0) + count
    return counts


def newest_day_counts(
    events: QuerySet[CourseEvent],
    limit: int,
    *,
    tzinfo: dt.tzinfo,
    changed_fields: Sequence[str] = (),
) -> dict[dt.date, dict[str, int]]:
    """The newest ``limit`` of ``events`` per day (``tzinfo``'s) and type, in one query:
    those rows are read in order from one index (index-only on the course index, which
    includes the type) and only their few (day, type) groups come back.

    ``changed_fields``: the fields ``events`` is filtered on (``changed_fields_q``), when
    it is one index range of each field's own index (an account's or a course's). On
    PostgreSQL each field's newest are then read from its partial index alone and merged,
    a row of several counting once; they are all ``updated`` events, the only ones a
    changed field matches, so no row is read from the table (reading the type there would
    make the planner read every matching row of the range).
    """
    newest_first = ("-created_at", "-id")
    columns = ("created_at", "id", "day", "kind")
    day = TruncDate("created_at", tzinfo=tzinfo)
    connection = connections[events.db]
    fields = list(dict.fromkeys(changed_fields))
    newest: QuerySet[Any]
    if fields and connection.vendor == "postgresql":
        updated = Value(CourseEvent.EventType.UPDATED.value, output_field=CharField())
        first, *others = (
            events.filter(changed_field_q(field))
            .order_by(*newest_first)
            .annotate(day=day, kind=updated)
            .values(*columns)[:limit]
            for field in fields
        )
        newest = first.union(*others).order_by(*newest_first)[:limit] if others else first
    else:
        newest = (
            events.order_by(*newest_first)
            .annotate(day=day, kind=F("event_type"))
            .values(*columns)[:limit]
        )
    sql, params = newest.query.get_compiler(using=events.db).as_sql()
    qn = connection.ops.quote_name
    day_column, kind_column = qn("day"), qn("kind")
    counts: dict[dt.date, dict[str, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT newest.{day_column}, newest.{kind_column}, COUNT(*) FROM ({sql}) newest "
            f"GROUP BY newest.{day_column}, newest.{kind_column}",
            params,
        )
        for value, kind, count in cursor.fetchall():
            # SQLite answers the day as text.
            when = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            counts.setdefault(when, {})[kind] = count
    return counts
