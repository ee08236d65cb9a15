"""The tags that show events in templates (``{% load course_audit %}``): the HTML is
``presentation``'s, built in Python once per event instead of a template per cell."""

from __future__ import annotations

from collections.abc import Iterable

from django import template
from django.utils.safestring import SafeString

from course_audit import presentation

register = template.Library()


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
) -> SafeString:
    """``{% event_items items show_course=... %}``: a timeline's events
    (``presentation.event_items``)."""
    return presentation.event_items(
        items,
        show_course=bool(show_course),
        user_filter=bool(user_filter),
        filter_links=filter_links or "",
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
