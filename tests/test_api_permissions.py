"""Authentication and permissions of the API, with the contract's exact answers (§5)."""

from __future__ import annotations

import base64

import pytest
from django.test import Client
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.versioning import URLPathVersioning
from rest_framework.views import APIView

from course_audit import services
from course_audit.models import Account, AccountMembership, ApiToken, Role, RoleOverride
from tests.helpers import FORBIDDEN, NOT_FOUND, UNAUTHENTICATED

pytestmark = pytest.mark.django_db


@pytest.fixture
def chemistry(college):
    return Account.objects.create(name="Chemistry", parent=college, sis_account_id="CHEM")


@pytest.fixture
def chem_course(chemistry):
    return services.course_create(account=chemistry, name="Chem 101", sis_course_id="CHEM101")


@pytest.fixture
def foreign_course(other_root):
    return services.course_create(account=other_root, name="Rival 1", sis_course_id="R1")


def surfaces(course, account) -> list[str]:
    return [
        f"/api/v1/audit/course/courses/{course.pk}",
        f"/api/v1/audit/course/courses/sis_course_id:{course.sis_course_id}",
        f"/api/v1/courses/{course.pk}",
        f"/api/v1/audit/course/accounts/{account.pk}",
        f"/api/v1/audit/course/accounts/sis_account_id:{account.sis_account_id}",
        f"/api/v1/accounts/{account.pk}",
    ]


