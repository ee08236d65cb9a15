"""Memory and time of a streamed history export on the events already in a database.

Streams the CSV export of the busiest course, then of the whole root account with its
sub-accounts (``--days`` of it, default 30, newest first), through the real view, as a
logged-in superuser, consuming the response chunk by chunk as a client would. Prints rows,
seconds and the process's peak resident memory after each, so a flat memory shows as the
same peak for a few thousand rows and for hundreds of thousands::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/course_audit_10m \\
        .venv/bin/python -m bench.export_memory
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from collections.abc import Sequence

from bench._common import get_or_make_superuser, machine_note, setup_django


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream(client: object, url: str, params: dict[str, str]) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.get(url, params)  # type: ignore[attr-defined]
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
    return lines - 1, time.perf_counter() - started  # less the header row


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of the root's export")
    args = parser.parse_args(argv)
    setup_django()
    from django.db.models import Count
    from django.test import Client, override_settings
    from django.urls import reverse

    from course_audit.models import Account, CourseEvent

    client = Client()
    client.force_login(get_or_make_superuser())
    busiest = CourseEvent.objects.values("course_id").annotate(n=Count("id")).order_by("-n").first()
    root = Account.objects.filter(parent__isnull=True).order_by("pk").first()
    newest = CourseEvent.objects.order_by("-created_at").values_list("created_at", flat=True)[0]
    assert busiest is not None and root is not None
    print(f"{machine_note()}; peak memory before: {peak_mb():.0f} MB")
    cases = [
        ("busiest course", reverse("course_audit:course_export", args=[busiest["course_id"]]), {}),
        (
            f"root + sub-accounts, {args.days} days",
            reverse("course_audit:account_export", args=[root.pk]),
            {
                "include_subaccounts": "1",
                "start_time": (newest - dt.timedelta(days=args.days)).isoformat(),
            },
        ),
    ]
    # What is measured is the streamed export, whatever its size: never a background job.
    with override_settings(COURSE_AUDIT_EXPORT_BACKGROUND_ROWS=None):
        for name, url, params in cases:
            rows, seconds = stream(client, url, {**params, "format": "csv"})
            print(
                f"{name:<34} {rows:>10,} rows {seconds:>7.1f} s "
                f"{rows / seconds:>9,.0f} rows/s   peak memory {peak_mb():.0f} MB"
            )


if __name__ == "__main__":
    main()
