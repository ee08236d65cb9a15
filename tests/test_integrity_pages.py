"""Tamper evidence on the registrar's pages: each event's seal on the history pages, and the
account page's check of its newest events (docs/integrity.md, "On the history pages")."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from course_audit import integrity, services
from course_audit.models import Checkpoint, CourseEvent

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
SEAL = re.compile(
    r'data-event="([0-9a-f-]+)">\s*<div class="event-head">\s*<span class="badge[^>]*>[^<]*'
    r'</span>\s*<time[^>]*>[^<]*</time>(?:\s*<span class="seal ([a-z-]+)"[^>]*>([^<]*)</span>)?'
)


def seals_on(html: str) -> dict[str, str]:
    """Each event of the page (its UUID) with what its seal says ("" without one)."""
    return {uuid: text for uuid, _kind, text in SEAL.findall(html)}


def body(response: Any) -> str:
    return response.content.decode()


def tamper(sql: str, params: list[Any]) -> None:
    """Run SQL past the append-only triggers, as a superuser can."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")


def fake_checkpoint(sequence: int, after_id: int, last_id: int) -> Checkpoint:
    """A checkpoint row covering ``(after_id, last_id]``, signed by no one: enough for what
    the pages read of the ranges."""
    return Checkpoint.objects.create(
        sequence=sequence,
        after_id=after_id,
        first_id=after_id + 1,
        last_id=last_id,
        count=last_id - after_id,
        root="0" * 64,
        previous="",
        created_at=timezone.now(),
        key_id="0" * 16,
        public_key="A" * 43 + "=",
        signature="A" * 86 + "==",
        hash=f"{sequence:064x}",
        leaves=b"",
    )


# --- the seals -----------------------------------------------------------------------------


def test_each_event_shows_its_checkpoint_or_that_it_is_not_sealed_yet(
    keys, registrar_browser, course, add_events
):
    first = [course.events.get(), *add_events(course, 3, when=T0)]
    integrity.seal()
    second = add_events(course, 2, when=T0 + dt.timedelta(days=1))
    integrity.seal()
    waiting = add_events(course, 1, when=T0 + dt.timedelta(days=2))
    expected = {
        **{str(event.uuid): "sealed in checkpoint #1" for event in first},
        **{str(event.uuid): "sealed in checkpoint #2" for event in second},
        str(waiting[0].uuid): "not yet sealed",
    }

    course_page = body(
        registrar_browser.get(reverse("course_audit:course_history", args=[course.pk]))
    )
    account_page = body(
        registrar_browser.get(reverse("course_audit:account_history", args=[course.account_id]))
    )

    assert seals_on(course_page) == expected
    assert seals_on(account_page) == expected
    assert course_page.count('class="seal seal-sealed" data-checkpoint="2"') == 2


def test_no_seals_where_nothing_is_sealed_and_no_key_is_set(registrar_browser, course, settings):
    url = reverse("course_audit:course_history", args=[course.pk])

    assert settings.COURSE_AUDIT_SIGNING_KEY is None
    assert 'class="seal' not in body(registrar_browser.get(url))

    settings.COURSE_AUDIT_SIGNING_KEY = "/a/key/the/page/never/reads.pem"
    assert seals_on(body(registrar_browser.get(url))) == {
        str(course.events.get().uuid): "not yet sealed"
    }


def test_sealed_in_reads_the_ranges_gaps_and_forged_ids():
    fake_checkpoint(1, 0, 10)
    fake_checkpoint(2, 10, 20)
    fake_checkpoint(4, 30, 35)  # #3, (20, 30], is missing

    seals = integrity.sealed_in([-4, 0, 1, 10, 11, 20, 21, 30, 31, 35, 36, 99])

    assert seals.any and seals.sealed_through == 35
    assert [seals.state(event_id) for event_id in (-4, 0, 1, 10, 11, 20)] == [
        "missing",
        "missing",
        1,
        1,
        2,
        2,
    ]
    assert [seals.state(event_id) for event_id in (21, 30, 31, 35, 36, 99)] == [
        "missing",
        "missing",
        4,
        4,
        "pending",
        "pending",
    ]
    assert integrity.sealed_in([]).any


def test_no_checkpoint_at_all():
    seals = integrity.sealed_in([1, 2])
    assert (seals.any, seals.covered, seals.state(1)) == (False, {}, "pending")


def test_a_page_with_a_checkpoint_per_event_costs_the_same_queries_at_every_size(
    registrar_browser, college, course, chemistry, add_events
):
    chem = services.course_create(account=chemistry, name="Organic Chemistry")
    for index in range(60):
        add_events(course if index % 2 else chem, 1, when=T0 + dt.timedelta(seconds=index))
    after = 0
    for sequence, event_id in enumerate(
        CourseEvent.objects.order_by("id").values_list("id", flat=True), 1
    ):
        fake_checkpoint(sequence, after, event_id)
        after = event_id
    url = reverse("course_audit:account_history", args=[college.pk])

    def queries(per_page: int) -> int:
        params = {"include_subaccounts": "1", "per_page": str(per_page)}
        with CaptureQueriesContext(connection) as captured:
            response = registrar_browser.get(url, params)
        assert response.status_code == 200
        seals = seals_on(body(response))
        assert len(seals) == per_page
        assert all(text.startswith("sealed in checkpoint #") for text in seals.values())
        return len(captured)

    assert queries(10) == queries(50)


