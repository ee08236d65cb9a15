"""People: the person picker on the filter forms (no JavaScript) and a person's page with
its export: every event one person caused, in the courses the viewer may audit."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from course_audit import selectors, services
from course_audit.models import CourseEvent
from tests.helpers import named

pytestmark = pytest.mark.django_db


def body(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def people(make_user: Any, course: Any, chemistry: Any) -> dict[str, Any]:
    """Priya changes Biology 101 (the department's) and a chemistry course; Pat only the
    chemistry one; Paula never changed anything."""
    priya = make_user("praman", **named("Priya", "Raman"))
    pat = make_user("pchem", **named("Pat", "Chemist"))
    make_user("paula", **named("Paula", "Idle"))
    chem = services.course_create(account=chemistry, name="Chemistry 200", user=pat)
    services.course_update(course=course, name="Biology 101, renamed", user=priya)
    services.course_publish(course=course, user=priya)
    services.course_update(course=chem, name="Chemistry 200, by Priya", user=priya)
    return {"priya": priya, "pat": pat, "course": course, "chem": chem}


def person_url(user: Any, name: str = "course_audit:person_history") -> str:
    return reverse(name, args=[user.pk])


# --- the person's page ------------------------------------------------------------------------


def test_a_persons_page_lists_what_they_did_where_the_viewer_may_audit(
    dept_admin_browser: Any, registrar_browser: Any, people: dict[str, Any]
) -> None:
    priya = people["priya"]
    html = body(dept_admin_browser.get(person_url(priya)))
    assert "Changes made by Priya Raman" in html
    assert f"Login {priya.get_username()}" in html
    assert html.count('<li class="event') == 2  # renamed and published, in Biology only
    assert "Biology 101, renamed" in html and "Chemistry 200" not in html
    # The registrar audits both departments: the chemistry change too, with its course.
    html = body(registrar_browser.get(person_url(priya)))
    assert html.count('<li class="event') == 3
    chem_history = reverse("course_audit:course_history", args=[people["chem"].pk])
    assert f'<a href="{chem_history}">Chemistry 200, by Priya</a>' in html


def test_a_persons_page_takes_the_usual_filters_and_pages(
    registrar_browser: Any, people: dict[str, Any]
) -> None:
    url = person_url(people["priya"])
    html = body(registrar_browser.get(url, {"event_type": "published"}))
    assert html.count('<li class="event') == 1
    html = body(registrar_browser.get(url, {"per_page": "10"}))
    assert html.count('<li class="event') == 3
    assert registrar_browser.get(url, {"start_time": "not a date"}).status_code == 400


def test_a_persons_export_holds_exactly_their_events_the_viewer_may_audit(
    dept_admin_browser: Any, people: dict[str, Any]
) -> None:
    response = dept_admin_browser.get(
        person_url(people["priya"], "course_audit:person_export"), {"format": "csv"}
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = CourseEvent.objects.filter(user=people["priya"], course=people["course"])
    assert sorted(row["id"] for row in rows) == sorted(str(e.uuid) for e in expected)


def test_no_person_page_outside_what_the_viewer_may_see(
    dept_admin_browser: Any, browser: Any, people: dict[str, Any], make_user: Any
) -> None:
    # Pat changed only chemistry: to the biology admin, Pat does not exist here.
    assert dept_admin_browser.get(person_url(people["pat"])).status_code == 404
    assert (
        dept_admin_browser.get(reverse("course_audit:person_history", args=["999999"])).status_code
        == 404
    )
    assert (
        dept_admin_browser.get(reverse("course_audit:person_history", args=["x"])).status_code
        == 404
    )
    # Without any grant to audit, no person's page at all.
    assert browser("nobody").get(person_url(people["priya"])).status_code == 403


def test_a_persons_page_reads_by_the_user_index(
    registrar_browser: Any, people: dict[str, Any]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = registrar_browser.get(person_url(people["priya"]))
    assert response.status_code == 200
    listing = [
        q["sql"] for q in queries if "course_audit_courseevent" in q["sql"] and "LIMIT" in q["sql"]
    ]
    assert listing and all('"user_id" =' in sql for sql in listing)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'course_audit_evt_user_idx'"
            )
            (definition,) = cursor.fetchone()
        assert "(user_id, created_at DESC, id DESC)" in definition
        assert "WHERE (user_id IS NOT NULL)" in definition


# --- the picker -------------------------------------------------------------------------------


def test_the_picker_turns_one_match_into_the_persons_filter(
    dept_admin_browser: Any, people: dict[str, Any]
) -> None:
    history = reverse("course_audit:course_history", args=[people["course"].pk])
    response = dept_admin_browser.get(history, {"person": "raman", "per_page": "10"})
    assert response.status_code == 302
    assert response["Location"] == f"{history}?per_page=10&user_id={people['priya'].pk}"
    html = body(dept_admin_browser.get(response["Location"]))
    assert "Only the events of" in html
    assert f"Priya Raman ({people['priya'].get_username()})" in html
    assert html.count('<li class="event') == 2
    assert f'href="{person_url(people["priya"])}"' in html


def test_the_picker_offers_several_matches_and_only_people_the_viewer_may_see(
    registrar_browser: Any, dept_admin_browser: Any, people: dict[str, Any]
) -> None:
    account = reverse("course_audit:account_history", args=[people["course"].account_id])
    # "p": Priya and Pat acted; Paula never did and is not offered.
    html = body(registrar_browser.get(account, {"person": "p", "include_subaccounts": "1"}))
    assert "Several people match" in html
    assert f"user_id={people['priya'].pk}" in html and f"user_id={people['pat'].pk}" in html
    assert "Paula" not in html
    # To the biology admin, Pat (chemistry only) is nobody: one match, straight through.
    response = dept_admin_browser.get(account, {"person": "p"})
    assert response.status_code == 302 and response["Location"].endswith(
        f"user_id={people['priya'].pk}"
    )


def test_the_picker_says_when_no_one_matches(
    dept_admin_browser: Any, people: dict[str, Any]
) -> None:
    history = reverse("course_audit:course_history", args=[people["course"].pk])
    response = dept_admin_browser.get(history, {"person": "chemist"})
    assert response.status_code == 400
    assert "No one you may see caused events and matches “chemist”." in body(response)
    response = dept_admin_browser.get(history, {"person": "x" * 300})
    assert response.status_code == 400 and "too long" in body(response)


def test_people_matching_searches_logins_and_names(people: dict[str, Any], make_user: Any) -> None:
    boss = make_user("boss", is_superuser=True)
    found = selectors.people_matching(boss, "RAMAN")
    assert [person.login for person in found] == [people["priya"].get_username()]
    assert found[0].name == "Priya Raman"
    chem = selectors.people_matching(boss, "pchem")
    assert [p.login for p in chem] == [people["pat"].get_username()]
    assert selectors.person_seen(boss, "not-an-id") is None