@pytest.mark.parametrize("header", [None, "Bearer nope", "Token abc", "Bearer"])
def test_no_or_bad_credentials_are_401(client, course, department, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for path in surfaces(course, department):
        # "Token abc" is not our scheme: it counts as no credentials at all.
        response = client.get(path, **extra)
        assert response.status_code == 401, path
        assert response.json() == UNAUTHENTICATED
        assert response["WWW-Authenticate"] == 'Bearer realm="course_audit"'


def test_a_revoked_token_is_401_at_once(caller, course, root_account, admin_role):
    registrar = caller("registrar", (root_account, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    assert registrar.get(path).status_code == 200
    ApiToken.objects.filter(user=registrar.user).update(revoked_at="2020-01-01T00:00:00Z")
    assert registrar.get(path).status_code == 401


def test_the_other_tenant_gets_404_for_everything(
    caller, other_root, admin_role, course, department
):
    rival_admin = caller("rival", (other_root, admin_role))
    for path in surfaces(course, department):
        response = rival_admin.get(path)
        assert response.status_code == 404, path
        assert response.json() == NOT_FOUND
        assert b"Biology" not in response.content


def test_unknown_ids_are_404(caller, root_account, admin_role):
    registrar = caller("registrar", (root_account, admin_role))
    for path in (
        "/api/v1/audit/course/courses/424242",
        "/api/v1/audit/course/accounts/424242",
        "/api/v1/courses/424242",
        "/api/v1/accounts/424242",
    ):
        response = registrar.get(path)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND


def test_a_member_without_the_permission_is_403(
    caller, root_account, teacher_role, course, department
):
    teacher = caller("teacher", (root_account, teacher_role))
    for path in surfaces(course, department):
        response = teacher.get(path)
        assert response.status_code == 403, path
        assert response.json() == FORBIDDEN


def test_a_department_grant_covers_its_department_only(
    caller, department, admin_role, course, chem_course, chemistry, college
):
    dept_admin = caller("dept_admin", (department, admin_role))
    for path in surfaces(course, department):
        assert dept_admin.get(path).status_code == 200, path
    for path in surfaces(chem_course, chemistry):
        assert dept_admin.get(path).status_code == 403, path
    assert dept_admin.get(f"/api/v1/audit/course/accounts/{college.pk}").status_code == 403


def test_a_grant_covers_sub_accounts(caller, college, admin_role, course, chem_course):
    college_admin = caller("dean", (college, admin_role))
    assert college_admin.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 200
    assert college_admin.get(f"/api/v1/audit/course/courses/{chem_course.pk}").status_code == 200
    events = college_admin.get(
        f"/api/v1/audit/course/accounts/{college.pk}", include_subaccounts="true"
    ).json()["events"]
    assert {e["links"]["course"] for e in events} == {str(course.pk), str(chem_course.pk)}


def test_revoking_a_membership_takes_effect_on_the_next_request(
    caller, root_account, department, admin_role, teacher_role, course
):
    user = caller("registrar", (root_account, admin_role), (root_account, teacher_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    assert user.get(path).status_code == 200
    AccountMembership.objects.filter(user=user.user, role=admin_role).update(
        workflow_state=AccountMembership.WorkflowState.DELETED
    )
    # Still a member (the teacher role), no longer allowed.
    assert user.get(path).status_code == 403
    AccountMembership.objects.filter(user=user.user).update(workflow_state="deleted")
    assert user.get(path).status_code == 404


def test_a_role_override_revokes_below_and_the_nearest_wins(
    caller, root_account, college, department, admin_role, course, chem_course
):
    registrar = caller("registrar", (root_account, admin_role))
    RoleOverride.objects.create(
        account=college, role=admin_role, permission="view_course_changes", enabled=False
    )
    assert registrar.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 403
    assert registrar.get(f"/api/v1/audit/course/courses/{chem_course.pk}").status_code == 403
    RoleOverride.objects.create(
        account=department, role=admin_role, permission="view_course_changes", enabled=True
    )
    assert registrar.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 200
    assert registrar.get(f"/api/v1/audit/course/courses/{chem_course.pk}").status_code == 403
    # The whole-tree listing leaves out what the override hides.
    events = registrar.get(
        f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts="true"
    ).json()["events"]
    assert {e["links"]["course"] for e in events} == {str(course.pk)}


def test_an_override_for_another_permission_changes_nothing(
    caller, root_account, admin_role, course
):
    registrar = caller("registrar", (root_account, admin_role))
    RoleOverride.objects.create(
        account=root_account, role=admin_role, permission="manage_courses", enabled=False
    )
    assert registrar.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 200


def test_a_superuser_sees_every_tenant(client, make_user, course, foreign_course):
    boss = make_user("boss", is_superuser=True, is_staff=True)
    _, token = ApiToken.issue(user=boss)
    for target in (course, foreign_course):
        response = client.get(
            f"/api/v1/audit/course/courses/sis_course_id:{target.sis_course_id}",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200


def test_an_inactive_user_token_is_401(caller, root_account, admin_role, course):
    registrar = caller("registrar", (root_account, admin_role))
    registrar.user.is_active = False
    registrar.user.save()
    assert registrar.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 401


def test_the_session_authenticates_browsers(client, make_user, grant, root_account, course):
    user = make_user("browser")
    grant(user, root_account)
    client.force_login(user)
    response = client.get(f"/api/v1/audit/course/courses/{course.pk}")
    assert response.status_code == 200
    client.logout()
    assert client.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 401


def test_permission_is_checked_before_parameters(
    caller, root_account, teacher_role, other_root, admin_role, course
):
    teacher = caller("teacher", (root_account, teacher_role))
    rival = caller("rival", (other_root, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    assert teacher.get(path, start_time="garbage").status_code == 403
    assert rival.get(path, start_time="garbage").status_code == 404
    assert Client().get(path, {"start_time": "garbage"}).status_code == 401


class OnlyHostVersions(URLPathVersioning):
    """A host whose own API is versioned in its paths (/api/v2/...) and allows only those."""

    allowed_versions = ["v2"]


@pytest.fixture
def open_host_defaults(monkeypatch):
    """A host's dangerously open REST_FRAMEWORK defaults.

    DRF copies REST_FRAMEWORK into APIView's class attributes when it is imported, so
    override_settings cannot change them; set them as such a host's settings would have.
    """
    defaults = {
        "authentication_classes": [BasicAuthentication, SessionAuthentication],
        "permission_classes": [AllowAny],
        "renderer_classes": [JSONRenderer, BrowsableAPIRenderer],
        "versioning_class": OnlyHostVersions,
    }
    for name, value in defaults.items():
        monkeypatch.setattr(APIView, name, value)


def test_host_defaults_cannot_open_the_api(
    client, course, department, make_user, open_host_defaults
):
    # Basic authentication of a superuser with the right password: not one of the API's.
    root = make_user("root", is_superuser=True)
    basic = "Basic " + base64.b64encode(f"{root.get_username()}:demo".encode()).decode()
    for path in surfaces(course, department):
        for headers in ({}, {"HTTP_AUTHORIZATION": basic}):
            response = client.get(path, **headers)
            assert response.status_code == 401, (path, headers)
            assert response.json() == UNAUTHENTICATED


def test_host_versioning_does_not_hide_the_api(
    client, caller, root_account, admin_role, course, open_host_defaults
):
    registrar = caller("registrar", (root_account, admin_role))
    assert registrar.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 200
    assert registrar.get(f"/api/v1/courses/{course.pk}").status_code == 200
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_login_required_middleware_answers_api_clients_itself(
    client, caller, root_account, admin_role, course, settings
):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    registrar = caller("registrar", (root_account, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    assert registrar.get(path).status_code == 200
    response = Client().get(path)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert Client().get("/api/schema/").status_code == 200
    # The pages stay behind the host's login.
    assert Client().get("/audit/").status_code == 302


def test_the_link_targets(caller, root_account, admin_role, course, department):
    registrar = caller("registrar", (root_account, admin_role))
    body = registrar.get(f"/api/v1/courses/{course.pk}").json()
    assert body["id"] == course.pk
    assert body["account_id"] == department.pk
    assert body["name"] == "Biology 101"
    assert body["workflow_state"] == "unpublished"
    assert list(body) == [
        "id",
        "name",
        "course_code",
        "account_id",
        "root_account_id",
        "uuid",
        "sis_course_id",
        "created_at",
        "start_at",
        "end_at",
        "is_public",
        "workflow_state",
    ]
    assert registrar.get(f"/api/v1/accounts/{department.pk}/").json() == {
        "id": department.pk,
        "name": "Biology",
        "parent_account_id": department.parent_id,
        "root_account_id": root_account.pk,
        "sis_account_id": "BIO",
        "workflow_state": "active",
    }
    assert registrar.get(f"/api/v1/accounts/{root_account.pk}").json()["root_account_id"] is None


def test_a_role_of_no_permission_at_the_root_is_membership(caller, root_account, course):
    nobody_role = Role.objects.create(name="Observer")
    observer = caller("observer", (root_account, nobody_role))
    assert observer.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 403
