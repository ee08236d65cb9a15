"""``manage.py seed_demo``: the demo university, its people and a year of consistent history."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from course_audit import integrity
from course_audit.models import (
    Account,
    AccountMembership,
    Checkpoint,
    Course,
    CourseEvent,
    PageView,
    SisBatch,
)

pytestmark = pytest.mark.django_db

EventType = CourseEvent.EventType
Source = CourseEvent.EventSource
State = Course.WorkflowState

# event type -> (the states it may follow, the state it leaves); None: the state is kept.
LIFECYCLE: dict[str, tuple[set[str], str | None]] = {
    EventType.UPDATED: ({State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED}, None),
    EventType.COPIED_FROM: ({State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED}, None),
    EventType.COPIED_TO: ({State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED}, None),
    EventType.RESET_FROM: ({State.UNPUBLISHED}, None),
    EventType.PUBLISHED: ({State.UNPUBLISHED}, State.AVAILABLE),
    EventType.UNPUBLISHED: ({State.AVAILABLE}, State.UNPUBLISHED),
    EventType.CONCLUDED: ({State.UNPUBLISHED, State.AVAILABLE}, State.COMPLETED),
    EventType.UNCONCLUDED: ({State.COMPLETED}, State.AVAILABLE),
    EventType.DELETED: ({State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED}, State.DELETED),
    EventType.RESTORED: ({State.DELETED}, State.UNPUBLISHED),
    EventType.RESET_TO: ({State.UNPUBLISHED, State.AVAILABLE, State.COMPLETED}, State.DELETED),
}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--courses", "20", *args, stdout=out)
    return out.getvalue()


def login(name: str) -> str:
    user_model = get_user_model()
    return f"{name}@example.edu" if user_model.USERNAME_FIELD == "email" else name


def demo_user(name: str) -> Any:
    return get_user_model()._default_manager.get_by_natural_key(login(name))


def root() -> Account:
    return Account.objects.get(parent__isnull=True, sis_account_id="NSU")


def counts() -> dict[str, int]:
    return {
        "accounts": Account.objects.count(),
        "courses": Course.objects.count(),
        "events": CourseEvent.objects.count(),
        "users": get_user_model()._default_manager.count(),
        "memberships": AccountMembership.objects.count(),
        "batches": SisBatch.objects.count(),
        "page_views": PageView.objects.count(),
    }


@pytest.fixture
def seeded() -> str:
    return seed()


def test_builds_the_account_tree(seeded):
    university = root()
    assert university.name == "Northwind State University"
    colleges = list(university.sub_accounts.all())
    assert 3 <= len(colleges) <= 4
    for college in colleges:
        assert college.sis_account_id
        departments = list(college.sub_accounts.all())
        assert 2 <= len(departments) <= 4
        for department in departments:
            assert department.sis_account_id
            assert department.root_account_id == university.pk
            assert not department.sub_accounts.exists()
    assert Course.objects.filter(root_account=university).count() >= 20
    assert not Course.objects.exclude(root_account=university).exists()


def test_the_demo_users_hold_the_right_roles(seeded):
    university = root()
    [registrar] = AccountMembership.objects.filter(user=demo_user("registrar"))
    assert registrar.account == university
    assert registrar.role.name == "Account admin"
    assert registrar.role.view_course_changes and registrar.role.manage_courses

    [dept_admin] = AccountMembership.objects.filter(user=demo_user("dept_admin"))
    assert dept_admin.role == registrar.role
    assert dept_admin.account.ancestor_ids == [university.pk, dept_admin.account.parent_id]

    [teacher] = AccountMembership.objects.filter(user=demo_user("teacher"))
    assert teacher.account == university
    assert teacher.role.name == "Teacher"
    assert not teacher.role.view_course_changes and not teacher.role.manage_courses

    admin = demo_user("admin")
    assert admin.is_superuser and admin.is_staff
    for name in ("admin", "registrar", "dept_admin", "teacher"):
        assert demo_user(name).check_password("demo")
    if hasattr(demo_user("registrar"), "first_name"):
        assert demo_user("registrar").get_full_name() == "Margaret Okafor"


def test_an_existing_login_is_reused_and_keeps_its_password(make_user):
    existing = make_user("admin")
    existing.set_password("not-demo")
    existing.save()
    out = seed()
    assert demo_user("admin") == existing
    assert existing.__class__._default_manager.get(pk=existing.pk).check_password("not-demo")
    assert f"kept their passwords: {login('admin')}" in out


def test_the_summary_names_the_logins_and_where_to_use_them(seeded):
    for name in ("admin", "registrar", "dept_admin", "teacher"):
        assert login(name) in seeded
    assert "'demo'" in seeded
    assert "http://127.0.0.1:8000/admin/" in seeded
    assert "http://127.0.0.1:8000/api/v1/" in seeded


def test_the_history_has_every_event_type_from_every_source(seeded):
    events = CourseEvent.objects.all()
    assert set(events.values_list("event_type", flat=True)) == set(EventType.values)
    assert set(events.values_list("event_source", flat=True)) == set(Source.values)
    updated_fields = {
        field
        for data in events.filter(event_type=EventType.UPDATED).values_list("event_data", flat=True)
        for field in data
    }
    assert {"name", "is_public", "conclude_at", "public_description"} <= updated_fields


def test_sis_events_link_a_batch_of_the_university_and_others_do_not(seeded):
    sis = CourseEvent.objects.filter(event_source=Source.SIS)
    assert sis.exists()
    assert not sis.filter(sis_batch__isnull=True).exists()
    assert set(sis.values_list("sis_batch__root_account", flat=True)) == {root().pk}
    assert not CourseEvent.objects.exclude(event_source=Source.SIS).exclude(sis_batch=None).exists()
    for batch in SisBatch.objects.all():
        times = batch.events.values_list("created_at", flat=True)
        assert batch.created_at <= min(times) <= max(times) <= batch.ended_at
        assert batch.rows_applied == batch.events.values("course").distinct().count()


def test_history_spans_the_past_year_and_never_the_future(seeded):
    now = timezone.now()
    times = list(CourseEvent.objects.values_list("created_at", flat=True))
    assert max(times) <= now
    assert min(times) >= now - timedelta(days=366)
    assert max(times) - min(times) > timedelta(days=180)
    assert PageView.objects.filter(created_at__gt=now).count() == 0


def test_each_course_history_is_chronological_and_ends_in_its_state(seeded):
    for course in Course.objects.all():
        events = list(CourseEvent.objects.filter(course=course).order_by("id"))
        assert events[0].event_type == EventType.CREATED
        assert course.created_at == events[0].created_at
        assert [e.created_at for e in events] == sorted(e.created_at for e in events)
        state = State.UNPUBLISHED
        for event in events[1:]:
            allowed, after = LIFECYCLE[event.event_type]
            assert state in allowed, (course, event.event_type, state)
            state = after or state
        assert state == course.workflow_state, course
        assert events[-1].account_id == course.account_id


def test_copies_and_resets_are_recorded_as_pairs(seeded):
    pairs = {
        EventType.COPIED_FROM: EventType.COPIED_TO,
        EventType.RESET_FROM: EventType.RESET_TO,
    }
    for first, second in pairs.items():
        for event in CourseEvent.objects.filter(event_type=first):
            assert CourseEvent.objects.filter(
                event_type=second,
                course=event.related_course_id,
                related_course=event.course_id,
                created_at=event.created_at,
            ).exists()
    for old in Course.objects.filter(events__event_type=EventType.RESET_TO):
        assert old.workflow_state == State.DELETED


def test_some_manual_and_api_events_link_a_stored_page_view(seeded):
    linked = CourseEvent.objects.exclude(page_view=None)
    assert linked.exists()
    assert set(linked.values_list("event_source", flat=True)) <= {Source.MANUAL, Source.API}
    stored = set(PageView.objects.values_list("request_id", flat=True))
    assert set(linked.values_list("page_view", flat=True)) <= stored


def test_a_second_run_changes_nothing(seeded):
    before = counts()
    out = seed()
    assert counts() == before
    assert "already present" in out


def test_events_adds_exactly_that_many_plausible_events(seeded):
    last_id = CourseEvent.objects.order_by("-id").values_list("id", flat=True)[0]
    before = counts()
    seed("--events", "500")
    now = timezone.now()
    assert counts() == {**before, "events": before["events"] + 500}
    added = list(CourseEvent.objects.filter(id__gt=last_id).select_related("course"))
    assert len(added) == 500
    assert len({event.uuid for event in added}) == 500
    assert not CourseEvent.objects.filter(id__lte=last_id, uuid__in=[e.uuid for e in added])
    for event in added:
        assert event.event_type == EventType.UPDATED
        assert event.course.created_at <= event.created_at <= now
        assert event.account_id == event.course.account_id
        assert event.course.workflow_state != State.DELETED
        assert (event.event_source == Source.SIS) == (event.sis_batch_id is not None)
        assert event.user_name
        [(field, change)] = event.event_data.items()
        assert field in {"name", "is_public", "conclude_at"}
        assert len(change) == 2 and change[0] != change[1]
    assert {event.event_source for event in added} == set(Source.values)


def test_events_runs_the_base_seed_first_when_it_is_missing():
    seed("--events", "50")
    university = root()
    assert CourseEvent.objects.filter(course__root_account=university).count() > 50 + 20


def test_the_same_seed_builds_the_same_university():
    def shape() -> list[tuple[Any, ...]]:
        return sorted(
            (
                course.name,
                course.course_code,
                course.sis_course_id or "",
                course.workflow_state,
                tuple(course.events.order_by("id").values_list("event_type", "event_source")),
            )
            for course in Course.objects.all()
        )

    with transaction.atomic():
        seed("--seed", "7")
        first = shape()
        transaction.set_rollback(True)
    seed("--seed", "7")
    assert shape() == first
    assert len(first) >= 20


def test_too_few_courses_is_refused():
    with pytest.raises(CommandError, match="--courses"):
        call_command("seed_demo", "--courses", "5", stdout=StringIO())
    assert not Account.objects.exists()


def test_without_a_signing_key_the_history_is_not_sealed(seeded):
    assert "COURSE_AUDIT_SIGNING_KEY is not set: the history is not sealed" in seeded
    assert not Checkpoint.objects.exists()


def test_with_a_signing_key_the_history_is_sealed_and_verifies_clean(settings, tmp_path):
    call_command("course_audit_keygen", str(tmp_path / "signing.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "signing.pem")
    settings.COURSE_AUDIT_DIGEST_DIR = str(tmp_path / "digests")
    # A year of history in several checkpoints made by one run, as a bigger demo makes them.
    settings.COURSE_AUDIT_CHECKPOINT_MAX_EVENTS = 10

    out = seed()

    total = CourseEvent.objects.count()
    assert f"Sealed {total:,} events in {Checkpoint.objects.count()} signed checkpoints." in out
    assert Checkpoint.objects.count() > 1
    assert integrity.latest_checkpoint().last_id == CourseEvent.objects.order_by("id").last().pk
    report = integrity.verify(digests=True)
    assert report.intact, report.problems
    assert (report.events, report.unsealed) == (total, 0)
    assert "Every event was sealed already." in seed()
