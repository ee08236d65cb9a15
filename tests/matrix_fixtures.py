"""The authorization matrix's world, callers, surfaces and oracle (tests/test_authz_matrix.py).

Two tenants, built once per module inside a transaction that is rolled back at its end
(each cell runs in a savepoint of it, as Django's ``setUpTestData`` does):

- home: ``HOMEU-SECRET-ROOT`` > ``COLLEGE`` > ``BIO`` (courses bio101, bio202) and ``CHEM``
  (course chem);
- rival: ``RIVAL-SECRET-ROOT`` (course rival2) > ``DEPT`` (course rival).

Each tenant also has a role of its own, a role override, a SIS batch, a legal hold, a
registrar whose API token is named for it and a background export written for its admin (the
department admin's, at home; ``EXPORT_JOBS``): a row of each model for the admin's cells
(``World.admin_rows``). The registrar also exported the chemistry course. A job is its
requester's: the registrar gets 404 on the department admin's, and the department admin
on the registrar's chemistry export.

Every name, code, SIS id, URL and file name of a tenant carries its marker (``HOMEU-SECRET``,
``HOMEU-SECRET-CHEM`` for the chemistry department, ``RIVAL-SECRET``), and every account,
course and acting user has a nine-digit id, so any byte of them in a response is found by a
plain substring search (a nine-digit run in a random UUID or token: about 1 in 10^10).
Some SIS ids are used by both tenants (bio202 and rival2, the bio and rival_dept
accounts), so a SIS look-up must pick the caller's own tenant and tell nothing of the other.

The oracle (``expect``) is written from the contract (API.md §5) and these tables, not
from the app's code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from course_audit import services, tasks
from course_audit.api import authentication
from course_audit.context import audit_context
from course_audit.models import (
    AccessRecord,
    Account,
    AccountMembership,
    ApiToken,
    Course,
    CourseEvent,
    ExportJob,
    PageView,
    Role,
    RoleOverride,
    SisBatch,
)
from tests.helpers import FORBIDDEN, NOT_FOUND, UNAUTHENTICATED

HOME, CHEM, RIVAL = "home", "chem", "rival"
MARKERS = {HOME: "HOMEU-SECRET", CHEM: "HOMEU-SECRET-CHEM", RIVAL: "RIVAL-SECRET"}
SHARED_SIS = "SHARED-SIS-0042"
SHARED_ACCOUNT_SIS = "SHARED-ACCT-0042"
MISSING_ID = 777_777_701
FORM = "application/x-www-form-urlencoded"
NEW_COURSE_NAME = "Matrix New Course"
RENAMED = "Matrix Renamed"


# --- the world's shape ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AccountSpec:
    pk: int
    name: str
    sis: str
    parent: str | None
    group: str  # whose data it is: HOME, CHEM or RIVAL


@dataclasses.dataclass(frozen=True)
class CourseSpec:
    pk: int
    account: str
    name: str
    code: str
    sis: str
    group: str


ACCOUNTS = {
    key: AccountSpec(pk, name, sis, parent, group)
    for key, pk, name, sis, parent, group in [
        ("home_root", 820_000_101, "HOMEU-SECRET-ROOT", "HOMEU-SECRET-SIS-RT", None, HOME),
        ("college", 820_000_113, "HOMEU-SECRET-COLLEGE", "HOMEU-SECRET-SIS-CO", "home_root", HOME),
        ("bio", 820_000_127, "HOMEU-SECRET-BIOLOGY", SHARED_ACCOUNT_SIS, "college", HOME),
        ("chem", 820_000_139, "HOMEU-SECRET-CHEM-DEPT", "HOMEU-SECRET-CHEM-SIS", "college", CHEM),
        ("rival_root", 913_000_151, "RIVAL-SECRET-ROOT", "RIVAL-SECRET-SIS-RT", None, RIVAL),
        (
            "rival_dept",
            913_000_163,
            "RIVAL-SECRET-DEPT",
            "RIVAL-SECRET-SIS-DP",
            "rival_root",
            RIVAL,
        ),
    ]
}
# A course's code is its name with "-CODE".
COURSES = {
    key: CourseSpec(pk, account, name, f"{name}-CODE", sis, group)
    for key, pk, account, name, sis, group in [
        ("bio101", 820_001_171, "bio", "HOMEU-SECRET-BIO101", "HOMEU-SECRET-SIS-B101", HOME),
        ("bio202", 820_001_183, "bio", "HOMEU-SECRET-BIO202", SHARED_SIS, HOME),
        ("chem", 820_001_197, "chem", "HOMEU-SECRET-CHEM-101", "HOMEU-SECRET-CHEM-SIS-101", CHEM),
        ("rival", 913_001_201, "rival_dept", "RIVAL-SECRET-COURSE1", "RIVAL-SECRET-SIS-1", RIVAL),
        ("rival2", 913_001_213, "rival_root", "RIVAL-SECRET-COURSE2", SHARED_SIS, RIVAL),
        # Soft-deleted together, in one admin request of a superuser (see build_world).
        ("bio303", 820_001_229, "bio", "HOMEU-SECRET-BIO303", "HOMEU-SECRET-SIS-B303", HOME),
        ("rival3", 913_001_237, "rival_dept", "RIVAL-SECRET-COURSE3", "RIVAL-SECRET-SIS-3", RIVAL),
    ]
}
# The page views behind some of the recorded events (their ids are the request ids).
PAGE_VIEWS = {
    "pv_bio": (uuid.UUID("82000001-0000-4000-8000-0000000b1001"), "bio101"),
    "pv_chem": (uuid.UUID("82000001-0000-4000-8000-0000000c4e01"), "chem"),
    "pv_rival": (uuid.UUID("91300001-0000-4000-8000-00000000a001"), "rival"),
}
MISSING_PAGE_VIEW = uuid.UUID("77777777-0000-4000-8000-000000000001")
# Each tenant's background export: (its pk, whose, of which course).
EXPORT_JOBS = {
    HOME: (820_004_271, "dept_admin", "bio101"),
    CHEM: (820_004_293, "registrar", "chem"),
    RIVAL: (913_004_283, "rival_admin", "rival"),
}
REGISTRAR_PK, RIVAL_ADMIN_PK, RIVAL_BATCH_PK = 820_002_221, 913_002_233, 913_003_247
HOME_BATCH_PK = 820_003_259
# The courses each SIS import changed (a batch belongs to its courses' root account).
BATCH_COURSES = {"rival_batch": ("rival",), "home_batch": ("bio101", "chem")}


def lineage(account: str) -> list[str]:
    """The account and its ancestors."""
    chain = [account]
    while (parent := ACCOUNTS[chain[-1]].parent) is not None:
        chain.append(parent)
    return chain


def root_of(account: str) -> str:
    return lineage(account)[-1]


# --- who calls -----------------------------------------------------------------------------

HOME_TREE = frozenset({"home_root", "college", "bio", "chem"})
RIVAL_TREE = frozenset({"rival_root", "rival_dept"})


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of user: where it is a member, where it may view and manage, what it may see.

    ``visible`` are the data groups its 200 answers may hold (on the API and the pages);
    ``admin`` is how the Django admin treats it: ``login`` (not staff: sent to the admin's
    login), ``denied`` (staff without model permissions: 403), ``viewer`` (staff with the
    view permissions of course events and courses only), ``tenant`` (staff with every
    permission of every course_audit model) or ``all`` (a superuser). Staff who are not
    superusers see there only the rows of the root accounts in ``roots``.
    """

    roots: frozenset[str] = frozenset()
    view: frozenset[str] = frozenset()
    manage: frozenset[str] = frozenset()
    visible: frozenset[str] = frozenset()
    admin: str = "login"
    superuser: bool = False
    active: bool = True  # False: the user was deactivated (is_active=False)


