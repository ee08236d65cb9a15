"""The write endpoints (contract §1): Canvas's shapes, recorded as ``api`` events.

Every error test also asserts that nothing changed: no course row and no event.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import pytest
from canvasapi import Canvas
from django.test import Client

from course_audit import services
from course_audit.models import Account, Course, CourseEvent, PageView, Role
from tests.api_fixtures import ApiCaller
from tests.helpers import FORBIDDEN, NOT_FOUND, UNAUTHENTICATED

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BAD_DATE = "is not an ISO 8601 date-time (e.g. 2012-07-19T15:00:00-06:00)"


def errors(*messages: str) -> dict[str, Any]:
    return {"errors": [{"message": message} for message in messages]}


def put(api: ApiCaller, path: str, data: dict[str, Any], *, as_json: bool = False) -> Any:
    if as_json:
        return api.send("put", path, data, content_type=JSON)
    return api.send("put", path, urlencode(data), content_type=FORM)


def database_state() -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Every course row and every event, to prove that a refused request changed nothing."""
    return (
        list(Course.objects.order_by("pk").values()),
        list(CourseEvent.objects.order_by("pk").values_list("pk", "course_id", "event_type")),
    )


def new_events(before: int) -> list[CourseEvent]:
    return list(CourseEvent.objects.filter(pk__gt=before).order_by("pk"))


def last_event_pk() -> int:
    return CourseEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def described(events: list[CourseEvent]) -> list[tuple[int, str, dict[str, Any], int | None]]:
    return [
        (event.course_id, event.event_type, event.event_data, event.related_course_id)
        for event in events
    ]


def assert_attributed(events: list[CourseEvent], api: ApiCaller, response: Any) -> None:
    """Recorded as ``api`` events of the token's user, linked to the request's page view."""
    request_id = uuid.UUID(response["X-Request-Id"])
    assert events
    for event in events:
        assert event.event_source == CourseEvent.EventSource.API
        assert event.user_id == api.user.pk
        assert event.user_name == api.user.get_username()
        assert event.page_view_id == request_id
        assert event.sis_batch_id is None
    assert PageView.objects.filter(request_id=request_id, user=api.user).exists()


def course_body(course: Course) -> dict[str, Any]:
    """The course JSON as GET /api/v1/courses/<id> shows it (integer ids)."""
    course.refresh_from_db()
    return {
        "id": course.pk,
        "name": course.name,
        "course_code": course.course_code,
        "account_id": course.account_id,
        "root_account_id": course.root_account_id,
        "uuid": str(course.uuid),
        "sis_course_id": course.sis_course_id,
        "created_at": course.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_at": course.start_at and course.start_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_at": course.conclude_at and course.conclude_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "is_public": course.is_public,
        "workflow_state": course.workflow_state,
    }


@pytest.fixture
def registrar(caller, root_account, admin_role) -> ApiCaller:
    return caller("registrar", (root_account, admin_role))


@pytest.fixture
def auditor_role(db: None) -> Role:
    return Role.objects.create(name="Auditor", view_course_changes=True)


@pytest.fixture
def chemistry(college: Account) -> Account:
    return Account.objects.create(name="Chemistry", parent=college, sis_account_id="CHEM")


@pytest.fixture
def chem_course(chemistry: Account) -> Course:
    return services.course_create(account=chemistry, name="Chem 101", sis_course_id="CHEM101")


@pytest.fixture
def foreign_course(other_root: Account) -> Course:
    return services.course_create(account=other_root, name="Rival 1", sis_course_id="R1")


# Creating ------------------------------------------------------------------------------


