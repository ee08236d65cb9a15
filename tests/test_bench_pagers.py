"""The benchmark reads the same page from every pager (bench/_api.py): a page ``depth``
events in, built as each pager encodes it (the app's keyset token, a page number, DRF's
position-and-offset cursor, the bare SQL), starts at the same event, ties and all.

Each case is checked when it is built (a wrong page stops the benchmark), so building
them is the test.
"""

from __future__ import annotations

import datetime as dt
import types
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from bench import _api
from bench._common import insert_events
from course_audit.models import Account, ApiToken, Course

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the benchmark needs PostgreSQL"),
]

T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
EVENTS = 302  # bursts of five share a timestamp; a depth of 120 falls inside one
DEPTH = 120


@pytest.fixture
def dataset(
    settings: Any,
    course: Course,
    department: Account,
    root_account: Account,
    make_user: Callable[..., Any],
    grant: Callable[..., Any],
) -> Any:
    settings.ROOT_URLCONF = "bench.bench_urls"
    insert_events(
        (
            {
                "uuid": uuid.uuid4(),
                "created_at": T0 + dt.timedelta(seconds=index // 5),
                "course_id": course.pk,
                "account_id": department.pk,
                "event_type": "updated",
                "event_source": "api",
                "event_data": {"name": [f"v{index}", f"v{index + 1}"]},
                "related_course_id": None,
                "user_id": None,
                "user_name": "",
                "page_view_id": None,
                "sis_batch_id": None,
            }
            for index in range(EVENTS)
        ),
        analyze=False,
    )
    auditor = make_user("auditor")
    grant(auditor, root_account)
    _, token = ApiToken.issue(user=auditor)
    return types.SimpleNamespace(
        course=course, department=department, root=root_account, token=token
    )


def test_a_deep_page_starts_at_the_same_event_in_every_pager(dataset: Any) -> None:
    listing = _api.listings(dataset)[0]
    where = _api.position(listing, DEPTH)
    assert where.cursor_offset > 0  # the marker sits before the tie the page starts in

    cases = _api.latency_cases(
        dataset,
        _api.Client(dataset.token),
        per_pages=(10,),
        depth=DEPTH,
        variants=_api.VARIANTS,
        repeat=1,
        max_seconds=1,
    )

    built = {(key["listing"], key["depth"], key["variant"]) for key, _ in cases}
    for listing_name in ("course", "account"):
        for depth in (0, DEPTH):
            for variant in _api.VARIANTS:
                assert (listing_name, depth, variant) in built
    assert ("account+subaccounts", DEPTH, "keyset") in built
    assert ("account+subaccounts", DEPTH, "offset") not in built


def test_queries_are_counted_per_listing_and_page_size(dataset: Any) -> None:
    counts = _api.query_counts(dataset, _api.Client(dataset.token))
    assert [(count["listing"], count["per_page"]) for count in counts] == [
        (listing, per_page)
        for listing in ("course", "account", "account+subaccounts")
        for per_page in (1, 10, 100)
    ]
    assert all(1 <= count["queries"] <= 6 for count in counts)
    # The access record of each read: one INSERT, counted apart from the read's queries.
    assert all(count["access_record_inserts"] == 1 for count in counts)