KINDS: dict[str, Kind] = {
    "no_role": Kind(),
    "teacher": Kind(roots=frozenset({"home_root"})),
    # Also staff with every admin permission: the admin shows them their whole tenant.
    "dept_admin": Kind(
        roots=frozenset({"home_root"}),
        view=frozenset({"bio"}),
        manage=frozenset({"bio"}),
        visible=frozenset({HOME}),
        admin="tenant",
    ),
    "registrar": Kind(
        roots=frozenset({"home_root"}),
        view=HOME_TREE,
        manage=HOME_TREE,
        visible=frozenset({HOME, CHEM}),
    ),
    "rival_admin": Kind(
        roots=frozenset({"rival_root"}),
        view=RIVAL_TREE,
        manage=RIVAL_TREE,
        visible=frozenset({RIVAL}),
        admin="tenant",
    ),
    # Held the registrar's grant at the root until it was revoked (membership deleted).
    "revoked_membership": Kind(),
    # Still a member at the root, but a role override at the root revoked both permissions.
    "revoked_override": Kind(roots=frozenset({"home_root"})),
    # Held the registrar's grant, and still does, but the user was deactivated: nothing
    # authenticates it any more, neither its token nor its session.
    "deactivated": Kind(active=False),
    "staff_noperm": Kind(admin="denied"),
    "staff_viewer": Kind(admin="viewer"),
    "superuser": Kind(
        roots=frozenset({"home_root", "rival_root"}),
        view=HOME_TREE | RIVAL_TREE,
        manage=HOME_TREE | RIVAL_TREE,
        visible=frozenset({HOME, CHEM, RIVAL}),
        admin="all",
        superuser=True,
    ),
}
# No user at all, or a bearer token that authenticates nobody (the expired and revoked
# ones belong to a registrar: the token's state decides, not its user's grants).
CREDENTIAL_CALLERS = ("anonymous", "bad_token", "expired_token", "revoked_token")


@dataclasses.dataclass(frozen=True)
class CallerSpec:
    name: str
    kind: str | None  # None: no authenticated user
    via: str  # "none", "token" or "session"
    # A browser's session with Django's CSRF checks on (the test client skips them unless
    # asked): its unsafe requests without a CSRF token must be refused before anything.
    csrf: bool = False
    # A logged-in browser that also sends a bearer token that authenticates nobody: the API
    # must not fall back on the session (bad credentials are a 401), the pages ignore it.
    bad_token: bool = False


CALLERS: dict[str, CallerSpec] = {
    **{
        name: CallerSpec(name, None, "none" if name == "anonymous" else "token")
        for name in CREDENTIAL_CALLERS
    },
    **{
        f"{kind}/{via}": CallerSpec(f"{kind}/{via}", kind, via)
        for kind in KINDS
        for via in ("token", "session")
    },
    "registrar/session+csrf": CallerSpec(
        "registrar/session+csrf", "registrar", "session", csrf=True
    ),
    "registrar/session+bad_token": CallerSpec(
        "registrar/session+bad_token", "registrar", "session", bad_token=True
    ),
}
# The pages and the admin never read a bearer token: besides every session, the tokens
# that authenticate nobody and the most powerful ones that do (a registrar's, a superuser's)
# prove it; the other kinds' tokens would only repeat them.
BROWSER_CALLERS = tuple(
    name
    for name, caller in CALLERS.items()
    if caller.via != "token" or caller.kind in (None, "registrar", "superuser")
)
# The schema and its docs declare no authentication at all, so the caller cannot matter
# there; these prove it without generating the schema once per caller.
PUBLIC_CALLERS = (
    "anonymous",
    "bad_token",
    "expired_token",
    "registrar/token",
    "registrar/session",
    "superuser/session",
)


# --- the world, built once per module ------------------------------------------------------


@dataclasses.dataclass
class World:
    users: dict[str, Any]
    tokens: dict[str, str]  # caller name -> plaintext bearer token
    sessions: dict[str, str]  # kind -> session key
    event_pks: dict[str, int]  # "home" / "rival" -> a course event of that tenant
    # admin model name -> "home" / "rival" -> (the pk of a row of that tenant, what its
    # changelist row and change page show of it)
    admin_rows: dict[str, dict[str, tuple[Any, str]]]
    mixed_request_id: uuid.UUID  # the superuser's request that changed both tenants
    strings: dict[str, set[str]]  # data group -> strings that identify it
    # (status of an API read, status of a page) for the revoked kinds just before revocation
    before_revocation: dict[str, tuple[int, int]]
    # "home" / "chem" / "rival" -> the background export job of that group (EXPORT_JOBS)
    export_jobs: dict[str, int]


def _make_user(name: str, **fields: Any) -> Any:
    model = get_user_model()
    username = f"{name}@example.edu" if model.USERNAME_FIELD == "email" else name
    fields[model.USERNAME_FIELD] = username
    # No password: the callers log in with force_login, and hashing one costs time.
    return model.objects.create_user(password=None, **fields)


