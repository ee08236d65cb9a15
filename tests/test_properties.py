"""Properties that hold for any input: the page cursor, the time bounds and the diff rules.

Hypothesis runs a fixed set of examples (the ``course_audit`` profile in conftest.py is
derandomized), so a failure here reproduces on every machine.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from typing import Any

import pytest
from django.core import signing
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from course_audit.conf import conf
from course_audit.diff import TRACKED_FIELDS, build_diff, is_blank, json_value
from course_audit.filters import OutOfRange, parse_timestamp, whole_second
from course_audit.models import CourseEvent
from course_audit.pagination import Cursor, InvalidCursor

UTC_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
UTC_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)

# Fixed offsets of every kind Python allows (strictly within a day, down to microseconds).
offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)
# Offsets of whole minutes, as time zones have had since the 1970s (and as PostgreSQL
# returns them: a stored date never comes back with an offset of seconds).
minute_offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
# Aware date-times that exist in UTC: what a DateTimeField holds under USE_TZ.
aware_datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=minute_offsets
)
utc_datetimes = st.datetimes(timezones=st.just(dt.UTC))


# -- the page cursor -------------------------------------------------------------------------

scopes = st.text(min_size=1, max_size=40)
pks = st.integers(min_value=1, max_value=2**63 - 1)


@given(scope=scopes, when=utc_datetimes, pk=pks)
@settings(max_examples=300)
@example(scope="/api/v1/audit/course/courses/1", when=UTC_MIN, pk=1)
@example(scope="/api/v1/audit/course/courses/1", when=UTC_MAX, pk=2**63 - 1)
def test_a_cursor_decodes_to_what_it_encoded(scope, when, pk):
    cursor = Cursor(scope)
    decoded = cursor.decode(cursor.encode(when, pk))
    assert decoded == (when, pk)
    assert decoded[0].utcoffset() == dt.timedelta(0)


def assert_decodes_or_is_rejected(cursor: Cursor, token: str) -> None:
    """``decode`` gives a position or the contract's 400 naming ``page``, nothing else."""
    try:
        created_at, pk = cursor.decode(token)
    except InvalidCursor as error:
        assert error.param == "page"
    else:
        assert isinstance(created_at, dt.datetime)
        assert created_at.utcoffset() == dt.timedelta(0)
        assert isinstance(pk, int)
        assert not isinstance(pk, bool)


URLSAFE = string.ascii_letters + string.digits + "-_=.:"
tokens = st.one_of(
    st.text(),
    st.text(alphabet=URLSAFE, max_size=80),
    st.text(min_size=1, max_size=5).map(lambda text: text * 2000),  # very long
    st.lists(st.text(alphabet=URLSAFE.replace(":", ""), max_size=30), min_size=2, max_size=4).map(
        ":".join
    ),  # shaped like value:signature and value:timestamp:signature
)


@given(token=tokens)
@settings(max_examples=400)
@example(token="")
@example(token="first")
@example(token=":")
@example(token="WzEsMl0:bad")
@example(token="\x00")
@example(token="é" * 10_000)
def test_any_text_decodes_or_is_a_validation_error(token):
    assert_decodes_or_is_rejected(Cursor("/api/v1/audit/course/courses/1"), token)


@given(token=st.builds(Cursor("/scope").encode, utc_datetimes, pks), data=st.data())
@settings(max_examples=200)
def test_a_tampered_token_decodes_or_is_a_validation_error(token, data):
    start = data.draw(st.integers(min_value=0, max_value=len(token)))
    end = data.draw(st.integers(min_value=start, max_value=len(token)))
    inserted = data.draw(st.text(alphabet=URLSAFE, max_size=3))
    tampered = token[:start] + inserted + token[end:]
    cursor = Cursor("/scope")
    if tampered == token:
        assert cursor.decode(tampered)
    else:
        assert_decodes_or_is_rejected(cursor, tampered)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@given(payload=json_values)
