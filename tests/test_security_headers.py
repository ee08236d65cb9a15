"""Security headers on the pages, CSP-clean templates, cookies over HTTPS and the production
settings example (issue #6, item 5).

The demo host (``auditlog_project.settings``, which the test settings extend) sets its
Content-Security-Policy with django-csp; course_audit's templates need nothing inline, and
its API docs page sends a policy of its own. ``tests/browser/test_security_headers.py``
checks in Chromium that no page breaks that policy.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from course_audit import services
from course_audit.api.schema import DOCS_CONTENT_SECURITY_POLICY
from course_audit.context import audit_context
from course_audit.models import Course, CourseEvent, PageView

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[1]
# django-csp writes the directives in no fixed order.
DEMO_POLICY = {
    "default-src 'self'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
}
T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
# Markup a strict policy refuses: inline <style>, style="" attributes, inline <script>
# (one without src) and event-handler attributes.
INLINE_STYLE_ELEMENT = re.compile(r"<style[\s>]", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
HANDLER_ATTRIBUTE = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture
def superuser_browser(make_user) -> Client:
    user = make_user("admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def history(course: Course, registrar_browser: Client) -> Course:
    """A course whose history shows every kind of markup: diffs, several event types (the
    chart's legend), a page view."""
    user = registrar_browser.user  # type: ignore[attr-defined]
    with audit_context(user=user, source=CourseEvent.EventSource.MANUAL):
        services.course_update(course=course, name="Biology 102", course_code="BIO102")
        services.course_publish(course=course)
        services.course_conclude(course=course)
    return course


def pages(course: Course) -> list[str]:
    return [
        reverse("course_audit:home") + "?q=Bio",
        reverse("course_audit:course_history", args=[course.pk]),
        reverse("course_audit:account_history", args=[course.account_id])
        + "?include_subaccounts=1",
        reverse("course_audit:account_history", args=[course.account.root_account_id]),
    ]


def directives(policy: str) -> set[str]:
    return {part.strip() for part in policy.split(";") if part.strip()}


def assert_hardened(response: Any, policy: set[str] = DEMO_POLICY) -> None:
    assert directives(response["Content-Security-Policy"]) == policy
    assert not [part for part in policy if "unsafe-" in part]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def assert_csp_clean(html: str, url: str) -> None:
    for pattern in (INLINE_STYLE_ELEMENT, STYLE_ATTRIBUTE, INLINE_SCRIPT, HANDLER_ATTRIBUTE):
        assert not pattern.search(html), (url, pattern.pattern, pattern.search(html))


# --- headers and templates -----------------------------------------------------------------


def test_the_registrars_pages_are_hardened_and_csp_clean(registrar_browser, history):
    view = PageView.objects.create(
        request_id=uuid.uuid4(),
        context_type="Course",
        context_id=history.pk,
        account_id=history.account_id,
        url="https://testserver/admin/",
    )
    urls = [*pages(history), reverse("course_audit:page_view", args=[view.pk])]
    for url in urls:
        response = registrar_browser.get(url)
        assert response.status_code == 200, url
        assert_hardened(response)
        html = response.content.decode()
        assert_csp_clean(html, url)
        assert 'rel="stylesheet" href="/static/course_audit/audit.css"' in html
    chart = registrar_browser.get(urls[1]).content.decode()
    # The legend: created, updated, published, concluded.
    assert chart.count('class="swatch"') == 4


def test_error_pages_are_hardened_too(registrar_browser, course, client):
    bad = registrar_browser.get(
        reverse("course_audit:course_history", args=[course.pk]), {"start_time": "nope"}
    )
    assert bad.status_code == 400
    assert_hardened(bad)
    assert_csp_clean(bad.content.decode(), "400 page")
    login = client.get(reverse("login"))
    assert_hardened(login)
    assert_csp_clean(login.content.decode(), "login")


def test_the_admin_is_hardened(superuser_browser, history):
    for url in (
        reverse("admin:course_audit_courseevent_changelist"),
        reverse("admin:course_audit_course_change", args=[history.pk]),
    ):
        response = superuser_browser.get(url)
        assert response.status_code == 200
        assert_hardened(response)


def test_the_api_docs_page_sends_its_own_policy(client):
    response = client.get(reverse("course_audit:docs"))
    assert response.status_code == 200
    # The host's django-csp keeps the header the view set.
    assert_hardened(response, directives(DOCS_CONTENT_SECURITY_POLICY))
    assert "script-src" not in DOCS_CONTENT_SECURITY_POLICY  # default-src 'self' holds
    assert "frame-ancestors 'none'" in DOCS_CONTENT_SECURITY_POLICY
    html = response.content.decode()
    assert_csp_clean(html, "api docs")
    assert 'src="/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"' in html


def test_the_api_docs_policy_does_not_depend_on_the_host(client, settings):
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if not name.startswith("csp.")]
    response = client.get(reverse("course_audit:docs"))
    assert response["Content-Security-Policy"] == DOCS_CONTENT_SECURITY_POLICY


