"""The tags that show events and the activity chart in templates (``{% load course_audit
%}``): the HTML is ``presentation``'s and ``charts``', built in Python instead of a
template per cell."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from course_audit import charts, integrity, presentation, replication

register = template.Library()


@register.simple_tag
def audit_read_only() -> bool:
    """``{% audit_read_only as read_only %}``: whether the page is served from the standby
    because the primary is away (``replication``): nothing can be changed meanwhile."""
    return replication.read_only()


@register.simple_tag
def diff_table(diff: Iterable[presentation.Row]) -> SafeString:
    """``{% diff_table rows %}``: an event's data as a table (``presentation.diff_table``)."""
    return presentation.diff_table(diff)


@register.simple_tag
def event_items(
    items: Iterable[presentation.ShownEvent],
    show_course: bool = False,
    user_filter: bool = False,
    filter_links: str = "",
    seals: integrity.Seals | None = None,
) -> SafeString:
    """``{% event_items items show_course=... seals=... %}``: a timeline's events
    (``presentation.event_items``)."""
    return presentation.event_items(
        items,
        show_course=bool(show_course),
        user_filter=bool(user_filter),
        filter_links=filter_links or "",
        seals=seals or None,
    )


@register.simple_tag
def event_item(
    item: presentation.ShownEvent,
    show_course: bool = False,
    user_filter: bool = False,
    filter_links: str = "",
) -> SafeString:
    """``{% event_item item show_course=... %}``: one event of a timeline
    (``presentation.event_item``)."""
    return presentation.event_item(
        item,
        show_course=bool(show_course),
        user_filter=bool(user_filter),
        filter_links=filter_links or "",
    )


@register.simple_tag
def chart_bars(chart: charts.Chart) -> SafeString:
    """``{% chart_bars chart %}``: the chart's bars as SVG (``charts.bars_svg``)."""
    return charts.bars_svg(chart)


@register.simple_tag
def chart_rows(chart: charts.Chart) -> SafeString:
    """``{% chart_rows chart %}``: the rows of the chart's table (``charts.table_rows``)."""
    return charts.table_rows(chart)


@register.simple_tag
def time_zone_options(names: Sequence[str], selected: str) -> SafeString:
    """``{% time_zone_options names selected %}``: an ``<option>`` per time zone name, the
    ``selected`` one marked: the same few hundred names on every page, built once."""
    return _time_zone_options(tuple(names), selected)


@lru_cache(maxsize=64)
def _time_zone_options(names: tuple[str, ...], selected: str) -> SafeString:
    # Every name is escaped.
    return mark_safe(
        "".join(
            f"<option{' selected' if name == selected else ''}>{escape(name)}</option>"
            for name in names
        )
    )
