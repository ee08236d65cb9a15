"""The benchmark suite of course_audit: one run, one table of targets.

Recreates a scratch PostgreSQL database, migrates it, loads ``--events`` events of a
realistic university with ``COPY`` (``_data.py``), then measures in the same run:

- ``api``: API page latency (p50, p95) of the course and account endpoints, per_page 10
  and 100, page one and ``--depth`` events deep, against DRF's ``PageNumberPagination``
  (OFFSET) and ``CursorPagination`` on the same data and serializer, and against the
  floor: the bare keyset SQL and JSON encoding of the same rows (``_api.py``);
- ``queries``: SQL queries per request at per_page 1, 10 and 100;
- ``pages``: the admin changelist and a course's history page, first page and deep;
- ``filters``: the API's listings filtered on the fields that changed and on a SIS batch
  (``_filters.py``), page one and deep;
- ``http``: requests per second of the API under gunicorn, against a trivial JSON view and
  the HTTP floor on the same server (``_http.py``), and, with ``--before-tree``, against
  the code before issue #15 served the same way in the same run;
- ``writes``: each write path (a save, ``update()``, ``bulk_update``, ``bulk_create``, a
  SIS import of ``--bulk-courses`` new courses) audited against the same path with
  recording off, ms or events per second (``_writes.py``); ``--record-writes-before``
  keeps them as the "before" every later report shows beside its own;
- ``integrity``: sealing every event into signed checkpoints and verifying them, in events
  per second, and a proof request against a page of events (``_integrity.py``);
- ``retention``: dropping a month's partition against a DELETE of the same rows (when the
  app partitions its event table).

Writes ``docs/benchmarks.md`` (a table per section: figure, baseline or floor, ratio,
target, met or missed by how much) and ``docs/benchmarks.json`` (the raw numbers). Run it
through ``scripts/bench``, which sets up the virtualenv and PostgreSQL::

    scripts/bench --events 1000000     # quick
    scripts/bench --events 10000000    # the documented run

``--ci`` is the regression check ``scripts/test`` runs: about 100,000 events in a database
of its own, the depth ratio and the query counts only, a non-zero exit on a regression.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import os
import platform
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench._api import VARIANTS
from bench._common import (
    ROOT,
    Timed,
    database_name,
    measure_in_rounds,
    recreate_database,
    server_version,
    setup_django,
)
from bench._report import Check, Section, Target, checks_table, ms, number, table

SECTIONS = (
    "api",
    "queries",
    "planning",
    "pages",
    "filters",
    "http",
    "writes",
    "integrity",
    "retention",
)
CI_SECTIONS = ("api", "queries")
DEFAULT_DEPTH = 100_000

# The targets, on 10 million events.
DEPTH_RATIO = Target(1.2)
# API page ÷ floor: at most 3 times at per_page 10, 2.5 times at per_page 100 (issue #15).
FLOOR_RATIO = {10: Target(3), 100: Target(2.5)}
# A used token's request: the token with its grants, the course or account, the page
# (issue #15); one more for the sub-accounts of include_subaccounts.
QUERIES = Target(3, unit=" queries")
QUERIES_SUBACCOUNTS = Target(4, unit=" queries")
# Beside the read's queries, its access record (issue #17 item 4): one INSERT, no more.
ACCESS_RECORD_INSERTS = Target(1, unit=" INSERT")
PAGE_MS = Target(100, unit=" ms")
HISTORY_PAGE_MS = Target(30, unit=" ms")
EXPORT_ROWS_PER_SECOND = Target(10_000, at_most=False, unit=" rows/s")
# Rows streamed per export figure (the newest of the export): enough for a steady rate,
# few enough for a 10-million-event run to stay short.
EXPORT_ROWS = 100_000
THROUGHPUT = Target(50, at_most=False, unit=" %")
# The API's page one under gunicorn before issue #15 (4 December 2026, 1 million events).
THROUGHPUT_BEFORE = 173
THROUGHPUT_GAIN = Target(2.5, at_most=False)
# That code's own bench loads this many events (as on 4 December) for ``--before-tree``.
BEFORE_EVENTS = 1_000_000
# The last commit before issue #15's work: what ``--before-tree`` checks out.
BEFORE_COMMIT = "b47dd99"
# CI runs on a shared machine beside other jobs: a burst of load on one side of the ratio
# moves it by a few tenths, while the regression it guards against (a deep page read by
# OFFSET) costs several times page one even at 50,000 events. 1.5 tells the two apart.
CI_DEPTH_RATIO = Target(1.5)
# The write figures measured before the database recorded (--record-writes-before):
# every report shows them beside the write path of its own run.
WRITES_BEFORE = ROOT / "docs" / "benchmarks-writes-before.json"
# The read path's figures before issue #15 (the 10-million-event run of 23 November 2026):
# every report shows its own beside them (``before_after_section``).
READS_BEFORE = ROOT / "docs" / "benchmarks-reads-before.json"


@dataclasses.dataclass
class Run:
    args: argparse.Namespace
    dataset: Any = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    sections: list[Section] = dataclasses.field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="the scratch database (recreated)")
    parser.add_argument("--events", type=int, help="events to load (1,000,000; CI 100,000)")
    parser.add_argument("--depth", type=int, help="events before a deep page (100,000 at most)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, help="measure only these")
    parser.add_argument(
        "--pagers", nargs="+", choices=VARIANTS, help="API figures: only these pagers"
    )
    parser.add_argument("--repeat", type=int, default=100, help="timed requests per figure")
    parser.add_argument("--max-seconds", type=float, default=20, help="time cap per figure")
    parser.add_argument("--saves", type=int, default=300, help="timed saves of each kind")
    parser.add_argument("--bulk-courses", type=int, default=100_000, help="courses of the bulk")
    parser.add_argument(
        "--write-rounds", type=int, default=2, help="timed runs of each bulk write, each kind"
    )
    parser.add_argument(
        "--record-writes-before",
        action="store_true",
        help=f"keep the write figures as the 'before' of {WRITES_BEFORE.name} (and in "
        "docs/benchmarks.md) instead of writing a whole report",
    )
    parser.add_argument("--http-seconds", type=float, default=10, help="time cap per HTTP target")
    parser.add_argument("--http-requests", type=int, default=20_000, help="requests per target")
    parser.add_argument(
        "--before-tree",
        type=Path,
        help="HTTP: a checkout of the code before issue #15 (git worktree add DIR "
        f"{BEFORE_COMMIT}), served the same way in this run, before and after the "
        f"API's own figure, instead of the {THROUGHPUT_BEFORE} req/s of another day",
    )
    parser.add_argument(
        "--before-database-url",
        help="HTTP: that code's own scratch database (its schema; loaded with 1,000,000 "
        "events by its own bench when it does not exist yet)",
    )
    parser.add_argument("--output-dir", type=Path, help="where benchmarks.md/.json go (docs/)")
    parser.add_argument("--reuse-data", action="store_true", help="keep the loaded database")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--ci", action="store_true", help="the regression check of scripts/test")
    parser.add_argument("--profile", action="store_true", help="profile the API page instead")
    args = parser.parse_args(argv)
    args.events = args.events or (100_000 if args.ci else 1_000_000)
    # A multiple of the largest page, so OFFSET pagination reaches it with a page number.
    args.depth = min(args.depth or DEFAULT_DEPTH, args.events // 2) // 100 * 100
    args.sections = args.sections or (CI_SECTIONS if args.ci else SECTIONS)
    if args.record_writes_before and "writes" not in args.sections:
        parser.error("--record-writes-before needs the writes section")
    if (args.before_tree is None) != (args.before_database_url is None):
        parser.error("--before-tree and --before-database-url go together")
    if args.output_dir is None and not (args.ci or args.profile or args.record_writes_before):
        args.output_dir = ROOT / "docs"
    return args


def prepare(args: argparse.Namespace) -> Run:
    """A migrated database with the dataset in it."""
    from bench import _data

    run = Run(args)
    if not args.reuse_data:
        recreate_database(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    setup_django("bench.bench_settings")
    from django.core.management import call_command

    from course_audit.models import Account, Course, CourseEvent

    call_command("migrate", verbosity=0)
    plan = _data.Plan(events=args.events, depth=args.depth)
    root = Account.objects.filter(sis_account_id=_data.ROOT_SIS_ID, parent=None).first()
    if root is None:
        started = time.perf_counter()
        run.dataset = _data.load(plan)
        seconds = time.perf_counter() - started
        run.data["load_seconds"] = seconds
        run.data["load_events_per_second"] = args.events / seconds
        print(f"loaded {args.events:,} events in {seconds:.0f} s", flush=True)
    else:
        run.dataset = _data.existing(root)
    dataset = run.dataset
    run.data.update(
        events=CourseEvent.objects.count(),
        courses=Course.objects.count(),
        accounts=Account.objects.count(),
        big_course_events=CourseEvent.objects.filter(course=dataset.course).count(),
        department_events=CourseEvent.objects.filter(account=dataset.department).count(),
        first_month=dataset.first_month.isoformat(),
        partitioned=_data.partitions_module() is not None,
    )
    return run


def api_section(run: Run) -> Section:
    from bench import _api

    args = run.args
    variants = tuple(args.pagers or (("keyset",) if args.ci else VARIANTS))
    client = _api.Client(run.dataset.token)
    cases = _api.latency_cases(
        run.dataset,
        client,
        per_pages=(10, 100),
        depth=args.depth,
        variants=variants,
        repeat=args.repeat,
        max_seconds=args.max_seconds,
    )
    measure_in_rounds([timed for _, timed in cases], warmup=5)
    results = [{**key, **timed.summary()} for key, timed in cases]
    by_key = {(r["listing"], r["per_page"], r["depth"], r["variant"]): r for r in results}
    depth_target = CI_DEPTH_RATIO if args.ci else DEPTH_RATIO
    section = Section(
        "api",
        "API page latency",
        f"In-process (Django's test client, bearer token), p50 over {args.repeat} timed "
        f"requests per figure after 5 untimed, interleaved; a baseline figure stops at "
        f"{number(args.max_seconds)} s of requests (its count is `n`). Deep pages are "
        f"{args.depth:,} events in. `offset` is DRF's PageNumberPagination and `cursor` DRF's "
        "CursorPagination on the same viewset, queryset and serializer; `floor` is the bare "
        "keyset SQL with a raw cursor, rows as dicts, rendered by the app's JSON renderer.",
        raw=results,
    )
    listings = list(dict.fromkeys(r["listing"] for r in results))
    for listing in listings:
        for per_page in (10, 100):
            first = by_key.get((listing, per_page, 0, "keyset"))
            deep = by_key.get((listing, per_page, args.depth, "keyset"))
            if first is None or deep is None:
                continue
            section.checks.append(
                Check(
                    f"{listing}, per_page {per_page}: page at depth ÷ page one",
                    ms(deep["p50_ms"]),
                    ms(first["p50_ms"]),
                    deep["p50_ms"] / first["p50_ms"],
                    depth_target,
                )
            )
    for listing in listings:
        for per_page in (10, 100):
            for depth in (0, args.depth):
                floor = by_key.get((listing, per_page, depth, "floor"))
                page = by_key.get((listing, per_page, depth, "keyset"))
                if floor is None or page is None:
                    continue
                section.checks.append(
                    Check(
                        f"{listing}, per_page {per_page}, depth {depth:,}: API ÷ floor",
                        ms(page["p50_ms"]),
                        f"floor {ms(floor['p50_ms'])}",
                        page["p50_ms"] / floor["p50_ms"],
                        FLOOR_RATIO[per_page],
                    )
                )
    section.details.append(_latency_table(results, variants))
    if len(variants) > 1:
        section.details.append(_depth_cost_table(by_key, listings, variants, args.depth))
    return section


def _latency_table(results: list[dict[str, Any]], variants: Sequence[str]) -> str:
    rows = []
    for result in results:
        rows.append(
            [
                result["listing"],
                result["per_page"],
                result["depth"],
                result["variant"],
                round(result["p50_ms"], 2),
                round(result["p95_ms"], 2),
                result["n"],
            ]
        )
    return "Every figure, in ms:\n\n" + table(
        ["listing", "per_page", "depth", "pager", "p50", "p95", "n"], rows
    )


def _depth_cost_table(
    by_key: dict[tuple[str, int, int, str], dict[str, Any]],
    listings: Sequence[str],
    variants: Sequence[str],
    depth: int,
) -> str:
    rows = []
    for listing in listings:
        for per_page in (10, 100):
            row: list[object] = [listing, per_page]
            for variant in variants:
                first = by_key.get((listing, per_page, 0, variant))
                deep = by_key.get((listing, per_page, depth, variant))
                row.append(round(deep["p50_ms"] / first["p50_ms"], 2) if first and deep else "—")
            rows.append(row)
    return "What depth costs each pager (p50 at depth ÷ p50 of page one):\n\n" + table(
        ["listing", "per_page", *variants], rows
    )


def queries_section(run: Run) -> Section:
    from bench import _api

    counts = _api.query_counts(run.dataset, _api.Client(run.dataset.token))
    section = Section(
        "queries",
        "SQL queries per request",
        "Page one of each listing with a bearer token used within the minute: the token, "
        "its user and the caller's grants in one query, the course or account, the page of "
        "events with everything `linked` shows; the sub-accounts of `include_subaccounts` "
        "one more. (A token's first use in a minute adds one UPDATE of `last_used_at`, not "
        "counted here.) Beside them, counted apart, the request's access record: one INSERT, "
        "in the page's own statement where the page is one index range on the primary. "
        "`scripts/bench --ci` fails when a request runs more.",
        raw=counts,
    )
    for count in counts:
        section.checks.append(
            Check(
                f"{count['listing']}, per_page {count['per_page']}",
                f"{count['queries']} queries",
                "—",
                count["queries"],
                QUERIES_SUBACCOUNTS if count["listing"] == "account+subaccounts" else QUERIES,
            )
        )
        section.checks.append(
            Check(
                f"{count['listing']}, per_page {count['per_page']}: access record",
                f"{count['access_record_inserts']} INSERT",
                "—",
                count["access_record_inserts"],
                ACCESS_RECORD_INSERTS,
            )
        )
    return section


# What each query of an audit listing's request is, by a table its SQL reads first.
_QUERY_KINDS = (
    ("course_audit_accessrecord", "the access record"),
    ("course_audit_apitoken", "token, user and grants"),
    ("course_audit_courseevent", "events and their links"),
    ("course_audit_course", "the course"),
    ("course_audit_account", "the account or its subtree"),
)


# Prepared statements as a site turns them on (docs/integration.md §8).
PREPARED_OPTIONS = {
    "server_side_binding": True,
    "prepare_threshold": 5,
    "options": "-c plan_cache_mode=force_generic_plan",
}


def _statement_totals(repeat: int) -> dict[str, list[float]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query, calls, plans, mean_plan_time, mean_exec_time FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND calls >= %s AND query NOT LIKE %s",
            [repeat, "%pg_stat_statements%"],
        )
        statements = cursor.fetchall()
    totals: dict[str, list[float]] = {}
    for query, calls, plans, plan_ms, exec_ms in statements:
        text = query.split(" FROM ", 1)[1] if " FROM " in query else query
        kind = next((name for table_name, name in _QUERY_KINDS if table_name in text), "other")
        if query.startswith('WITH "course_audit_page"'):  # the page's record rides on it
            kind = "events and their links, with the access record"
        bucket = totals.setdefault(kind, [0, 0, 0.0, 0.0])
        bucket[0] += calls
        bucket[1] += plans
        bucket[2] += plans * plan_ms
        bucket[3] += calls * exec_ms
    return totals


def _with_options(options: dict[str, Any] | None) -> None:
    """The default connection reopened with ``options`` as its ``OPTIONS`` (None: none)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["OPTIONS"] = dict(options or {})