@settings(max_examples=300)
@example(payload=[2**62, 1])  # far beyond year 9999
@example(payload=[-(2**62), 1])  # far before year 1
@example(payload=[0, True])
@example(payload=[0.5, 1])
@example(payload=[1, 2, 3])
@example(payload={"a": 1, "b": 2})
def test_a_signed_payload_of_any_shape_decodes_or_is_a_validation_error(payload):
    # Only the server can sign, but a token it signed long ago (or a future version's) must
    # still never make a 500.
    scope = "/api/v1/audit/course/courses/1"
    token = signing.Signer(salt=f"course_audit.cursor:{scope}").sign_object(payload)
    assert_decodes_or_is_rejected(Cursor(scope), token)


@given(scopes=st.lists(scopes, min_size=2, max_size=2, unique=True), when=utc_datetimes, pk=pks)
@settings(max_examples=200)
def test_a_token_never_decodes_in_another_scope(scopes, when, pk):
    issued, other = scopes
    token = Cursor(issued).encode(when, pk)
    with pytest.raises(InvalidCursor):
        Cursor(other).decode(token)


# -- start_time / end_time -------------------------------------------------------------------

iso_like = st.from_regex(
    r"\A[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}"
    r"([T ][0-9]{1,2}(:[0-9]{1,2}(:[0-9]{1,2}([.,][0-9]{1,9})?)?)?)?"
    r"(Z|z|[+\- ][0-9]{1,2}(:?[0-9]{2})?)?\Z"
)
printed_datetimes = st.builds(
    lambda value, sep: value.isoformat(sep=sep),
    st.datetimes(timezones=st.none() | offsets),
    st.sampled_from("T "),
)
# Text a client could send in a query string (a URL cannot carry a lone surrogate).
query_text = st.text(st.characters(exclude_categories=["Cs"]))
time_texts = st.one_of(query_text, iso_like, printed_datetimes, st.dates().map(str))


@given(text=time_texts)
@settings(max_examples=500)
@example(text="2025-01-01T00:00:00\x00")
@example(text="0001-01-01T00:00:00+14:00")
@example(text="9999-12-31T23:59:59-14:00")
@example(text="2012-07-19T15:00:00 06:00")
@example(text="\uff12\uff10\uff12\uff15-01-01")  # fullwidth digits
@example(text="2025-01-01T00:00:00+16:00")
def test_any_text_is_an_aware_timestamp_or_a_value_error(text):
    try:
        value = parse_timestamp(text)
    except ValueError:
        return
    # In UTC, where queries compare: PostgreSQL takes no offset beyond 15:59 (+16:00 was a 500).
    assert value.utcoffset() == dt.timedelta(0)
    assert UTC_MIN <= whole_second(value) <= UTC_MAX


@given(value=st.datetimes(timezones=offsets | st.just(dt.UTC)))
@settings(max_examples=300)
def test_a_printed_timestamp_parses_back_or_is_out_of_range(value):
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        with pytest.raises(OutOfRange):
            parse_timestamp(value.isoformat())
    else:
        assert parse_timestamp(value.isoformat()) == value


@pytest.fixture
def audit_path(caller, root_account, admin_role, course):
    registrar = caller("registrar", (root_account, admin_role))
    return registrar, f"/api/v1/audit/course/courses/{course.pk}"


@pytest.mark.django_db
@given(name=st.sampled_from(["start_time", "end_time"]), text=time_texts)
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(name="start_time", text="yesterday")
@example(name="end_time", text="9999-12-31T23:59:59Z")
@example(name="start_time", text="0001-01-01T00:00:00+14:00")
@example(name="start_time", text="2025-01-01T00:00:00+16:00")  # was a 500 on PostgreSQL
@example(name="end_time", text="0307-02-14T14:52:20-23:53:27.998487")  # was a 500 on PostgreSQL
def test_the_api_answers_any_time_bound_with_200_or_a_400_naming_it(audit_path, name, text):
    # Each example only reads, so the course and its one event serve them all.
    registrar, path = audit_path
    response = registrar.get(path, **{name: text})
    try:
        bound = parse_timestamp(text) if text else None
    except ValueError:
        assert response.status_code == 400, response.content
        [error] = response.json()["errors"]
        assert response.json() == {"errors": [{"message": error["message"]}]}
        assert error["message"].startswith(f"{name}: ")
        return
    assert response.status_code == 200, response.content
    [event] = CourseEvent.objects.all()
    shown = event.created_at.replace(microsecond=0)
    included = bound is None or (
        whole_second(bound) <= shown if name == "start_time" else shown <= whole_second(bound)
    )
    assert len(response.json()["events"]) == int(included)


