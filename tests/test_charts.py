"""course_audit.charts: the activity chart laid out from counts per day or week (no
database): the buckets, the stacked segments, an empty range, and the limits that keep a
chart a bounded number of bars."""

from __future__ import annotations

import datetime as dt

import pytest

from course_audit.charts import (
    COLORS,
    DAILY_LIMIT,
    HEIGHT,
    MARGIN_BOTTOM,
    MARGIN_LEFT,
    MAX_DAYS,
    WIDTH,
    Segment,
    buckets,
    build_chart,
)
from course_audit.models import CourseEvent

MONDAY = dt.date(2025, 3, 3)
BASELINE = HEIGHT - MARGIN_BOTTOM  # 176: where every bar stands
PLOT_HEIGHT = HEIGHT - MARGIN_BOTTOM - 8  # 168: the tallest bar


def days(count: int, start: dt.date = MONDAY) -> list[dt.date]:
    return [start + dt.timedelta(days=index) for index in range(count)]


# --- buckets -----------------------------------------------------------------------------------


def test_daily_buckets_are_every_day_of_the_range_inclusive():
    assert buckets(MONDAY, MONDAY + dt.timedelta(days=2), weekly=False) == days(3)
    assert buckets(MONDAY, MONDAY, weekly=False) == [MONDAY]


def test_weekly_buckets_are_mondays_from_the_week_of_the_start():
    wednesday, thursday = MONDAY + dt.timedelta(days=2), MONDAY + dt.timedelta(days=17)
    assert buckets(wednesday, thursday, weekly=True) == [
        dt.date(2025, 3, 3),
        dt.date(2025, 3, 10),
        dt.date(2025, 3, 17),
    ]


def test_a_range_ending_before_it_starts_has_no_buckets():
    assert buckets(MONDAY, MONDAY - dt.timedelta(days=1), weekly=False) == []


# --- the layout --------------------------------------------------------------------------------


def test_a_daily_chart_stacks_each_days_types_in_the_enums_order():
    counts = {
        MONDAY: {"updated": 2, "created": 1},
        MONDAY + dt.timedelta(days=2): {"published": 4},
    }
    chart = build_chart(counts, MONDAY, MONDAY + dt.timedelta(days=2), weekly=False)

    assert not chart.weekly
    assert (chart.start, chart.end) == (MONDAY, MONDAY + dt.timedelta(days=2))
    assert chart.types == [
        ("created", "Created", COLORS["created"]),
        ("updated", "Updated", COLORS["updated"]),
        ("published", "Published", COLORS["published"]),
    ]
    assert (chart.total, chart.max_total) == (7, 4)
    assert [bar.start for bar in chart.bars] == days(3)
    assert [bar.total for bar in chart.bars] == [3, 0, 4]
    assert [bar.counts for bar in chart.bars] == [[1, 2, 0], [0, 0, 0], [0, 0, 4]]
    # three slots of 684 / 3 = 228 units, each bar 80 % of its slot
    assert [bar.x for bar in chart.bars] == [58.8, 286.8, 514.8]
    assert {bar.width for bar in chart.bars} == {182.4}
    first, empty, last = chart.bars
    assert first.segments == [
        Segment("created", "Created", 1, y=BASELINE - 42, height=42, color=COLORS["created"]),
        Segment("updated", "Updated", 2, y=BASELINE - 126, height=84, color=COLORS["updated"]),
    ]
    assert empty.segments == []
    # the busiest day is the full height of the plot
    assert last.segments == [
        Segment("published", "Published", 4, y=8, height=PLOT_HEIGHT, color=COLORS["published"])
    ]
    assert not chart.clipped and chart.capped_at == 0


def test_a_weekly_chart_has_a_bar_per_week_keyed_by_monday():
    counts = {MONDAY: {"deleted": 1}, MONDAY + dt.timedelta(days=14): {"deleted": 3}}
    chart = build_chart(
        counts, MONDAY + dt.timedelta(days=2), MONDAY + dt.timedelta(days=17), weekly=True
    )
    assert chart.weekly
    assert chart.start == MONDAY + dt.timedelta(days=2)  # the range as asked, not its Monday
    assert [(bar.start, bar.total) for bar in chart.bars] == [
        (dt.date(2025, 3, 3), 1),
        (dt.date(2025, 3, 10), 0),
        (dt.date(2025, 3, 17), 3),
    ]
    assert chart.types == [("deleted", "Deleted", COLORS["deleted"])]


def test_counts_outside_the_range_are_not_drawn():
    counts = {MONDAY - dt.timedelta(days=1): {"created": 5}, MONDAY: {"updated": 1}}
    chart = build_chart(counts, MONDAY, MONDAY, weekly=False)
    assert [bar.total for bar in chart.bars] == [1]
    assert chart.total == 1
    # the types are those of the counts given, drawn or not
    assert [value for value, _, _ in chart.types] == ["created", "updated"]


@pytest.mark.parametrize("weekly", [False, True])
def test_an_empty_range_draws_empty_bars(weekly):
    chart = build_chart({}, MONDAY, MONDAY + dt.timedelta(days=20), weekly=weekly)
    assert chart.types == []
    assert (chart.total, chart.max_total) == (0, 0)
    assert len(chart.bars) == (3 if weekly else 21)
    assert all(bar.segments == [] and bar.counts == [] for bar in chart.bars)


def test_a_range_that_ends_before_it_starts_draws_nothing():
    chart = build_chart({}, MONDAY, MONDAY - dt.timedelta(days=1), weekly=False)
    assert chart.bars == [] and chart.total == 0


# --- the limits --------------------------------------------------------------------------------


def test_the_longest_daily_chart_fits_the_plot():
    """The pages draw a range per day below DAILY_LIMIT days (92), per week from there."""
    start = MONDAY
    end = start + dt.timedelta(days=DAILY_LIMIT - 1)
    chart = build_chart({end: {"created": 1}}, start, end, weekly=False)
    assert len(chart.bars) == DAILY_LIMIT
    assert chart.bars[0].x > MARGIN_LEFT
    last = chart.bars[-1]
    assert last.x + last.width <= WIDTH
    assert all(bar.width > 1 for bar in chart.bars)


def test_the_longest_chart_is_about_105_weekly_bars():
    """The pages draw at most MAX_DAYS days (about two years), per week."""
    end = dt.date(2025, 12, 31)
    start = end - dt.timedelta(days=MAX_DAYS - 1)
    first_monday = start - dt.timedelta(days=start.weekday())
    last_monday = end - dt.timedelta(days=end.weekday())
    counts = {first_monday: {"updated": 1}, last_monday: {"updated": 2}}  # weeks by Monday
    chart = build_chart(counts, start, end, weekly=True)
    assert 104 <= len(chart.bars) <= 106
    assert (chart.bars[0].start, chart.bars[-1].start) == (first_monday, last_monday)
    assert chart.total == 3
    last = chart.bars[-1]
    assert last.x + last.width <= WIDTH
    assert last.segments[0].height == PLOT_HEIGHT


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_every_event_type_has_a_colour_readable_on_white():
    assert set(COLORS) == set(CourseEvent.EventType.values)
    for event_type, colour in COLORS.items():
        contrast = 1.05 / (_luminance(colour) + 0.05)
        assert contrast >= 3, (event_type, colour, contrast)
    assert len(set(COLORS.values())) == len(COLORS)  # no two types alike
