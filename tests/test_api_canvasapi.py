"""The real client: canvasapi 3.6 pages through the audit endpoints over HTTP.

canvasapi's ``PaginatedList`` follows ``rel="next"`` of the ``Link`` header verbatim, so
these tests prove that every event is listed exactly once, newest first, whatever the
page size, and that ties on ``created_at`` page correctly.

canvasapi's own helpers, ``Course.query_audit_by_course()`` and
``Account.query_audit_by_account()``, build their ``PaginatedList`` without ``_root``: they
expect each page to be a bare list of events. Real Canvas (and this app) answers with the
compound document ``{"links", "events", "linked"}``, so those helpers iterate the
document's keys and fail (``'str' object has no attribute 'update'``). A client must build
the list itself with ``_root="events"``, as these tests do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from canvasapi import Canvas
from canvasapi.course_event import CourseEvent as CanvasCourseEvent
from canvasapi.paginated_list import PaginatedList
from canvasapi.requester import Requester

from course_audit import services
from course_audit.context import audit_context
from course_audit.models import Account, ApiToken, Course, CourseEvent

T0 = dt.datetime(2025, 3, 3, 12, 0, 0, tzinfo=dt.UTC)
PER_PAGE = 2


def record_history(course: Course, count: int, start: dt.datetime) -> None:
    """``count`` updates; every three share a timestamp, as a bulk import's rows do."""
    for index in range(count):
        with audit_context(occurred_at=start + dt.timedelta(minutes=index // 3)):
            services.course_update(course=course, name=f"{course.name} v{index}")


def expected_ids(events: Any) -> list[str]:
    return [
        str(uuid) for uuid in events.order_by("-created_at", "-id").values_list("uuid", flat=True)
    ]


@pytest.fixture
def subaccount(department: Account) -> Account:
    return Account.objects.create(name="Genetics", parent=department)


@pytest.fixture
def audited(make_course: Callable[..., Course], subaccount: Account, college: Account) -> Course:
    """A course with 25 events, a neighbour in its account, and courses elsewhere."""
    with audit_context(occurred_at=T0):
        course = make_course(name="Biology 101", sis_course_id="BIO101-F25")
        neighbour = make_course(name="Biology 102")
        below = make_course(name="Genetics 201", account=subaccount)
        elsewhere = make_course(name="Physics 101", account=college)
    record_history(course, 24, T0 + dt.timedelta(hours=1))
    record_history(neighbour, 5, T0 + dt.timedelta(hours=1, seconds=30))
    record_history(below, 4, T0 + dt.timedelta(hours=2))
    record_history(elsewhere, 3, T0 + dt.timedelta(hours=1))
    assert CourseEvent.objects.filter(course=course).count() == 25
    return course


@pytest.fixture
def token(make_user: Callable[..., Any], grant: Callable[..., Any], root_account: Account) -> str:
    auditor = make_user("auditor")
    grant(auditor, root_account)
    return ApiToken.issue(user=auditor)[1]


@dataclasses.dataclass
class CanvasClient:
    """canvasapi's requester for the live server, and every response it received."""

    requester: Requester
    responses: list[requests.Response]

    def list_events(self, path: str, **params: Any) -> list[CanvasCourseEvent]:
        self.responses.clear()
        return list(
            PaginatedList(
                CanvasCourseEvent,
                self.requester,
                "GET",
                path,
                _root="events",
                per_page=PER_PAGE,
                **params,
            )
        )


@pytest.fixture
def canvas(live_server: Any, token: str) -> Iterator[CanvasClient]:
    with pytest.warns(UserWarning, match="HTTPS"):
        client = Canvas(live_server.url, token)
    requester: Requester = client._Canvas__requester
    responses: list[requests.Response] = []
    requester._session.hooks["response"].append(
        lambda response, *args, **kwargs: responses.append(response)
    )
    yield CanvasClient(requester, responses)
    close_connections(requester)


def close_connections(requester: Requester) -> None:
    """Close the client's kept-alive connections now.

    ``Session.close()`` is not enough with urllib3 2.8: it forgets its pools without closing
    them, and canvasapi's cache of recent responses keeps them alive, so the live server's
    request thread would keep waiting on the socket - and holding its database connection,
    which makes dropping the PostgreSQL test database fail at the end of the session.
    """
    for adapter in requester._session.adapters.values():
        pools = adapter.poolmanager.pools
        # urllib3's container refuses plain iteration (not thread-safe); keys() copies.
        for key in pools.keys():  # noqa: SIM118
            pools[key].close()
    requester._session.close()
    requester._cache.clear()


def assert_paged(responses: list[requests.Response], events: int) -> None:
    """One request per page of ``PER_PAGE``, following ``next`` to the last page."""
    assert len(responses) == math.ceil(events / PER_PAGE)
    assert all(response.status_code == 200 for response in responses)
    assert all("next" in response.links for response in responses[:-1])
    assert "next" not in responses[-1].links
    assert responses[-1].links["last"]["url"] == responses[-1].links["current"]["url"]


def test_course_listing_pages_through_every_event(canvas: CanvasClient, audited: Course) -> None:
    events = canvas.list_events(f"audit/course/courses/{audited.pk}")

    ids = [event.id for event in events]
    assert len(ids) == len(set(ids)) == 25
    assert ids == expected_ids(CourseEvent.objects.filter(course=audited))
    assert_paged(canvas.responses, 25)
    assert {event.links["course"] for event in events} == {str(audited.pk)}
    created_at = [event.created_at_date for event in events]
    assert created_at == sorted(created_at, reverse=True)


def test_course_listing_by_sis_id(canvas: CanvasClient, audited: Course) -> None:
    events = canvas.list_events("audit/course/courses/sis_course_id:BIO101-F25")

    assert [event.id for event in events] == expected_ids(
        CourseEvent.objects.filter(course=audited)
    )


def test_account_listing_pages_through_every_event(
    canvas: CanvasClient, audited: Course, department: Account
) -> None:
    events = canvas.list_events(f"audit/course/accounts/{department.pk}")

    ids = [event.id for event in events]
    expected = expected_ids(CourseEvent.objects.filter(account=department))
    assert len(expected) == 25 + 6  # Biology 101 and Biology 102, not the sub-account's
    assert len(ids) == len(set(ids))
    assert ids == expected
    assert_paged(canvas.responses, len(expected))


def test_account_listing_with_subaccounts(
    canvas: CanvasClient, audited: Course, department: Account, subaccount: Account
) -> None:
    events = canvas.list_events(f"audit/course/accounts/{department.pk}", include_subaccounts=True)

    ids = [event.id for event in events]
    expected = expected_ids(CourseEvent.objects.filter(account__in=[department, subaccount]))
    assert len(expected) == 25 + 6 + 5
    assert len(ids) == len(set(ids))
    assert ids == expected
    assert_paged(canvas.responses, len(expected))
    # canvasapi sends the keyword as a query parameter; each next link keeps it.
    assert all(
        parse_qs(urlsplit(response.url).query)["include_subaccounts"] == ["true"]
        for response in canvas.responses
    )
