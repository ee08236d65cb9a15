"""The Django admin: every model registered; course events read-only, with their diff shown
escaped; changelists that never count a big table exactly; tokens issued once and hashed."""

from __future__ import annotations

import hashlib
import re
import uuid
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission as AuthPermission
from django.db import connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from auditlog_project import urls as project_urls
from course_audit import services
from course_audit.admin import EstimatedCountPaginator
from course_audit.context import audit_context
from course_audit.models import (
    Account,
    AccountMembership,
    ApiToken,
    CourseEvent,
    ExportJob,
    LegalHold,
    PageView,
    Role,
    SisBatch,
)
from tests.helpers import last_event

pytestmark = pytest.mark.django_db

urlpatterns = [
    *project_urls.urlpatterns,
    path(
        "courses/<int:course_id>/history/",
        lambda request, course_id: HttpResponse(),
        name="course_audit:course_history",
    ),
]


class AdminOnlyUrls:
    """A host that serves the admin but not the course history page."""

    urlpatterns = [path("admin/", admin.site.urls)]


@pytest.fixture
def superuser(make_user):
    return make_user("boss", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def changelist_events(admin_client, **params):
    response = admin_client.get(reverse("admin:course_audit_courseevent_changelist"), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_every_model_is_registered():
    models = set(apps.get_app_config("course_audit").get_models())
    assert models <= set(admin.site._registry)


def test_every_changelist_opens(admin_client, course):
    for model in apps.get_app_config("course_audit").get_models():
        url = reverse(f"admin:course_audit_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, url


def test_records_are_read_only_even_for_superusers(admin_client, superuser, course):
    request = RequestFactory().get("/")
    request.user = superuser
    event = last_event(course)
    for model in (CourseEvent, SisBatch, ExportJob):
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, event)
        assert not model_admin.has_delete_permission(request, event)
        assert model_admin.has_view_permission(request, event)
    assert admin_client.get(reverse("admin:course_audit_courseevent_add")).status_code == 403
    delete_url = reverse("admin:course_audit_courseevent_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get(reverse("admin:course_audit_courseevent_changelist"))
    assert b"delete_selected" not in changelist.content
    assert CourseEvent.objects.filter(pk=event.pk).exists()


def test_the_event_page_shows_the_diff_escaped(admin_client, make_course, settings):
    settings.ROOT_URLCONF = __name__
    course = make_course(name="<script>alert(1)</script>", course_code="XSS1")
    services.course_update(course=course, public_description="a" * 300)
    created = CourseEvent.objects.get(course=course, event_type="created")

    page = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[created.pk]))

    assert page.status_code == 200
    body = page.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    table = re.search(r'<table class="diff">.*?</table>', body, re.S)
    assert table is not None
    name_row = re.search(
        r'<tr><th scope="row">Name</th><td data-label="Before">(.*?)</td>'
        r'<td data-label="After">(.*?)</td></tr>',
        table.group(0),
    )
    assert name_row is not None
    assert "—" in name_row.group(1)
    assert name_row.group(2) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert reverse("admin:course_audit_course_change", args=[course.pk]) in body
    assert reverse("course_audit:course_history", kwargs={"course_id": course.pk}) in body

    updated = last_event(course)
    page = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[updated.pk]))
    assert '<details class="fold"><summary>' in page.content.decode()
    assert "a" * 300 in page.content.decode()
    # read as the history pages show it: yes/no, and a blank value as a dash
    services.course_update(course=course, is_public=True, public_description="")
    page = admin_client.get(
        reverse("admin:course_audit_courseevent_change", args=[last_event(course).pk])
    ).content.decode()
    assert (
        '<tr><th scope="row">Public</th><td data-label="Before">No</td>'
        '<td data-label="After">Yes</td></tr>'
    ) in page
    assert re.search(
        r'<tr><th scope="row">Public description</th><td data-label="Before">'
        r'<details class="fold">.*?</td><td data-label="After"><span',
        page,
    )


