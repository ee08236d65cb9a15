"""The listings' changed-field and SIS batch filters (``field=``, ``sis_batch_id=``).

Each figure is a page of the API's account listing filtered on the fields that changed or
on one SIS import, asked in-process with the dataset's bearer token, as ``_api.py`` asks
the unfiltered ones: the big course's department (one account), the root account with
its sub-accounts (every event), and the big course, at per_page 100, page one and a page
``depth`` matching events in. The filters: a rare field (``start_at``), two fields
(``start_at,conclude_at``: two index ranges merged), a field no event changed
(``public_description``: the worst case of a filter read along the listing's own index,
which must read the whole range to find nothing), and a SIS batch.

Every page is checked once against the ORM's answer (its first event, or that it is
empty) before it is timed. Beside them, the registrar's pages with the same filters
(``page_cases``): an account's history, the root's with its sub-accounts, a SIS batch's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench._api import API_PREFIX, Client, events_of
from bench._common import Timed

FILTERS: dict[str, dict[str, str]] = {
    "field=start_at": {"field": "start_at"},
    "field=start_at,conclude_at": {"field": "start_at,conclude_at"},
    "field=public_description (none)": {"field": "public_description"},
}


@dataclasses.dataclass(frozen=True)
class Case:
    listing: str
    filter: str
    depth: int
    path: str
    params: dict[str, str]
    events: Any  # the ORM's filtered events, newest first
    per_page: int

    @property
    def name(self) -> str:
        deep = f", {self.depth:,} in" if self.depth else ""
        return f"{self.listing}, {self.filter}{deep}"


def cases(dataset: Any, *, depth: int, per_page: int = 100) -> list[Case]:
    """Every (listing, filter, depth) figure, not yet checked."""
    from course_audit import selectors
    from course_audit.filters import CourseEventFilterSet
    from course_audit.models import Account, CourseEvent, SisBatch

    department, root, course = dataset.department, dataset.root, dataset.course
    subtree = [account.pk for account in Account.objects.filter(root.subtree_q())]
    batch = (
        SisBatch.objects.filter(root_account=root).order_by("id").values_list("pk", flat=True)[0]
    )
    filters = {**FILTERS, f"sis_batch_id={batch}": {"sis_batch_id": str(batch)}}
    listings = [
        (
            "department",
            f"{API_PREFIX}audit/course/accounts/{department.pk}",
            {},
            selectors.account_events([department.pk]),
        ),
        (
            "root+subaccounts",
            f"{API_PREFIX}audit/course/accounts/{root.pk}",
            {"include_subaccounts": "true"},
            CourseEvent.objects.for_accounts(subtree),
        ),
        (
            "course",
            f"{API_PREFIX}audit/course/courses/{course.pk}",
            {},
            selectors.course_events(course),
        ),
    ]
    found = []
    for listing, path, extra, events in listings:
        for label, params in filters.items():
            filterset = CourseEventFilterSet(params, queryset=events)
            assert filterset.is_valid(), filterset.errors
            for page_depth in (0, depth):
                found.append(
                    Case(
                        listing,
                        label,
                        page_depth,
                        path,
                        {**extra, **params, "per_page": str(per_page)},
                        filterset.qs.order_by("-created_at", "-id"),
                        per_page,
                    )
                )
    return found


def checked_call(client: Client, case: Case) -> Timed | None:
    """The case's request, checked against the ORM, ready to be timed; None for a deep
    page of a filter with fewer matching events than the depth."""
    from course_audit.pagination import Cursor

    params = dict(case.params)
    expected = list(
        case.events.values_list("created_at", "id", "uuid")[max(0, case.depth - 1) : case.depth + 1]
    )
    if case.depth:
        if len(expected) < 2:
            return None
        created_at, pk, _ = expected[0]
        params["page"] = Cursor(case.path).encode(created_at, pk)
        expected = expected[1:]
    events = events_of(client.get(case.path, params).json())
    first = str(expected[0][2]) if expected else None
    if (events[0]["id"] if events else None) != first:
        raise SystemExit(f"{case.name}: the page does not start at the ORM's first event")
    return Timed(case.name, lambda: client.get(case.path, params), 0)


def matching(case: Case, cap: int) -> str:
    """How many events the filter matches, counted up to ``cap``."""
    count = case.events.order_by()[:cap].count()
    return f"{count:,}" if count < cap else f"≥ {cap:,}"


def page_cases(dataset: Any) -> list[Any]:
    """History pages with the filters, and a SIS batch's page (``bench.pages.Case``)."""
    from django.urls import reverse

    from bench.pages import Case as PageCase
    from course_audit.models import SisBatch

    department, root = dataset.department, dataset.root
    batch = (
        SisBatch.objects.filter(root_account=root).order_by("id").values_list("pk", flat=True)[0]
    )
    account = reverse("course_audit:account_history", args=[department.pk])
    subtree = reverse("course_audit:account_history", args=[root.pk])
    dates = {"field": ["start_at", "conclude_at"]}
    return [
        PageCase("page: department, field=start_at,conclude_at", account, dates),  # type: ignore[arg-type]
        PageCase(
            "page: root+subaccounts, field=start_at",
            subtree,
            {"field": "start_at", "include_subaccounts": "1"},
        ),
        PageCase(
            "page: root+subaccounts, field=start_at,conclude_at",
            subtree,
            {**dates, "include_subaccounts": "1"},  # type: ignore[dict-item]
        ),
        PageCase(
            f"page: SIS batch {batch}", reverse("course_audit:sis_batch_history", args=[batch]), {}
        ),
    ]
