"""The keyset core (``course_audit.pagination``): the signed cursor, the keyset reads and the
Older / Newer tokens the pages and the admin offer."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import signing
from django.urls import reverse

from course_audit.filters import MAX_PARAMETER_LENGTH
from course_audit.models import Account, CourseEvent
from course_audit.pagination import (
    OUT_OF_DATE_MESSAGE,
    Cursor,
    InvalidCursor,
    keyset_page,
    keyset_rows,
)

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
SCOPE = "/audit/courses/1"


# --- the cursor ------------------------------------------------------------------------------


def test_a_cursor_gives_back_the_position_it_was_given():
    cursor = Cursor(SCOPE)
    when = dt.datetime(2025, 3, 3, 12, 0, 0, 123456, tzinfo=dt.UTC)
    token = cursor.encode(when, 42)

    assert cursor.decode(token) == (when, 42)
    # Another cursor of the same listing reads it too (the key is the site's, not the object's).
    assert Cursor(SCOPE).decode(token) == (when, 42)
    # Any time zone in, the same instant out, in UTC.
    local = when.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    created_at, pk = cursor.decode(cursor.encode(local, 7))
    assert (created_at, pk) == (when, 7) and created_at.tzinfo == dt.UTC


def test_a_tampered_token_is_invalid():
    cursor = Cursor(SCOPE)
    token = cursor.encode(T0, 42)
    value, signature = token.rsplit(":", 1)
    forged = Cursor(SCOPE).signer.sign_object([0, 43]).rsplit(":", 1)[0]

    for bad in (value + ":" + signature[::-1], forged + ":" + signature, token[:-1], "first", ""):
        with pytest.raises(InvalidCursor) as raised:
            cursor.decode(bad)
        assert raised.value.param == "page"
        assert raised.value.message == OUT_OF_DATE_MESSAGE
        assert str(raised.value) == f"page: {OUT_OF_DATE_MESSAGE}"


def test_a_token_of_another_listing_is_invalid():
    token = Cursor("/audit/courses/1").encode(T0, 42)
    for other in ("/audit/courses/2", "admin:/audit/courses/1", "/api/v1/audit/course/courses/1"):
        with pytest.raises(InvalidCursor):
            Cursor(other).decode(token)


def test_a_signed_token_holding_no_position_is_invalid():
    cursor = Cursor(SCOPE)
    for payload in ([1, True], ["1", 2], [1, 2, 3], {"a": 1}, [2**62, 1]):
        with pytest.raises(InvalidCursor):
            cursor.decode(cursor.signer.sign_object(payload))


def test_a_too_long_token_is_invalid_unread_and_names_its_parameter():
    cursor = Cursor(SCOPE)
    token = "x" * (MAX_PARAMETER_LENGTH + 1)
    with pytest.raises(InvalidCursor) as raised:
        cursor.decode(token, param="after")
    assert raised.value.param == "after"
    assert raised.value.message == (
        f"is too long ({MAX_PARAMETER_LENGTH + 1} characters; at most {MAX_PARAMETER_LENGTH})"
    )
    assert str(raised.value).startswith("after: is too long")


# --- the keyset reads ----------------------------------------------------------------------


@pytest.fixture
def events(course, add_events) -> list[CourseEvent]:
    """Twelve events newest first: nine a minute apart, then three sharing one time (a bulk
    import's ties); the course's ``created`` event is left out."""
    add_events(course, 9, when=T0, step=dt.timedelta(minutes=1))
    add_events(course, 3, when=T0 + dt.timedelta(hours=1))
    return list(
        CourseEvent.objects.filter(
            course=course, event_type=CourseEvent.EventType.UPDATED
        ).order_by("-created_at", "-id")
    )


@pytest.fixture
def listing(course):
    return CourseEvent.objects.filter(course=course, event_type=CourseEvent.EventType.UPDATED)


def test_keyset_rows_read_older_after_a_position_and_newer_before_one(events, listing):
    pks = [event.pk for event in events]
    position = (events[4].created_at, events[4].pk)

    rows, more = keyset_rows(listing, limit=5)
    assert [row.pk for row in rows] == pks[:5] and more
    rows, more = keyset_rows(listing, limit=5, after=position)
    assert [row.pk for row in rows] == pks[5:10] and more
    rows, more = keyset_rows(listing, limit=10, after=position)
    assert [row.pk for row in rows] == pks[5:] and not more
    # Newer ones come back newest first too.
    rows, more = keyset_rows(listing, limit=2, before=position)
    assert [row.pk for row in rows] == pks[2:4] and more
    rows, more = keyset_rows(listing, limit=4, before=position)
    assert [row.pk for row in rows] == pks[:4] and not more


def test_ties_on_the_time_page_exactly(events, listing):
    tied = events[:3]
    assert len({event.created_at for event in tied}) == 1
    rows, _ = keyset_rows(listing, limit=2)
    rest, _ = keyset_rows(listing, limit=2, after=(rows[-1].created_at, rows[-1].pk))
    assert [row.pk for row in rows + rest] == [event.pk for event in events[:4]]


def test_a_partitioned_read_is_the_same_rows(course, department, events, add_events):
    genetics = Account.objects.create(name="Genetics", parent=department)
    course.account = genetics
    course.save()
    add_events(course, 4, when=T0 + dt.timedelta(seconds=30), step=dt.timedelta(minutes=1))
    both = CourseEvent.objects.filter(account_id__in=[department.pk, genetics.pk])
    everything = list(both.order_by("-created_at", "-id").values_list("pk", flat=True))
    partitions = ("account_id", [department.pk, genetics.pk])

    walked = []
    after = None
    while True:
        rows, more = keyset_rows(both, limit=4, after=after, partitions=partitions)
        walked += [row.pk for row in rows]
        if not more:
            break
        after = (rows[-1].created_at, rows[-1].pk)
    assert walked == everything


@pytest.mark.parametrize("direction", ["after", "before"])
def test_a_read_of_values_is_the_orms_own(course, department, events, add_events, direction):
    """With ``fields`` the rows are what ``QuerySet.values`` gives (converted values and all,
    joined columns too), though only the WHERE is compiled per read; a filter that joins
    another table falls back to the ORM and gives the same."""
    genetics = Account.objects.create(name="Genetics", parent=department)
    course.account = genetics
    course.save()
    add_events(course, 4, when=T0 + dt.timedelta(seconds=30), step=dt.timedelta(minutes=1))
    fields = ["id", "uuid", "created_at", "event_data", "course__name", "user__is_active"]
    position = (events[5].created_at, events[5].pk)
    both = CourseEvent.objects.filter(account_id__in=[department.pk, genetics.pk])
    joined = CourseEvent.objects.filter(course__name=course.name)
    for queryset, partitions in (
        (both, ("account_id", [department.pk, genetics.pk])),
        (both, None),
        (joined, None),
    ):
        rows, _ = keyset_rows(
            queryset, limit=5, partitions=partitions, fields=fields, **{direction: position}
        )
        bound = (
            queryset.filter(created_at__lte=position[0]).exclude(
                created_at=position[0], id__gte=position[1]
            )
            if direction == "after"
            else queryset.filter(created_at__gte=position[0]).exclude(
                created_at=position[0], id__lte=position[1]
            )
        )
        order = ("-created_at", "-id") if direction == "after" else ("created_at", "id")
        expected = list(bound.order_by(*order).values(*fields)[:5])
        if direction == "before":
            expected.reverse()
        assert rows == expected and len(rows) == 5
        assert isinstance(rows[0]["created_at"], dt.datetime) and rows[0]["created_at"].tzinfo
        assert isinstance(rows[0]["event_data"], dict)


# --- the Older / Newer tokens --------------------------------------------------------------


def test_older_and_newer_on_the_first_a_middle_and_the_last_page(events, listing):
    cursor = Cursor(SCOPE)
    pks = [event.pk for event in events]

    first = keyset_page(listing, cursor, limit=5)
    assert [row.pk for row in first.rows] == pks[:5]
    assert first.newer is None
    assert cursor.decode(first.older) == (events[4].created_at, events[4].pk)

    middle = keyset_page(listing, cursor, limit=5, after=cursor.decode(first.older))
    assert [row.pk for row in middle.rows] == pks[5:10]
    assert cursor.decode(middle.newer) == (events[5].created_at, events[5].pk)
    assert cursor.decode(middle.older) == (events[9].created_at, events[9].pk)

    last = keyset_page(listing, cursor, limit=5, after=cursor.decode(middle.older))
    assert [row.pk for row in last.rows] == pks[10:]
    assert last.older is None
    assert cursor.decode(last.newer) == (events[10].created_at, events[10].pk)


def test_going_back_returns_the_pages_it_came_from(events, listing):
    cursor = Cursor(SCOPE)
    pks = [event.pk for event in events]
    last = keyset_page(listing, cursor, limit=5, after=(events[9].created_at, events[9].pk))

    back = keyset_page(listing, cursor, limit=5, before=cursor.decode(last.newer))
    assert [row.pk for row in back.rows] == pks[5:10]
    assert cursor.decode(back.older) == (events[9].created_at, events[9].pk)
    assert cursor.decode(back.newer) == (events[5].created_at, events[5].pk)

    front = keyset_page(listing, cursor, limit=5, before=cursor.decode(back.newer))
    assert [row.pk for row in front.rows] == pks[:5]
    # Back at the newest: nothing newer to offer, the page it came from is older.
    assert front.newer is None
    assert cursor.decode(front.older) == (events[4].created_at, events[4].pk)


def test_a_page_of_everything_offers_neither_and_an_empty_page_neither(events, listing):
    cursor = Cursor(SCOPE)
    whole = keyset_page(listing, cursor, limit=len(events))
    assert len(whole.rows) == len(events)
    assert (whole.older, whole.newer) == (None, None)

    beyond = keyset_page(listing, cursor, limit=5, after=(events[-1].created_at, events[-1].pk))
    assert (beyond.rows, beyond.older, beyond.newer) == ([], None, None)


# --- the callers' answers to a bad token -----------------------------------------------------


def test_the_api_answers_a_bad_token_with_the_contracts_400(client, make_user, course):
    client.force_login(make_user("boss", is_superuser=True))
    url = reverse("course_audit_api:audit-course", kwargs={"course_id": course.pk})
    foreign = Cursor("/api/v1/audit/course/courses/0").encode(T0, 1)

    for token, message in (
        (foreign, f"page: {OUT_OF_DATE_MESSAGE}"),
        ("x" * 1001, "page: is too long (1001 characters; at most 1000)"),
    ):
        response = client.get(url, {"page": token})
        assert response.status_code == 400
        assert response.json() == {"errors": [{"message": message}]}


def test_the_page_and_the_admin_start_again_on_a_bad_token(client, make_user, course):
    client.force_login(make_user("boss", is_superuser=True, is_staff=True))
    history = reverse("course_audit_course_history", args=[course.pk])
    token = signing.Signer(salt="course_audit.cursor:elsewhere").sign_object([0, 1])

    page = client.get(history, {"before": token})
    assert page.status_code == 400
    assert "This page link is out of date" in page.content.decode()

    changelist = client.get(reverse("admin:course_audit_courseevent_changelist"), {"after": token})
    assert changelist.status_code == 200
    assert changelist.context["cl"].cursor_error
    assert [event.pk for event in changelist.context["cl"].result_list] == [course.events.get().pk]