def test_event_page_links_the_sis_batch_other_course_and_page_view(
    admin_client, course, make_course, superuser, root_account
):
    batch = SisBatch.objects.create(root_account=root_account, filename="courses.csv")
    page_view = PageView.objects.create(
        request_id=uuid.uuid4(), url="/admin/x", http_method="POST", user=superuser
    )
    with audit_context(user=superuser, source="sis", sis_batch=batch, request_id=page_view.pk):
        services.course_update(course=course, name="Biology 102")
    event = last_event(course)
    page = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk]))
    body = page.content.decode()
    assert reverse("admin:course_audit_sisbatch_change", args=[batch.pk]) in body
    assert reverse("admin:course_audit_pageview_change", args=[page_view.pk]) in body
    assert "POST /admin/x" in body

    other = make_course(name="Biology 101 copy")
    copy = CourseEvent.objects.create(
        course=other,
        account=other.account,
        event_type="copied_from",
        event_source="manual",
        related_course=course,
    )
    page = admin_client.get(reverse("admin:course_audit_courseevent_change", args=[copy.pk]))
    assert reverse("admin:course_audit_course_change", args=[course.pk]) in page.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reltuples is PostgreSQL's")
def test_the_paginator_estimates_the_whole_table_on_postgresql(make_course):
    for _ in range(12):
        make_course()  # one ``created`` event each
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE course_audit_courseevent")
    paginator = EstimatedCountPaginator(CourseEvent.objects.order_by("-created_at", "-id"), 5)
    paginator.count_limit = 5

    with CaptureQueriesContext(connection) as captured:
        count = paginator.count

    assert count == 12
    assert paginator.count_label == "about 12"
    assert len(captured) == 1
    assert "reltuples" in captured[0]["sql"]
    assert "COUNT(" not in captured[0]["sql"].upper()
    assert paginator.num_pages == 3


def test_the_paginator_bounds_the_count_of_a_filtered_queryset(make_course):
    for _ in range(12):
        make_course()
    paginator = EstimatedCountPaginator(CourseEvent.objects.filter(event_type="created"), 5)
    paginator.count_limit = 5

    with CaptureQueriesContext(connection) as captured:
        count = paginator.count

    assert count == 6
    assert paginator.count_label == "5+"
    assert "LIMIT 6" in captured[0]["sql"].upper()
    assert "reltuples" not in captured[0]["sql"]
    exact = EstimatedCountPaginator(CourseEvent.objects.filter(pk__lte=-1), 5)
    assert exact.count == 0 and exact.count_label == "0"


def test_the_paginator_counts_a_small_or_unanalysed_table_exactly(make_course):
    make_course()
    make_course()
    paginator = EstimatedCountPaginator(CourseEvent.objects.all(), 100)
    assert paginator.count == 2
    assert paginator.count_label == "2"


