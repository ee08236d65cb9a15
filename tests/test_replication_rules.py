"""``course_audit.replication``'s rules, without a real standby: where a request's audit
reads go for each state the standby can be in (stood in for by ``standby_status``), what a
page token carries, and what a write leaves for the caller's next reads. The real standby
and PgBouncer are tests/test_replication.py's."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from django.test import RequestFactory

from course_audit import replication
from course_audit.models import CourseEvent
from course_audit.pagination import Cursor, InvalidCursor
from course_audit.routers import ReadOnlyFailoverRouter

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    replication.forget()
    yield
    replication.forget()


@pytest.fixture
def standby(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Reads go to ``replica``, whose state each test sets in the returned dict."""
    settings.COURSE_AUDIT_READ_DATABASE = "replica"
    state: dict[str, Any] = {"up": True, "standby": True, "replayed": 0x3000000, "lag": 0.0}

    def status(alias: str, *, fresh: bool = False) -> replication.StandbyStatus:
        assert alias == "replica"
        return replication.StandbyStatus(**state)

    monkeypatch.setattr(replication, "standby_status", status)
    return state


def request(method: str = "get", **attributes: Any) -> Any:
    made = getattr(RequestFactory(), method)("/audit/")
    for name, value in attributes.items():
        setattr(made, name, value)
    return made


def test_positions_read_and_write_as_postgresql_spells_them() -> None:
    assert replication.parse_lsn("0/3000000") == 0x3000000
    assert replication.parse_lsn("1A/FF") == (0x1A << 32) | 0xFF
    assert replication.format_lsn((0x1A << 32) | 0xFF) == "1A/FF"
    for bad in ("", "3000000", "0/xyz", "1/2/3"):
        with pytest.raises(ValueError):
            replication.parse_lsn(bad)


def test_the_later_of_two_positions_is_kept() -> None:
    assert replication.later_position(None, "0/10") == "0/10"
    assert replication.later_position("", "0/10") == "0/10"
    assert replication.later_position("junk", "0/10") == "0/10"
    assert replication.later_position("0/9", "0/10") == "0/10"
    assert replication.later_position("1/0", "0/10") == "1/0"


def test_without_a_read_database_nothing_changes(settings: Any) -> None:
    settings.COURSE_AUDIT_READ_DATABASE = None
    queryset = CourseEvent.objects.all()
    assert replication.for_reading(queryset) is queryset
    assert replication.read_alias() is None
    assert replication.page_position() is None
    token = Cursor("scope").encode(T0, 5)
    assert Cursor("scope").signer.unsign_object(token) == [
        (T0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1),
        5,
    ]


def test_a_standby_in_step_serves_the_reads(standby: dict[str, Any]) -> None:
    with replication.reading(request()):
        assert replication.read_alias() == "replica"
        assert replication.for_reading(CourseEvent.objects.all()).db == "replica"


@pytest.mark.parametrize("change", [{"up": False}, {"lag": 31.0}])
def test_a_standby_down_or_lagging_past_the_limit_sends_reads_to_the_primary(
    standby: dict[str, Any], change: dict[str, Any]
) -> None:
    standby.update(change)
    with replication.reading(request()):
        assert replication.read_alias() is None
        queryset = CourseEvent.objects.all()
        assert replication.for_reading(queryset) is queryset


def test_no_lag_limit_keeps_a_lagging_standby(standby: dict[str, Any], settings: Any) -> None:
    settings.COURSE_AUDIT_READ_MAX_LAG = None
    standby["lag"] = 3600.0
    with replication.reading(request()):
        assert replication.read_alias() == "replica"


def test_lagging_is_logged_once_then_its_end_once(
    standby: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="course_audit.replication")
    standby["lag"] = 45.0
    for _ in range(3):
        with replication.reading(request()):
            replication.read_alias()
    standby["lag"] = 0.0
    for _ in range(3):
        with replication.reading(request()):
            replication.read_alias()
    assert [record.getMessage() for record in caplog.records] == [
        "Read database 'replica' is lagging (45.0 s behind): audit reads go to the primary",
        "Read database 'replica' is back: audit reads go to it again",
    ]


def test_a_caller_whose_write_the_standby_lacks_reads_the_primary(
    standby: dict[str, Any],
) -> None:
    session = {replication.SESSION_KEY: "0/3000010"}
    with replication.reading(request(session=session)):
        assert replication.read_alias() is None
    standby["replayed"] = 0x3000010
    with replication.reading(request(session=session)):
        assert replication.read_alias() == "replica"


