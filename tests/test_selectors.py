"""The access selectors: one rule (404 outside the tenant, then 403 without the grant), the
auditable subtree, and the grants kept for one request and no longer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import Permission as AuthPermission
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.request import Request

from course_audit import selectors
from course_audit.models import Account, AccountMembership, Permission, Role, RoleOverride
from course_audit.selectors import Access

pytestmark = pytest.mark.django_db

VIEW = Permission.VIEW_COURSE_CHANGES


def request_of(user: Any) -> HttpRequest:
    request = RequestFactory().get("/")
    request.user = user
    return request


def grants_queries(captured: CaptureQueriesContext) -> list[str]:
    # The grants are one UNION of the memberships and the overrides.
    return [
        query["sql"]
        for query in captured
        if "course_audit_accountmembership" in query["sql"] and "UNION" in query["sql"]
    ]


@pytest.fixture
def rival_root(db: None) -> Account:
    return Account.objects.create(name="Rival University", sis_account_id="RU")


@pytest.fixture
def auditor(make_user, grant, department):
    """Holds the audit role on the department only."""
    user = make_user("auditor")
    grant(user, department)
    return user


# --- the rule --------------------------------------------------------------------------------


def test_the_rule_answers_allowed_forbidden_and_not_found(
    auditor, root_account, college, department, rival_root
):
    request = request_of(auditor)

    assert selectors.account_access(request, department) is Access.ALLOWED
    # The same tenant, above the grant: it exists for this user, who may not read it.
    assert selectors.account_access(request, college) is Access.FORBIDDEN
    assert selectors.account_access(request, root_account) is Access.FORBIDDEN
    # Another tenant: not even confirmed to exist.
    assert selectors.account_access(request, rival_root) is Access.NOT_FOUND

    assert selectors.authorize_account(request, department) is None
    with pytest.raises(PermissionDenied):
        selectors.authorize_account(request, college)
    with pytest.raises(Http404):
        selectors.authorize_account(request, rival_root)


def test_a_role_without_the_permission_makes_a_member_forbidden_not_a_stranger(
    make_user, grant, department, rival_root
):
    viewer = make_user("viewer")
    grant(viewer, department, Role.objects.create(name="Teacher"))
    request = request_of(viewer)

    assert selectors.account_access(request, department) is Access.FORBIDDEN
    assert selectors.account_access(request, rival_root) is Access.NOT_FOUND


def test_the_permission_asked_for_is_the_one_checked(make_user, grant, department):
    reader = make_user("reader")
    grant(reader, department, Role.objects.create(name="Reader", view_course_changes=True))
    request = request_of(reader)

    assert selectors.account_access(request, department, VIEW) is Access.ALLOWED
    assert (
        selectors.account_access(request, department, Permission.MANAGE_COURSES) is Access.FORBIDDEN
    )


def test_an_override_below_the_grant_forbids_there(auditor, admin_role, department):
    genetics = Account.objects.create(name="Genetics", parent=department)
    RoleOverride.objects.create(account=genetics, role=admin_role, permission=VIEW, enabled=False)
    request = request_of(auditor)

    assert selectors.account_access(request, department) is Access.ALLOWED
    assert selectors.account_access(request, genetics) is Access.FORBIDDEN


def test_a_superuser_may_see_every_tenant_and_an_anonymous_user_none(
    make_user, department, rival_root
):
    boss = request_of(make_user("boss", is_superuser=True, is_staff=True))
    assert selectors.account_access(boss, department) is Access.ALLOWED
    assert selectors.account_access(boss, rival_root) is Access.ALLOWED

    anonymous = request_of(AnonymousUser())
    assert selectors.account_access(anonymous, department) is Access.NOT_FOUND


def test_an_inactive_user_is_a_stranger_everywhere(make_user, grant, department):
    gone = make_user("gone", is_active=False)
    grant(gone, department)
    assert selectors.account_access(request_of(gone), department) is Access.NOT_FOUND


# --- the subtree ---------------------------------------------------------------------------


def test_the_subtree_is_the_account_and_the_accounts_below_it_with_the_grant(
    auditor, admin_role, root_account, college, department, rival_root
):
    genetics = Account.objects.create(name="Genetics", parent=department)
    botany = Account.objects.create(name="Botany", parent=department)
    sealed = Account.objects.create(name="Sealed", parent=botany)
    RoleOverride.objects.create(account=botany, role=admin_role, permission=VIEW, enabled=False)
    chemistry = Account.objects.create(name="Chemistry", parent=college)
    request = request_of(auditor)

    assert sorted(selectors.auditable_subtree(request, department)) == sorted(
        [department.pk, genetics.pk]
    )
    # From above the grant: only what the grant reaches (not the college, nor chemistry).
    assert sorted(selectors.auditable_subtree(request, root_account)) == sorted(
        [department.pk, genetics.pk]
    )
    assert selectors.auditable_subtree(request, genetics) == [genetics.pk]
    assert selectors.auditable_subtree(request, sealed) == []
    assert selectors.auditable_subtree(request, chemistry) == []
    assert selectors.auditable_subtree(request, rival_root) == []


def test_a_superusers_subtree_is_every_account_below(make_user, college, department):
    genetics = Account.objects.create(name="Genetics", parent=department)
    boss = request_of(make_user("boss", is_superuser=True))
    assert sorted(selectors.auditable_subtree(boss, college)) == sorted(
        [college.pk, department.pk, genetics.pk]
    )


# --- one request, one load -----------------------------------------------------------------


def test_the_grants_are_loaded_once_per_request_and_permission(auditor, department, college):
    request = request_of(auditor)

    with CaptureQueriesContext(connection) as captured:
        first = selectors.request_grants(request, VIEW)
        assert selectors.account_access(request, department) is Access.ALLOWED
        assert selectors.account_access(request, college) is Access.FORBIDDEN
        assert selectors.auditable_subtree(request, department) == [department.pk]
        again = selectors.request_grants(request, VIEW)
        selectors.request_grants(request, Permission.MANAGE_COURSES)

    assert again is first
    # One load for view_course_changes, one for manage_courses.
    assert len(grants_queries(captured)) == 2
    # A new request loads them again.
    with CaptureQueriesContext(connection) as captured:
        assert selectors.request_grants(request_of(auditor), VIEW) is not first
    assert len(grants_queries(captured)) == 1


def test_a_drf_request_and_its_httprequest_share_one_cache(auditor, department):
    http_request = RequestFactory().get("/")
    drf_request = Request(http_request)
    drf_request.user = auditor  # as DRF's authentication sets it, on both objects

    with CaptureQueriesContext(connection) as captured:
        through_drf = selectors.request_grants(drf_request, VIEW)
        through_django = selectors.request_grants(http_request, VIEW)
        assert selectors.account_access(http_request, department) is Access.ALLOWED
        assert selectors.account_access(drf_request, department) is Access.ALLOWED

    assert through_django is through_drf
    assert len(grants_queries(captured)) == 1
    assert selectors.GRANTS_CACHE_ATTRIBUTE in vars(http_request)
    assert selectors.GRANTS_CACHE_ATTRIBUTE not in vars(drf_request)


def test_the_cache_follows_the_requests_user(auditor, make_user, department):
    """A request whose user changes (DRF authenticating a token after the session's
    anonymous user) is answered for the user it has now."""
    request = request_of(AnonymousUser())
    assert selectors.account_access(request, department) is Access.NOT_FOUND
    request.user = auditor
    assert selectors.account_access(request, department) is Access.ALLOWED


def test_a_revoked_grant_takes_effect_on_the_next_request(auditor, department):
    during = request_of(auditor)
    assert selectors.account_access(during, department) is Access.ALLOWED

    AccountMembership.objects.filter(user=auditor).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )

    # The request under way keeps the answer it started with ...
    assert selectors.account_access(during, department) is Access.ALLOWED
    # ... and the next one sees the revocation: the user is no member of the tenant now.
    assert selectors.account_access(request_of(auditor), department) is Access.NOT_FOUND


def test_a_revoked_grant_closes_the_page_and_the_api_on_the_next_request(client, auditor, course):
    client.force_login(auditor)
    page = reverse("course_audit_course_history", args=[course.pk])
    api = reverse("course_audit_api:audit-course", kwargs={"course_id": course.pk})
    assert client.get(page).status_code == 200
    assert client.get(api).status_code == 200

    AccountMembership.objects.filter(user=auditor).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )

    assert client.get(page).status_code == 404
    response = client.get(api)
    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "The specified resource does not exist."}]}


def test_a_subtree_page_loads_the_grants_once(client, auditor, department, course):
    Account.objects.create(name="Genetics", parent=department)
    client.force_login(auditor)
    page = reverse("course_audit_account_history", args=[department.pk])
    api = reverse("course_audit_api:audit-account", kwargs={"account_id": department.pk})

    for path in (page, api):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path, {"include_subaccounts": "true"})
        assert response.status_code == 200, path
        assert len(grants_queries(captured)) == 1, path


# --- the admin's links -----------------------------------------------------------------------


@pytest.fixture
def staff_viewer(make_user):
    """Staff with the admin's view permissions on courses and events, and no tenant role."""
    user = make_user("operator", is_staff=True)
    user.user_permissions.set(
        AuthPermission.objects.filter(
            content_type__app_label="course_audit", codename__in=["view_course", "view_courseevent"]
        )
    )
    return user