def test_create_from_a_form_body_records_created_and_published(registrar, department):
    before = last_event_pk()
    response = registrar.send(
        "post",
        f"/api/v1/accounts/{department.pk}/courses",
        {
            "course[name]": "Genetics 201",
            "course[course_code]": "GEN201",
            "course[start_at]": "2025-09-01T08:00:00-06:00",
            "course[end_at]": "2025-12-20",
            "course[is_public]": "1",
            "course[sis_course_id]": "GEN201-F25",
            "offer": "true",
        },
    )
    assert response.status_code == 200, response.content
    course = Course.objects.get(sis_course_id="GEN201-F25")
    assert response.json() == course_body(course)
    assert response.json() | {"id": 0, "uuid": "", "created_at": ""} == {
        "id": 0,
        "name": "Genetics 201",
        "course_code": "GEN201",
        "account_id": department.pk,
        "root_account_id": department.root_account_id,
        "uuid": "",
        "sis_course_id": "GEN201-F25",
        "created_at": "",
        "start_at": "2025-09-01T14:00:00Z",
        "end_at": "2025-12-20T00:00:00Z",
        "is_public": True,
        "workflow_state": "available",
    }
    events = new_events(before)
    assert described(events) == [
        (
            course.pk,
            "created",
            {
                "name": [None, "Genetics 201"],
                "course_code": [None, "GEN201"],
                "sis_course_id": [None, "GEN201-F25"],
                "account_id": [None, department.pk],
                "start_at": [None, "2025-09-01T14:00:00Z"],
                "conclude_at": [None, "2025-12-20T00:00:00Z"],
                "is_public": [None, True],
                "created_source": "api",
            },
            None,
        ),
        (course.pk, "published", {}, None),
    ]
    assert_attributed(events, registrar, response)


def test_create_from_a_json_body(registrar, department):
    before = last_event_pk()
    response = registrar.send(
        "post",
        f"/api/v1/accounts/sis_account_id:{department.sis_account_id}/courses/",
        {"course": {"name": "Ecology", "is_public": False, "start_at": None}, "offer": False},
        content_type=JSON,
    )
    assert response.status_code == 200, response.content
    course = Course.objects.get(pk=response.json()["id"])
    assert response.json() == course_body(course)
    assert (course.name, course.account_id, course.workflow_state) == (
        "Ecology",
        department.pk,
        "unpublished",
    )
    assert course.sis_course_id is None
    events = new_events(before)
    assert described(events) == [
        (
            course.pk,
            "created",
            {
                "name": [None, "Ecology"],
                "account_id": [None, department.pk],
                "is_public": [None, False],
                "created_source": "api",
            },
            None,
        )
    ]
    assert_attributed(events, registrar, response)


# Updating ------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_update_records_one_updated_event(registrar, course, as_json):
    before = last_event_pk()
    fields = {
        "name": "Biology 101 (Fall)",
        "start_at": "2025-09-01T08:00:00Z",
        "end_at": "2025-12-20T17:00:00+01:00",
        "is_public": "true" if not as_json else True,
        "course_code": "BIO-101",
    }
    data = {"course": fields} if as_json else {f"course[{k}]": v for k, v in fields.items()}
    response = put(registrar, f"/api/v1/courses/{course.pk}", data, as_json=as_json)
    assert response.status_code == 200, response.content
    assert response.json() == course_body(course)
    assert response.json()["end_at"] == "2025-12-20T16:00:00Z"
    events = new_events(before)
    assert described(events) == [
        (
            course.pk,
            "updated",
            {
                "name": ["Biology 101", "Biology 101 (Fall)"],
                "course_code": ["BIO101", "BIO-101"],
                "start_at": [None, "2025-09-01T08:00:00Z"],
                "conclude_at": [None, "2025-12-20T16:00:00Z"],
                "is_public": [False, True],
            },
            None,
        )
    ]
    assert_attributed(events, registrar, response)


