"""Fuzzing from the schema: schemathesis drives every operation of ``/api/schema/``.

A live server on 127.0.0.1 (the app in a thread of this process, on the test database)
answers requests that schemathesis generates from the OpenAPI document the app itself
serves: for each operation, Hypothesis draws valid and invalid requests (schemathesis'
positive and negative modes: parameters, bodies in each documented media type),
derandomized, a fixed number per operation, under a time limit. The caller is a
registrar holding ``view_course_changes`` and ``manage_courses`` at the root of a tenant
with sub-accounts, courses in every state, their events and SIS ids (and a member of a
second tenant without permissions), so requests get past authentication and reach the
real code, the write endpoints included: path parameters, ``user_id`` and a copy's
source are drawn part of the time from real ids (numeric and ``sis_*_id:``) of both.

Each response must pass schemathesis' checks: no 5xx, a documented status code, the
documented content type, headers and body schema. Every distinct failure is collected
(with a curl command to reproduce it) and reported at the end; the figures (requests
per operation, total, statuses, time) are printed whatever pytest's capture.

Why a server thread and not a subprocess: it runs on the test database pytest-django
created (with migrations), sees the rows this transactional test committed, and still
answers real HTTP on a real socket of 127.0.0.1. Why Hypothesis around
``APIOperation.as_strategy()`` and not ``schemathesis.pytest.from_fixture``: the latter
fails under pytest 9.2 (it reaches for ``Function._nodeid``), and this way the test
counts its own requests and enforces its own bounds.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.contrib.auth import get_user_model
from django.test import override_settings
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pytest_django.live_server_helper import LiveServer
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from course_audit import integrity, services
from course_audit.context import audit_context
from course_audit.models import Account, AccountMembership, ApiToken, Course, CourseEvent, Role

pytestmark = pytest.mark.django_db(transaction=True)

# Bounds of the run: Hypothesis examples (one request each) per operation, the fewest
# requests that make the run count (11 x 120 = 1,320), and a wall-clock limit after which
# no further request is sent and the run fails (about 90 s on a 2-core machine).
FUZZ_EXAMPLES_PER_OPERATION = 120
MIN_REQUESTS = 1000
TIME_LIMIT_SECONDS = 420
# How often a path parameter (and user_id, the copy's source) is a real id.
REAL_ID_PROBABILITY = 0.6

# The reads first, then the writes, the ones that can delete a course last: a course the
# fuzzer deleted makes every later write to it a 400, so each write sees live courses.
OPERATION_ORDER = [
    "GET /api/v1/accounts/{account_id}",
    "GET /api/v1/courses/{course_id}",
    "GET /api/v1/audit/course/courses/{course_id}",
    "GET /api/v1/audit/course/courses/{course_id}/as_of",
    "GET /api/v1/audit/course/accounts/{account_id}",
    "GET /api/v1/audit/course/events/{event_uuid}/proof",
    "POST /api/v1/accounts/{account_id}/courses",
    "POST /api/v1/courses/{course_id}/content_migrations",
    "PUT /api/v1/courses/{course_id}",
    "POST /api/v1/courses/{course_id}/reset_content",
    "DELETE /api/v1/courses/{course_id}",
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzTarget:
    """The live server, the caller's token and the figures of the run."""

    url: str
    token: str
    # Dictionaries of real ids for schemathesis (see seed_tenants).
    ids: dict[str, list[Any]]
    session: requests.Session = field(default_factory=requests.Session)
    requests_by_operation: Counter[str] = field(default_factory=Counter)
    successes_by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    timed_out: bool = False
    # Distinct failed checks (operation, status, titles) -> the first report of each.
    failures: dict[tuple[Any, ...], str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def close(self) -> None:
        """Close the kept-alive connections, so no server thread keeps a database
        connection waiting on its socket (the test database is dropped at the end)."""
        for adapter in self.session.adapters.values():
            pools = adapter.poolmanager.pools  # type: ignore[attr-defined]
            for key in pools.keys():  # noqa: SIM118 - urllib3's container refuses iteration
                pools[key].close()
        self.session.close()


def seed_tenants() -> tuple[Any, dict[str, list[Any]]]:
    """Two tenants with sub-accounts, courses in every state, their events and SIS ids.

    Returns the registrar (both permissions at the first tenant's root) and the ids the
    fuzzer draws from: courses, copy sources and accounts (numeric and SIS, both tenants',
    unknown ones, a deleted
    account's) and users.
    """
    user_model = get_user_model()
    username = user_model.USERNAME_FIELD
    registrar = user_model.objects.create_user(
        **{username: "fuzz-registrar@example.edu" if username == "email" else "fuzz-registrar"},
        password="demo",
    )
    actor = user_model.objects.create_user(
        **{username: "fuzz-actor@example.edu" if username == "email" else "fuzz-actor"},
        password="demo",
    )
    admin = Role.objects.create(name="Fuzz admin", view_course_changes=True, manage_courses=True)
    root = Account.objects.create(name="State University", sis_account_id="SU")
    college = Account.objects.create(name="College of Science", parent=root, sis_account_id="SCI")
    biology = Account.objects.create(name="Biology", parent=college, sis_account_id="BIO")
    chemistry = Account.objects.create(name="Chemistry", parent=college, sis_account_id="CHEM")
    closed = Account.objects.create(
        name="Closed Institute",
        parent=root,
        sis_account_id="OLD",
        workflow_state=Account.WorkflowState.DELETED,
    )
    rival = Account.objects.create(name="Rival College", sis_account_id="RC")
    rival_department = Account.objects.create(
        name="Rival Biology", parent=rival, sis_account_id="BIO"
    )
    AccountMembership.objects.create(user=registrar, account=root, role=admin)
    # A member of the other tenant too, without permissions: its objects answer 403, not
    # 404, and a SIS id both tenants use names two objects.
    teacher = Role.objects.create(name="Fuzz teacher")
    AccountMembership.objects.create(user=registrar, account=rival, role=teacher)

    courses: list[Course] = []
    with audit_context(user=actor, source="manual"):
        for number, account in enumerate([biology, biology, chemistry, college, root], start=1):
            courses.append(
                services.course_create(
                    account=account,
                    name=f"Course {number}01",
                    course_code=f"C{number}01",
                    sis_course_id=f"C{number}01-F25",
                    is_public=number % 2 == 0,
                )
            )
        services.course_publish(course=courses[0])
        services.course_update(course=courses[0], name="Course 101: Cells")
        services.course_publish(course=courses[1])
        services.course_conclude(course=courses[1])
        services.course_delete(course=courses[2])
        copy = services.course_copy(source=courses[0])
        fresh = services.course_reset(course=courses[3])
        rival_course = services.course_create(
            account=rival_department, name="Rival 101", sis_course_id="C101-F25"
        )
    # Hypothesis draws a list's first values most often: each list starts with an id that
    # lets the request through (an available course, a copy source other than it).
    course_ids = [course.pk for course in [*courses, copy, fresh, rival_course]]
    sis_refs = [
        f"sis_course_id:{sis_id}" for sis_id in ("C201-F25", "C101-F25", "C301-F25", "NOPE")
    ]
    source_ids = [course.pk for course in [copy, courses[4], courses[1], courses[2], rival_course]]
    account_refs = [
        str(account.pk) for account in (root, college, biology, chemistry, closed, rival)
    ] + ["sis_account_id:SU", "sis_account_id:BIO", "sis_account_id:RC", "sis_account_id:OLD"]
    ids = {
        "courses": [str(pk) for pk in course_ids] + sis_refs,
        "sources": [str(pk) for pk in source_ids] + sis_refs,
        "accounts": account_refs,
        "users": [registrar.pk, actor.pk],
    }
    return registrar, ids


@pytest.fixture
def fuzz_target(
    request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path
) -> Iterator[FuzzTarget]:
    """The live server on 127.0.0.1 and the registrar's token; afterwards, the figures."""
    registrar, ids = seed_tenants()
    # The events so far are sealed, so that their proofs answer.
    private_pem, _, _ = integrity.generate_key_pair()
    (tmp_path / "signing.pem").write_bytes(private_pem)
    sealing = override_settings(
        COURSE_AUDIT_SIGNING_KEY=str(tmp_path / "signing.pem"),
        COURSE_AUDIT_DIGEST_DIR=str(tmp_path / "digests"),
    )
    sealing.enable()
    request.addfinalizer(sealing.disable)
    integrity.seal()
    ids["events"] = [
        str(event_uuid)
        for event_uuid in CourseEvent.objects.order_by("id").values_list("uuid", flat=True)[:4]
    ] + [str(uuid.UUID(int=7))]
    _, token = ApiToken.issue(user=registrar, name="fuzz")
    server = LiveServer("127.0.0.1")
    target = FuzzTarget(server.url, token, ids)
    try:
        yield target
    finally:
        target.close()
        server.stop()
    report(request, target)


def report(request: pytest.FixtureRequest, target: FuzzTarget) -> None:
    """Print the run's figures, whatever pytest's output capture."""
    elapsed = time.monotonic() - target.started
    total = sum(target.requests_by_operation.values())
    lines = ["schema fuzzing (schemathesis) against a live server on 127.0.0.1:"]
    lines += [
        f"  {count:5d}  {operation} ({target.successes_by_operation[operation]} answered 2xx)"
        for operation, count in target.requests_by_operation.items()
    ]
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(target.statuses.items()))
    lines.append(f"  {total:5d}  requests in total, {elapsed:.1f} s; statuses {statuses}")
    lines.append(f"  {len(target.failures):5d}  distinct failures")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