def test_the_admin_links_a_history_page_only_for_a_viewer_it_would_answer(
    client, staff_viewer, grant, department, course
):
    history = reverse("course_audit_course_history", args=[course.pk])
    course_page = reverse("admin:course_audit_course_change", args=[course.pk])
    event = course.events.get()
    event_page = reverse("admin:course_audit_courseevent_change", args=[event.pk])
    client.force_login(staff_viewer)

    # Outside the viewer's tenants the admin answers as the page does.
    for page in (course_page, event_page, history):
        assert client.get(page).status_code == 404

    # A member of the tenant without the view permission: the admin shows the course, the
    # page would answer 403, so no link to it.
    membership = grant(staff_viewer, department, Role.objects.create(name="Teacher"))
    for page in (course_page, event_page):
        response = client.get(page)
        assert response.status_code == 200
        assert course.name in response.content.decode()
        assert f'href="{history}"' not in response.content.decode()
    assert client.get(history).status_code == 403

    membership.delete()
    grant(staff_viewer, department)

    for page in (course_page, event_page):
        response = client.get(page)
        assert response.status_code == 200
        assert f'href="{history}"' in response.content.decode()
    assert client.get(history).status_code == 200


# --- the tenants, for the admin ----------------------------------------------------------------


def test_in_tenants_matches_a_root_and_everything_below_it(root_account, college, department):
    rival = Account.objects.create(name="Rival")
    rival_dept = Account.objects.create(name="Rival dept", parent=rival)

    def matched(roots: set[int]) -> set[int]:
        return set(Account.objects.filter(selectors.in_tenants(roots)).values_list("pk", flat=True))

    def not_matched(roots: set[int]) -> set[int]:
        # A root's root_account is NULL: the negation must still hold for it.
        return set(
            Account.objects.exclude(selectors.in_tenants(roots)).values_list("pk", flat=True)
        )

    home = {root_account.pk, college.pk, department.pk}
    assert matched({root_account.pk}) == home
    assert not_matched({root_account.pk}) == {rival.pk, rival_dept.pk}
    assert matched({rival.pk, root_account.pk}) == home | {rival.pk, rival_dept.pk}
    assert matched(set()) == set()
    assert not_matched(set()) == home | {rival.pk, rival_dept.pk}


