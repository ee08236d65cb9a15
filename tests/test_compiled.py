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


def test_a_query_with_values_of_its_own_falls_back_to_the_orm(make_course):
    course = make_course(name="Biology 101")

    def named(pk, using):
        return Course.objects.filter(pk=pk, name=Value("Biology 101"))

    lookup = CompiledLookup(
        lambda pk, using: Course.objects.filter(pk=pk).filter(name="Biology 101"), stand_ins=[-1]
    )
    assert lookup.get("default", course.pk).pk == course.pk
    assert list(lookup._compiled.values()) == [None]
    assert CompiledLookup(named, stand_ins=[-1]).get("default", course.pk).pk == course.pk
    with pytest.raises(ValueError):
        CompiledLookup(named, stand_ins=[1, 1])
    with pytest.raises(TypeError):
        CompiledLookup(named, stand_ins=[1]).get("default")