def _session_key(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _record_page_view(key: str, user: Any, url: str) -> None:
    request_id, course_key = PAGE_VIEWS[key]
    spec = COURSES[course_key]
    PageView.objects.create(
        request_id=request_id,
        user=user,
        account_id=ACCOUNTS[spec.account].pk,
        context_type="Course",
        context_id=spec.pk,
        url=url,
        controller="matrix",
        action="update",
        http_method="PUT",
        user_agent="matrix",
        remote_ip="127.0.0.1",
    )


def build_world() -> World:
    """Both tenants, their history, and one user per kind (see the module's docstring)."""
    accounts: dict[str, Account] = {}
    for key, spec in ACCOUNTS.items():
        accounts[key] = Account.objects.create(
            pk=spec.pk,
            name=spec.name,
            sis_account_id=spec.sis,
            parent=accounts[spec.parent] if spec.parent else None,
        )
    every_permission = {"view_course_changes": True, "manage_courses": True}
    admin_role = Role.objects.create(name="Account admin", **every_permission)
    auditor_role = Role.objects.create(name="Auditor", **every_permission)
    teacher_role = Role.objects.create(name="Teacher")
    # Each tenant's own role (the others are shared by every tenant).
    home_role, rival_role = (
        Role.objects.create(
            name=f"{MARKERS[group]}-ROLE", root_account=accounts[root], **every_permission
        )
        for group, root in ((HOME, "home_root"), (RIVAL, "rival_root"))
    )

    users = {
        "registrar": _make_user("mx-registrar", pk=REGISTRAR_PK),
        "rival_admin": _make_user("rival-secret-registrar", pk=RIVAL_ADMIN_PK),
        "dept_admin": _make_user("mx-dept-admin"),
        "teacher": _make_user("mx-teacher"),
        "no_role": _make_user("mx-no-role"),
        "revoked_membership": _make_user("mx-revoked-membership"),
        "revoked_override": _make_user("mx-revoked-override"),
        "deactivated": _make_user("mx-deactivated"),
        "staff_noperm": _make_user("mx-staff-noperm", is_staff=True),
        "staff_viewer": _make_user("mx-staff-viewer", is_staff=True),
        "superuser": _make_user("mx-superuser", is_staff=True, is_superuser=True),
    }
    users["staff_viewer"].user_permissions.set(
        AuthPermission.objects.filter(
            content_type__app_label="course_audit",
            codename__in=["view_courseevent", "view_course"],
        )
    )
    for kind in ("dept_admin", "rival_admin"):
        users[kind].is_staff = True
        users[kind].save(update_fields=["is_staff"])
        users[kind].user_permissions.set(
            AuthPermission.objects.filter(content_type__app_label="course_audit")
        )
    grants = [
        ("registrar", "home_root", admin_role),
        ("dept_admin", "bio", home_role),
        ("rival_admin", "rival_root", rival_role),
        ("teacher", "home_root", teacher_role),
        ("revoked_membership", "home_root", admin_role),
        ("revoked_override", "home_root", auditor_role),
        ("deactivated", "home_root", admin_role),
    ]
    memberships = {
        kind: AccountMembership.objects.create(
            user=users[kind], account=accounts[account], role=role
        )
        for kind, account, role in grants
    }
    # Changes nothing (the role grants it already): the rival's row of the admin's overrides.
    rival_override = RoleOverride.objects.create(
        account=accounts["rival_dept"], role=rival_role, permission="manage_courses", enabled=True
    )

    # History: each course created and changed by its tenant's own people, through a
    # request (a page view), the rival's through a SIS import too.
    batch = SisBatch.objects.create(
        pk=RIVAL_BATCH_PK, root_account=accounts["rival_root"], filename="RIVAL-SECRET-courses.csv"
    )
    courses: dict[str, Course] = {}
    for key, spec in COURSES.items():
        actor = users["rival_admin" if spec.group == RIVAL else "registrar"]
        pv = next((name for name, (_, course) in PAGE_VIEWS.items() if course == key), None)
        context: dict[str, Any] = {"user": actor, "source": CourseEvent.EventSource.MANUAL}
        if pv is not None:
            context["request_id"] = PAGE_VIEWS[pv][0]
        if key == "rival":
            context.update(source=CourseEvent.EventSource.SIS, sis_batch=batch)
        with audit_context(**context):
            course = Course(
                pk=spec.pk,
                account=accounts[spec.account],
                name=spec.name,
                course_code=spec.code,
                sis_course_id=spec.sis,
            )
            course.save()
            services.course_update(course=course, is_public=True)
            services.course_publish(course=course)
        if pv is not None:
            marker = MARKERS[spec.group]
            _record_page_view(pv, actor, f"https://lms.example/{marker}-PV/courses/{spec.pk}")
        courses[key] = course

    # A SIS import of the home tenant that changed a course of each of its departments.
    home_batch = SisBatch.objects.create(
        pk=HOME_BATCH_PK, root_account=accounts["home_root"], filename="HOMEU-SECRET-courses.csv"
    )
    with audit_context(source=CourseEvent.EventSource.SIS, sis_batch=home_batch):
        for key in BATCH_COURSES["home_batch"]:
            services.course_update(course=courses[key], is_public=False)

    # One request that changes courses of both tenants: a superuser's bulk soft delete in
    # the admin. Its page view names one course and account; both tenants' events link it.
    operator = Client()
    operator.force_login(users["superuser"])
    operator.post(
        reverse("admin:course_audit_course_changelist") + "?q=SECRET",
        {"action": "soft_delete", "_selected_action": [courses["bio303"].pk, courses["rival3"].pk]},
    )

    tokens: dict[str, str] = {}
    for kind, user in users.items():
        # The registrars' tokens are named for their tenants (the admin lists tokens).
        group = {"registrar": HOME, "rival_admin": RIVAL}.get(kind)
        name = f"{MARKERS[group]}-TOKEN" if group else ""
        tokens[f"{kind}/token"] = ApiToken.issue(user=user, name=name)[1]
    tokens["bad_token"] = "not-a-token-" + "x" * 40
    tokens["expired_token"] = ApiToken.issue(
        user=users["registrar"], expires_at=timezone.now() - dt.timedelta(minutes=1)
    )[1]
    revoked, tokens["revoked_token"] = ApiToken.issue(user=users["registrar"])
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    sessions = {kind: _session_key(user) for kind, user in users.items()}

    # "A moment ago": the grant works, then it is revoked, as an admin revokes one.
    # A read in each tenant (the revoked kinds' below are the home tenant's): the access
    # logs have something of their own to show, and to keep from the other tenant.
    Client().get(
        reverse("course_audit_api:audit-course", kwargs={"course_id": COURSES["rival"].pk}),
        HTTP_AUTHORIZATION=f"Bearer {tokens['rival_admin/token']}",
    )
    before = {}
    for kind in ("revoked_membership", "revoked_override", "deactivated"):
        api = Client().get(
            reverse("course_audit_api:course", kwargs={"course_id": COURSES["bio101"].pk}),
            HTTP_AUTHORIZATION=f"Bearer {tokens[f'{kind}/token']}",
        )
        page = _session_client(sessions[kind]).get(
            reverse("course_audit:course_history", args=[COURSES["bio101"].pk])
        )
        before[kind] = (api.status_code, page.status_code)
    AccountMembership.objects.filter(user=users["revoked_membership"]).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )
    home_overrides = [
        RoleOverride.objects.create(
            account=accounts["home_root"], role=auditor_role, permission=permission, enabled=False
        )
        for permission in ("view_course_changes", "manage_courses")
    ]
    deactivated = users["deactivated"]
    deactivated.is_active = False
    deactivated.save(update_fields=["is_active"])
    # A legal hold of each tenant: on a course of the one, on an account of the other.
    holds = (
        services.legal_hold_place(course=courses["bio101"], reason="HOMEU-SECRET-HOLD"),
        services.legal_hold_place(account=accounts["rival_dept"], reason="RIVAL-SECRET-HOLD"),
    )
    # A background export of each tenant, written: the department admin's of bio101 and the
    # rival admin's of their course (EXPORT_JOBS).
    export_jobs = {}
    for group, (pk, kind, course_key) in EXPORT_JOBS.items():
        ExportJob.objects.create(
            pk=pk,
            requested_by=users[kind],
            scope=ExportJob.Scope.COURSE,
            scope_id=str(COURSES[course_key].pk),
            subject_name=COURSES[course_key].name,
            format=ExportJob.Format.CSV,
            filters={"event_type": "updated"},
        )
        tasks.export_job_run(pk)
        assert ExportJob.objects.get(pk=pk).state == ExportJob.State.DONE
        export_jobs[group] = pk
    event_pks = {
        group: CourseEvent.objects.filter(course=courses[key]).values_list("pk", flat=True)[0]
        for group, key in ((HOME, "bio101"), (RIVAL, "rival"))
    }

    return World(
        users=users,
        tokens=tokens,
        sessions=sessions,
        event_pks=event_pks,
        admin_rows={
            "account": _rows(accounts["bio"], accounts["rival_dept"]),
            "role": _rows(home_role, rival_role),
            "accountmembership": _rows(
                memberships["dept_admin"], memberships["rival_admin"], shown="account"
            ),
            "roleoverride": _rows(home_overrides[0], rival_override, shown="account"),
            "course": _rows(courses["bio101"], courses["rival"]),
            "courseevent": {
                group: (event_pks[group], COURSES[key].name)
                for group, key in ((HOME, "bio101"), (RIVAL, "rival"))
            },
            "sisbatch": _rows(home_batch, batch, shown="filename"),
            "pageview": _rows(
                PageView.objects.get(pk=PAGE_VIEWS["pv_bio"][0]),
                PageView.objects.get(pk=PAGE_VIEWS["pv_rival"][0]),
                shown="url",
            ),
            "legalhold": _rows(*holds, shown="reason"),
            "exportjob": _rows(
                *(ExportJob.objects.get(pk=export_jobs[group]) for group in (HOME, RIVAL)),
                shown="scope_id",
            ),
            "apitoken": _rows(
                ApiToken.objects.filter(user=users["registrar"]).earliest("pk"),
                ApiToken.objects.filter(user=users["rival_admin"]).earliest("pk"),
                shown="name",
            ),
            # The reads build_world made: the revoked kinds' (home), the rival admin's.
            "accessrecord": _rows(
                AccessRecord.objects.filter(root_account=accounts["home_root"]).earliest("pk"),
                AccessRecord.objects.filter(root_account=accounts["rival_root"]).earliest("pk"),
                shown="user_name",
            ),
        },
        mixed_request_id=CourseEvent.objects.get(
            course=courses["rival3"], event_type="deleted"
        ).page_view_id,
        strings=_identifying_strings(users),
        before_revocation=before,
        export_jobs=export_jobs,
    )


