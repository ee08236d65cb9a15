"""The Django admin: every model registered; course events read-only, with their diff shown
escaped; changelists that never count a big table exactly; tokens issued once and hashed."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from auditlog_project import urls as project_urls
from course_audit import services
from course_audit.admin import EstimatedCountPaginator
from course_audit.context import audit_context
from course_audit.models import ApiToken, CourseEvent, PageView, SisBatch
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
    for model in (CourseEvent, SisBatch):
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
