"""The audit endpoints: the compound document, filters and keyset pagination (contract §1-§4)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from course_audit import services
from course_audit.context import audit_context
from course_audit.models import Account, Course, CourseEvent, PageView, SisBatch

pytestmark = pytest.mark.django_db

LINK = re.compile(r'<([^>]+)>; rel="([a-z]+)"')


def links(response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response["Link"])}


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["page"][0]


def walk(api, path: str, **params) -> list[dict]:
    """Follow rel="next" to the end, as canvasapi does; return every event."""
    response = api.get(path, **params)
    assert response.status_code == 200, response.content
    seen = list(response.json()["events"])
    while "next" in links(response):
        response = api.client.get(links(response)["next"], HTTP_AUTHORIZATION=f"Bearer {api.token}")
        assert response.status_code == 200, response.content
        seen.extend(response.json()["events"])
    return seen


@pytest.fixture
def registrar(caller, root_account, admin_role):
    return caller("registrar", (root_account, admin_role))


@pytest.fixture
def at():
    """Stamp the events recorded in the block at a given time."""

    def stamp(when: dt.datetime):
        return audit_context(occurred_at=when)

    return stamp


T0 = dt.datetime(2025, 3, 3, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def history(make_course, make_user, at):
    """A course with every event type, sources, a user, a page view and a SIS batch."""
    with at(T0):
        course = make_course(name="Biology 101", course_code="BIO101", sis_course_id="BIO101-F25")
    actor = make_user("jsmith")
    batch = SisBatch.objects.create(root_account=course.root_account)
    request_id = uuid.uuid4()
    with at(T0 + dt.timedelta(minutes=1)), audit_context(user=actor, request_id=request_id):
        services.course_update(course=course, name="Biology 102")
    PageView.objects.create(request_id=request_id, url="http://x/admin", http_method="POST")
    with at(T0 + dt.timedelta(minutes=2)), audit_context(source="sis", sis_batch=batch):
        services.course_publish(course=course)
    with at(T0 + dt.timedelta(minutes=3)), audit_context(user=actor, request_id=uuid.uuid4()):
        services.course_unpublish(course=course)
    with at(T0 + dt.timedelta(minutes=4)), audit_context(source="api", user=actor):
        services.course_conclude(course=course)
        services.course_unconclude(course=course)
    with at(T0 + dt.timedelta(minutes=5)):
        services.course_delete(course=course)
        services.course_restore(course=course)
        copy = services.course_copy(source=course)
        new = services.course_reset(course=course)
    return {
        "course": course,
        "actor": actor,
        "batch": batch,
        "copy": copy,
        "new": new,
        "request_id": request_id,
    }


def test_the_compound_document_of_every_event_type(registrar, history):
    course = history["course"]
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page=100)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["links", "events", "linked"]
    assert body["links"] == {
        "events.course": "http://testserver/api/v1/courses/{events.course}",
        "events.user": None,
        "events.sis_batch": None,
    }
    events = body["events"]
    assert [e["event_type"] for e in events] == [
        "reset_to",
        "copied_to",
        "restored",
        "deleted",
        "unconcluded",
        "concluded",
        "unpublished",
        "published",
        "updated",
        "created",
    ]
    for event in events:
        assert list(event) == [
            "id",
            "created_at",
            "event_type",
            "event_source",
            "event_data",
            "links",
        ]
        uuid.UUID(event["id"])
    by_type = {e["event_type"]: e for e in events}
    assert by_type["updated"] == {
        "id": by_type["updated"]["id"],
        "created_at": "2025-03-03T12:01:00Z",
        "event_type": "updated",
        "event_source": "manual",
        "event_data": {"name": ["Biology 101", "Biology 102"]},
        "links": {
            "course": str(course.pk),
            "page_view": str(history["request_id"]),
            "user": str(history["actor"].pk),
            "sis_batch": None,
        },
    }
    assert by_type["published"]["event_source"] == "sis"
    assert by_type["published"]["links"]["sis_batch"] == str(history["batch"].pk)
    # A request id without a page view row links nothing.
    assert by_type["unpublished"]["links"]["page_view"] is None
    assert by_type["concluded"]["event_source"] == "api"
    assert by_type["copied_to"]["event_data"] == {}
    assert list(by_type["copied_to"]["links"]) == [
        "copied_to",
        "course",
        "page_view",
        "user",
        "sis_batch",
    ]
    assert by_type["copied_to"]["links"]["copied_to"] == history["copy"].pk
    assert by_type["reset_to"]["links"]["reset_to"] == history["new"].pk
    assert by_type["created"]["event_data"] == {
        "name": [None, "Biology 101"],
        "course_code": [None, "BIO101"],
        "sis_course_id": [None, "BIO101-F25"],
        "account_id": [None, course.account_id],
        "is_public": [None, False],
        "created_source": "manual",
    }
    assert list(by_type["created"]["event_data"]) == [
        "name",
        "course_code",
        "sis_course_id",
        "account_id",
        "is_public",
        "created_source",
    ]

    linked = body["linked"]
    assert list(linked) == ["page_views", "courses", "users"]
    assert [c["id"] for c in linked["courses"]] == [
        str(course.pk),
        str(history["new"].pk),
        str(history["copy"].pk),
    ]
    course_json = linked["courses"][0]
    assert course_json == {
        "id": str(course.pk),
        "name": "Biology 102",
        "course_code": "BIO101",
        "account_id": str(course.account_id),
        "root_account_id": str(course.root_account_id),
        "uuid": str(course.uuid),
        "sis_course_id": None,
        "created_at": course_json["created_at"],
        "start_at": None,
        "end_at": None,
        "is_public": False,
        "workflow_state": "deleted",
    }
    [user] = linked["users"]
    assert user["id"] == str(history["actor"].pk)
    assert user["login_id"] == history["actor"].get_username()
    assert list(user) == ["id", "name", "sortable_name", "short_name", "created_at", "login_id"]
    [page_view] = linked["page_views"]
    assert page_view["id"] == str(history["request_id"])
    assert page_view["http_method"] == "post"
    assert page_view["participated"] is False and page_view["app_name"] is None
    assert list(page_view["links"]) == ["user", "context", "asset", "real_user", "account"]
    # Every id in linked is a string, so links join without conversion.
    for collection in linked.values():
        for item in collection:
            for key, value in item.items():
                if key == "id" or (key.endswith("_id") and key not in ("sis_course_id",)):
                    assert value is None or isinstance(value, str), (key, value)


def test_created_at_is_shown_in_the_active_time_zone(registrar, history, settings):
    course = history["course"]
    settings.TIME_ZONE = "America/Denver"
    body = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page=100).json()
    updated = next(e for e in body["events"] if e["event_type"] == "updated")
    assert updated["created_at"] == "2025-03-03T05:01:00-07:00"


def test_paths_work_with_and_without_a_trailing_slash(registrar, course):
    for path in (
        f"/api/v1/audit/course/courses/{course.pk}",
        f"/api/v1/audit/course/courses/{course.pk}/",
    ):
        response = registrar.get(path)
        assert response.status_code == 200
        assert len(response.json()["events"]) == 1


def test_sis_ids_identify_courses_and_accounts(registrar, course, department):
    response = registrar.get("/api/v1/audit/course/courses/sis_course_id:BIO101-F25")
    assert response.status_code == 200
    assert response.json()["events"][0]["links"]["course"] == str(course.pk)
    response = registrar.get("/api/v1/audit/course/accounts/sis_account_id:BIO")
    assert response.status_code == 200
    assert len(response.json()["events"]) == 1
    assert registrar.get("/api/v1/audit/course/courses/sis_course_id:NOPE").status_code == 404
    assert registrar.get("/api/v1/audit/course/courses/sis_course_id:BIO%2FX").status_code == 404


def test_sis_lookups_are_scoped_to_the_callers_root(registrar, other_root):
    foreign = Account.objects.create(name="Their dept", parent=other_root, sis_account_id="T")
    services.course_create(account=foreign, name="Theirs", sis_course_id="BIO101-F25")
    assert registrar.get("/api/v1/audit/course/courses/sis_course_id:BIO101-F25").status_code == 404


def test_deleted_courses_are_found_and_deleted_accounts_are_not(registrar, course, department):
    services.course_delete(course=course)
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}")
    assert response.status_code == 200
    assert [e["event_type"] for e in response.json()["events"]] == ["deleted", "created"]
    Account.objects.filter(pk=department.pk).update(workflow_state="deleted")
    response = registrar.get(f"/api/v1/audit/course/accounts/{department.pk}")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "The specified resource does not exist."}]}


@pytest.mark.parametrize(
    "raw", ["abc", "-1", "1.5", "99999999999999999999999", "0", "\u00b2", "\u0661"]
)
def test_junk_ids_are_404(registrar, raw):
    assert registrar.get(f"/api/v1/audit/course/courses/{raw}").status_code == 404
    assert registrar.get(f"/api/v1/audit/course/accounts/{raw}").status_code == 404


def test_the_account_endpoint_uses_the_account_at_the_time(registrar, course, department, college):
    services.course_update(course=course, account=college)
    services.course_publish(course=course)
    dept_events = registrar.get(f"/api/v1/audit/course/accounts/{department.pk}").json()["events"]
    college_events = registrar.get(f"/api/v1/audit/course/accounts/{college.pk}").json()["events"]
    assert [e["event_type"] for e in dept_events] == ["created"]
    assert [e["event_type"] for e in college_events] == ["published", "updated"]


def test_include_subaccounts_covers_the_subtree(registrar, course, root_account, college):
    own = services.course_create(account=root_account, name="Root course")
    direct = registrar.get(f"/api/v1/audit/course/accounts/{root_account.pk}").json()["events"]
    assert [e["links"]["course"] for e in direct] == [str(own.pk)]
    whole = registrar.get(
        f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts="true"
    ).json()["events"]
    assert {e["links"]["course"] for e in whole} == {str(own.pk), str(course.pk)}
    response = registrar.get(
        f"/api/v1/audit/course/accounts/{root_account.pk}", include_subaccounts="maybe"
    )
    assert response.status_code == 400
    assert "include_subaccounts" in response.json()["errors"][0]["message"]


def test_an_empty_page(registrar, root_account):
    response = registrar.get(f"/api/v1/audit/course/accounts/{root_account.pk}")
    assert response.status_code == 200
    assert response.json() == {
        "links": {
            "events.course": "http://testserver/api/v1/courses/{events.course}",
            "events.user": None,
            "events.sis_batch": None,
        },
        "events": [],
        "linked": {"page_views": [], "courses": [], "users": []},
    }
    assert list(links(response)) == ["current", "first", "last"]


# --- time filters -------------------------------------------------------------------------


@pytest.fixture
def timed(course, at):
    """Events at 12:00:00.000, 12:00:00.700, 12:00:01.000 and 12:00:02.000 UTC."""
    moments = [
        T0,
        T0 + dt.timedelta(milliseconds=700),
        T0 + dt.timedelta(seconds=1),
        T0 + dt.timedelta(seconds=2),
    ]
    for index, moment in enumerate(moments):
        with at(moment):
            services.course_update(course=course, name=f"Name {index}")
    return course


def names(response) -> list[str]:
    return [
        e["event_data"]["name"][1]
        for e in response.json()["events"]
        if e["event_type"] == "updated"
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"start_time": "2025-03-03T12:00:01Z"}, ["Name 3", "Name 2"]),
        ({"end_time": "2025-03-03T12:00:00Z"}, ["Name 1", "Name 0"]),
        (
            {"start_time": "2025-03-03T12:00:00Z", "end_time": "2025-03-03T12:00:00Z"},
            ["Name 1", "Name 0"],
        ),
        ({"start_time": "2025-03-03T06:00:01-06:00"}, ["Name 3", "Name 2"]),
        ({"start_time": "2025-03-03T18:00:02 06:00"}, ["Name 3"]),
        ({"start_time": "2025-03-03T12:00:01.999Z"}, ["Name 3", "Name 2"]),
        ({"end_time": "2025-03-02"}, []),
        ({"start_time": "2025-03-03"}, ["Name 3", "Name 2", "Name 1", "Name 0"]),
        ({"start_time": "2025-03-03T12:00:02"}, ["Name 3"]),
    ],
)
def test_time_bounds_are_inclusive_at_whole_seconds(registrar, timed, params, expected):
    response = registrar.get(f"/api/v1/audit/course/courses/{timed.pk}", per_page=50, **params)
    assert response.status_code == 200, response.content
    assert names(response) == expected


def test_naive_times_are_read_in_the_active_time_zone(registrar, timed, settings):
    settings.TIME_ZONE = "America/Denver"
    response = registrar.get(
        f"/api/v1/audit/course/courses/{timed.pk}", start_time="2025-03-03T05:00:02"
    )
    assert names(response) == ["Name 3"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"start_time": "yesterday"}, "start_time: 'yesterday' is not an ISO 8601 date-time"),
        ({"end_time": "2025-13-01T00:00:00Z"}, "end_time: '2025-13-01T00:00:00Z' is not an ISO"),
        (
            {"start_time": "2025-03-04", "end_time": "2025-03-03"},
            "start_time must not be after end_time",
        ),
        ({"per_page": "ten"}, "per_page: must be an integer, got 'ten'"),
        ({"page": "bogus"}, "page: is not a page token"),
        ({"event_type": "renamed"}, "event_type: unknown value 'renamed'"),
        ({"event_source": "fax"}, "event_source: unknown value 'fax'"),
        ({"user_id": "me"}, "user_id: "),
        ({"user_id": "99999999999999999999"}, "user_id: "),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(registrar, timed, params, fragment):
    response = registrar.get(f"/api/v1/audit/course/courses/{timed.pk}", **params)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert list(response.json()) == ["errors"]
    assert error["message"].startswith(fragment) or fragment in error["message"]


def test_additive_filters(registrar, history):
    path = f"/api/v1/audit/course/courses/{history['course'].pk}"
    types = registrar.get(path, event_type="published,concluded", per_page=50).json()["events"]
    assert sorted(e["event_type"] for e in types) == ["concluded", "published"]
    sis = registrar.get(path, event_source="sis").json()["events"]
    assert [e["event_type"] for e in sis] == ["published"]
    mine = registrar.get(path, user_id=history["actor"].pk, per_page=50).json()["events"]
    assert sorted(e["event_type"] for e in mine) == [
        "concluded",
        "unconcluded",
        "unpublished",
        "updated",
    ]


# --- pagination ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 10), ("0", 1), ("-5", 1), ("3", 3), ("1000", 100)]
)
def test_per_page_defaults_and_clamps(registrar, course, raw, expected):
    for index in range(120):
        Course.objects.filter(pk=course.pk).update(name=f"n{index}")
    params = {} if raw is None else {"per_page": raw}
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", **params)
    assert len(response.json()["events"]) == expected
    assert links(response)["next"].endswith(f"&per_page={expected}")


def test_link_header_has_canvas_exact_form(registrar, course):
    for index in range(4):
        services.course_update(course=course, name=f"n{index}")
    path = f"/api/v1/audit/course/courses/{course.pk}"
    first = registrar.get(path, per_page=2, start_time="2000-01-01T00:00:00Z")
    header = first["Link"]
    parts = header.split(",")
    assert [p.split("; ")[1] for p in parts] == ['rel="current"', 'rel="next"', 'rel="first"']
    current, nxt, first_url = (p.split("; ")[0][1:-1] for p in parts)
    assert current == (
        f"http://testserver{path}?start_time=2000-01-01T00%3A00%3A00Z&page=first&per_page=2"
    )
    assert first_url == current
    assert nxt.startswith(f"http://testserver{path}?start_time=2000-01-01T00%3A00%3A00Z&page=")
    assert nxt.endswith("&per_page=2")
    second = registrar.client.get(nxt, HTTP_AUTHORIZATION=f"Bearer {registrar.token}")
    third = registrar.client.get(
        links(second)["next"], HTTP_AUTHORIZATION=f"Bearer {registrar.token}"
    )
    assert len(third.json()["events"]) == 1
    rels = links(third)
    assert list(rels) == ["current", "first", "last"]
    assert rels["last"] == rels["current"]
    assert token_of(rels["current"]) == token_of(links(second)["next"])


def test_links_honour_the_forwarded_host_when_the_host_trusts_it(registrar, course, settings):
    settings.USE_X_FORWARDED_HOST = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["lms.example.edu", "testserver"]
    response = registrar.client.get(
        f"/api/v1/audit/course/courses/{course.pk}",
        HTTP_AUTHORIZATION=f"Bearer {registrar.token}",
        HTTP_X_FORWARDED_HOST="lms.example.edu",
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert links(response)["current"].startswith(
        f"https://lms.example.edu/api/v1/audit/course/courses/{course.pk}?"
    )
    assert response.json()["links"]["events.course"] == (
        "https://lms.example.edu/api/v1/courses/{events.course}"
    )


def _bulk_events(course: Course, count: int, when: dt.datetime) -> None:
    CourseEvent.objects.bulk_create(
        [
            CourseEvent(
                course=course,
                account_id=course.account_id,
                event_type="updated",
                event_source="sis",
                event_data={"name": ["a", str(i)]},
                created_at=when,
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


def test_thousands_of_events_sharing_one_timestamp_page_exactly(registrar, course):
    _bulk_events(course, 2500, T0)
    seen = walk(registrar, f"/api/v1/audit/course/courses/{course.pk}", per_page=7)
    expected = list(
        CourseEvent.objects.filter(course=course)
        .order_by("-created_at", "-id")
        .values_list("uuid", flat=True)
    )
    assert [e["id"] for e in seen] == [str(u) for u in expected]
    assert len(seen) == 2501


def test_events_inserted_while_paging_are_neither_skipped_nor_repeated(registrar, course):
    _bulk_events(course, 30, T0)
    path = f"/api/v1/audit/course/courses/{course.pk}"
    before = {
        str(u) for u in CourseEvent.objects.filter(course=course).values_list("uuid", flat=True)
    }
    response = registrar.get(path, per_page=4)
    seen = [e["id"] for e in response.json()["events"]]
    while "next" in links(response):
        # New events arrive at the head (now) and inside the pages already read (T0).
        services.course_update(course=course, name=f"during {len(seen)}")
        _bulk_events(course, 1, T0)
        response = registrar.client.get(
            links(response)["next"], HTTP_AUTHORIZATION=f"Bearer {registrar.token}"
        )
        seen.extend(e["id"] for e in response.json()["events"])
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_tampered_truncated_and_foreign_cursors_are_400(registrar, course, make_course):
    other = make_course()
    for target in (course, other):
        for index in range(3):
            services.course_update(course=target, name=f"x{index}")
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", per_page=1)
    token = token_of(links(response)["next"])
    foreign = token_of(
        links(registrar.get(f"/api/v1/audit/course/courses/{other.pk}", per_page=1))["next"]
    )
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    for bad in (
        tampered,
        token[:-3],
        token[: len(token) // 2],
        foreign,
        "first" + token,
        "🙂",
        "a:b:c",
        "",
    ):
        response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", page=bad)
        if bad == "":
            assert response.status_code == 200  # an empty page parameter means the first page
            continue
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["message"].startswith("page: ")
    # The same token on the account listing is foreign too.
    response = registrar.get(f"/api/v1/audit/course/accounts/{course.account_id}", page=token)
    assert response.status_code == 400


def test_timestamps_are_whole_seconds_with_an_offset(registrar, course):
    created_at = CourseEvent.objects.get(course=course).created_at
    body = registrar.get(f"/api/v1/audit/course/courses/{course.pk}").json()
    assert body["events"][0]["created_at"] == timezone.localtime(created_at).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/audit/course/courses/sis_course_id:a%00b",
        "/api/v1/audit/course/accounts/sis_account_id:%00",
        "/api/v1/courses/sis_course_id:%00",
        "/api/v1/audit/course/courses/%00",
    ],
)
def test_nul_characters_in_ids_are_404_not_500(registrar, path):
    assert registrar.get(path).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"start_time": "2025-01-01T00:00:00\x00"},
        {"event_type": "created\x00"},
        {"per_page": "\x00"},
        {"page": "\x00"},
        {"user_id": "\x00"},
        {"include_subaccounts": "\x00"},
    ],
)
def test_nul_characters_in_parameters_are_400(registrar, department, params):
    response = registrar.get(f"/api/v1/audit/course/accounts/{department.pk}", **params)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"end_time": "9999-12-31T23:59:59Z"}, 200),
        ({"end_time": "9999-12-31"}, 200),
        ({"start_time": "0001-01-01"}, 200),
        ({"end_time": "9999-12-31T23:59:59-14:00"}, 400),  # year 10000 in UTC
        ({"start_time": "0001-01-01T00:00:00+14:00"}, 400),  # year 0 in UTC
    ],
)
def test_the_ends_of_the_calendar_are_answered_not_500(registrar, course, params, status):
    response = registrar.get(f"/api/v1/audit/course/courses/{course.pk}", **params)
    assert response.status_code == status
    if status == 200:
        assert len(response.json()["events"]) == 1
    else:
        [error] = response.json()["errors"]
        assert error["message"].endswith("is out of the supported range of dates")
        assert error["message"].startswith(next(iter(params)))


def test_the_course_link_follows_the_script_prefix(registrar, course):
    """The ``events.course`` template is reversed once per URLconf and script prefix (which
    a WSGI server sets from ``SCRIPT_NAME``; Django's test client does not, hence set here):
    a site served under a prefix gets it, and one without does not keep it."""
    from django.urls import set_script_prefix

    path = f"/api/v1/audit/course/courses/{course.pk}"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {registrar.token}"}
    try:
        for prefix, expected in [
            ("/lms/", "http://testserver/lms/api/v1/courses/{events.course}"),
            ("/", "http://testserver/api/v1/courses/{events.course}"),
            ("/other/", "http://testserver/other/api/v1/courses/{events.course}"),
        ]:
            set_script_prefix(prefix)
            response = registrar.client.get(path, **auth)
            assert response.status_code == 200
            assert response.json()["links"]["events.course"] == expected
    finally:
        set_script_prefix("/")


@pytest.mark.parametrize("listing", ["course", "account"])
def test_a_subclass_with_another_paginator_still_reads_only_its_scope(
    registrar, course, make_course, listing
):
    """The app's paginator adds an unfiltered listing's course or account condition itself;
    a subclass paged by another paginator (DRF's) gets the events already scoped, never
    every event of the table."""
    from rest_framework.pagination import PageNumberPagination
    from rest_framework.test import APIRequestFactory

    from course_audit.api.views import CourseAuditViewSet

    class Paged(PageNumberPagination):
        page_size = 100

    class Offset(CourseAuditViewSet):
        pagination_class = Paged

        def filter_queryset(self, queryset):
            return super().filter_queryset(queryset).values(*self.keyset_fields or ())

    other = make_course(account=course.account)  # same account: a course listing's test
    services.course_update(course=other, name="Other")
    services.course_update(course=course, name="Mine")
    if listing == "course":
        view, kwargs = Offset.as_view({"get": "for_course"}), {"course_id": str(course.pk)}
        expected = CourseEvent.objects.filter(course=course).count()
    else:
        elsewhere = make_course(account=Account.objects.create(name="Elsewhere"))
        services.course_update(course=elsewhere, name="Not here")
        view, kwargs = (
            Offset.as_view({"get": "for_account"}),
            {"account_id": str(course.account_id)},
        )
        expected = CourseEvent.objects.filter(account_id=course.account_id).count()
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {registrar.token}")
    response = view(request, **kwargs)
    assert response.status_code == 200
    body = response.data
    scoped = CourseEvent.objects.filter(
        **({"course": course} if listing == "course" else {"account_id": course.account_id})
    )
    assert body["count"] == expected == scoped.count() < CourseEvent.objects.count()