# -- the diff rules --------------------------------------------------------------------------

long_text = st.builds(
    lambda head, length, tail: head + "é" * length + tail,
    st.text(max_size=3),
    st.integers(min_value=995, max_value=1005),
    st.text(max_size=3),
)
texts = st.one_of(st.just(""), st.text(max_size=20), long_text)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": texts,
    "course_code": texts,
    "sis_course_id": texts,
    "account_id": st.integers(min_value=1, max_value=2**63 - 1),
    "start_at": aware_datetimes,
    "conclude_at": aware_datetimes,
    "is_public": st.booleans(),
    "public_description": texts,
}
assert set(FIELD_VALUES) == set(TRACKED_FIELDS)
snapshots = st.fixed_dictionaries(
    {field: st.none() | values for field, values in FIELD_VALUES.items()}
)
ISO_UTC = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
DATE_FIELDS = ("start_at", "conclude_at")
YEAR_5 = dt.datetime(5, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def cut(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


def assert_follows_the_rules(old: dict[str, Any] | None, new: dict[str, Any], limit: int) -> None:
    diff = build_diff(old, new)
    assert json.loads(json.dumps(diff)) == diff
    assert set(diff) <= set(TRACKED_FIELDS)
    for field in TRACKED_FIELDS:
        before = json_value(old.get(field)) if old is not None else None
        after = json_value(new.get(field))
        if field in diff:
            assert not (is_blank(before) and is_blank(after))
            assert before != after
            assert diff[field] == [cut(before, limit), cut(after, limit)]
            for value in diff[field]:
                assert not isinstance(value, str) or len(value) <= limit
        else:
            assert (is_blank(before) and is_blank(after)) or before == after
    for field in DATE_FIELDS:
        value = new.get(field)
        if value is not None:
            # ISO 8601 in UTC, whole seconds, four-digit years (cut too by a tiny limit).
            assert ISO_UTC.match(json_value(value))
            assert dt.datetime.fromisoformat(json_value(value)) == value.replace(microsecond=0)


@given(old=snapshots, new=snapshots)
@settings(max_examples=300)
@example(old={"start_at": None}, new={"start_at": YEAR_5})  # printed "5-01-02T03:04:05Z"
@example(old={"name": "x" * 1001}, new={"name": "x" * 1002})  # differ past the cut
@example(old={"name": None}, new={"name": ""})
def test_a_diff_follows_the_contract_rules(old, new):
    assert_follows_the_rules(old, new, conf.MAX_DIFF_STRING_LENGTH)
    assert_follows_the_rules(None, new, conf.MAX_DIFF_STRING_LENGTH)


@given(old=snapshots, new=snapshots, limit=st.integers(min_value=1, max_value=30))
@settings(max_examples=50)
def test_strings_are_cut_to_the_configured_length(old, new, limit):
    with override_settings(COURSE_AUDIT_MAX_DIFF_STRING_LENGTH=limit):
        assert_follows_the_rules(old, new, limit)


def printed_alike(snapshot: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """The snapshot with its dates moved to other offsets and other microseconds."""
    moved = dict(snapshot)
    for field in DATE_FIELDS:
        if moved[field] is not None:
            offset = data.draw(minute_offsets)
            micros = data.draw(st.integers(min_value=0, max_value=999_999))
            moved[field] = moved[field].replace(microsecond=micros).astimezone(offset)
    return moved


@given(snapshot=snapshots, data=st.data())
@settings(max_examples=200)
def test_no_change_and_dates_printed_alike_are_an_empty_diff(snapshot, data):
    assert build_diff(snapshot, snapshot) == {}
    assert build_diff(snapshot, dict(snapshot)) == {}
    assert build_diff(snapshot, printed_alike(snapshot, data)) == {}