def test_tenant_roots_are_the_memberships_roots_and_none_for_a_superuser(
    make_user, grant, department, root_account
):
    member = make_user("member")
    assert selectors.tenant_roots(request_of(member)) == frozenset()
    grant(member, department, Role.objects.create(name="No permission"))
    assert selectors.tenant_roots(request_of(member)) == frozenset({root_account.pk})
    boss = make_user("boss", is_superuser=True)
    assert selectors.tenant_roots(request_of(boss)) is None


def test_tenant_users_belong_to_those_tenants_alone(make_user, grant, department, root_account):
    rival = Account.objects.create(name="Rival")
    rival_dept = Account.objects.create(name="Rival dept", parent=rival)
    home_only = make_user("home-only")
    grant(home_only, department)
    both = make_user("both")
    grant(both, department)
    grant(both, rival_dept)
    rival_only = make_user("rival-only")
    grant(rival_only, rival)
    left_the_rival = make_user("left-the-rival")
    grant(left_the_rival, root_account)
    # A revoked grant in the rival tenant: the row stays, inactive.
    AccountMembership.objects.create(
        user=left_the_rival,
        account=rival,
        role=Role.objects.create(name="Former"),
        workflow_state=AccountMembership.WorkflowState.DELETED,
    )
    make_user("nobody's")
    boss = make_user("boss", is_superuser=True)
    grant(boss, department)

    def users(roots: set[int]) -> set[Any]:
        return set(selectors.tenant_users(roots))

    assert users({root_account.pk}) == {home_only, left_the_rival}
    assert users({rival.pk}) == {rival_only}
    assert users({root_account.pk, rival.pk}) == {home_only, both, rival_only, left_the_rival}
    assert users(set()) == set()


def test_scoped_events_are_the_listings_rows(course: Any, add_events: Any) -> None:
    """``ScopedEvents``: every event of the database the listing reads, and the one column
    and value that choose the course's or the account's; its ``queryset()`` is those rows."""
    add_events(course, 3, when=dt.datetime(2025, 3, 3, tzinfo=dt.UTC), step=dt.timedelta(days=40))
    for scoped, listing in [
        (selectors.course_event_scope(course), selectors.course_events(course)),
        (
            selectors.account_event_scope(course.account_id),
            selectors.account_events([course.account_id]),
        ),
    ]:
        assert not scoped.events.query.where  # nothing chosen yet: the reader adds it
        assert scoped.events.db == listing.db == "default"
        assert sorted(scoped.queryset().values_list("pk", flat=True)) == sorted(
            listing.values_list("pk", flat=True)
        )
        assert scoped.queryset().count() == 4  # its "created" event and the three
    assert selectors.course_event_scope(course)[1:] == ("course_id", course.pk)
    assert selectors.account_event_scope(course.account_id)[1:] == (
        "account_id",
        course.account_id,
    )