def test_the_changelist_is_ordered_by_an_index_and_labels_the_count(admin_client, make_course):
    for _ in range(3):
        make_course()
    model_admin = admin.site._registry[CourseEvent]
    assert model_admin.get_ordering(None) == ("-created_at", "-id")
    assert not model_admin.date_hierarchy
    assert model_admin.show_full_result_count is False
    assert model_admin.show_facets == admin.ShowFacets.NEVER
    assert model_admin.sortable_by == ()
    response = admin_client.get(reverse("admin:course_audit_courseevent_changelist"))
    assert [event.pk for event in response.context["cl"].result_list] == list(
        CourseEvent.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert re.search(r"3\s+course events", response.content.decode())


def test_the_changelist_pages_by_position_not_offset(admin_client, make_course, monkeypatch):
    """Older/Newer links carry a signed position; no page costs an OFFSET."""
    for _ in range(6):
        make_course()  # one `created` event each
    monkeypatch.setattr(admin.site._registry[CourseEvent], "list_per_page", 3)
    url = reverse("admin:course_audit_courseevent_changelist")
    newest_first = list(
        CourseEvent.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    assert len(newest_first) == 6

    def page(query=""):
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(url + query)
        assert response.status_code == 200
        sql = [q["sql"] for q in captured if "course_audit_courseevent" in q["sql"]]
        assert not any("OFFSET" in statement.upper() for statement in sql), sql
        return response.context["cl"], response.content.decode()

    first, html = page()
    assert [event.pk for event in first.result_list] == newest_first[:3]
    assert first.newer_query is None and first.older_query
    assert 'rel="next"' in html and 'rel="prev"' not in html
    second, html = page(first.older_query)
    assert [event.pk for event in second.result_list] == newest_first[3:]
    assert second.older_query is None and second.newer_query
    back, _html = page(second.newer_query)
    assert [event.pk for event in back.result_list] == newest_first[:3]
    # a filter or search link starts again from the newest: no position in it
    assert "after=" not in second.get_query_string({"event_type__exact": "created"})
    filtered, _html = page(first.older_query + "&event_type__exact=created")
    assert [event.pk for event in filtered.result_list] == newest_first[3:]
    # a tampered or foreign position: the newest page and a note, never a 500
    stale, html = page("?after=not-a-token")
    assert [event.pk for event in stale.result_list] == newest_first[:3]
    assert "That page link is out of date" in html
    # page numbers are not offered (they would be an OFFSET)
    assert "?p=" not in html


def test_search_finds_events_by_course_name_code_sis_id_and_actor(
    admin_client, course, make_course, make_user
):
    chemistry = make_course(name="Chemistry 200", course_code="CHEM200", sis_course_id="CH-F25")
    actor = make_user("registrar-jo")
    with audit_context(user=actor, source="api"):
        services.course_update(course=course, name="Biology 101 (renamed)")
    bio_events = set(CourseEvent.objects.filter(course=course).values_list("pk", flat=True))
    chem_events = set(CourseEvent.objects.filter(course=chemistry).values_list("pk", flat=True))

    def found(term):
        return {event.pk for event in changelist_events(admin_client, q=term)}

    assert found("chemistry") == chem_events
    assert found("chem200") == chem_events
    assert found("CH-F25") == chem_events
    assert found("BIO101-F25") == bio_events
    assert found("registrar-jo") == {last_event(course).pk}
    assert found("no such thing") == set()


def test_search_and_filters_stay_on_indexed_lookups(admin_client, course):
    with CaptureQueriesContext(connection) as captured:
        changelist_events(admin_client, q="Biology", event_type__exact="created")
    event_queries = [q["sql"] for q in captured if "course_audit_courseevent" in q["sql"]]
    assert event_queries
    assert not any("LIKE" in sql.upper() for sql in event_queries)


def test_the_course_page_links_its_history_and_recent_events(
    admin_client, course, settings, make_course
):
    make_course(name="Another course")
    services.course_update(course=course, name="Biology 101 v2")
    settings.ROOT_URLCONF = __name__
    page = admin_client.get(reverse("admin:course_audit_course_change", args=[course.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    history = reverse("course_audit:course_history", kwargs={"course_id": course.pk})
    assert f'<a href="{history}">history page</a>' in body
    events_url = reverse("admin:course_audit_courseevent_changelist")
    assert f"{events_url}?course__id__exact={course.pk}" in body
    for event in CourseEvent.objects.filter(course=course):
        assert reverse("admin:course_audit_courseevent_change", args=[event.pk]) in body
    listed = changelist_events(admin_client, course__id__exact=course.pk)
    assert {event.course_id for event in listed} == {course.pk}
    assert len(listed) == 2


def test_the_course_page_works_without_the_history_page(admin_client, course, settings):
    settings.ROOT_URLCONF = AdminOnlyUrls
    page = admin_client.get(reverse("admin:course_audit_course_change", args=[course.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "history page" not in body
    assert f"?course__id__exact={course.pk}" in body


def test_editing_a_course_in_the_admin_records_a_manual_event(admin_client, course, superuser):
    url = reverse("admin:course_audit_course_change", args=[course.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {key: ("" if value is None else value) for key, value in data.items()}
    data.update(name="Edited in admin", start_at_0="", start_at_1="")
    data.update(conclude_at_0="", conclude_at_1="")
    data.pop("start_at")
    data.pop("conclude_at")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    event = last_event(course)
    assert (event.event_type, event.event_source, event.user) == ("updated", "manual", superuser)
    assert event.event_data == {"name": ["Biology 101", "Edited in admin"]}


def test_a_sis_batch_shows_its_messages_escaped(admin_client, root_account):
    batch = SisBatch.objects.create(
        root_account=root_account,
        workflow_state="imported_with_messages",
        messages=["line 2: unknown account <b>X</b>"],
    )
    page = admin_client.get(reverse("admin:course_audit_sisbatch_change", args=[batch.pk]))
    assert page.status_code == 200
    assert "<li>line 2: unknown account &lt;b&gt;X&lt;/b&gt;</li>" in page.content.decode()
    assert b'name="_save"' not in page.content


def test_a_token_is_issued_shown_once_and_stored_hashed(admin_client, make_user):
    owner = make_user("scripter")
    response = admin_client.post(
        reverse("admin:course_audit_apitoken_add"),
        {"user": owner.pk, "name": "nightly sync", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = re.findall(r"<code>([\w-]+)</code>", response.content.decode())
    assert len(shown) == 1
    [plaintext] = shown
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (owner, "nightly sync")
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert token.hint == plaintext[-4:]
    assert ApiToken.objects.for_plaintext(plaintext).usable().get() == token
    stored = ApiToken.objects.values_list("token_hash", "hint", "name")
    assert not any(plaintext in value for row in stored for value in row)
    again = admin_client.get(reverse("admin:course_audit_apitoken_changelist"))
    assert plaintext not in again.content.decode()
    detail = admin_client.get(reverse("admin:course_audit_apitoken_change", args=[token.pk]))
    assert plaintext not in detail.content.decode()
    assert token.token_hash not in detail.content.decode()
    assert b'name="revoked_at' not in detail.content


def test_tokens_are_listed_and_revoked_never_shown(admin_client, make_user):
    owner = make_user("scripter")
    token, plaintext = ApiToken.issue(user=owner, name="nightly sync")
    changelist = reverse("admin:course_audit_apitoken_changelist")
    page = admin_client.get(changelist).content.decode()
    assert "nightly sync" in page
    assert plaintext not in page and token.token_hash not in page
    response = admin_client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert not ApiToken.objects.usable().filter(pk=token.pk).exists()


# --- tenants: staff who are not superusers see and change their tenants' rows only -------


@pytest.fixture
def rival(db):
    """Another tenant, with a course, a role, a member and that member's token."""
    root = Account.objects.create(name="Rival College", sis_account_id="RIVAL")
    course = services.course_create(account=root, name="Rival Chemistry", course_code="RCHEM")
    role = Role.objects.create(name="Rival role", root_account=root, view_course_changes=True)
    member = get_user_model().objects.create_user(
        **{get_user_model().USERNAME_FIELD: "rival-member"}, password=None
    )
    AccountMembership.objects.create(user=member, account=root, role=role)
    token, _plaintext = ApiToken.issue(user=member, name="rival sync")
    return SimpleNamespace(root=root, course=course, role=role, member=member, token=token)


@pytest.fixture
def tenant_staff(make_user, grant, department):
    """Staff with every permission on the app's models, and a role in the home tenant only
    (on its Biology department)."""
    user = make_user("tenant-staff", is_staff=True)
    user.user_permissions.set(AuthPermission.objects.filter(content_type__app_label="course_audit"))
    grant(user, department)
    return user


@pytest.fixture
def staff_client(tenant_staff):
    # A client of its own: a test may use the superuser's ``admin_client`` beside it.
    staff = Client()
    staff.force_login(tenant_staff)
    return staff


def test_a_tenant_staff_user_cannot_change_another_tenants_course(staff_client, course, rival):
    url = reverse("admin:course_audit_course_change", args=[rival.course.pk])
    before = list(CourseEvent.objects.filter(course=rival.course).values_list("pk", flat=True))

    response = staff_client.post(url, {"name": "Taken over", "account": rival.root.pk})

    assert response.status_code == 404
    rival.course.refresh_from_db()
    assert rival.course.name == "Rival Chemistry"
    assert list(CourseEvent.objects.filter(course=rival.course).values_list("pk", flat=True)) == (
        before
    )
    for view in ("history", "delete"):
        other = reverse(f"admin:course_audit_course_{view}", args=[rival.course.pk])
        # (A course is never deleted in the admin: that page is refused to everyone.)
        assert staff_client.get(other).status_code == (404 if view == "history" else 403)


def test_actions_touch_only_the_tenants_rows(staff_client, tenant_staff, course, rival):
    own_token, _plaintext = ApiToken.issue(user=tenant_staff, name="own")
    tokens = reverse("admin:course_audit_apitoken_changelist")
    response = staff_client.post(
        tokens, {"action": "revoke", "_selected_action": [own_token.pk, rival.token.pk]}
    )
    assert response.status_code == 302
    own_token.refresh_from_db()
    rival.token.refresh_from_db()
    assert own_token.revoked_at is not None
    assert rival.token.revoked_at is None

    courses = reverse("admin:course_audit_course_changelist")
    response = staff_client.post(
        courses, {"action": "soft_delete", "_selected_action": [course.pk, rival.course.pk]}
    )
    assert response.status_code == 302
    course.refresh_from_db()
    rival.course.refresh_from_db()
    assert course.workflow_state == "deleted"
    assert rival.course.workflow_state != "deleted"
    assert not CourseEvent.objects.filter(course=rival.course, event_type="deleted").exists()


def test_a_token_is_issued_only_to_a_user_of_the_tenant_alone(
    staff_client, tenant_staff, make_user, grant, department, rival, superuser
):
    add = reverse("admin:course_audit_apitoken_add")
    both = make_user("in-both-tenants")
    grant(both, department)
    AccountMembership.objects.create(user=both, account=rival.root, role=rival.role)
    newcomer = make_user("no-tenant-yet")
    colleague = make_user("colleague")
    grant(colleague, department)

    for user in (rival.member, both, superuser, newcomer):
        form = {"user": user.pk, "name": "grab", "expires_at_0": "", "expires_at_1": ""}
        response = staff_client.post(add, form)
        body = response.content.decode()
        assert response.status_code == 200, user
        assert "Select a valid choice" in body
        # The raw id input does not name a user outside the choices either.
        assert user.get_username() not in body
        assert "<code>" not in body
    assert not ApiToken.objects.filter(name="grab").exists()

    form = {"user": colleague.pk, "name": "sync", "expires_at_0": "", "expires_at_1": ""}
    response = staff_client.post(add, form)
    assert response.status_code == 302
    assert ApiToken.objects.get(name="sync").user == colleague


def test_a_membership_grants_only_the_tenants_roles_on_its_accounts(
    staff_client, tenant_staff, grant, department, make_user, rival, admin_role
):
    colleague = make_user("colleague")
    grant(colleague, department, Role.objects.create(name="Teacher"))
    add = reverse("admin:course_audit_accountmembership_add")
    form = {"user": colleague.pk, "account": rival.root.pk, "role": rival.role.pk}
    form["workflow_state"] = "active"

    response = staff_client.post(add, form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"account", "role"}
    assert "Rival College" not in response.content.decode()
    assert "Rival role" not in response.content.decode()
    assert not AccountMembership.objects.filter(user=colleague, account=rival.root).exists()
    form.update(account=department.pk, role=admin_role.pk)
    assert staff_client.post(add, form).status_code == 302
    assert AccountMembership.objects.filter(
        user=colleague, account=department, role=admin_role
    ).exists()


def test_shared_roles_are_shown_and_changed_by_superusers_only(
    staff_client, admin_client, admin_role, root_account, rival
):
    own = Role.objects.create(name="Home auditor", root_account=root_account)
    change = reverse("admin:course_audit_role_change", args=[admin_role.pk])
    page = staff_client.get(change)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # shown, read-only
    form = {"name": "Renamed", "view_course_changes": "on", "manage_courses": "on"}
    assert staff_client.post(change, form).status_code == 403
    delete = reverse("admin:course_audit_role_delete", args=[admin_role.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    admin_role.refresh_from_db()
    assert admin_role.name == "Account admin"

    own_change = reverse("admin:course_audit_role_change", args=[own.pk])
    form["root_account"] = root_account.pk
    assert staff_client.post(own_change, form).status_code == 302
    own.refresh_from_db()
    assert own.name == "Renamed"

    # A new role must be a tenant's (its root account: a root, of the tenant): a shared one
    # is the operators' to make.
    add = reverse("admin:course_audit_role_add")
    choices = staff_client.get(add).context["adminform"].form.fields["root_account"].queryset
    assert list(choices) == [root_account]
    response = staff_client.post(add, {"name": "Everywhere"})
    assert response.status_code == 200
    assert "root_account" in response.context["adminform"].form.errors
    assert admin_client.post(add, {"name": "Everywhere"}).status_code == 302
    assert Role.objects.filter(name="Everywhere", root_account=None).count() == 1


def test_a_new_account_goes_in_the_tenant_not_in_a_new_one(
    staff_client, admin_client, department, root_account, rival
):
    add = reverse("admin:course_audit_account_add")
    state = {"workflow_state": "active"}
    response = staff_client.post(add, {"name": "New root", **state})
    assert response.status_code == 200
    assert "parent" in response.context["adminform"].form.errors
    response = staff_client.post(add, {"name": "Under rival", "parent": rival.root.pk, **state})
    assert response.status_code == 200
    assert "parent" in response.context["adminform"].form.errors
    assert not Account.objects.filter(name__in=["New root", "Under rival"]).exists()

    assert (
        staff_client.post(add, {"name": "Genetics", "parent": department.pk, **state}).status_code
        == 302
    )
    assert Account.objects.get(name="Genetics").root_account == root_account
    # The tenant's own root stays editable (it has no parent, and needs none).
    root_change = reverse("admin:course_audit_account_change", args=[root_account.pk])
    form = {"name": "State U", "sis_account_id": "SU", "parent": department.pk, **state}
    response = staff_client.post(root_change, form)
    assert response.status_code == 302
    root_account.refresh_from_db()
    assert (root_account.name, root_account.parent) == ("State U", None)
    assert admin_client.post(add, {"name": "New root", **state}).status_code == 302


def test_the_event_search_looks_among_the_tenants_courses(
    staff_client, make_course, rival, monkeypatch
):
    for number in range(3):
        services.course_create(account=rival.root, name=f"Genetics rival {number}")
    home = make_course(name="Genetics home")
    monkeypatch.setattr(admin.site._registry[CourseEvent], "search_match_limit", 1)

    found = changelist_events(staff_client, q="Genetics")

    assert {event.course_id for event in found} == {home.pk}


def test_a_tenant_staff_users_event_list_loads_the_grants_once(
    staff_client, admin_client, make_course, rival, root_account
):
    for _ in range(3):
        make_course()
    services.course_create(account=rival.root, name="Course of the rival")
    url = reverse("admin:course_audit_courseevent_changelist")

    def queries(client):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, {"q": "Course", "event_type__exact": "created"})
        assert response.status_code == 200
        return captured, response.context["cl"].result_list

    staff_queries, staff_events = queries(staff_client)
    superuser_queries, superuser_events = queries(admin_client)
    grants = [q for q in staff_queries if "UNION" in q["sql"] and "accountmembership" in q["sql"]]
    assert len(grants) == 1
    # Besides the grants, the superuser's queries and Django's model permissions (which a
    # superuser skips: two queries, the user's and their groups'): nothing per row.
    django_permissions = [q for q in staff_queries if '"auth_permission"' in q["sql"]]
    assert len(django_permissions) == 2
    assert len(staff_queries) == len(superuser_queries) + 1 + 2
    events = [q["sql"] for q in staff_queries if "course_audit_courseevent" in q["sql"]]
    assert events and not any("LIKE" in sql.upper() for sql in events)
    assert {event.course.root_account_id for event in staff_events} == {root_account.pk}
    assert (len(staff_events), len(superuser_events)) == (3, 4)


def test_staff_outside_every_tenant_see_no_rows(client, make_user, course, rival):
    operator = make_user("operator", is_staff=True)
    operator.user_permissions.set(
        AuthPermission.objects.filter(content_type__app_label="course_audit")
    )
    client.force_login(operator)
    for model in apps.get_app_config("course_audit").get_models():
        response = client.get(reverse(f"admin:course_audit_{model._meta.model_name}_changelist"))
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [], model
    event = last_event(course)
    assert (
        client.get(reverse("admin:course_audit_courseevent_change", args=[event.pk])).status_code
        == 404
    )


def test_a_membership_of_a_user_of_two_tenants_is_revoked_by_either(
    staff_client, make_user, grant, department, rival, admin_role
):
    both = make_user("in-both-tenants")
    home = grant(both, department)
    AccountMembership.objects.create(user=both, account=rival.root, role=rival.role)
    url = reverse("admin:course_audit_accountmembership_change", args=[home.pk])
    form = {"account": department.pk, "role": admin_role.pk, "workflow_state": "deleted"}
    # The user is shown (this row is the tenant's), not offered to change.
    page = staff_client.get(url).content.decode()
    assert "in-both-tenants" in page and 'name="user"' not in page

    response = staff_client.post(url, {**form, "user": rival.member.pk})

    assert response.status_code == 302
    home.refresh_from_db()
    assert (home.user, home.workflow_state) == (both, "deleted")


def test_a_tenant_staff_user_holds_and_releases_the_tenants_courses_only(
    staff_client, course, rival
):
    rival_hold = services.legal_hold_place(course=rival.course, reason="rival's litigation")
    add = reverse("admin:course_audit_legalhold_add")

    response = staff_client.post(add, {"course": rival.course.pk, "account": "", "reason": "x"})

    assert response.status_code == 200
    assert "course" in response.context["adminform"].form.errors
    assert "Rival Chemistry" not in response.content.decode()
    assert not LegalHold.objects.filter(reason="x").exists()
    response = staff_client.post(add, {"course": course.pk, "account": "", "reason": "audit"})
    assert response.status_code == 302
    own_hold = LegalHold.objects.get(reason="audit")
    assert own_hold.course == course

    changelist = reverse("admin:course_audit_legalhold_changelist")
    page = staff_client.get(changelist)
    assert list(page.context["cl"].result_list) == [own_hold]
    assert "rival&#x27;s litigation" not in page.content.decode()
    response = staff_client.post(
        changelist, {"action": "release", "_selected_action": [own_hold.pk, rival_hold.pk]}
    )
    assert response.status_code == 302
    own_hold.refresh_from_db()
    rival_hold.refresh_from_db()
    assert own_hold.released_at is not None
    assert rival_hold.released_at is None
    change = reverse("admin:course_audit_legalhold_change", args=[rival_hold.pk])
    assert staff_client.get(change).status_code == 404