def test_the_api_answers_json_with_nosniff(caller, root_account, admin_role, course):
    api = caller("registrar", (root_account, admin_role))
    response = api.get(f"/api/v1/courses/{course.pk}")
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"


# --- the production settings ----------------------------------------------------------------

PRODUCTION = "auditlog_project.settings_production"
SECRET = "k" * 10 + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_"


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE=PRODUCTION,
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="audit.example.edu",
        DATABASE_URL="postgres://audit@db.example.edu:5432/course_audit",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_under_the_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."
    assert done.stderr == ""


def test_check_deploy_fails_under_the_demo_settings():
    """The check is worth something: the demo's own settings are not for production."""
    env = production_env(DJANGO_SETTINGS_MODULE="auditlog_project.settings")
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 1
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in done.stderr, check


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"])
def test_the_production_settings_refuse_to_start_without(missing):
    env = production_env()
    env.pop(missing, None)
    done = manage("check", env=env)
    assert done.returncode == 1
    assert f"Set the environment variable {missing}" in done.stderr


def load_production() -> Any:
    """The production settings module as the environment makes it now (a fresh import:
    ``importlib.reload`` would keep names a previous run set)."""
    sys.modules.pop(PRODUCTION, None)
    return importlib.import_module(PRODUCTION)


@pytest.fixture
def production(settings, monkeypatch) -> Any:
    """The settings the production example changes from the demo's, applied to this test
    (the database and logging stay the test run's)."""
    for key, value in production_env(ALLOWED_HOSTS="testserver").items():
        if key != "DJANGO_SETTINGS_MODULE":
            monkeypatch.setenv(key, value)
    base = importlib.import_module("auditlog_project.settings")
    module = load_production()
    changed = {
        name: getattr(module, name)
        for name in dir(module)
        if name.isupper()
        and name not in {"DATABASES", "LOGGING"}
        and getattr(module, name) != getattr(base, name, object())
    }
    assert {"DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE"} <= set(changed)
    for name, value in changed.items():
        setattr(settings, name, value)
    return settings


def test_a_login_over_https_sets_secure_httponly_cookies(production, make_user):
    user = make_user("registrar")
    browser = Client(enforce_csrf_checks=True)
    login_url = reverse("login")
    form = browser.get(login_url, secure=True)
    assert form.status_code == 200
    csrf = form.cookies["csrftoken"]
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Lax"
    response = browser.post(
        login_url,
        {
            "username": user.get_username(),
            "password": "demo",
            "csrfmiddlewaretoken": csrf.value,
            "next": "/audit/",
        },
        secure=True,
        HTTP_REFERER=f"https://testserver{login_url}",
    )
    assert response.status_code == 302
    assert response["Location"] == "/audit/"
    session = response.cookies[production.SESSION_COOKIE_NAME]
    assert session.value
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert response.cookies["csrftoken"]["secure"] is True  # rotated at login
    assert response["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains; preload")
    assert browser.get("/audit/", secure=True).status_code == 200


def test_plain_http_is_redirected_to_https(production):
    response = Client().get("/audit/?q=x")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/audit/?q=x"
    assert "Strict-Transport-Security" not in response  # only ever sent over HTTPS


def test_the_production_settings_trust_a_proxy_only_when_told(monkeypatch):
    for key, value in production_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BEHIND_TLS_PROXY", raising=False)
    module = load_production()
    assert not hasattr(module, "SECURE_PROXY_SSL_HEADER")
    assert not getattr(module, "USE_X_FORWARDED_HOST", False)
    monkeypatch.setenv("BEHIND_TLS_PROXY", "true")
    module = load_production()
    assert module.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert module.USE_X_FORWARDED_HOST is True
    sys.modules.pop(PRODUCTION, None)
