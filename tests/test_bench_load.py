"""The load test's own yardsticks (bench/load.py): the SIS files it generates leave exactly
the courses its check expects, and its readers follow Canvas's ``Link`` header."""

from __future__ import annotations

import itertools

import pytest

from bench import load
from course_audit import sis
from course_audit.models import Course


@pytest.mark.django_db
def test_the_generated_sis_files_leave_the_courses_the_check_expects(
    root_account, department, tmp_path, monkeypatch
):
    monkeypatch.setattr(load, "SIS_ROWS", 30)
    names: list[dict[str, str]] = []
    for number in (1, 2, 3, 4):
        path = load.sis_file(tmp_path, number, [department.sis_account_id])

        batch = sis.import_courses_csv(file=path, root_account=root_account)

        assert (batch.rows_total, batch.rows_skipped) == (30 + load.SIS_BAD_ROWS, 2)
        expected = load.expected_sis_courses(path)
        found = {
            course.sis_course_id: (course.name, course.workflow_state)
            for course in Course.objects.filter(sis_course_id__startswith="LOAD-")
        }
        assert found.keys() == expected.keys() and len(found) == 30
        for sis_id, (name, state) in expected.items():
            assert found[sis_id][0] == name
            if state != "active":  # "active" keeps whatever state the course had
                assert found[sis_id][1] == state
        names.append({sis_id: name for sis_id, (name, _) in expected.items()})
    # Each run renames a third of the courses, so every run has work to do.
    for before, after in itertools.pairwise(names):
        assert sum(before[key] != after[key] for key in before) == 10


def test_a_reader_finds_next_in_canvas_link_header():
    header = (
        '<http://127.0.0.1:8000/api/v1/audit/course/courses/1?page=a&per_page=5>; rel="current",'
        '<http://127.0.0.1:8000/api/v1/audit/course/courses/1?page=b&per_page=5>; rel="next",'
        '<http://127.0.0.1:8000/api/v1/audit/course/courses/1?page=first&per_page=5>; rel="first"'
    )

    links = {rel: url for url, rel in load.LINK.findall(header)}

    assert list(links) == ["current", "next", "first"]
    assert links["next"] == "http://127.0.0.1:8000/api/v1/audit/course/courses/1?page=b&per_page=5"
