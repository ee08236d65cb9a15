"""A/B of ``COURSE_AUDIT_PREPARED_STATEMENTS`` on the API's listings, interleaved request by
request in one process: off (Django's defaults), on with PostgreSQL's ``plan_cache_mode``
auto, on with ``force_generic_plan`` (the demo's), and the floor (``bench._api``).

    python -m bench.ab_prepared --database-url postgres://.../ca_bench10m --events 10000000

on a database ``scripts/bench`` loaded (``--reuse-data``); prints p50 ms per listing, depth
and page size, and each ÷ the floor. Not part of ``scripts/bench``: a measurement of one
decision (docs/integration.md §8).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any


def main(argv: list[str]) -> None:
    from bench import suite

    args = suite.parse_args([*argv, "--reuse-data"])
    run = suite.prepare(args)
    from django.db import connection
    from django.test import override_settings

    from bench import _api

    client = _api.Client(run.dataset.token)
    modes = {
        "off": (False, "auto"),
        "auto": (True, "auto"),
        "generic": (True, "force_generic_plan"),
    }

    def request(mode: str, path: str, params: dict[str, Any]) -> float:
        prepared, plans = modes[mode]
        with connection.cursor() as cursor:
            cursor.execute(f"SET plan_cache_mode = {plans}")
        with override_settings(COURSE_AUDIT_PREPARED_STATEMENTS=prepared):
            started = time.perf_counter()
            client.get(path, params)
            return time.perf_counter() - started

    for listing in _api.listings(run.dataset)[:2]:
        for depth in (0, args.depth):
            where = _api.position(listing, depth)
            for per_page in (10, 100):
                path, params = _api.request_for(listing, "keyset", per_page, depth, where)
                floor = _api.floor_call(listing, per_page, where)
                for mode in modes:
                    for _ in range(8):
                        request(mode, path, params)
                times: dict[str, list[float]] = {name: [] for name in (*modes, "floor")}
                for _ in range(120):
                    for mode in modes:
                        times[mode].append(request(mode, path, params))
                    started = time.perf_counter()
                    floor()
                    times["floor"].append(time.perf_counter() - started)
                p50 = {name: statistics.median(values) * 1000 for name, values in times.items()}
                figures = "  ".join(
                    f"{name} {p50[name]:.2f} ms ({p50[name] / p50['floor']:.2f}x)" for name in modes
                )
                print(
                    f"{listing.name:8} depth {depth:>7,} per_page {per_page:3}: {figures}"
                    f"  floor {p50['floor']:.2f} ms",
                    flush=True,
                )
        with connection.cursor() as cursor:
            cursor.execute("RESET plan_cache_mode")


if __name__ == "__main__":
    main(sys.argv[1:])
