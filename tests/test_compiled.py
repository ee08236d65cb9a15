"""``course_audit.compiled.CompiledLookup``: compiled once, each lookup the ORM's own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F, Value
from django.test.utils import CaptureQueriesContext

from course_audit.compiled import CompiledLookup
from course_audit.models import Course

pytestmark = pytest.mark.django_db


def by_id(pk, using):
    return Course.objects.select_related("account").filter(pk=pk).annotate(doubled=F("pk") * 2)


def test_a_lookup_builds_what_the_orm_builds(make_course):
    first = make_course(name="Biology 101")
    second = make_course(name="Chemistry 101")
    lookup = CompiledLookup(by_id, stand_ins=[-1])

    for course in (first, second, first):
        found = lookup.get("default", course.pk)
        expected = by_id(course.pk, "default").get()
        assert found is not None and found.pk == course.pk
        assert [getattr(found, f.attname) for f in Course._meta.concrete_fields] == [
            getattr(expected, f.attname) for f in Course._meta.concrete_fields
        ]
        assert found.doubled == 2 * course.pk
        assert found._state.db == "default" and not found._state.adding
    with CaptureQueriesContext(connection) as queries:
        account = lookup.get("default", first.pk).account  # joined: no query of its own
    assert account.pk == first.account_id and len(queries) == 1
    assert lookup.get("default", 10**12) is None
    # Compiled once for the database: the same SQL text every time.
    assert len(lookup._compiled) == 1


def test_a_constant_of_the_query_is_kept_and_a_changed_stand_in_falls_back(make_course):
    biology = make_course(name="Biology 101")
    chemistry = make_course(name="Chemistry 101")

    # A value of the query's own: the same whatever the stand-ins, so compiled with it.
    named = CompiledLookup(
        lambda pk, using: Course.objects.filter(pk=pk).filter(name="Biology 101"), stand_ins=[-1]
    )
    assert named.get("default", biology.pk).pk == biology.pk
    assert named.get("default", chemistry.pk) is None  # the constant is bound, not dropped
    [compiled] = named._compiled.values()
    assert compiled is not None and "Biology 101" in compiled.constants
    assert compiled.slots.count(0) == 1 and compiled.slots.count(None) == 1

    # A stand-in the query changed (``contains`` wraps it in %): never reused.
    def containing(text, using):
        return Course.objects.filter(name__contains=text)

    lookup = CompiledLookup(containing, stand_ins=["stand-in"])
    assert lookup.get("default", "Chemistry").pk == chemistry.pk
    assert lookup.get("default", "Biology").pk == biology.pk
    assert list(lookup._compiled.values()) == [None]

    def valued(pk, using):
        return Course.objects.filter(pk=pk, name=Value("Biology 101"))

    assert CompiledLookup(valued, stand_ins=[-1]).get("default", biology.pk).pk == biology.pk
    assert CompiledLookup(valued, stand_ins=[-1]).get("default", chemistry.pk) is None
    with pytest.raises(ValueError):
        CompiledLookup(valued, stand_ins=[1, 1])
    with pytest.raises(TypeError):
        CompiledLookup(valued, stand_ins=[1]).get("default")