def test_update_by_sis_id_clears_fields_and_a_no_op_records_nothing(registrar, course):
    path = f"/api/v1/courses/sis_course_id:{course.sis_course_id}/"
    before = last_event_pk()
    response = put(registrar, path, {"course[course_code]": "", "course[sis_course_id]": ""})
    assert response.status_code == 200, response.content
    course.refresh_from_db()
    assert (course.course_code, course.sis_course_id) == ("", None)
    assert described(new_events(before)) == [
        (
            course.pk,
            "updated",
            {"course_code": ["BIO101", ""], "sis_course_id": ["BIO101-F25", None]},
            None,
        )
    ]
    before = last_event_pk()
    response = put(registrar, f"/api/v1/courses/{course.pk}", {"course[name]": course.name})
    assert response.status_code == 200
    assert response.json() == course_body(course)
    assert new_events(before) == []


@pytest.mark.parametrize(
    ("setup", "event", "state", "recorded"),
    [
        (None, "offer", "available", "published"),
        (services.course_publish, "claim", "unpublished", "unpublished"),
        (None, "conclude", "completed", "concluded"),
        (None, "delete", "deleted", "deleted"),
        (services.course_delete, "undelete", "unpublished", "restored"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_each_course_event(registrar, course, setup, event, state, recorded, as_json):
    if setup is not None:
        setup(course=course)
    data = {"course": {"event": event}} if as_json else {"course[event]": event}
    before = last_event_pk()
    response = put(registrar, f"/api/v1/courses/{course.pk}", data, as_json=as_json)
    assert response.status_code == 200, response.content
    assert response.json() == course_body(course)
    assert response.json()["workflow_state"] == state
    events = new_events(before)
    assert described(events) == [(course.pk, recorded, {}, None)]
    assert_attributed(events, registrar, response)


def test_offer_true_publishes_on_update(registrar, course):
    before = last_event_pk()
    response = put(registrar, f"/api/v1/courses/{course.pk}", {"offer": "1"})
    assert response.status_code == 200
    assert response.json()["workflow_state"] == "available"
    assert described(new_events(before)) == [(course.pk, "published", {}, None)]


def test_undelete_comes_before_the_field_changes_and_delete_after(registrar, course):
    services.course_delete(course=course)
    before = last_event_pk()
    response = put(
        registrar,
        f"/api/v1/courses/{course.pk}",
        {"course": {"event": "undelete", "name": "Biology 101 again"}},
        as_json=True,
    )
    assert response.status_code == 200, response.content
    assert described(new_events(before)) == [
        (course.pk, "restored", {}, None),
        (course.pk, "updated", {"name": ["Biology 101", "Biology 101 again"]}, None),
    ]
    before = last_event_pk()
    response = put(
        registrar,
        f"/api/v1/courses/{course.pk}",
        {"course[event]": "delete", "course[name]": "Biology 101 (gone)"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["workflow_state"] == "deleted"
    assert described(new_events(before)) == [
        (course.pk, "updated", {"name": ["Biology 101 again", "Biology 101 (gone)"]}, None),
        (course.pk, "deleted", {}, None),
    ]


# Deleting and concluding ---------------------------------------------------------------


def test_delete_with_event_delete_in_the_query(registrar, course):
    before = last_event_pk()
    response = registrar.send("delete", f"/api/v1/courses/{course.pk}?event=delete")
    assert response.status_code == 200, response.content
    assert response.json() == {"delete": True}
    course.refresh_from_db()
    assert course.workflow_state == "deleted"
    events = new_events(before)
    assert described(events) == [(course.pk, "deleted", {}, None)]
    assert_attributed(events, registrar, response)
    # The course is still found, and deleting it again changes nothing.
    before = last_event_pk()
    again = registrar.send("delete", f"/api/v1/courses/{course.pk}/?event=delete")
    assert again.status_code == 200
    assert again.json() == {"delete": True}
    assert new_events(before) == []


def test_delete_with_event_conclude_in_a_form_body_as_canvasapi_sends_it(registrar, course):
    before = last_event_pk()
    response = registrar.send(
        "delete",
        f"/api/v1/courses/{course.pk}",
        urlencode({"event": "conclude"}),
        content_type=FORM,
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"conclude": True}
    course.refresh_from_db()
    assert course.workflow_state == "completed"
    events = new_events(before)
    assert described(events) == [(course.pk, "concluded", {}, None)]
    assert_attributed(events, registrar, response)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "event: This field is required."),
        ("?event=destroy", 'event: "destroy" is not a valid choice.'),
        ("?event=", 'event: "" is not a valid choice.'),
    ],
)
def test_delete_without_a_known_event_is_400(registrar, course, query, message):
    state = database_state()
    response = registrar.send("delete", f"/api/v1/courses/{course.pk}{query}", "")
    assert response.status_code == 400
    assert response.json() == errors(message)
    assert database_state() == state


def test_concluding_a_deleted_course_is_400(registrar, course):
    services.course_delete(course=course)
    state = database_state()
    response = registrar.send("delete", f"/api/v1/courses/{course.pk}?event=conclude")
    assert response.status_code == 400
    assert response.json() == errors("event: A deleted course cannot be concluded.")
    assert database_state() == state


# Reset and copy ------------------------------------------------------------------------


def test_reset_content_answers_the_new_course_and_records_the_pair(registrar, course):
    services.course_publish(course=course)
    before = last_event_pk()
    response = registrar.send("post", f"/api/v1/courses/{course.pk}/reset_content")
    assert response.status_code == 200, response.content
    new = Course.objects.get(pk=response.json()["id"])
    assert new.pk != course.pk
    assert response.json() == course_body(new)
    assert (new.name, new.sis_course_id, new.workflow_state) == (
        "Biology 101",
        "BIO101-F25",
        "unpublished",
    )
    course.refresh_from_db()
    assert (course.workflow_state, course.sis_course_id) == ("deleted", None)
    events = new_events(before)
    assert described(events) == [
        (
            new.pk,
            "created",
            {
                "name": [None, "Biology 101"],
                "course_code": [None, "BIO101"],
                "sis_course_id": [None, "BIO101-F25"],
                "account_id": [None, course.account_id],
                "is_public": [None, False],
                "created_source": "api",
            },
            None,
        ),
        (new.pk, "reset_from", {}, course.pk),
        (course.pk, "reset_to", {}, new.pk),
    ]
    assert_attributed(events, registrar, response)


def test_resetting_a_deleted_course_is_400(registrar, course):
    services.course_delete(course=course)
    state = database_state()
    response = registrar.send("post", f"/api/v1/courses/{course.pk}/reset_content/")
    assert response.status_code == 400
    assert response.json() == errors("A deleted course cannot be reset.")
    assert database_state() == state


@pytest.mark.parametrize("by_sis_id", [False, True], ids=["numeric", "sis"])
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_content_migration_copies_a_course_and_records_the_pair(
    registrar, course, make_course, by_sis_id, as_json
):
    destination = make_course(name="Biology 101 (Spring)")
    source_id = f"sis_course_id:{course.sis_course_id}" if by_sis_id else str(course.pk)
    before = last_event_pk()
    path = f"/api/v1/courses/{destination.pk}/content_migrations"
    if as_json:
        body = {
            "migration_type": "course_copy_importer",
            "settings": {"source_course_id": source_id},
        }
        response = registrar.send("post", path, body, content_type=JSON)
    else:
        body = {"migration_type": "course_copy_importer", "settings[source_course_id]": source_id}
        response = registrar.send("post", path, urlencode(body), content_type=FORM)
    assert response.status_code == 200, response.content
    events = new_events(before)
    assert described(events) == [
        (destination.pk, "copied_from", {}, course.pk),
        (course.pk, "copied_to", {}, destination.pk),
    ]
    assert response.json() == {
        "id": events[0].pk,
        "migration_type": "course_copy_importer",
        "workflow_state": "completed",
    }
    assert_attributed(events, registrar, response)


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({}, ["migration_type: This field is required.", "settings: This field is required."]),
        (
            {"migration_type": "zip_file_importer", "settings[source_course_id]": "1"},
            ['migration_type: "zip_file_importer" is not a valid choice.'],
        ),
        (
            {"migration_type": "course_copy_importer", "settings[source_course_id]": ""},
            ["settings[source_course_id]: This field may not be blank."],
        ),
        (
            {"migration_type": "course_copy_importer", "settings[source_course_id]": "{self}"},
            ["settings[source_course_id]: A course cannot be copied into itself."],
        ),
    ],
)
def test_bad_content_migrations_are_400(registrar, course, body, messages):
    body = {key: value.replace("{self}", str(course.pk)) for key, value in body.items()}
    state = database_state()
    response = registrar.send("post", f"/api/v1/courses/{course.pk}/content_migrations", body)
    assert response.status_code == 400
    assert response.json() == errors(*messages)
    assert database_state() == state


