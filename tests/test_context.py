"""The audit context across a background job: captured when queued, used when run."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path

from course_audit import services
from course_audit.context import audit_context, capture_audit_context, use_audit_context
from course_audit.models import Course, SisBatch
from tests.helpers import last_event

pytestmark = pytest.mark.django_db

# A stand-in for a task queue (Celery and the like): jobs travel as JSON and run later, in
# another thread, long after the request that queued them has answered.
QUEUE: list[str] = []


def enqueue(task: Callable[..., Any], **kwargs: Any) -> None:
    QUEUE.append(json.dumps({"task": task.__name__, "kwargs": kwargs}))


def conclude_course(course_id: int, audit: dict[str, Any] | None = None) -> None:
    """The job: what a ``@shared_task`` would run."""
    course = Course.objects.get(pk=course_id)
    if audit is None:
        services.course_conclude(course=course)
    else:
        with use_audit_context(audit):
            services.course_conclude(course=course)


TASKS = {"conclude_course": conclude_course}


def run_worker() -> None:
    """Run every queued job in a thread of its own, as a worker process would."""

    def work(message: dict[str, Any]) -> None:
        try:
            TASKS[message["task"]](**message["kwargs"])
        finally:
            connections.close_all()

    while QUEUE:
        worker = threading.Thread(target=work, args=(json.loads(QUEUE.pop(0)),))
        worker.start()
        worker.join()


def conclude_later(request: HttpRequest, pk: int) -> HttpResponse:
    enqueue(conclude_course, course_id=pk, audit=capture_audit_context())
    return HttpResponse("queued")


def conclude_later_without_context(request: HttpRequest, pk: int) -> HttpResponse:
    enqueue(conclude_course, course_id=pk)
    return HttpResponse("queued")


urlpatterns = [
    path("courses/<int:pk>/conclude-later", conclude_later),
    path("courses/<int:pk>/conclude-later-anonymously", conclude_later_without_context),
]


@pytest.fixture(autouse=True)
def _empty_queue():
    QUEUE.clear()
    yield
    QUEUE.clear()


@pytest.fixture
def published(course):
    return services.course_publish(course=course)


@pytest.mark.urls("tests.test_context")
@pytest.mark.django_db(transaction=True)
def test_a_job_queued_in_a_request_keeps_its_actor(client, published, make_user):
    registrar = make_user("registrar")
    client.force_login(registrar)
    response = client.post(f"/courses/{published.pk}/conclude-later")
    assert response.status_code == 200
    assert last_event(published).event_type == "published"  # nothing ran yet
    run_worker()
    event = last_event(published)
    assert event.event_type == "concluded"
    assert event.user == registrar
    assert event.user_name == registrar.get_username()
    assert event.event_source == "manual"
    # The request that queued the job, though the job's events are not part of its page view.
    assert str(event.page_view_id) == response["X-Request-Id"]


@pytest.mark.urls("tests.test_context")
@pytest.mark.django_db(transaction=True)
def test_without_the_context_a_job_records_no_actor(client, published, make_user):
    client.force_login(make_user("registrar"))
    client.post(f"/courses/{published.pk}/conclude-later-anonymously")
    run_worker()
    event = last_event(published)
    assert event.event_type == "concluded"
    assert event.user is None
    assert event.page_view_id is None


def test_a_command_s_context_travels_too(published, make_user, root_account):
    importer = make_user("importer")
    batch = SisBatch.objects.create(root_account=root_account)
    with audit_context(user=importer, source="sis", sis_batch=batch):
        snapshot = capture_audit_context()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot == {
        "user_id": str(importer.pk),
        "source": "sis",
        "sis_batch_id": batch.pk,
        "request_id": None,
    }
    with use_audit_context(snapshot):
        services.course_conclude(course=published)
    event = last_event(published)
    assert (event.user, event.event_source, event.sis_batch) == (importer, "sis", batch)


def test_outside_any_context_the_snapshot_is_anonymous_manual():
    assert capture_audit_context() == {
        "user_id": None,
        "source": "manual",
        "sis_batch_id": None,
        "request_id": None,
    }


def test_an_actor_deleted_before_the_job_runs_leaves_no_user(published, make_user):
    leaver = make_user("leaver")
    request_id = uuid.uuid4()
    with audit_context(user=leaver, request_id=request_id):
        snapshot = capture_audit_context()
    leaver.delete()
    with use_audit_context(snapshot):
        services.course_conclude(course=published)
    event = last_event(published)
    assert event.user is None
    assert event.page_view_id == request_id