def _rows(home: Any, rival: Any, shown: str | None = None) -> dict[str, tuple[Any, str]]:
    """A row of each tenant for the admin's cells: its pk, and what the admin shows of it
    (the named field, or the row's own name)."""
    return {
        group: (row.pk, str(getattr(row, shown) if shown else row))
        for group, row in ((HOME, home), (RIVAL, rival))
    }


def _identifying_strings(users: dict[str, Any]) -> dict[str, set[str]]:
    strings: dict[str, set[str]] = {group: {marker} for group, marker in MARKERS.items()}
    for spec in ACCOUNTS.values():
        strings[spec.group].add(str(spec.pk))
    for spec in COURSES.values():
        course = Course.objects.get(pk=spec.pk)
        strings[spec.group] |= {str(spec.pk), str(course.uuid)}
        strings[spec.group] |= {str(u) for u in course.events.values_list("uuid", flat=True)}
    for request_id, course_key in PAGE_VIEWS.values():
        strings[COURSES[course_key].group].add(str(request_id))
    strings[HOME] |= {str(users["registrar"].pk), str(HOME_BATCH_PK)}
    strings[RIVAL] |= {str(users["rival_admin"].pk), str(RIVAL_BATCH_PK)}
    strings[HOME].add(str(HOME_BATCH_PK))
    return strings


@pytest.fixture(scope="module")
def matrix_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """The world, in a transaction rolled back after the module's last test."""
    with django_db_blocker.unblock(), pytest.MonkeyPatch.context() as patch:
        # A token's first use in a minute stamps it (tests/test_api_queries.py): here that
        # would only add a write to most cells, each rolled back with its savepoint.
        patch.setattr(authentication, "LAST_USED_RESOLUTION_SECONDS", 10**9)
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            world = build_world()
            ApiToken.objects.update(last_used_at=timezone.now())
            yield world
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def _session_client(session_key: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    return client


def client_for(world: World, caller: CallerSpec) -> tuple[Client, dict[str, str]]:
    """A fresh client and the extra headers the caller sends."""
    if caller.via == "session":
        assert caller.kind is not None
        headers = {"HTTP_AUTHORIZATION": f"Bearer {world.tokens['bad_token']}"}
        client = _session_client(world.sessions[caller.kind], csrf=caller.csrf)
        return client, headers if caller.bad_token else {}
    if caller.via == "token":
        return Client(), {"HTTP_AUTHORIZATION": f"Bearer {world.tokens[caller.name]}"}
    return Client(), {}


# --- targets -------------------------------------------------------------------------------


def course_ref(target: str) -> str:
    """The ``<course_id>`` of a path: ``sis:<course>`` looks that course's SIS id up."""
    if target == "missing":
        return str(MISSING_ID)
    if target.startswith("sis:"):
        return f"sis_course_id:{COURSES[target[4:]].sis}"
    return str(COURSES[target].pk)


def account_ref(target: str) -> str:
    if target == "missing":
        return str(MISSING_ID)
    if target.startswith("sis:"):
        return f"sis_account_id:{ACCOUNTS[target[4:]].sis}"
    return str(ACCOUNTS[target].pk)


def _resolve(
    kind: Kind, target: str, specs: dict[str, Any], account_of: Callable[[str], str]
) -> str | None:
    """What the API finds for ``target``: a SIS id is looked up in the caller's root
    accounts only (in all, for a superuser). None: not found; "ambiguous": several."""
    if target == "missing":
        return None
    if not target.startswith("sis:"):
        return target
    sis = specs[target[4:]].sis
    found = [
        key
        for key, spec in specs.items()
        if spec.sis == sis and (kind.superuser or root_of(account_of(key)) in kind.roots)
    ]
    if len(found) > 1:
        return "ambiguous"
    return found[0] if found else None


def resolve_course(kind: Kind, target: str) -> str | None:
    return _resolve(kind, target, COURSES, lambda key: COURSES[key].account)


def resolve_account(kind: Kind, target: str) -> str | None:
    return _resolve(kind, target, ACCOUNTS, lambda key: key)


def access(kind: Kind, account: str | None, permission: str) -> int:
    """200, 403 or 404 for an object in ``account`` (None: no such object)."""
    if account is None or root_of(account) not in kind.roots:
        return 404
    return 200 if account in getattr(kind, permission) else 403


# --- surfaces ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    body: str | None = None


@dataclasses.dataclass(frozen=True)
class Expect:
    status: int
    body: Any = None  # the exact JSON body, when the contract fixes it
    location: str | None = None  # the exact Location of a redirect
    visible: frozenset[str] = frozenset()  # data groups the answer may hold
    # What an allowed write must have done: (action, course key, other course key)
    effect: tuple[str, str | None, str | None] | None = None
    must_show: tuple[str, ...] = ()  # strings a 200 must hold
    must_hide: tuple[str, ...] = ()  # strings the answer must not hold
    jobs_added: int = 0  # background export jobs the request queued
    listed: frozenset[int] | None = None  # the courses an audit listing's events are of


@dataclasses.dataclass(frozen=True)
class Surface:
    """One thing served: ``route`` is its URL name and method, for the guard."""

    name: str
    family: str  # "api", "public", "unknown" (paths the API does not serve), "page", "admin"
    route: tuple[str, str]
    targets: tuple[str, ...]
    request: Callable[[World, str], Request]
    oracle: Callable[[World, Kind, str, Request], Expect]


API_BODIES = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}
AMBIGUOUS = "{}: matches objects in several root accounts; use the numeric id"


def _api_error(status: int) -> Expect:
    return Expect(status, body=API_BODIES[status])