def test_copying_from_a_deleted_course_is_400(registrar, course, make_course):
    destination = make_course()
    services.course_delete(course=course)
    state = database_state()
    response = registrar.send(
        "post",
        f"/api/v1/courses/{destination.pk}/content_migrations",
        {"migration_type": "course_copy_importer", "settings[source_course_id]": str(course.pk)},
    )
    assert response.status_code == 400
    assert response.json() == errors(
        "settings[source_course_id]: A deleted course cannot take part in a copy."
    )
    assert database_state() == state


# Validation ----------------------------------------------------------------------------


@pytest.fixture
def taken_sis_id(make_course) -> str:
    make_course(name="Biology 102", sis_course_id="BIO102-F25")
    return "BIO102-F25"


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        (
            {"course[start_at]": "next monday"},
            [f"course[start_at]: 'next monday' {BAD_DATE}"],
        ),
        (
            {"course[end_at]": "2025-02-30"},
            [f"course[end_at]: '2025-02-30' {BAD_DATE}"],
        ),
        (
            {"course[start_at]": "9999-12-31T23:00:00-05:00"},
            [f"course[start_at]: '9999-12-31T23:00:00-05:00' {BAD_DATE}"],
        ),
        (
            {"course[start_at]": "2025-09-01", "course[end_at]": "2025-08-01"},
            ["course[end_at]: The end date must not be before the start date."],
        ),
        (
            {"course[name]": "x" * 256},
            ["course[name]: Ensure this field has no more than 255 characters."],
        ),
        ({"course[name]": "  "}, ["course[name]: This field may not be blank."]),
        (
            {"course[sis_course_id]": "BIO102-F25"},
            [
                "course[sis_course_id]: 'BIO102-F25' is already the SIS id of another course "
                "in this root account."
            ],
        ),
        ({"course[event]": "publish"}, ['course[event]: "publish" is not a valid choice.']),
        ({"course[is_public]": "maybe"}, ["course[is_public]: Must be a valid boolean."]),
        (
            {"course[event]": "claim", "offer": "true"},
            ["offer: contradicts course[event]=claim"],
        ),
        (
            {"course[event]": "undelete", "course[name]": "Renamed"},
            ["course[event]: Only a deleted course can be restored; this one is unpublished."],
        ),
        (
            {
                "course[name]": "x" * 300,
                "course[start_at]": "soon",
                "course[is_public]": "perhaps",
                "course[sis_course_id]": "BIO102-F25",
                "course[event]": "archive",
            },
            [
                "course[name]: Ensure this field has no more than 255 characters.",
                f"course[start_at]: 'soon' {BAD_DATE}",
                "course[is_public]: Must be a valid boolean.",
                "course[sis_course_id]: 'BIO102-F25' is already the SIS id of another course "
                "in this root account.",
                'course[event]: "archive" is not a valid choice.',
            ],
        ),
    ],
)
def test_bad_updates_are_400_naming_each_field_and_change_nothing(
    registrar, course, taken_sis_id, data, messages
):
    state = database_state()
    response = put(registrar, f"/api/v1/courses/{course.pk}", data)
    assert response.status_code == 400, response.content
    assert response.json() == errors(*messages)
    assert database_state() == state