def load_schema(target: FuzzTarget) -> Any:
    """The schema the live server serves, with the real ids to draw from."""
    response = target.session.get(f"{target.url}/api/schema/", params={"format": "json"})
    assert response.status_code == 200
    config = schemathesis.Config.from_dict(
        {
            "base-url": target.url,
            "dictionaries": {name: {"values": values} for name, values in target.ids.items()},
            "parameters": {
                "path.course_id": {"dictionary": "courses", "probability": REAL_ID_PROBABILITY},
                "path.account_id": {"dictionary": "accounts", "probability": REAL_ID_PROBABILITY},
                "path.event_uuid": {"dictionary": "events", "probability": REAL_ID_PROBABILITY},
                "query.user_id": {"dictionary": "users", "probability": REAL_ID_PROBABILITY},
                "body.settings.source_course_id": {
                    "dictionary": "sources",
                    "probability": REAL_ID_PROBABILITY,
                },
            },
        }
    )
    return schemathesis.openapi.from_dict(response.json(), config=config)


def fuzz_operation(operation: Any, target: FuzzTarget) -> None:
    """Send ``FUZZ_EXAMPLES_PER_OPERATION`` generated requests, valid and invalid, to one
    operation; every failed check is kept (with its curl command), not raised, so that
    one run reports every failure of every operation."""
    label = f"{operation.method.upper()} {operation.path}"
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=FUZZ_EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        # A failure is recorded, never raised: nothing to shrink or explain.
        phases=[Phase.explicit, Phase.generate],
        # Slow or filtered generation says nothing about the API under test.
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        if time.monotonic() - target.started > TIME_LIMIT_SECONDS:
            target.timed_out = True
            return
        response = case.call(session=target.session, headers=target.headers, timeout=30)
        target.requests_by_operation[label] += 1
        target.statuses[response.status_code] += 1
        if response.status_code < 300:
            target.successes_by_operation[label] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=target.headers)
        except FailureGroup as failures:
            # The same fault found again by other inputs is one failure.
            kind = (label, response.status_code, *sorted(f.title for f in failures.exceptions))
            target.failures.setdefault(kind, f"{label}: {failures}")

    send()


def test_every_generated_request_gets_a_documented_answer(fuzz_target: FuzzTarget):
    schema = load_schema(fuzz_target)
    operations = {
        f"{operation.method.upper()} {operation.path}": operation
        for operation in (result.ok() for result in schema.get_all_operations())
    }
    assert set(operations) == set(OPERATION_ORDER)
    operations = [operations[label] for label in OPERATION_ORDER]
    for operation in operations:
        fuzz_operation(operation, fuzz_target)
    total = sum(fuzz_target.requests_by_operation.values())
    assert not fuzz_target.timed_out, (
        f"time limit ({TIME_LIMIT_SECONDS} s) reached after {total} requests"
    )
    assert total >= MIN_REQUESTS, f"only {total} requests were generated"
    # Real objects were reached: every operation, writes included, succeeded sometimes.
    assert set(fuzz_target.successes_by_operation) == set(fuzz_target.requests_by_operation)
    assert not fuzz_target.failures, "\n\n".join(fuzz_target.failures.values())
