"""The benchmark's targets, verdicts and tables (bench/_report.py) and its timing helpers
(bench/_common.py): what docs/benchmarks.md says must follow from the figures."""

from __future__ import annotations

import datetime as dt

import pytest

from bench._common import Timed, measure_in_rounds, percentile
from bench._data import Plan, month_start
from bench._report import TIMES, Check, Target, number, table


def test_an_upper_bound_is_met_up_to_and_at_the_bound():
    target = Target(1.2)
    assert target.describe() == f"≤ 1.20{TIMES}"
    assert target.verdict(1.0) == "met"
    assert target.verdict(1.2) == "met"
    assert target.verdict(1.5) == "**missed** by 25 %"


def test_a_lower_bound_says_how_far_short_the_figure_is():
    target = Target(50_000, at_most=False, unit=" events/s")
    assert target.describe() == "≥ 50,000 events/s"
    assert target.verdict(50_000) == "met"
    assert target.verdict(4_000) == "**missed** by 92 %"


def test_a_check_row_shows_the_figure_the_target_bounds():
    check = Check("deep ÷ first", "12.0 ms", "10.0 ms", 1.2, Target(1.2))
    assert check.met
    assert check.row() == [
        "deep ÷ first",
        "12.0 ms",
        "10.0 ms",
        f"1.20{TIMES}",
        f"≤ 1.20{TIMES}",
        "met",
    ]
    assert check.as_json() == {
        "what": "deep ÷ first",
        "value": 1.2,
        "limit": 1.2,
        "at_most": True,
        "unit": TIMES,
        "met": True,
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (4, "4"),
        (100_000, "100,000"),
        (1.234, "1.23"),
        (12.34, "12.3"),
        (1234.5, "1,234"),
        (250.0, "250"),
    ],
)
def test_numbers_print_with_precision_by_size(value, shown):
    assert number(value) == shown


def test_tables_right_align_numeric_columns_only():
    text = table(["listing", "p50"], [["course", 12.5], ["account", 3]])
    assert text.splitlines() == [
        "| listing | p50 |",
        "|---|---:|",
        "| course | 12.5 |",
        "| account | 3 |",
    ]


def test_a_timed_call_stops_at_its_count_or_its_time_cap():
    by_count = Timed("fast", lambda: None, repeat=3)
    by_count.timings = [1.0, 1.0]
    assert not by_count.done
    by_count.timings.append(1.0)
    assert by_count.done

    capped = Timed("slow", lambda: None, repeat=100, max_seconds=1)
    capped.timings = [600.0, 500.0]  # ms
    assert capped.done
    assert capped.summary()["n"] == 2


def test_cases_are_timed_in_rounds_after_their_warmup():
    calls: list[str] = []
    cases = [
        Timed(name, lambda name=name: calls.append(name), repeat=repeat)
        for name, repeat in (("a", 2), ("b", 3))
    ]
    measure_in_rounds(cases, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b", "b"]
    assert [len(case.timings) for case in cases] == [2, 3]


def test_percentiles_of_one_timing_and_of_many():
    assert percentile([7.0], 95) == 7.0
    assert percentile([float(n) for n in range(1, 101)], 50) == pytest.approx(50.5)


def test_the_plan_scales_courses_and_keeps_a_course_deep_enough():
    quick = Plan(events=1_000_000, depth=100_000)
    assert quick.courses == 20_000
    assert quick.big_course_events == 110_000
    assert quick.synthetic == 980_000
    assert Plan(events=100_000, depth=50_000).courses == 2_000
    assert Plan(events=1_000, depth=500).courses == 200


def test_the_first_month_of_the_data_crosses_years():
    assert month_start(dt.date(2026, 3, 15), 17) == dt.date(2024, 10, 1)
    assert month_start(dt.date(2026, 12, 31), 0) == dt.date(2026, 12, 1)
    assert month_start(dt.date(2026, 1, 1), 1) == dt.date(2025, 12, 1)