def test_a_refused_event_rolls_back_the_field_changes_sent_with_it(registrar, course):
    services.course_conclude(course=course)
    state = database_state()
    response = put(
        registrar,
        f"/api/v1/courses/{course.pk}",
        {"course[event]": "claim", "course[name]": "Renamed", "course[is_public]": "true"},
    )
    assert response.status_code == 400
    assert response.json() == errors("course[event]: A concluded course cannot be unpublished.")
    assert database_state() == state


def test_changing_a_deleted_course_or_offering_it_is_400(registrar, course):
    services.course_delete(course=course)
    state = database_state()
    response = put(registrar, f"/api/v1/courses/{course.pk}", {"course[name]": "New"})
    assert response.status_code == 400
    assert response.json() == errors(
        "course: A deleted course cannot be changed; restore it first."
    )
    response = put(registrar, f"/api/v1/courses/{course.pk}", {"course[event]": "offer"})
    assert response.status_code == 400
    assert response.json() == errors("course[event]: A deleted course cannot be published.")
    assert database_state() == state


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        ({}, ["course: This field is required."]),
        ({"course[course_code]": "X1"}, ["course[name]: This field is required."]),
        ({"course[name]": ""}, ["course[name]: This field may not be blank."]),
        (
            {"course[name]": "Ok", "course[sis_course_id]": "BIO102-F25"},
            [
                "course[sis_course_id]: 'BIO102-F25' is already the SIS id of another course "
                "in this root account."
            ],
        ),
        (
            {
                "course[name]": "Ok",
                "course[start_at]": "2025-09-02",
                "course[end_at]": "2025-09-01",
            },
            ["course[end_at]: The end date must not be before the start date."],
        ),
        (
            {"course[name]": "", "course[end_at]": "tomorrow", "offer": "sure"},
            [
                "course[name]: This field may not be blank.",
                f"course[end_at]: 'tomorrow' {BAD_DATE}",
                "offer: Must be a valid boolean.",
            ],
        ),
    ],
)
def test_bad_creates_are_400_naming_each_field_and_change_nothing(
    registrar, department, taken_sis_id, data, messages
):
    state = database_state()
    response = registrar.send("post", f"/api/v1/accounts/{department.pk}/courses", data)
    assert response.status_code == 400, response.content
    assert response.json() == errors(*messages)
    assert database_state() == state


