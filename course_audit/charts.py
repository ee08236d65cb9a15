"""The activity chart of the history pages: stacked bars drawn as SVG on the server, so it
needs no JavaScript, with the same numbers as a table for screen readers and printing.

The bars and the table's rows are HTML built here (``bars_svg``, ``table_rows``), which
``_chart.html`` places: through the template, a segment's few values cost more than the
page's SQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping

from django.conf import settings
from django.utils import dateformat, formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from course_audit.models import CourseEvent

EventType = CourseEvent.EventType

# One colour per event type, each at least 3:1 against white (WCAG 1.4.11).
COLORS: dict[str, str] = {
    EventType.CREATED: "#1b6e3a",
    EventType.UPDATED: "#1f5fa8",
    EventType.PUBLISHED: "#0b7a75",
    EventType.UNPUBLISHED: "#8a5a00",
    EventType.CONCLUDED: "#5b3f99",
    EventType.UNCONCLUDED: "#8e3f8e",
    EventType.DELETED: "#b3261e",
    EventType.RESTORED: "#4d7a1f",
    EventType.COPIED_FROM: "#35556b",
    EventType.COPIED_TO: "#56707f",
    EventType.RESET_FROM: "#7a4a2a",
    EventType.RESET_TO: "#995a33",
}
WIDTH = 720
HEIGHT = 200
MARGIN_LEFT = 36
MARGIN_BOTTOM = 24
DAILY_LIMIT = 92  # a longer range is drawn per week
MAX_DAYS = 2 * 366  # at most about 105 weekly bars


@dataclasses.dataclass(frozen=True)
class Segment:
    event_type: str
    label: str
    count: int
    y: float
    height: float
    color: str


@dataclasses.dataclass(frozen=True)
class Bar:
    start: dt.date
    x: float
    width: float
    total: int
    segments: list[Segment]
    counts: list[int]  # per type of ``Chart.types``, for the table


@dataclasses.dataclass(frozen=True)
class Chart:
    start: dt.date
    end: dt.date
    weekly: bool
    bars: list[Bar]
    types: list[tuple[str, str, str]]  # (value, label, colour) of the types present
    max_total: int
    total: int
    clipped: bool = False  # the range was longer than MAX_DAYS: only its end is drawn
    capped_at: int = 0  # the range held more events than this: only the newest are drawn
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = MARGIN_LEFT
    plot_bottom: int = HEIGHT - MARGIN_BOTTOM


def buckets(start: dt.date, end: dt.date, *, weekly: bool) -> list[dt.date]:
    """Every day (or every week's Monday) from ``start`` to ``end``."""
    if weekly:
        start -= dt.timedelta(days=start.weekday())
    step = dt.timedelta(days=7 if weekly else 1)
    days = []
    while start <= end:
        days.append(start)
        start += step
    return days


def build_chart(
    counts: Mapping[dt.date, Mapping[str, int]], start: dt.date, end: dt.date, *, weekly: bool
) -> Chart:
    """Lay out ``counts`` (from ``selectors.event_counts``) as stacked bars."""
    present = {event_type for per_type in counts.values() for event_type in per_type}
    types = [
        (choice.value, str(choice.label), COLORS[choice.value])
        for choice in EventType
        if choice.value in present
    ]
    days = buckets(start, end, weekly=weekly)
    totals = [sum(counts.get(day, {}).values()) for day in days]
    max_total = max(totals, default=0)
    plot_width = WIDTH - MARGIN_LEFT
    plot_height = HEIGHT - MARGIN_BOTTOM - 8
    slot = plot_width / max(len(days), 1)
    bars = []
    for index, (day, total) in enumerate(zip(days, totals, strict=True)):
        per_type = counts.get(day, {})
        segments = []
        bottom = float(HEIGHT - MARGIN_BOTTOM)
        for value, label, color in types:
            count = per_type.get(value, 0)
            if not count:
                continue
            height = plot_height * count / max_total
            bottom -= height
            segments.append(Segment(value, label, count, round(bottom, 2), round(height, 2), color))
        bars.append(
            Bar(
                start=day,
                x=round(MARGIN_LEFT + index * slot + slot * 0.1, 2),
                width=round(max(slot * 0.8, 1), 2),
                total=total,
                segments=segments,
                counts=[per_type.get(value, 0) for value, _, _ in types],
            )
        )
    return Chart(
        start=start,
        end=end,
        weekly=weekly,
        bars=bars,
        types=types,
        max_total=max_total,
        total=sum(totals),
    )


def _days(chart: Chart) -> Callable[[Bar], str]:
    """A bar's day as the template filter ``date:"DATE_FORMAT"`` shows it, escaped; the
    language's format looked up once, not once per bar."""
    shape = formats.get_format("DATE_FORMAT")
    return lambda bar: escape(dateformat.format(bar.start, shape))


def _numbers() -> Callable[[int], str]:
    """How the template shows a count: ``formats.localize``, which without thousand
    separators is the plain number (and much cheaper as such)."""
    if settings.USE_THOUSAND_SEPARATOR:
        return lambda value: escape(formats.localize(value))
    return str


def bars_svg(chart: Chart) -> SafeString:
    """The SVG groups of the bars that hold events: a rectangle per type, each titled."""
    number, day_of = _numbers(), _days(chart)
    labels: dict[str, str] = {}
    groups = []
    for bar in chart.bars:
        if not bar.total:
            continue
        day = day_of(bar)
        x, width = escape(str(bar.x)), escape(str(bar.width))
        rects = []
        for segment in bar.segments:
            if segment.event_type not in labels:
                labels[segment.event_type] = escape(segment.label)
            rects.append(
                f'<rect x="{x}" y="{escape(str(segment.y))}" width="{width}" '
                f'height="{escape(str(segment.height))}" fill="{escape(segment.color)}">'
                f"<title>{day} · {labels[segment.event_type]}: {number(segment.count)}"
                "</title></rect>"
            )
        groups.append(
            f"\n    <g>\n      <title>{day}: {number(bar.total)}</title>\n      "
            f"{''.join(rects)}\n    </g>\n    "
        )
    # Every value is escaped above.
    return mark_safe("".join(groups))


def table_rows(chart: Chart) -> SafeString:
    """The rows of the chart's table: a day (or week) per row, a count per type, the total."""
    number, day_of = _numbers(), _days(chart)
    rows = []
    for bar in chart.bars:
        if not bar.total:
            continue
        counts = "".join(f"<td>{number(count)}</td>" for count in bar.counts)
        rows.append(
            f'<tr><th scope="row">{day_of(bar)}</th>{counts}<td>{number(bar.total)}</td></tr>'
        )
    # Every value is escaped above.
    return mark_safe("".join(rows))
