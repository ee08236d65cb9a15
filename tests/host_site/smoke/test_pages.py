"""course_audit's pages inside the site's own layout, under /registrar/audit/."""

from __future__ import annotations

import re
import zoneinfo

import pytest
from course_audit.context import audit_context
from course_audit.models import CourseEvent
from course_audit.services import course_create, course_update

pytestmark = pytest.mark.django_db

DENVER = zoneinfo.ZoneInfo("America/Denver")


@pytest.fixture
def course(history_dept, registrar):
    course = course_create(account=history_dept, name="Ancient Rome", course_code="HIST101")
    with audit_context(user=registrar):
        course_update(course=course, name="Imperial Rome")
    return course


@pytest.fixture
def browser(client, registrar):
    client.force_login(registrar)
    return client


def assert_in_the_site_s_layout(html: str) -> None:
    assert '<nav class="campus-nav">' in html
    assert '<footer class="campus-footer">' in html
    assert re.search(r"<title>[^<]+ \| Campus Registrar</title>", html)
    assert '<main id="main"' in html
    # The app's own frame inside the site's, with its stylesheet from the site's storage.
    assert '<div class="audit">' in html
    assert re.search(r'href="/assets/course_audit/audit\.[0-9a-f]{12}\.css"', html)


def test_anonymous_visitors_are_sent_to_the_site_s_login(client):
    response = client.get("/registrar/audit/")
    assert response.status_code == 302
    assert response["Location"] == "/people/login/?next=/registrar/audit/"


def test_the_home_page(browser, course):
    response = browser.get("/registrar/audit/", {"q": "Imperial"})
    assert response.status_code == 200
    html = response.content.decode()
    assert_in_the_site_s_layout(html)
    assert f'href="/registrar/audit/courses/{course.pk}/"' in html


def test_a_course_s_history_in_the_site_s_time_zone(browser, course, registrar):
    response = browser.get(f"/registrar/audit/courses/{course.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert_in_the_site_s_layout(html)
    assert "Imperial Rome" in html
    assert "Rita Registrar" in html
    updated = CourseEvent.objects.get(course=course, event_type="updated")
    assert f'datetime="{updated.created_at.astimezone(DENVER).isoformat()}"' in html


def test_the_account_history_and_its_export(browser, course, campus):
    response = browser.get(f"/registrar/audit/accounts/{campus.pk}/", {"include_subaccounts": 1})
    assert response.status_code == 200
    assert_in_the_site_s_layout(response.content.decode())
    export = browser.get(
        f"/registrar/audit/accounts/{campus.pk}/export/",
        {"include_subaccounts": 1, "format": "csv"},
    )
    assert export.status_code == 200
    rows = b"".join(export.streaming_content).decode().splitlines()
    assert rows[0].startswith("id,created_at,course_id")
    assert len(rows) == 1 + CourseEvent.objects.filter(course=course).count()


def test_the_page_view_behind_an_event(browser, course, registrar):
    browser.post(f"/catalog/courses/{course.pk}/rename/", {"name": "Late Rome"})
    event = CourseEvent.objects.filter(course=course).order_by("-id")[0]
    response = browser.get(f"/registrar/audit/page-views/{event.page_view_id}/")
    assert response.status_code == 200
    assert_in_the_site_s_layout(response.content.decode())
    assert f"/catalog/courses/{course.pk}/rename/" in response.content.decode()
