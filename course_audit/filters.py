"""Filters of the audit listings (``start_time``, ``end_time`` and the additive ones).

Bounds are inclusive as the client sees timestamps: ``created_at`` is shown in whole
seconds, so ``start_time=T`` and ``end_time=T`` both include an event shown at ``T``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils import dateparse, timezone
from django.utils.translation import gettext as _

from course_audit.diff import TRACKED_FIELDS
from course_audit.models import AccessRecord, CourseEvent
from course_audit.querysets import changed_field_q, changed_fields_q

ONE_SECOND = dt.timedelta(seconds=1)
MAX_BIGINT = 2**63 - 1
# No well-formed value of a listing's parameter comes near this (the whole list of event
# types is 120 characters); a longer one is refused before it is parsed or echoed back.
MAX_PARAMETER_LENGTH = 1000
# "+06:00" arrives as " 06:00" when a client does not encode "+" in a query string.
_DECODED_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


class OutOfRange(ValueError):
    """A well-formed date-time that does not exist in UTC (before year 1 or after 9999)."""


def parse_timestamp(raw: str) -> dt.datetime:
    """An ISO 8601 date-time or date as an aware datetime in UTC.

    A value without an offset is read in the active time zone; a bare date is the start
    of that day. Raises ``ValueError`` for anything else.
    """
    text = _DECODED_PLUS.sub(r"\1+\2", raw.strip())
    if not (text.isascii() and text.isprintable()):
        # Python's parser would quietly accept a trailing NUL, for one.
        raise ValueError("not an ISO 8601 date-time")
    try:
        value = dateparse.parse_datetime(text)
    except ValueError as error:  # well-formed but impossible, e.g. month 13
        raise ValueError(str(error)) from error
    if value is None:
        try:
            day = dateparse.parse_date(text)
        except ValueError as error:
            raise ValueError(str(error)) from error
        if day is None:
            raise ValueError("not an ISO 8601 date-time")
        value = dt.datetime.combine(day, dt.time())
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        # Every comparison happens in UTC: the value must exist there too. It is handed on in
        # UTC because PostgreSQL refuses an offset beyond 15:59 that Python accepts (+16:00).
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError) as error:
        raise OutOfRange("out of the supported range of dates") from error


def whole_second(value: dt.datetime) -> dt.datetime:
    return value.replace(microsecond=0)


def too_long_message(length: int) -> str:
    """What a 400 says of a parameter over ``MAX_PARAMETER_LENGTH`` characters."""
    return _("is too long (%(length)d characters; at most %(limit)d)") % {
        "length": length,
        "limit": MAX_PARAMETER_LENGTH,
    }


class BoundedField(forms.Field):
    """A field that refuses a value over ``MAX_PARAMETER_LENGTH`` characters unparsed."""

    def clean(self, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_PARAMETER_LENGTH:
            raise forms.ValidationError(too_long_message(len(value)), code="max_length")
        return super().clean(value)


class TimestampFormField(BoundedField):
    """The form field of a date-time query parameter (``start_time``, ``end_time``), read
    by ``parse_timestamp``."""

    def to_python(self, value: Any) -> dt.datetime | None:
        if value in (None, ""):
            return None
        try:
            return parse_timestamp(str(value))
        except OutOfRange as error:
            raise forms.ValidationError(
                _("%(value)r is out of the supported range of dates"), params={"value": value}
            ) from error
        except ValueError as error:
            raise forms.ValidationError(
                _("%(value)r is not an ISO 8601 date-time (e.g. 2012-07-19T15:00:00-06:00)"),
                params={"value": value},
            ) from error


class TimestampFilter(django_filters.Filter):
    field_class = TimestampFormField


class CommaListField(BoundedField):
    def __init__(self, *, choices: list[str], **kwargs: Any) -> None:
        self.allowed = choices
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str] | None:
        if value in (None, ""):
            return None
        items = [item.strip() for item in str(value).split(",") if item.strip()]
        unknown = [item for item in items if item not in self.allowed]
        if unknown or not items:
            raise forms.ValidationError(
                # Translators: "allowed" lists the values the API accepts; they stay as they are.
                _("unknown value %(unknown)s; expected a comma-separated list of %(allowed)s"),
                params={
                    "unknown": ", ".join(repr(item) for item in unknown) or "''",
                    "allowed": ", ".join(self.allowed),
                },
            )
        return items


class CommaListFilter(django_filters.Filter):
    field_class = CommaListField

    def filter(self, qs: QuerySet[Any], value: list[str] | None) -> QuerySet[Any]:
        if not value:
            return qs
        return qs.filter(**{f"{self.field_name}__in": value})


class BoundedIntegerField(BoundedField, forms.IntegerField):
    pass


class IntegerFilter(django_filters.Filter):
    field_class = BoundedIntegerField


class TimeRangeFilterSet(django_filters.FilterSet):
    """``start_time`` and ``end_time`` on ``created_at``, inclusive to the second."""

    start_time = TimestampFilter(method="filter_start_time")
    end_time = TimestampFilter(method="filter_end_time")

    def filter_start_time(
        self, queryset: QuerySet[Any], name: str, value: dt.datetime
    ) -> QuerySet[Any]:
        return queryset.filter(created_at__gte=whole_second(value))

    def filter_end_time(
        self, queryset: QuerySet[Any], name: str, value: dt.datetime
    ) -> QuerySet[Any]:
        bound = whole_second(value)
        try:
            return queryset.filter(created_at__lt=bound + ONE_SECOND)
        except OverflowError:  # the last second of the calendar: nothing comes after it
            return queryset.filter(created_at__lte=bound)

    def is_valid(self) -> bool:
        valid = super().is_valid()
        if valid:
            start = self.form.cleaned_data.get("start_time")
            end = self.form.cleaned_data.get("end_time")
            if start and end and whole_second(start) > whole_second(end):
                # Translators: start_time and end_time are the API's parameter names; keep them.
                self.form.add_error("start_time", _("start_time must not be after end_time"))
                return False
        return valid


class CourseEventFilterSet(TimeRangeFilterSet):
    event_type = CommaListFilter(
        field_name="event_type", choices=[choice.value for choice in CourseEvent.EventType]
    )
    event_source = CommaListFilter(
        field_name="event_source", choices=[choice.value for choice in CourseEvent.EventSource]
    )
    user_id = IntegerFilter(field_name="user_id", min_value=1, max_value=MAX_BIGINT)
    # Beyond Canvas: the events that changed any of these tracked fields
    # (``querysets.changed_field_q``), and one SIS import's events.
    field = CommaListFilter(method="filter_field", choices=list(TRACKED_FIELDS))
    sis_batch_id = IntegerFilter(field_name="sis_batch_id", min_value=1, max_value=MAX_BIGINT)

    class Meta:
        model = CourseEvent
        fields = [
            "start_time",
            "end_time",
            "event_type",
            "event_source",
            "user_id",
            "field",
            "sis_batch_id",
        ]

    def filter_field(
        self, queryset: QuerySet[CourseEvent], name: str, value: list[str] | None
    ) -> QuerySet[CourseEvent]:
        return queryset.filter(changed_fields_q(value)) if value else queryset

    def ranges(
        self, partitions: tuple[str, list[int]] | None
    ) -> tuple[tuple[str, list[int]] | None, list[Q] | None]:
        """How the keyset reads the filtered rows of a listing read as ``partitions``: the
        ``partitions`` and ``branches`` of ``pagination.fetch_ordered``. Only after
        ``is_valid()``.

        One SIS batch's events are one range of its own index, whichever accounts the
        listing covers (they stay in its filter): read across the accounts, a subtree's
        each range would be scanned for a batch that may have left nothing there. Several
        changed fields are one range per field (each field's changes have an index).
        """
        data = self.form.cleaned_data
        if data.get("sis_batch_id") is not None:
            partitions = None
        fields = list(dict.fromkeys(data.get("field") or ()))
        branches = [changed_field_q(field) for field in fields] if len(fields) > 1 else None
        return partitions, branches


class BoundedCharField(BoundedField, forms.CharField):
    pass


class TextFilter(django_filters.Filter):
    field_class = BoundedCharField


class AccessRecordFilterSet(TimeRangeFilterSet):
    """The access log page's filters: who read (the user name, exactly), where, when."""

    who = TextFilter(field_name="user_name")
    surface = CommaListFilter(
        field_name="surface", choices=[choice.value for choice in AccessRecord.Surface]
    )

    class Meta:
        model = AccessRecord
        fields = ["start_time", "end_time", "who", "surface"]