def test_an_api_tokens_write_position_wins_over_the_session(standby: dict[str, Any]) -> None:
    class Token:
        write_lsn = "0/4000000"

    with replication.reading(request(auth=Token(), session={})):
        assert replication.read_alias() is None


def test_a_page_token_carries_the_standbys_position_and_asks_for_it(
    standby: dict[str, Any],
) -> None:
    cursor = Cursor("scope")
    with replication.reading(request()):
        token = cursor.encode(T0, 7)
    assert cursor.signer.unsign_object(token)[2] == "0/3000000"
    # The next page, on a process whose standby is behind that position: the primary,
    # even for a queryset already bound for the standby.
    standby["replayed"] = 0x2000000
    with replication.reading(request()):
        events = replication.for_reading(CourseEvent.objects.all())
        assert events.db == "replica"
        assert cursor.decode(token) == (T0, 7)
        assert replication.rebind(events).db == "default"


def test_a_malformed_position_makes_the_token_invalid() -> None:
    cursor = Cursor("scope")
    for position in ["not a position", 5, None]:
        token = cursor.signer.sign_object([1, 2, position])
        with pytest.raises(InvalidCursor):
            cursor.decode(token)


def test_read_only_mode_reads_everything_from_the_standby(standby: dict[str, Any]) -> None:
    router = ReadOnlyFailoverRouter()
    with replication.reading(request(), read_only=True):
        assert replication.read_only()
        assert router.db_for_read(CourseEvent) == "replica"
        assert replication.read_alias() == "replica"
    with replication.reading(request()):
        assert not replication.read_only()
        assert router.db_for_read(CourseEvent) is None


def test_in_read_only_mode_a_writer_the_standby_lacks_reads_the_primary_once_back(
    standby: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = {replication.SESSION_KEY: "0/3000010"}
    reachable = {"default": False}
    monkeypatch.setattr(replication, "_reachable", lambda alias: reachable[alias])
    with replication.reading(request(session=session), read_only=True):
        # Nowhere has it: the standby is all there is.
        assert replication.read_alias() == "replica"
    reachable["default"] = True
    with replication.reading(request(session=session), read_only=True):
        assert replication.read_alias() == "default"
        assert replication.for_reading(CourseEvent.objects.all()).db == "default"
    with replication.reading(request(), read_only=True):
        assert replication.read_alias() == "replica"


def test_only_a_safe_request_that_failed_is_run_again(
    standby: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replication, "_reachable", lambda alias: alias != "default")
    with replication.reading(request("post")):
        replication.note_database_error(request("post"))
        assert not replication.retry_wanted()
    assert not replication.primary_down()
    made = request()
    with replication.reading(made):
        replication.note_database_error(made)
        assert replication.retry_wanted()
    # The primary did not answer: safe requests start in read-only mode for a moment ...
    assert replication.primary_down()
    with replication.reading(request()) as state:
        assert state.read_only
    with replication.reading(request("post")) as state:
        assert not state.read_only
    # ... which a successful write ends.
    replication.primary_is_up()
    assert not replication.primary_down()


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_a_second_connection_to_the_primary_needs_no_positions(settings: Any) -> None:
    # The suite's stand-in: not in recovery, so always in step, and tokens stay short.
    settings.COURSE_AUDIT_READ_DATABASE = "replica"
    status = replication.standby_status("replica")
    assert status.up
    assert not status.standby
    with replication.reading(request()):
        assert replication.read_alias() == "replica"
        assert replication.page_position() is None


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_a_write_leaves_its_position_for_the_callers_next_reads(
    settings: Any, caller: Any, root_account: Any, admin_role: Any, course: Any
) -> None:
    if connections["default"].vendor != "postgresql":
        pytest.skip("write positions are PostgreSQL's")
    settings.COURSE_AUDIT_READ_DATABASE = "replica"
    api = caller("writer", (root_account, admin_role))
    path = f"/api/v1/courses/{course.pk}"
    data = json.dumps({"course": {"name": "Renamed"}})
    response = api.send("put", path, data, content_type="application/json")
    assert response.status_code == 200
    written = api.user.course_audit_tokens.get().write_lsn
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        now = cursor.fetchone()[0]
    assert 0 < replication.parse_lsn(written) <= replication.parse_lsn(now)
    # A read changes nothing; a token's position never moves back.
    assert api.get(f"/api/v1/audit/course/courses/{course.pk}").status_code == 200
    assert api.user.course_audit_tokens.get().write_lsn == written
    api.user.course_audit_tokens.update(write_lsn="FF/0")
    data = json.dumps({"course": {"name": "Again"}})
    response = api.send("put", path, data, content_type="application/json")
    assert response.status_code == 200
    assert api.user.course_audit_tokens.get().write_lsn == "FF/0"