def test_a_sis_id_used_in_another_root_is_free(registrar, department, foreign_course):
    response = registrar.send(
        "post",
        f"/api/v1/accounts/{department.pk}/courses",
        {"course[name]": "Mine", "course[sis_course_id]": foreign_course.sis_course_id},
    )
    assert response.status_code == 200, response.content
    assert response.json()["sis_course_id"] == "R1"


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        ("{not json", JSON, "JSON parse error"),
        ("[1, 2]", JSON, "Invalid data. Expected a dictionary, but got list."),
        ('{"course": "Biology"}', JSON, "course: Invalid data. Expected a dictionary"),
        ('{"course": {"start_at": 20250901}}', JSON, f"course[start_at]: 20250901 {BAD_DATE}"),
        ("course=x&course[name]=y", FORM, None),
        ("course[name]=x&course=y", FORM, "course: Invalid data. Expected a dictionary"),
        ("course[name]=a%00b", FORM, "course[name]: Null characters are not allowed."),
    ],
)
def test_junk_bodies_are_answered_not_500(registrar, course, body, content_type, fragment):
    response = registrar.send(
        "put", f"/api/v1/courses/{course.pk}", body, content_type=content_type
    )
    if fragment is None:
        assert response.status_code == 200
        assert response.json()["name"] == "y"
    else:
        assert response.status_code == 400, response.content
        assert fragment in response.json()["errors"][0]["message"]


# Authentication and permissions --------------------------------------------------------


