"""The Django admin of the site, with course_audit's models in it (the site mounts it at
/staff/)."""

from __future__ import annotations

import pytest
from course_audit.models import Course, CourseEvent
from course_audit.services import course_create
from django.forms import MultiWidget
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_member):
    member = make_member("ada.admin@campus.example", is_staff=True, is_superuser=True)
    client = Client()
    # The site's admin login form: an email address, no username.
    response = client.post(
        "/staff/login/?next=/staff/",
        {"username": member.email, "password": "s3cret!", "next": "/staff/"},
    )
    assert response.status_code == 302, response.content
    assert response["Location"] == "/staff/"
    client.member = member  # type: ignore[attr-defined]
    return client


@pytest.fixture
def course(history_dept):
    return course_create(account=history_dept, name="Ancient Rome", course_code="HIST101")


def change_form_data(response) -> dict:
    """What a browser would send back from the change form, as shown."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name)
        if isinstance(field.widget, MultiWidget):
            for index, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{index}"] = "" if part is None else part
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    return data


def test_the_admin_lists_the_app(staff):
    response = staff.get("/staff/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/staff/course_audit/courseevent/"' in html
    assert 'href="/staff/people/member/"' in html


def test_a_change_in_the_admin_is_recorded_and_shown(staff, course):
    change_url = f"/staff/course_audit/course/{course.pk}/change/"
    form = staff.get(change_url)
    assert form.status_code == 200
    data = change_form_data(form)
    data["name"] = "Imperial Rome"
    response = staff.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Course.objects.get(pk=course.pk).name == "Imperial Rome"

    event = CourseEvent.objects.filter(course=course).order_by("-id")[0]
    assert event.event_type == "updated"
    assert event.event_source == "manual"
    assert event.user == staff.member
    assert event.user_name == "Ada Admin"

    listing = staff.get("/staff/course_audit/courseevent/", {"q": "Imperial"})
    assert listing.status_code == 200
    assert f'href="/staff/course_audit/courseevent/{event.pk}/change/' in listing.content.decode()
    detail = staff.get(f"/staff/course_audit/courseevent/{event.pk}/change/")
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "Imperial Rome" in html
    assert f'href="/staff/people/member/{staff.member.pk}/change/"' in html
    assert 'name="_save"' not in html


def test_events_cannot_be_added_or_deleted(staff, course):
    event = CourseEvent.objects.get(course=course)
    assert staff.get("/staff/course_audit/courseevent/add/").status_code == 403
    assert staff.post(f"/staff/course_audit/courseevent/{event.pk}/delete/").status_code == 403
    assert CourseEvent.objects.filter(pk=event.pk).exists()