def _api_course(
    permission: str, effect: str | None = None, *, listing: bool = True
) -> Callable[..., Expect]:
    def oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
        found = resolve_course(kind, target)
        if found == "ambiguous":
            return Expect(400, body={"errors": [{"message": AMBIGUOUS.format("course_id")}]})
        status = access(kind, COURSES[found].account if found else None, permission)
        if status != 200:
            return _api_error(status)
        assert found is not None
        if effect:
            return Expect(200, visible=kind.visible, effect=(effect, found, None))
        return Expect(
            200,
            visible=kind.visible,
            must_show=(str(COURSES[found].pk),),
            listed=frozenset({COURSES[found].pk}) if listing else None,
        )

    return oracle


def _api_account(
    permission: str, effect: str | None = None, *, listing: bool = False
) -> Callable[..., Expect]:
    def oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
        found = resolve_account(kind, target)
        if found == "ambiguous":
            return Expect(400, body={"errors": [{"message": AMBIGUOUS.format("account_id")}]})
        status = access(kind, found, permission)
        if status != 200:
            return _api_error(status)
        assert found is not None
        if effect:
            return Expect(200, visible=kind.visible, effect=(effect, found, None))
        if not listing:
            return Expect(200, visible=kind.visible, must_show=(str(ACCOUNTS[found].pk),))
        listed = _listed_courses(kind, found, "include_subaccounts" in request.query)
        return Expect(
            200, visible=kind.visible, listed=frozenset(COURSES[key].pk for key in listed)
        )

    return oracle


def _migration_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    destination_target, source_target = target.split("<-")
    destination = resolve_course(kind, destination_target)
    status = access(kind, COURSES[destination].account if destination else None, "manage")
    if status != 200:
        return _api_error(status)
    source = resolve_course(kind, source_target)
    status = access(kind, COURSES[source].account if source else None, "manage")
    if status != 200:
        return _api_error(status)
    assert destination is not None and source is not None
    if root_of(COURSES[destination].account) != root_of(COURSES[source].account):
        message = "settings[source_course_id]: Courses can only be copied within one root account."
        return Expect(400, body={"errors": [{"message": message}]})
    return Expect(200, visible=kind.visible, effect=("copy", destination, source))


def _api(
    name: str,
    url_name: str,
    targets: tuple[str, ...],
    oracle: Callable[..., Expect],
    method: str = "get",
    **extra: Any,
) -> Surface:
    """An API surface; its path takes a course or an account, as its URL's keyword says."""
    route = f"course_audit_api:{url_name}"
    kwarg = "account_id" if url_name.startswith(("account", "audit-account")) else "course_id"
    ref = account_ref if kwarg == "account_id" else course_ref

    def build(world: World, target: str) -> Request:
        path = reverse(route, kwargs={kwarg: quote(ref(target), safe=":")})
        return Request(method, path, **extra)

    return Surface(f"api.{name}", "api", (route, method.upper()), targets, build, oracle)


def _migration_request(world: World, target: str) -> Request:
    destination, source = target.split("<-")
    path = reverse(
        "course_audit_api:course-content-migrations", kwargs={"course_id": course_ref(destination)}
    )
    body = {"migration_type": "course_copy_importer"}
    body["settings[source_course_id]"] = course_ref(source)
    return Request("post", path, body=urlencode(body))


# An event of each course (no checkpoint seals it in this world: an allowed caller gets the
# 409 that says so), and a UUID no event has.
PROOF_TARGETS = ("bio101", "chem", "rival", "missing")
MISSING_EVENT = uuid.UUID(int=42)


def _proof_request(world: World, target: str) -> Request:
    event_uuid = MISSING_EVENT
    if target != "missing":
        event = CourseEvent.objects.filter(course_id=COURSES[target].pk).order_by("id").first()
        assert event is not None
        event_uuid = event.uuid
    path = reverse("course_audit_api:event-proof", kwargs={"event_uuid": str(event_uuid)})
    return Request("get", path)


def _proof_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    found = None if target == "missing" else target
    status = access(kind, COURSES[found].account if found else None, "view")
    if status != 200:
        return _api_error(status)
    message = "The event is not sealed in a checkpoint yet; ask again after the next one."
    return Expect(409, body={"errors": [{"message": message}]})


# sis:bio202 and sis:bio are SIS ids the rival tenant uses too (rival2, rival_dept).
COURSE_TARGETS = (
    "bio101",
    "chem",
    "rival",
    "rival3",
    "missing",
    "sis:bio101",
    "sis:rival",
    "sis:bio202",
)
ACCOUNT_TARGETS = ("bio", "chem", "home_root", "rival_root", "missing", "sis:bio", "sis:rival_root")
WRITE_COURSE_TARGETS = ("bio101", "chem", "rival", "missing", "sis:rival")
WRITE_ACCOUNT_TARGETS = ("bio", "chem", "rival_root", "missing", "sis:rival_root", "sis:bio")
SUBTREE_API_TARGETS = ("bio", "home_root", "rival_root", "missing")
# destination <- source
MIGRATION_TARGETS = (
    "bio101<-bio202",
    "bio101<-chem",
    "bio101<-rival",
    "bio101<-sis:rival",
    "bio101<-missing",
    "chem<-bio101",
    "rival<-rival2",
    "missing<-bio101",
)
# Every event of a listing on its first page, so that the page shows which courses it lists.
ONE_PAGE = {"per_page": "100"}
# A moment after the world's history: the as-of answers show the courses as they are.
AS_OF = {"at": "2999-01-01T00:00:00Z"}
CREATE_BODY = urlencode({"course[name]": NEW_COURSE_NAME, "course[course_code]": "MX-NEW"})

API_SURFACES = [
    _api("audit_course", "audit-course", COURSE_TARGETS, _api_course("view"), query=ONE_PAGE),
    _api(
        "audit_account",
        "audit-account",
        ACCOUNT_TARGETS,
        _api_account("view", listing=True),
        query=ONE_PAGE,
    ),
    _api(
        "audit_account_subaccounts",
        "audit-account",
        SUBTREE_API_TARGETS,
        _api_account("view", listing=True),
        query={"include_subaccounts": "true", **ONE_PAGE},
    ),
    _api(
        "course_as_of",
        "audit-course-as-of",
        COURSE_TARGETS,
        _api_course("view", listing=False),
        query=AS_OF,
    ),
    _api("get_course", "course", COURSE_TARGETS, _api_course("view")),
    Surface(
        "api.event_proof",
        "api",
        ("course_audit_api:event-proof", "GET"),
        PROOF_TARGETS,
        _proof_request,
        _proof_oracle,
    ),
    _api("get_account", "account", ACCOUNT_TARGETS, _api_account("view")),
    _api(
        "create_course",
        "account-courses",
        WRITE_ACCOUNT_TARGETS,
        _api_account("manage", "create"),
        "post",
        body=CREATE_BODY,
    ),
    _api(
        "update_course",
        "course",
        WRITE_COURSE_TARGETS,
        _api_course("manage", "rename"),
        "put",
        body=urlencode({"course[name]": RENAMED}),
    ),
    *(
        _api(
            f"{event}_course",
            "course",
            WRITE_COURSE_TARGETS,
            _api_course("manage", event),
            "delete",
            query={"event": event},
        )
        for event in ("delete", "conclude")
    ),
    _api(
        "reset_content",
        "course-reset-content",
        WRITE_COURSE_TARGETS,
        _api_course("manage", "reset"),
        "post",
    ),
    Surface(
        "api.content_migration",
        "api",
        ("course_audit_api:course-content-migrations", "POST"),
        MIGRATION_TARGETS,
        _migration_request,
        _migration_oracle,
    ),
]


