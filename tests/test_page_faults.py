"""The app's pages when the database fails: 503 and ``Retry-After``, never a 500
(issue #6, item 4; the API's side is tests/test_faults.py).

The failure is a ``selectors`` function raising ``OperationalError`` (the database went
away), on every backend; tests/test_connection_faults.py ends a real PostgreSQL session.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import OperationalError
from django.urls import reverse

from course_audit import exports, selectors

MESSAGE = "The database could not complete the request; nothing was changed."


def _away(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("view", "selector"),
    [
        ("course_audit:course_history", "course_events"),
        ("course_audit:account_history", "account_events"),
    ],
)
def test_a_page_whose_database_fails_is_503_not_500(
    registrar_browser, course, monkeypatch, caplog, view, selector
):
    monkeypatch.setattr(selectors, selector, _away)
    target = course.pk if view == "course_audit:course_history" else course.account_id

    with caplog.at_level(logging.ERROR, logger="course_audit.middleware"):
        response = registrar_browser.get(reverse(view, args=[target]))

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "<title>Temporarily unavailable</title>" in body
    assert MESSAGE in body
    # The driver's message goes to the log, not the page.
    assert "server closed" not in body
    [record] = [r for r in caplog.records if r.name == "course_audit.middleware"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], OperationalError)


@pytest.mark.django_db
def test_the_page_speaks_the_readers_language(registrar_browser, course, monkeypatch):
    monkeypatch.setattr(selectors, "course_events", _away)

    response = registrar_browser.get(
        reverse("course_audit:course_history", args=[course.pk]), HTTP_ACCEPT_LANGUAGE="es"
    )

    assert response.status_code == 503
    assert '<html lang="es">' in response.content.decode()
    assert "No disponible por el momento" in response.content.decode()


@pytest.mark.django_db
def test_other_views_database_errors_are_left_to_the_host(registrar_browser, monkeypatch):
    """Only the app's own pages: a host view's error is the host's to answer."""
    from django.contrib.auth import views as auth_views

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(auth_views.PasswordChangeView, "get", broken)
    registrar_browser.raise_request_exception = True

    with pytest.raises(OperationalError):
        registrar_browser.get(reverse("password_change"))


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_an_export_whose_database_fails_at_its_start_is_503_not_an_empty_file(
    registrar_browser, course, monkeypatch, kind
):
    """An export streams, so once its 200 is out a failure can only cut the body short;
    its first rows are read before that, so a database that is away is a 503."""
    monkeypatch.setattr(exports, "keyset_rows", _away)

    response = registrar_browser.get(
        reverse("course_audit:course_export", args=[course.pk]), {"format": kind}
    )

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert MESSAGE in response.content.decode()
