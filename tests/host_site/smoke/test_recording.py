"""The site records course events from its own code: pages, its own API, a management
command and a background job; and it hears about them after they commit."""

from __future__ import annotations

from io import StringIO

import pytest
from course_audit.models import CourseEvent, PageView
from course_audit.services import course_create, course_publish, course_update
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from catalog import receivers, tasks


def last_event(course) -> CourseEvent:
    return CourseEvent.objects.filter(course=course).order_by("-created_at", "-id")[0]


@pytest.fixture
def course(history_dept):
    return course_create(account=history_dept, name="Ancient Rome", course_code="HIST101")


@pytest.mark.django_db
def test_the_site_s_page_records_who_changed_what(client, registrar, course):
    client.force_login(registrar)
    response = client.post(f"/catalog/courses/{course.pk}/rename/", {"name": "Imperial Rome"})
    assert response.status_code == 302
    assert response["X-Served-By"] == "campus-registrar"
    event = last_event(course)
    assert event.event_type == "updated"
    assert event.event_data == {"name": ["Ancient Rome", "Imperial Rome"]}
    assert event.event_source == "manual"
    assert event.user == registrar
    assert event.user_name == "Rita Registrar"
    assert str(event.page_view_id) == response["X-Request-Id"]
    page_view = PageView.objects.get(pk=event.page_view_id)
    assert page_view.url == f"http://testserver/catalog/courses/{course.pk}/rename/"
    assert page_view.user == registrar


@pytest.mark.django_db
def test_the_site_s_own_api_records_api_events(make_member, course):
    staff = make_member(is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.post(f"/campus-api/v2/courses/{course.pk}/publish/")
    assert response.status_code == 200, response.content
    event = last_event(course)
    assert (event.event_type, event.event_source, event.user) == ("published", "api", staff)


@pytest.mark.django_db
def test_a_management_command_records_its_operator(registrar, course, history_dept):
    course_publish(course=course)
    out = StringIO()
    call_command("close_term", history_dept.pk, "--by", registrar.email, stdout=out)
    assert out.getvalue() == f"concluded {course.pk}\n"
    event = last_event(course)
    assert (event.event_type, event.event_source, event.user) == ("concluded", "manual", registrar)


@pytest.mark.django_db(transaction=True)
def test_a_background_job_keeps_the_actor_who_queued_it(registrar, course):
    course_publish(course=course)
    client = Client()
    client.force_login(registrar)
    response = client.post(f"/catalog/courses/{course.pk}/conclude-later/")
    assert response.status_code == 202
    assert last_event(course).event_type == "published"
    tasks.run_pending()
    event = last_event(course)
    assert event.event_type == "concluded"
    assert event.user == registrar
    assert event.event_source == "manual"
    assert str(event.page_view_id) == response["X-Request-Id"]


@pytest.mark.django_db(transaction=True)
def test_the_site_hears_of_committed_events_only(registrar, history_dept):
    with transaction.atomic():
        course = course_create(account=history_dept, name="Byzantium")
        assert receivers.OUTBOX == []
    [notice] = receivers.OUTBOX
    [(uuid, course_id, event_type)] = notice["batch"]
    assert (course_id, event_type) == (course.pk, "created")
    assert CourseEvent.objects.get(uuid=uuid).course == course
    assert notice["using"] == "default"

    with pytest.raises(RuntimeError), transaction.atomic():
        course_update(course=course, name="Never")
        raise RuntimeError("the site's own failure after the change")
    assert len(receivers.OUTBOX) == 1