def test_the_seal_speaks_spanish(keys, registrar_browser, course):
    integrity.seal()
    services.course_update(course=course, name="Biología")
    url = reverse("course_audit:course_history", args=[course.pk])

    html = body(registrar_browser.get(url, HTTP_ACCEPT_LANGUAGE="es"))

    assert sorted(seals_on(html).values()) == [
        "aún sin sellar",
        "sellado en el punto de control n.º 1",
    ]


# --- the account page's check --------------------------------------------------------------


def verify_page(client: Client, account_id: int, **params: str) -> Any:
    url = reverse("course_audit:account_history", args=[account_id])
    if params:
        url += "?" + "&".join(f"{key}={value}" for key, value in params.items())
    return client.post(url)


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body(response)))


def test_the_account_page_offers_the_check_and_the_course_page_does_not(registrar_browser, course):
    account = body(
        registrar_browser.get(reverse("course_audit:account_history", args=[course.account_id]))
    )
    course_page = body(
        registrar_browser.get(reverse("course_audit:course_history", args=[course.pk]))
    )

    form = account[account.index('<section aria-labelledby="verify-heading"') :]
    assert '<form method="post"' in form and 'name="csrfmiddlewaretoken"' in form
    assert "Verify these events" in form
    assert "verification-result" not in account  # nothing checked until asked
    assert "Verify these events" not in course_page


def test_an_untouched_account_verifies_intact(
    keys, registrar_browser, course, add_events, department
):
    add_events(course, 4, when=T0)
    integrity.seal()
    add_events(course, 1, when=timezone.now())

    response = verify_page(registrar_browser, department.pk)

    assert response.status_code == 200
    text = text_of(response)
    assert "Intact. 6 events checked, in 1 checkpoint; 1 not sealed yet." in text
    assert "Not intact" not in text
    assert len(seals_on(body(response))) == 6  # the page itself, as on a GET


def test_a_modified_event_is_named_on_the_account_page(
    keys, registrar_browser, course, add_events, department
):
    add_events(course, 4, when=T0)
    integrity.seal()
    event = CourseEvent.objects.order_by("id")[2]
    tamper(
        "UPDATE course_audit_courseevent SET event_data = %s WHERE id = %s",
        ['{"name": ["x", "y"]}', event.pk],
    )

    response = verify_page(registrar_browser, department.pk)

    assert response.status_code == 200
    text = text_of(response)
    assert "Not intact. 5 events checked, in 1 checkpoint; 0 not sealed yet." in text
    assert "event modified: 1" in text
    assert f"event {event.uuid} (id {event.pk}) differs from what checkpoint #1 sealed" in text


def test_checkpoints_of_an_untrusted_key_are_reported(keys, registrar_browser, course, settings):
    integrity.seal()
    call_command("course_audit_keygen", str(keys / "other.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(keys / "other.pem")

    text = text_of(verify_page(registrar_browser, course.account_id))

    assert "Not intact." in text
    assert "checkpoint signed by an unknown key: 1" in text


def test_the_check_says_why_it_cannot_run_without_a_key_or_a_checkpoint(
    registrar_browser, course, settings, tmp_path
):
    response = verify_page(registrar_browser, course.account_id)

    assert response.status_code == 200
    text = text_of(response)
    assert "No key is configured (COURSE_AUDIT_SIGNING_KEY or COURSE_AUDIT_TRUSTED_KEYS)" in text
    assert "No checkpoint has been made yet" in text
    assert "Intact" not in text

    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "absent.pem")
    response = verify_page(registrar_browser, course.account_id)
    assert response.status_code == 200
    text = text_of(response)
    assert "The signing or trusted keys cannot be read (the system check" in text
    assert "absent.pem" not in text  # the file's path is not the page's to show


def test_the_check_covers_the_subtree_when_the_page_does(keys, registrar_browser, college, course):
    integrity.seal()

    alone = text_of(verify_page(registrar_browser, college.pk))
    subtree = text_of(verify_page(registrar_browser, college.pk, include_subaccounts="1"))

    assert "Intact. 0 events checked" in alone
    assert "Intact. 1 event checked, in 1 checkpoint" in subtree


def test_the_check_follows_the_pages_access_rule(
    keys, browser, dept_admin_browser, other_root, root_account, teacher_role, course, client
):
    integrity.seal()
    foreign = services.course_create(account=other_root, name="Rival 101")
    teacher = browser("teacher", (root_account, teacher_role))

    assert verify_page(dept_admin_browser, other_root.pk).status_code == 404
    assert verify_page(dept_admin_browser, foreign.account_id).status_code == 404
    assert verify_page(teacher, course.account_id).status_code == 403
    anonymous = verify_page(client, course.account_id)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    assert verify_page(dept_admin_browser, course.account_id).status_code == 200


def test_the_check_needs_the_csrf_token(keys, registrar_browser, course):
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(registrar_browser.user)

    assert verify_page(guarded, course.account_id).status_code == 403


def test_the_check_is_bounded_to_the_newest_checkpoints(keys, course, add_events, settings):
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 2
    add_events(course, 7, when=T0)  # 8 events with the creation: checkpoints of 2
    integrity.seal()
    rows = list(CourseEvent.objects.values_list(*integrity.SEALED_COLUMNS))

    everything = integrity.verify_events(rows)
    newest = integrity.verify_events(rows, max_checkpoints=2)

    assert (everything.intact, everything.events, everything.checkpoints) == (True, 8, 4)
    assert (newest.intact, newest.events, newest.checkpoints) == (True, 4, 2)