def _public_oracle(world: World, kind: Kind | None, target: str, request: Request) -> Expect:
    # The schema and its docs are public (they describe the API and hold no data).
    return Expect(200)


def _unknown_api_path_oracle(
    world: World, kind: Kind | None, target: str, request: Request
) -> Expect:
    # A path the API does not serve says nothing about any tenant: the contract's 404 for
    # every caller and method, credentials or not (and no CSRF page for a POST).
    return _api_error(404)


def _unknown_api_path(method: str) -> Callable[[World, str], Request]:
    def build(world: World, target: str) -> Request:
        path = reverse("course_audit_api:course", kwargs={"course_id": course_ref(target)})
        return Request(method, f"{path}/no-such-endpoint", body="" if method == "post" else None)

    return build


def _view(
    name: str,
    family: str,
    url_name: str,
    targets: tuple[str, ...],
    oracle: Callable[..., Expect],
    ref: Callable[[World, str], Any] | None = None,
    method: str = "get",
    **extra: Any,
) -> Surface:
    """A page, admin or public surface: ``ref`` gives the path's argument for a target."""

    def build(world: World, target: str) -> Request:
        args = [ref(world, target)] if ref else []
        return Request(method, reverse(url_name, args=args), **extra)

    return Surface(f"{family}.{name}", family, (url_name, method.upper()), targets, build, oracle)


PUBLIC_SURFACES = [
    _view("schema", "public", "course_audit:schema", ("-",), _public_oracle),
    _view("docs", "public", "course_audit:docs", ("-",), _public_oracle),
    *(
        Surface(
            f"unknown.api_path_{method}",
            "unknown",
            ("course_audit_api:not-found", "*"),
            ("bio101", "rival"),
            _unknown_api_path(method),
            _unknown_api_path_oracle,
        )
        for method in ("get", "post")
    ),
]


# Pages: the object a page is about decides, with the API's order of answers.
def _page_course(world: World, kind: Kind, target: str, request: Request) -> Expect:
    status = access(kind, COURSES[target].account if target != "missing" else None, "view")
    if status != 200:
        return Expect(status)
    return Expect(200, visible=kind.visible, must_show=(COURSES[target].name,))


def _page_account(world: World, kind: Kind, target: str, request: Request) -> Expect:
    status = access(kind, target if target != "missing" else None, "view")
    if status != 200:
        return Expect(status)
    listed = _listed_courses(kind, target, "include_subaccounts" in request.query)
    return Expect(200, visible=kind.visible, must_show=tuple(COURSES[k].name for k in listed))


def _listed_courses(kind: Kind, account: str, subtree: bool) -> list[str]:
    """The courses whose events an account's listing holds: those sitting in the account
    (or, with its sub-accounts, anywhere below it) where the caller may view."""
    return [
        key
        for key, spec in COURSES.items()
        if (spec.account == account or (subtree and account in lineage(spec.account)))
        and spec.account in kind.view
    ]


def _page_view_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    if target == "pv_mixed":
        # The page view of a request of both tenants belongs to neither: a superuser's only.
        if not kind.superuser:
            return Expect(404)
        return Expect(200, visible=kind.visible, must_show=(str(world.mixed_request_id),))
    account = COURSES[PAGE_VIEWS[target][1]].account if target != "missing" else None
    status = access(kind, account, "view")
    if status != 200:
        return Expect(status)
    return Expect(200, visible=kind.visible, must_show=(str(PAGE_VIEWS[target][0]),))


def _home_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    # Any logged-in user has a home page; it lists only what the user may audit.
    shown: tuple[str, ...] = ()
    if request.query.get("q"):
        shown = tuple(spec.name for spec in COURSES.values() if spec.account in kind.view)
    return Expect(200, visible=kind.visible, must_show=shown)


def _access_log_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    # Only a root account has an access log; its root admins (the view permission on the
    # root) read it, and see only their tenant's reads.
    if target not in ("home_root", "rival_root"):
        return Expect(404)
    status = access(kind, target, "view")
    if status != 200:
        return Expect(status)
    # Whose reads the world made (build_world): the rival admin's of its course; the
    # revoked kinds' of bio101, before their revocation.
    shows = str(COURSES["rival" if target == "rival_root" else "bio101"].pk)
    return Expect(200, visible=kind.visible, must_show=(shows,))


def _timezone_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    return Expect(302, location=reverse("course_audit:home"))


def _page_batch(world: World, kind: Kind, target: str, request: Request) -> Expect:
    """A SIS import's page: its root account's tenant decides (404 outside it), then its
    events in the accounts where the caller may view (403 when none)."""
    if target == "missing" or root_of(COURSES[BATCH_COURSES[target][0]].account) not in kind.roots:
        return Expect(404)
    shown = [key for key in BATCH_COURSES[target] if COURSES[key].account in kind.view]
    if not any(
        account in kind.view
        for account in ACCOUNTS
        if root_of(account) == root_of(COURSES[BATCH_COURSES[target][0]].account)
    ):
        return Expect(403)
    return Expect(200, visible=kind.visible, must_show=tuple(COURSES[key].name for key in shown))


def _batch_pk(world: World, target: str) -> int:
    return {"rival_batch": RIVAL_BATCH_PK, "home_batch": HOME_BATCH_PK}.get(target, MISSING_ID)


def _course_pk(world: World, target: str) -> int:
    return COURSES[target].pk if target != "missing" else MISSING_ID


def _account_pk(world: World, target: str) -> int:
    return ACCOUNTS[target].pk if target != "missing" else MISSING_ID


def _page_view_id(world: World, target: str) -> uuid.UUID:
    if target == "pv_mixed":
        return world.mixed_request_id
    return PAGE_VIEWS[target][0] if target != "missing" else MISSING_PAGE_VIEW


# Whose events each person's page may show: the courses each one changed (build_world).
PERSON_GROUPS = {
    "registrar": frozenset({HOME, CHEM}),
    "rival_admin": frozenset({RIVAL}),
    "superuser": frozenset({HOME, RIVAL}),  # the bulk soft delete of both tenants
    "missing": frozenset(),
}


def _person_pk(world: World, target: str) -> Any:
    return world.users[target].pk if target != "missing" else MISSING_ID


def _page_person(world: World, kind: Kind, target: str, request: Request) -> Expect:
    """403 without any grant to audit; 404 when the caller may see none of the person's
    events (whether such a person exists is not said); else their events in what the
    caller may audit, and nothing else."""
    if not kind.view:
        return Expect(403)
    if not PERSON_GROUPS[target] & kind.visible:
        return Expect(404)
    return Expect(200, visible=kind.visible)


def _export_post(oracle: Callable[..., Expect]) -> Callable[..., Expect]:
    """An export's POST (its background job): the page's access rule, then a job queued and
    a redirect to its page."""

    def post(world: World, kind: Kind, target: str, request: Request) -> Expect:
        page = oracle(world, kind, target, request)
        if page.status != 200:
            return page
        return Expect(302, jobs_added=1)

    return post


def _job_url(world: World, group: str, name: str = "export_job") -> str:
    return reverse(f"course_audit:{name}", args=[world.export_jobs[group]])


def _owns(kind: Kind, group: str) -> bool:
    return kind.superuser or KINDS[EXPORT_JOBS[group][1]] is kind


