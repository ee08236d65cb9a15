"""Forms of the registrar's pages that are not the listings' filters (``filters.py``)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from course_audit.filters import TimestampFormField


class AsOfForm(forms.Form):
    """The as-of page's moments: ``at`` (now when left out) and, to compare with it,
    ``compare``. A value without an offset (a ``datetime-local`` input's) is read in the
    active time zone: the viewer's, as the pages' date filters are."""

    at = TimestampFormField(required=False, label=_("As of"))
    compare = TimestampFormField(required=False, label=_("Compare with"))