def write_requests(course: Course, account: Account, source: Course) -> list[tuple[str, ...]]:
    """(method, path, body) of every write endpoint."""
    copy = {"migration_type": "course_copy_importer", "settings[source_course_id]": source.pk}
    # In an order where each succeeds after the others: the reset leaves the course deleted.
    return [
        ("post", f"/api/v1/accounts/{account.pk}/courses", urlencode({"course[name]": "New"})),
        ("put", f"/api/v1/courses/{course.pk}", urlencode({"course[name]": "Renamed"})),
        ("put", f"/api/v1/courses/{course.pk}", urlencode({"course[event]": "offer"})),
        ("post", f"/api/v1/courses/{course.pk}/content_migrations", urlencode(copy)),
        ("post", f"/api/v1/courses/{course.pk}/reset_content", ""),
        ("delete", f"/api/v1/courses/{course.pk}?event=delete", ""),
    ]


def send_all(api: ApiCaller, requests: list[tuple[str, ...]]) -> list[Any]:
    return [api.send(method, path, body, content_type=FORM) for method, path, body in requests]


@pytest.mark.parametrize("header", [None, "Bearer nope"])
def test_writes_without_credentials_are_401(client, course, department, make_course, header):
    source = make_course()
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    state = database_state()
    for method, path, body in write_requests(course, department, source):
        response = getattr(client, method)(path, body, content_type=FORM, **extra)
        assert response.status_code == 401, (method, path)
        assert response.json() == UNAUTHENTICATED
        assert response["WWW-Authenticate"] == 'Bearer realm="course_audit"'
    assert database_state() == state


@pytest.mark.parametrize("role", ["auditor_role", "teacher_role"])
def test_writes_without_manage_courses_are_403(
    request, caller, root_account, course, department, make_course, role
):
    source = make_course()
    viewer = caller("viewer", (root_account, request.getfixturevalue(role)))
    state = database_state()
    for response in send_all(viewer, write_requests(course, department, source)):
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
    assert database_state() == state
    # GET of the same course path still needs only view_course_changes.
    expected = 200 if role == "auditor_role" else 403
    assert viewer.get(f"/api/v1/courses/{course.pk}").status_code == expected


def test_a_bad_body_from_a_caller_without_permission_is_still_403(
    caller, root_account, auditor_role, course
):
    viewer = caller("viewer", (root_account, auditor_role))
    response = put(viewer, f"/api/v1/courses/{course.pk}", {"course[start_at]": "never"})
    assert response.status_code == 403


def test_writes_to_unknown_ids_and_other_tenants_are_404(
    registrar, course, department, foreign_course, other_root, make_course
):
    source = make_course()
    unknown = Course(pk=424242)
    unknown_account = Account(pk=424242)
    state = database_state()
    for requests in (
        write_requests(unknown, unknown_account, source),
        write_requests(foreign_course, other_root, source),
    ):
        for response in send_all(registrar, requests):
            assert response.status_code == 404
            assert response.json() == NOT_FOUND
            assert b"Rival" not in response.content
    assert database_state() == state


def test_creating_in_a_deleted_account_is_404(registrar, chemistry):
    Account.objects.filter(pk=chemistry.pk).update(workflow_state=Account.WorkflowState.DELETED)
    state = database_state()
    response = registrar.send(
        "post", f"/api/v1/accounts/{chemistry.pk}/courses", {"course[name]": "X"}
    )
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert database_state() == state


def test_the_copy_source_needs_manage_courses_too(
    caller, department, admin_role, course, chem_course, foreign_course
):
    dept_admin = caller("dept_admin", (department, admin_role))
    path = f"/api/v1/courses/{course.pk}/content_migrations"
    state = database_state()
    for source, status in [
        (chem_course.pk, 403),
        (foreign_course.pk, 404),
        (424242, 404),
        ("sis_course_id:R1", 404),
    ]:
        response = dept_admin.send(
            "post",
            path,
            {"migration_type": "course_copy_importer", "settings[source_course_id]": source},
        )
        assert response.status_code == status, source
    assert database_state() == state