def _export_jobs_oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
    """The viewer's own jobs (every one for a superuser), no one else's, even in the tenant."""
    mine = tuple(_job_url(world, group) for group in EXPORT_JOBS if _owns(kind, group))
    others = tuple(_job_url(world, group) for group in EXPORT_JOBS if not _owns(kind, group))
    return Expect(200, visible=kind.visible, must_show=mine, must_hide=others)


def _export_job_pk(world: World, target: str) -> int:
    return world.export_jobs[target] if target != "missing" else MISSING_ID


def _export_job_oracle(name: str) -> Callable[..., Expect]:
    """A job's page, file, manifest and cancel button: its requester's (and a superuser's);
    anyone else, even of its tenant, gets the 404 of a missing job. The file and manifest
    are served while the requester may still see the course (both still may here)."""

    def oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
        if target == "missing" or not _owns(kind, target):
            return Expect(404)
        if name == "export_job_cancel":
            return Expect(302, location=_job_url(world, target))
        shown = {
            "export_job": str(COURSES[EXPORT_JOBS[target][2]].pk),
            "export_job_download": "id,created_at,course_id",
            "export_job_manifest": '"sha256"',
        }[name]
        return Expect(200, visible=kind.visible, must_show=(shown,))

    return oracle


PAGE_COURSE_TARGETS = ("bio101", "chem", "rival", "missing")
PAGE_ACCOUNT_TARGETS = ("bio", "chem", "home_root", "rival_root", "missing")
SUBTREE_TARGETS = ("bio", "home_root", "rival_root")
SUBTREE = {"include_subaccounts": "1"}
COURSE_PAGE = ("page", "course_audit:course_history", PAGE_COURSE_TARGETS, _page_course)
COURSE_EXPORT = ("page", "course_audit:course_export", PAGE_COURSE_TARGETS, _page_course)
COURSE_AS_OF = ("page", "course_audit:course_as_of", PAGE_COURSE_TARGETS, _page_course)
ACCOUNT_PAGE = ("page", "course_audit:account_history", PAGE_ACCOUNT_TARGETS, _page_account)
ACCOUNT_EXPORT = ("page", "course_audit:account_export", PAGE_ACCOUNT_TARGETS, _page_account)
SUBTREE_PAGE = ("page", "course_audit:account_history", SUBTREE_TARGETS, _page_account)
SUBTREE_EXPORT = ("page", "course_audit:account_export", SUBTREE_TARGETS, _page_account)
TIMEZONE_BODY = urlencode({"timezone": "Asia/Tokyo"})

PAGE_SURFACES = [
    _view("home", "page", "course_audit:home", ("-",), _home_oracle),
    _view("search", "page", "course_audit:home", ("-",), _home_oracle, query={"q": "SECRET"}),
    _view("course_history", *COURSE_PAGE, _course_pk),
    _view("course_export_csv", *COURSE_EXPORT, _course_pk, query={"format": "csv"}),
    _view("course_as_of", *COURSE_AS_OF, _course_pk),
    _view(
        "course_as_of_compared",
        *COURSE_AS_OF,
        _course_pk,
        query={"at": "2999-01-01T00:00", "compare": "2000-01-01T00:00"},
    ),
    _view("course_export_jsonl", *COURSE_EXPORT, _course_pk, query={"format": "jsonl"}),
    _view("account_history", *ACCOUNT_PAGE, _account_pk),
    _view("account_history_subaccounts", *SUBTREE_PAGE, _account_pk, query=SUBTREE),
    # The account page's "Verify these events" button: the page again, by POST.
    _view("account_verify", *ACCOUNT_PAGE, _account_pk, method="post"),
    _view("account_verify_subaccounts", *SUBTREE_PAGE, _account_pk, method="post", query=SUBTREE),
    _view("account_export_csv", *ACCOUNT_EXPORT, _account_pk, query={"format": "csv"}),
    _view("account_export_jsonl", *ACCOUNT_EXPORT, _account_pk, query={"format": "jsonl"}),
    _view(
        "account_export_subaccounts",
        *SUBTREE_EXPORT,
        _account_pk,
        query={"format": "csv", **SUBTREE},
    ),
    *(
        _view(name, "page", url_name, tuple(PERSON_GROUPS), _page_person, _person_pk, query=query)
        for name, url_name, query in (
            ("person_history", "course_audit:person_history", {}),
            ("person_export_csv", "course_audit:person_export", {"format": "csv"}),
        )
    ),
    _view(
        "course_export_background",
        "page",
        "course_audit:course_export",
        PAGE_COURSE_TARGETS,
        _export_post(_page_course),
        _course_pk,
        method="post",
        query={"format": "csv"},
    ),
    _view(
        "account_export_background",
        "page",
        "course_audit:account_export",
        SUBTREE_TARGETS,
        _export_post(_page_account),
        _account_pk,
        method="post",
        query={"format": "jsonl", **SUBTREE},
    ),
    _view("export_jobs", "page", "course_audit:export_jobs", ("-",), _export_jobs_oracle),
    *(
        _view(
            name,
            "page",
            f"course_audit:{name}",
            (HOME, CHEM, RIVAL, "missing"),
            _export_job_oracle(name),
            _export_job_pk,
            method="post" if name == "export_job_cancel" else "get",
        )
        for name in (
            "export_job",
            "export_job_download",
            "export_job_manifest",
            "export_job_cancel",
        )
    ),
    _view(
        "sis_batch_history",
        "page",
        "course_audit:sis_batch_history",
        ("home_batch", "rival_batch", "missing"),
        _page_batch,
        _batch_pk,
    ),
    _view(
        "sis_batch_export",
        "page",
        "course_audit:sis_batch_export",
        ("home_batch", "rival_batch", "missing"),
        _page_batch,
        _batch_pk,
        query={"format": "csv"},
    ),
    _view(
        "sis_batch_export_background",
        "page",
        "course_audit:sis_batch_export",
        ("home_batch", "rival_batch", "missing"),
        _export_post(_page_batch),
        _batch_pk,
        method="post",
        query={"format": "csv"},
    ),
    _view(
        "page_view",
        "page",
        "course_audit:page_view",
        ("pv_bio", "pv_chem", "pv_rival", "pv_mixed", "missing"),
        _page_view_oracle,
        _page_view_id,
    ),
    _view(
        "access_log",
        "page",
        "course_audit:access_log",
        ("home_root", "rival_root", "bio", "missing"),
        _access_log_oracle,
        _account_pk,
    ),
    _view(
        "set_timezone",
        "page",
        "course_audit:set_timezone",
        ("-",),
        _timezone_oracle,
        method="post",
        body=TIMEZONE_BODY,
    ),
]


# The admin: Django's rules first (is_staff, then model permissions: which models), then the
# tenants (which rows): a staff user who is not a superuser sees there only the rows of the
# root accounts where they are a member, and another tenant's row is a 404, as a missing
# one is, as on the pages. The department admin sees its whole tenant there (the pages
# show it its department only): the admin's rule is the tenant's.
ADMIN_VIEWER_MODELS = {"courseevent", "course"}
# Every model but the checkpoints and the prune notes (none is made in this world: they
# need a signing key; they belong to no tenant, so only a superuser lists any).
ADMIN_ROW_MODELS = (
    "account",
    "role",
    "accountmembership",
    "roleoverride",
    "course",
    "courseevent",
    "sisbatch",
    "pageview",
    "apitoken",
    "legalhold",
    "exportjob",
    "accessrecord",
)
ADMIN_MODELS = (*ADMIN_ROW_MODELS, "checkpoint", "prunenote")