def _without_plan_cache_mode(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without the demo's ``plan_cache_mode`` (Django's defaults, as a site's)."""
    return {name: value for name, value in options.items() if name != "options"}


def planning_section(run: Run) -> Section:
    """Planning against execution time of each query of the listings' pages, from
    ``pg_stat_statements`` (when the server loads it), with prepared statements off (the
    default) and on (``PREPARED_OPTIONS``); and what each way costs the API's page, the
    history page and an export."""
    from django.db import connection
    from django.test import override_settings

    from bench import _api, pages

    section = Section("planning", "Where the database time goes: planning and execution", "")
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in cursor.fetchone()[0]:
            section.intro = (
                "Not measured: the server does not load `pg_stat_statements` "
                "(`shared_preload_libraries`)."
            )
            return section
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("SHOW pg_stat_statements.track_planning")
        tracked = cursor.fetchone()[0] == "on"
    repeat = 50
    original = dict(connection.settings_dict.get("OPTIONS") or {})
    statement_rows: list[list[object]] = []
    timing_rows: list[list[object]] = []
    raw: dict[str, Any] = {}
    stack = contextlib.ExitStack()
    try:
        for mode, options, app in (
            ("off", _without_plan_cache_mode(original), False),
            ("the API's", original, True),
            ("every query", {**original, **PREPARED_OPTIONS}, False),
        ):
            _with_options(options)
            overridden = override_settings(COURSE_AUDIT_PREPARED_STATEMENTS=app)
            overridden.enable()
            stack.callback(overridden.disable)
            client = _api.Client(run.dataset.token)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_statements_reset()")
            for listing in _api.listings(run.dataset):
                for depth in (0, run.args.depth):
                    where = _api.position(listing, depth)
                    for per_page in (10, 100):
                        path, params = _api.request_for(listing, "keyset", per_page, depth, where)
                        for _ in range(repeat):
                            client.get(path, params)
            totals = _statement_totals(repeat)
            raw[mode] = {
                kind: dict(zip(("calls", "plans", "plan_ms", "exec_ms"), v, strict=True))
                for kind, v in totals.items()
            }
            for kind, (calls, plans, plan_total, exec_total) in sorted(totals.items()):
                statement_rows.append(
                    [
                        mode,
                        kind,
                        int(calls),
                        int(plans),
                        round(plan_total / plans, 3) if plans else 0,
                        round(exec_total / calls, 3) if calls else 0,
                    ]
                )
            # What each way costs the pages a registrar and an integration use most.
            listing = _api.listings(run.dataset)[0]
            where = _api.position(listing, run.args.depth)
            path, params = _api.request_for(listing, "keyset", 10, run.args.depth, where)
            api = Timed("api", functools.partial(client.get, path, params), 60, 20)
            history_case = pages.history_cases(run.dataset.course.pk, run.args.depth)[1]
            page_client = pages.superuser_client()
            history = pages.timed(history_case, page_client, repeat=30)
            measure_in_rounds([api, history], warmup=5)
            export_case = pages.export_cases(run.dataset.course.pk, run.dataset.root.pk)[1]
            export = pages.export_rate(export_case, page_client, rows=20_000)
            raw[mode]["figures"] = {
                "api_p50_ms": api.summary()["p50_ms"],
                "history_p50_ms": history.summary()["p50_ms"],
                "export": export,
            }
            timing_rows.append(
                [
                    mode,
                    round(api.summary()["p50_ms"], 2),
                    round(history.summary()["p50_ms"], 1),
                    f"{number(export['rows_per_second'])} ({export_case.name})",
                ]
            )
            stack.close()
    finally:
        stack.close()
        _with_options(original)
    section.raw = raw
    section.intro = (
        f"`pg_stat_statements` over {repeat} requests of each listing's page one and deep "
        f"page at per_page 10 and 100 (bearer token), with prepared statements off (Django's "
        "default), for the API's fixed-shape queries alone (`COURSE_AUDIT_PREPARED_STATEMENTS` "
        "with `plan_cache_mode=force_generic_plan`, the demo's settings) and for every query "
        "(`server_side_binding`, `prepare_threshold` 5, "
        "`plan_cache_mode=force_generic_plan`: docs/integration.md §8). A query planned "
        "once and run many times shows fewer plans than calls; planning is per plan, "
        "execution per call."
        + ("" if tracked else " (`track_planning` is off: no planning figures.)")
    )
    section.details.append(
        table(
            [
                "prepared",
                "query",
                "calls",
                "plans",
                "planning ms per plan",
                "execution ms per call",
            ],
            statement_rows,
        )
    )
    section.details.append(
        "What each way costs (p50; the API's course page and the history page "
        f"{run.args.depth:,} events deep; rows per second of the first 20,000 of an export): "
        "a generic plan knows no course, so it plans for the average one, and a course far "
        "busier than that (the big course here) is read the slow way; the API's own prepared "
        "statements leave the pages and exports as they were.\n\n"
        + table(["prepared", "API page, ms", "history page, ms", "export, rows/s"], timing_rows)
    )
    section.details.append(python_profile(run))
    return section


# The parts of an API request a profile adds up: (label, file suffix, function name).
_PROFILE_PARTS = (
    ("token, user and grants (authentication)", "api/authentication.py", "authenticate"),
    ("the course or account, and the access rule", "api/views.py", "get_course"),
    ("the page of events (SQL and rows)", "api/pagination.py", "paginate_queryset"),
    ("the compound document", "api/serializers.py", "compound_document"),
    ("JSON rendering", "rest_framework/renderers.py", "render"),
)


def python_profile(run: Run, requests: int = 200) -> str:
    """Where a request's time goes on the Python side: cProfile over ``requests`` requests
    of the course endpoint's page one at per_page 10 and 100, each part's cumulative time
    per request, against the whole request's (profiling slows every part alike)."""
    import cProfile
    import pstats

    from bench import _api

    client = _api.Client(run.dataset.token)
    listing = _api.listings(run.dataset)[0]
    rows = []
    for per_page in (10, 100):
        path, params = _api.request_for(listing, "keyset", per_page, 0, _api.position(listing, 0))
        for _ in range(20):
            client.get(path, params)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            client.get(path, params)
        profiler.disable()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        whole = max(cumulative for _, _, _, cumulative, _ in stats.values())
        found = {}
        for (filename, _, function), (_, _, _, cumulative, _) in stats.items():
            for label, suffix, name in _PROFILE_PARTS:
                if function == name and filename.endswith(suffix):
                    found[label] = found.get(label, 0.0) + cumulative
        parts = [
            [
                label,
                per_page,
                round(1000 * found.get(label, 0.0) / requests, 2),
                f"{found.get(label, 0.0) / whole:.0%}",
            ]
            for label, _, _ in _PROFILE_PARTS
        ]
        rest = whole - sum(found.values())
        parts.append(
            [
                "the rest: Django, DRF, middleware, the test client",
                per_page,
                round(1000 * rest / requests, 2),
                f"{rest / whole:.0%}",
            ]
        )
        parts.append(
            ["the whole request (profiled)", per_page, round(1000 * whole / requests, 2), "100%"]
        )
        rows.extend(parts)
    return (
        f"Where the Python time goes: cProfile over {requests} requests of the course "
        "endpoint's page one (bearer token), each part's cumulative time per request "
        "(the profiler slows every part; compare the shares):\n\n"
        + table(["part", "per_page", "ms per request, profiled", "share"], rows)
    )


def pages_section(run: Run) -> Section:
    from bench import pages

    dataset, args = run.dataset, run.args
    cases = [
        *pages.history_cases(dataset.course.pk, args.depth),
        *pages.admin_cases(run.data["events"] // 2),
    ]
    client = pages.superuser_client()
    repeat = min(args.repeat, 30)
    figures = [pages.timed(case, client, repeat=repeat) for case in cases]
    measure_in_rounds(figures, warmup=2)
    results = [
        {"case": case.name, "queries": case.queries, **figure.summary()}
        for case, figure in zip(cases, figures, strict=True)
    ]
    exported = [
        {"case": case.name, **pages.export_rate(case, client, rows=EXPORT_ROWS)}
        for case in pages.export_cases(dataset.course.pk, dataset.root.pk)
    ]
    section = Section(
        "pages",
        "Admin changelist, course history page and exports",
        f"Server time in-process (Django's test client, a logged-in superuser), p50 over "
        f"{repeat} requests per page after 2 untimed, interleaved; the history page is the "
        "big course's, the deep admin page half the table in. The exports: the CSV of the "
        "root account with its sub-accounts and of the big course, through the view, "
        f"streamed as a client reads it, rows per second over the first {EXPORT_ROWS:,} rows "
        "(or all of them when fewer).",
        # One list, the exports' entries (rows_per_second, no p50_ms) after the pages'.
        raw=[*results, *exported],
    )
    for result in results:
        history = result["case"].startswith("history")
        section.checks.append(
            Check(
                result["case"],
                ms(result["p50_ms"]),
                f"p95 {ms(result['p95_ms'])}",
                result["p50_ms"],
                HISTORY_PAGE_MS if history else PAGE_MS,
            )
        )
    subaccounts, course = exported
    section.checks.append(
        Check(
            subaccounts["case"],
            f"{number(subaccounts['rows_per_second'])} rows/s",
            f"one course's {number(course['rows_per_second'])} rows/s",
            subaccounts["rows_per_second"],
            EXPORT_ROWS_PER_SECOND,
        )
    )
    section.details.append(
        table(
            ["page", "p50 ms", "p95 ms", "max ms", "queries", "n"],
            [
                [
                    r["case"],
                    round(r["p50_ms"], 1),
                    round(r["p95_ms"], 1),
                    round(r["max_ms"], 1),
                    r["queries"],
                    r["n"],
                ]
                for r in results
            ],
        )
    )
    section.details.append(
        table(
            ["export", "rows", "seconds", "rows/s", "peak memory MB"],
            [
                [
                    r["case"],
                    r["rows"],
                    round(r["seconds"], 2),
                    round(r["rows_per_second"]),
                    round(r["peak_mb"]),
                ]
                for r in exported
            ],
        )
    )
    return section


def filters_section(run: Run) -> Section:
    from bench import _api, _filters

    args = run.args
    client = _api.Client(run.dataset.token)
    figures = []
    for case in _filters.cases(run.dataset, depth=min(args.depth, 10_000)):
        timed = _filters.checked_call(client, case)
        if timed is not None:
            timed.repeat, timed.max_seconds = args.repeat, args.max_seconds
            figures.append((case, timed))
    from bench import pages

    page_client = pages.superuser_client()
    page_figures = [
        (case, pages.timed(case, page_client, repeat=min(args.repeat, 30)))
        for case in _filters.page_cases(run.dataset)
    ]
    measure_in_rounds([timed for _, timed in [*figures, *page_figures]], warmup=5)
    results = [
        {
            "case": case.name,
            "listing": case.listing,
            "filter": case.filter,
            "depth": case.depth,
            "matching": _filters.matching(case, 1_000_000),
            **timed.summary(),
        }
        for case, timed in figures
    ]
    results += [
        {
            "case": case.name,
            "listing": "page",
            "filter": case.name.split(", ", 1)[-1],
            "depth": 0,
            "matching": "",
            "queries": case.queries,
            **timed.summary(),
        }
        for case, timed in page_figures
    ]
    section = Section(
        "filters",
        "Filtered listings: changed fields and SIS batch",
        f"The API's listings filtered with `field=` and `sis_batch_id=` (issue #17), "
        f"in-process (Django's test client, bearer token), per_page 100, p50 over "
        f"{args.repeat} timed requests per figure after 5 untimed, interleaved; a deep page "
        "is that many matching events in. `matching` counts the listing's events the filter "
        "keeps (up to a million). The pages (`page:`): server time of the registrar's "
        "pages with the same filters, a logged-in superuser, at most 30 requests each. See "
        "bench/_filters.py.",
        raw=results,
    )
    for result in results:
        section.checks.append(
            Check(
                result["case"],
                ms(result["p50_ms"]),
                f"p95 {ms(result['p95_ms'])}",
                result["p50_ms"],
                PAGE_MS,
            )
        )
    section.details.append(
        table(
            ["listing", "filter", "depth", "matching", "p50 ms", "p95 ms", "max ms", "n"],
            [
                [
                    r["listing"],
                    r["filter"],
                    r["depth"],
                    r["matching"],
                    round(r["p50_ms"], 1),
                    round(r["p95_ms"], 1),
                    round(r["max_ms"], 1),
                    r["n"],
                ]
                for r in results
            ],
        )
    )
    return section


def http_section(run: Run) -> Section:
    from bench import _http

    args = run.args
    course = run.dataset.course.pk
    targets = (
        ("trivial JSON view", "/bench/trivial/"),
        ("HTTP floor", f"/bench/floor/courses/{course}?per_page=10"),
        ("API page one", f"/api/v1/audit/course/courses/{course}?per_page=10"),
    )
    headers = {"Authorization": f"Bearer {run.dataset.token}"}
    # The code before the issue, served the same way just before and just after this code's
    # own figures: the machine's speed moves between runs by more than the target's margin.
    before_runs = []
    if args.before_tree is not None:
        before_runs.append(_http.before_api_per_second(args, BEFORE_EVENTS))
    with _http.gunicorn(args.database_url) as address:
        results = {
            name: _http.load(
                address,
                path,
                headers=headers,
                total=args.http_requests,
                seconds=args.http_seconds,
            )
            for name, path in targets
        }
    if args.before_tree is not None:
        before_runs.append(_http.before_api_per_second(args, BEFORE_EVENTS))
    api, floor = results["API page one"], results["HTTP floor"]
    section = Section(
        "http",
        "HTTP throughput",
        f"{_http.SERVER_SETTINGS}; the load generator (Python threads on the same machine) "
        f"keeps {_http.CONCURRENCY} keep-alive connections busy, for at most "
        f"{args.http_requests:,} requests or {number(args.http_seconds)} s per target. The API "
        "figure is the course endpoint's page one (per_page 10, bearer token); the HTTP "
        "floor serves the bare keyset SQL of the same page and its JSON from the same "
        "server (`bench.bench_urls.floor`: no authentication, access check or links); the "
        "trivial view does no work at all. Before this issue the API served "
        f"{number(THROUGHPUT_BEFORE)} req/s on the same settings (1 million events, "
        "4 December)"
        + (
            f"; that code ({BEFORE_COMMIT}, `--before-tree`, on "
            f"{BEFORE_EVENTS:,} events of its own bench's) served "
            f"{' and '.join(f'{number(value)}' for value in before_runs)} req/s in this "
            "run, just before and just after this code's figures."
            if before_runs
            else "."
        ),
        raw={**results, "before": before_runs},
    )
    section.checks.append(
        Check(
            "API page one ÷ HTTP floor, requests per second",
            f"{number(api['per_second'])} req/s",
            f"{number(floor['per_second'])} req/s",
            100 * api["per_second"] / floor["per_second"],
            THROUGHPUT,
        )
    )
    if before_runs:
        before = sum(before_runs) / len(before_runs)
        section.checks.append(
            Check(
                "API page one ÷ the code before this issue, same run, requests per second",
                f"{number(api['per_second'])} req/s",
                f"{number(before)} req/s",
                api["per_second"] / before,
                THROUGHPUT_GAIN,
            )
        )
    else:
        section.checks.append(
            Check(
                f"API page one ÷ {number(THROUGHPUT_BEFORE)} req/s before",
                f"{number(api['per_second'])} req/s",
                f"{number(THROUGHPUT_BEFORE)} req/s",
                api["per_second"] / THROUGHPUT_BEFORE,
                THROUGHPUT_GAIN,
            )
        )
    section.details.append(
        table(
            ["target", "requests", "seconds", "req/s", "p50 ms"],
            [
                [
                    name,
                    r["requests"],
                    round(r["seconds"], 1),
                    round(r["per_second"]),
                    round(r["p50_ms"], 1),
                ]
                for name, r in results.items()
            ],
        )
    )
    return section


def writes_section(run: Run) -> Section:
    from django.db import DEFAULT_DB_ALIAS

    from bench import _writes

    args = run.args
    results = _writes.measure(
        run.dataset,
        saves=args.saves,
        courses=args.bulk_courses,
        rounds=args.write_rounds,
        prefix=f"{_writes.SIS_PREFIX}{uuid.uuid4().hex[:6]}-",
        using=DEFAULT_DB_ALIAS,
    )
    return _writes.section(results)


def integrity_section(run: Run) -> Section:
    from bench import _integrity

    return _integrity.measure(run)


def retention_section(run: Run) -> Section:
    from bench import _retention

    return _retention.measure(run)


SECTION_FUNCTIONS: dict[str, Callable[[Run], Section]] = {
    "api": api_section,
    "queries": queries_section,
    "planning": planning_section,
    "pages": pages_section,
    "filters": filters_section,
    "http": http_section,
    "writes": writes_section,
    "integrity": integrity_section,
    "retention": retention_section,
}


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import django

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": os.environ.get("BENCH_COMMAND")
        or " ".join(["python -m bench.suite", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "postgresql": server_version(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": database_name(args.database_url),
    }


def markdown(run: Run, facts: dict[str, Any]) -> str:
    data = run.data
    checks = [check for section in run.sections for check in section.checks]
    missed = [check for check in checks if not check.met]
    loaded = (
        f" (loaded by COPY in {data['load_seconds']:.0f} s, "
        f"{number(data['load_events_per_second'])} events/s)"
        if "load_seconds" in data
        else ""
    )
    head = [
        "# Benchmarks",
        f"Written by `{facts['command']}` on {facts['date']}; do not edit by hand. The raw "
        "numbers are in [benchmarks.json](benchmarks.json). Every target is a ratio or a "
        "bound within this one run; the issue sets them for 10 million events. A section "
        "this run did not measure is kept from the report before it, after this run's, and "
        "says by which command it was measured.",
        f"**Machine:** {facts['cpus']} CPUs, load average {facts['load_average'][0]} at the "
        f"end of the run (1, 5, 15 min: {', '.join(map(str, facts['load_average']))}); "
        f"PostgreSQL {facts['postgresql']} on the same host; Python {facts['python']}, "
        f"Django {facts['django']}.",
        f"**Data:** {data['events']:,} events{loaded} over 18 months from "
        f"{data['first_month']}, {data['courses']:,} courses in {data['accounts']} accounts; "
        f"the big course has {data['big_course_events']:,} events, its account "
        f"{data['department_events']:,}; the event table is "
        f"{'partitioned by month' if data['partitioned'] else 'one table (not partitioned)'}.",
        f"**Targets:** {len(checks) - len(missed)} of {len(checks)} met.",
        table(
            ["section", "targets", "met", "missed"],
            [
                [
                    section.title,
                    len(section.checks),
                    sum(check.met for check in section.checks),
                    sum(not check.met for check in section.checks),
                ]
                for section in run.sections
                if section.checks
            ],
        ),
    ]
    return "\n\n".join([*head, *(section.markdown() for section in run.sections)]) + "\n"


def with_writes_before(text: str) -> str:
    """The report with the stored "before" write figures, if any, as a section of their
    own (not counted among the run's targets)."""
    from bench import _writes

    if not WRITES_BEFORE.exists():
        return text
    before = _writes.before_section(json.loads(WRITES_BEFORE.read_text()))
    return _writes.replace_section(text, before.title, before.markdown(), after="Write path")


def record_writes_before(run: Run, facts: dict[str, Any]) -> None:
    """Keep this run's write figures as the "before" and show them in docs/benchmarks.md."""
    [writes] = [section for section in run.sections if section.key == "writes"]
    record = {
        "command": facts["command"],
        "date": facts["date"],
        "machine": f"{facts['cpus']} CPUs, load average {facts['load_average'][0]} at the "
        f"end, PostgreSQL {facts['postgresql']}",
        "events": run.data["events"],
        "results": writes.raw,
    }
    WRITES_BEFORE.write_text(json.dumps(record, indent=2) + "\n")
    report = ROOT / "docs" / "benchmarks.md"
    report.write_text(with_writes_before(report.read_text()))
    print(f"wrote {WRITES_BEFORE} and its section of {report}")


def before_after_section(run: Run) -> Section | None:
    """The read path's figures of this run beside those of ``READS_BEFORE``: each target's
    figure, and the p50 or requests per second it is made of. Not counted among the run's
    targets; None when there is nothing to compare."""
    if not READS_BEFORE.exists():
        return None
    before = json.loads(READS_BEFORE.read_text())
    old_sections = before["sections"]
    rows: list[list[object]] = []
    for section in run.sections:
        if section.key not in ("api", "queries", "pages", "http"):
            continue
        old_checks = {
            check["what"]: check for check in old_sections.get(section.key, {}).get("checks", [])
        }
        for check in section.checks:
            old = old_checks.get(check.what)
            if old is not None:
                unit = check.target.unit
                rows.append(
                    [
                        check.what,
                        f"{number(old['value'])}{unit}",
                        f"{number(check.value)}{unit}",
                        check.target.describe(),
                    ]
                )
        if section.key == "api":
            old_results = {
                (r["listing"], r["per_page"], r["depth"], r["variant"]): r
                for r in old_sections.get("api", {}).get("results", [])
            }
            for result in section.raw:
                key = (result["listing"], result["per_page"], result["depth"], result["variant"])
                if result["variant"] in ("keyset", "floor") and key in old_results:
                    rows.append(
                        [
                            f"{key[0]}, per_page {key[1]}, depth {key[2]:,}: {key[3]} p50",
                            ms(old_results[key]["p50_ms"]),
                            ms(result["p50_ms"]),
                            "—",
                        ]
                    )
        if section.key == "pages":
            old_pages = {r["case"]: r for r in old_sections.get("pages", {}).get("results", [])}
            for result in section.raw:
                if result.get("case") in old_pages and "p50_ms" in result:
                    old_page = old_pages[result["case"]]
                    rows.append(
                        [
                            f"{result['case']}: p50 (queries)",
                            f"{ms(old_page['p50_ms'])} ({old_page['queries']})",
                            f"{ms(result['p50_ms'])} ({result['queries']})",
                            "—",
                        ]
                    )
        if section.key == "http":
            old_http = old_sections.get("http", {}).get("results", {})
            for name, result in section.raw.items():
                if name in old_http:
                    rows.append(
                        [
                            f"HTTP: {name}, requests per second",
                            f"{number(old_http[name]['per_second'])} req/s",
                            f"{number(result['per_second'])} req/s",
                            "—",
                        ]
                    )
    if not rows:
        return None
    machine = before["machine"]
    return Section(
        "before_after",
        "The read path, before and after",
        f"Before: `{machine['command']}` on {machine['date']} (the same machine, load average "
        f"{machine['load_average'][0]} at the end; figures in "
        f"[{READS_BEFORE.name}]({READS_BEFORE.name})), before issue #15. After: this run. "
        "A target's figure first, then what it is made of. The queries before were four a "
        "page (five with sub-accounts), under a budget of six.",
        details=[table(["what", "before", "after", "target"], rows)],
    )


def carried_over(text: str, previous: str, measured_titles: Sequence[str]) -> str:
    """``text`` (a new report) with each section of ``previous`` (the report it replaces)
    that this run did not measure, kept as it was, after the new ones. A section says by
    which command and when it was measured."""
    kept = []
    for chunk in previous.split("\n## ")[1:]:
        title = chunk.split("\n", 1)[0].strip()
        if title not in measured_titles and f"\n## {title}\n" not in text:
            kept.append(f"## {chunk.rstrip()}")
    if not kept:
        return text
    return text.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"


def write_outputs(run: Run, facts: dict[str, Any]) -> None:
    folder = run.args.output_dir
    folder.mkdir(parents=True, exist_ok=True)
    compared = before_after_section(run)
    if compared is not None:
        run.sections.append(compared)
    text = with_writes_before(markdown(run, facts))
    previous = folder / "benchmarks.md"
    if previous.exists():
        text = carried_over(text, previous.read_text(), [section.title for section in run.sections])
    previous.write_text(text)
    sections = {
        section.key: {
            "checks": [check.as_json() for check in section.checks],
            "results": section.raw,
        }
        for section in run.sections
    }
    # As in the Markdown: the sections this run did not measure are kept from the last.
    numbers = folder / "benchmarks.json"
    if numbers.exists():
        kept = json.loads(numbers.read_text()).get("sections", {})
        sections.update({key: value for key, value in kept.items() if key not in sections})
    document = {"machine": facts, "data": run.data, "sections": sections}
    numbers.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"wrote {folder / 'benchmarks.md'} and {folder / 'benchmarks.json'}")


def profile(run: Run) -> None:
    """Profile the course endpoint's page of 100 (pyinstrument), printed as text."""
    from pyinstrument import Profiler

    from bench import _api

    client = _api.Client(run.dataset.token)
    listing = _api.listings(run.dataset)[0]
    path, params = _api.request_for(listing, "keyset", 100, 0, _api.position(listing, 0))
    for _ in range(20):
        client.get(path, params)
    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(200):
            client.get(path, params)
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    # So that a stopped run still stops its gunicorn (the sections clean up on the way out).
    signal.signal(signal.SIGTERM, stop)
    run = prepare(args)
    try:
        if args.profile:
            profile(run)
            return 0
        for key in args.sections:
            started = time.perf_counter()
            print(f"==> {key}", flush=True)
            section = SECTION_FUNCTIONS[key](run)
            run.sections.append(section)
            print(checks_table(section.checks) if section.checks else section.intro)
            print(f"({time.perf_counter() - started:.0f} s)", flush=True)
        facts = machine(args)
        if args.output_dir is not None:
            write_outputs(run, facts)
        if args.record_writes_before:
            record_writes_before(run, facts)
    finally:
        if args.drop:
            from django.db import connections

            connections.close_all()
            recreate_database(args.database_url, drop_only=True)
    missed = [check for section in run.sections for check in section.checks if not check.met]
    if args.ci and missed:
        print(
            "Benchmark regression: "
            + "; ".join(
                f"{check.what}: {number(check.value)}{check.target.unit} "
                f"(target {check.target.describe()})"
                for check in missed
            ),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