def test_a_department_admin_writes_inside_its_department_only(
    caller, department, college, chemistry, admin_role, course, chem_course, make_course
):
    dept_admin = caller("dept_admin", (department, admin_role))
    source = make_course()
    inside = send_all(dept_admin, write_requests(course, department, source))
    assert [response.status_code for response in inside] == [200] * 6
    state = database_state()
    for response in send_all(dept_admin, write_requests(chem_course, chemistry, source)):
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
    response = dept_admin.send(
        "post", f"/api/v1/accounts/{college.pk}/courses", {"course[name]": "X"}
    )
    assert response.status_code == 403
    assert database_state() == state


def test_a_session_write_needs_the_csrf_token(make_user, grant, root_account, course):
    admin = make_user("admin")
    grant(admin, root_account)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    path = f"/api/v1/courses/{course.pk}"
    state = database_state()
    refused = browser.put(path, urlencode({"course[name]": "Renamed"}), content_type=FORM)
    assert refused.status_code == 403
    assert refused.json() == FORBIDDEN
    assert database_state() == state

    browser.get("/admin/login/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    before = last_event_pk()
    accepted = browser.put(
        path, urlencode({"course[name]": "Renamed"}), content_type=FORM, HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 200, accepted.content
    [event] = new_events(before)
    assert (event.event_type, event.event_source, event.user_id) == ("updated", "api", admin.pk)


def test_options_and_other_methods_never_500(registrar, course, department):
    for path in (
        f"/api/v1/courses/{course.pk}",
        f"/api/v1/courses/{course.pk}/reset_content",
        f"/api/v1/courses/{course.pk}/content_migrations",
        f"/api/v1/accounts/{department.pk}/courses",
    ):
        assert registrar.send("options", path).status_code == 200, path
        assert registrar.send("patch", path, "", content_type=FORM).status_code == 405, path


# The real client ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_canvasapi_drives_every_write_endpoint(live_server, registrar, department, course):
    """canvasapi 3.6 sends ``course[name]=...`` form bodies, and DELETE's event in the body."""
    with pytest.warns(UserWarning, match="HTTPS"):
        canvas = Canvas(live_server.url, registrar.token)
    requester = canvas._Canvas__requester  # type: ignore[attr-defined]
    try:
        created = canvas.get_account(department.pk).create_course(
            course={"name": "Genetics 201", "sis_course_id": "GEN201", "is_public": True},
            offer=True,
        )
        assert (created.name, created.workflow_state, created.is_public) == (
            "Genetics 201",
            "available",
            True,
        )
        api_course = canvas.get_course(course.pk)
        assert api_course.update(course={"name": "Biology 101 (Fall)"}) == "Biology 101 (Fall)"
        migration = api_course.create_content_migration(
            "course_copy_importer", settings={"source_course_id": created.id}
        )
        assert migration.workflow_state == "completed"
        assert api_course.conclude() is True
        fresh = api_course.reset()
        assert (fresh.name, fresh.sis_course_id) == ("Biology 101 (Fall)", "BIO101-F25")
        assert canvas.get_course(created.id).delete() is True
    finally:
        # Close kept-alive connections (canvasapi's response cache keeps them open), so the
        # live server's thread lets go of the database before the test database is dropped.
        requester._cache.clear()
        for adapter in requester._session.adapters.values():
            pools = adapter.poolmanager.pools
            for key in pools.keys():  # noqa: SIM118  (the container refuses iteration)
                pools[key].close()
        requester._session.close()
    assert [
        (event.course_id, event.event_type)
        for event in CourseEvent.objects.filter(event_source="api").order_by("pk")
    ] == [
        (created.id, "created"),
        (created.id, "published"),
        (course.pk, "updated"),
        (course.pk, "copied_from"),
        (created.id, "copied_to"),
        (course.pk, "concluded"),
        (fresh.id, "created"),
        (fresh.id, "reset_from"),
        (course.pk, "reset_to"),
        (created.id, "deleted"),
    ]