def admin_groups(kind: Kind) -> frozenset[str]:
    """The data groups the admin shows ``kind``: its tenants', all for a superuser."""
    if kind.superuser:
        return frozenset(MARKERS)
    return frozenset(spec.group for key, spec in ACCOUNTS.items() if root_of(key) in kind.roots)


def _admin_may(kind: Kind, model: str, action: str) -> bool:
    """Django's model permissions: may ``kind`` ``action`` ("view", "add", "delete") ``model``."""
    if kind.admin in ("tenant", "all"):
        return True
    return kind.admin == "viewer" and action == "view" and model in ADMIN_VIEWER_MODELS


def _admin_oracle(model: str, view: str) -> Callable[..., Expect]:
    """``view``: "changelist", "change", "history", "delete" (its confirmation page), "add"
    (its form) or "autocomplete" (of ``model``'s account)."""

    def oracle(world: World, kind: Kind, target: str, request: Request) -> Expect:
        if kind.admin == "login":
            return Expect(302, location=_login_redirect(request, admin=True))
        groups = admin_groups(kind)
        found = target in groups  # a row of one of the kind's tenants ("missing" is none)
        action = {"add": "add", "delete": "delete"}.get(view, "view")
        if view == "history" and not found:
            # The history view looks the row up before it asks for the permission.
            return Expect(404)
        if not _admin_may(kind, "account" if view == "autocomplete" else model, action):
            return Expect(403)
        if view in ("change", "history", "delete"):
            if not found:
                return Expect(404)
            return Expect(200, visible=groups, must_show=(world.admin_rows[model][target][1],))
        if view == "autocomplete":
            shown = tuple(spec.name for spec in ACCOUNTS.values() if spec.group in groups)
            return Expect(200, visible=groups, must_show=shown)
        model_of_rows = "role" if view == "add" else model  # the add form's role choices
        rows = world.admin_rows.get(model_of_rows, {})
        return Expect(
            200,
            visible=groups,
            must_show=tuple(shown for group, (_, shown) in rows.items() if group in groups),
        )

    return oracle


def _admin_changelist(model: str, **query: str) -> Surface:
    name = f"{model}_changelist" + ("_search" if query else "")
    url_name = f"admin:course_audit_{model}_changelist"
    return _view(name, "admin", url_name, ("-",), _admin_oracle(model, "changelist"), query=query)


def _admin_object(model: str, view: str) -> Surface:
    """An object page of ``model``, for a row of each tenant and a missing one."""

    def ref(world: World, target: str) -> Any:
        return world.admin_rows[model][target][0] if target != "missing" else MISSING_ID

    url_name = f"admin:course_audit_{model}_{view}"
    oracle = _admin_oracle(model, view)
    return _view(f"{model}_{view}", "admin", url_name, (HOME, RIVAL, "missing"), oracle, ref)


ADMIN_SURFACES = [
    *(_admin_changelist(model) for model in ADMIN_MODELS),
    _admin_changelist("courseevent", q="SECRET"),
    *(_admin_object(model, "change") for model in ADMIN_ROW_MODELS),
    _admin_object("course", "history"),
    _admin_object("accountmembership", "delete"),
    # The role choices of a new membership: the tenant's own and the shared ones.
    _view(
        "accountmembership_add",
        "admin",
        "admin:course_audit_accountmembership_add",
        ("-",),
        _admin_oracle("accountmembership", "add"),
    ),
    # The accounts a course may be placed in, as its form's autocomplete finds them.
    _view(
        "course_account_autocomplete",
        "admin",
        "admin:autocomplete",
        ("-",),
        _admin_oracle("course", "autocomplete"),
        query={
            "app_label": "course_audit",
            "model_name": "course",
            "field_name": "account",
            "term": "SECRET",
        },
    ),
]

SURFACES: dict[str, Surface] = {
    surface.name: surface
    for surface in [*API_SURFACES, *PUBLIC_SURFACES, *PAGE_SURFACES, *ADMIN_SURFACES]
}


def _login_redirect(request: Request, *, admin: bool = False) -> str:
    full_path = request.path + (f"?{urlencode(request.query)}" if request.query else "")
    login_url = reverse("admin:login") if admin else settings.LOGIN_URL
    return redirect_to_login(full_path, login_url)["Location"]


def expect(
    world: World, surface: Surface, caller: CallerSpec, target: str, request: Request
) -> Expect:
    """What the cell must answer."""
    if surface.family in ("public", "unknown"):
        # Served alike to everyone: whoever calls, the oracle does not ask.
        return surface.oracle(world, None, target, request)
    # The pages and the admin authenticate by session only: a bearer token is no login.
    # A deactivated user's session and token authenticate nobody.
    authenticated = caller.kind is not None and KINDS[caller.kind].active
    if surface.family in ("page", "admin") and (caller.via != "session" or not authenticated):
        if surface.name == "page.set_timezone":
            # It serves nothing and stores nothing for them (see the view).
            return Expect(302, location=reverse("course_audit:home"))
        return Expect(302, location=_login_redirect(request, admin=surface.family == "admin"))
    if not authenticated or (caller.bad_token and surface.family == "api"):
        return _api_error(401)
    if caller.csrf and request.method not in ("get", "head"):
        return _api_error(403) if surface.family == "api" else Expect(403)
    assert caller.kind is not None
    return surface.oracle(world, KINDS[caller.kind], target, request)


# --- the cells -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cell:
    surface: str
    caller: str
    target: str

    def __str__(self) -> str:
        return f"{self.surface}|{self.caller}|{self.target}"


def callers_of(surface: Surface) -> tuple[str, ...]:
    """The callers a surface is tried with: all of them on the API."""
    if surface.family == "public":
        return PUBLIC_CALLERS
    if surface.family in ("page", "admin"):
        return BROWSER_CALLERS
    return tuple(CALLERS)


def cells() -> list[Cell]:
    return [
        Cell(surface.name, caller, target)
        for surface in SURFACES.values()
        for caller in callers_of(surface)
        for target in surface.targets
    ]


def matrix_size() -> str:
    """The matrix's size, as the terminal summary prints it."""
    all_cells = cells()
    pairs = sum(len(surface.targets) for surface in SURFACES.values())
    public = [surface for surface in SURFACES.values() if surface.family == "public"]
    per_family = Counter(SURFACES[cell.surface].family for cell in all_cells)
    families = ", ".join(f"{family} {count:,}" for family, count in per_family.items())
    return (
        f"authorization matrix: {len(all_cells):,} cells = {pairs} (surface, object) pairs"
        f" over {len(SURFACES)} surfaces x {len(CALLERS)} callers (pages and admin:"
        f" {len(BROWSER_CALLERS)}, {len(public)} public surfaces: {len(PUBLIC_CALLERS)})"
        f" [{families}]"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Print the matrix's size and how its cells fared, when its cells ran."""
    outcomes: Counter[str] = Counter()
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            # A cell counts once: its call, or the setup that failed or skipped it.
            counted = report.when == "call" or (report.when == "setup" and outcome != "passed")
            if "test_authz_matrix.py::test_cell[" in nodeid and counted:
                outcomes[outcome] += 1
    if outcomes:
        ran = ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(outcomes.items()))
        terminalreporter.write_line(f"{matrix_size()}; ran: {ran}")
