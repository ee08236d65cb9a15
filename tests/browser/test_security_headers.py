"""The demo's Content-Security-Policy (django-csp: 'self' only, nothing inline) breaks no
page in Chromium: no violation is reported, and the pages are styled as they should be.

The API docs page sends its own policy (course_audit.api.schema): Redoc's two kinds of
<style> element are let in by hash; the only thing refused there is Redoc's "by Redocly"
logo from the internet, on purpose.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Demo

pytestmark = pytest.mark.browser

# Collected in the page itself, before any of its scripts run.
LISTEN = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.effectiveDirective} ${event.blockedURI}`);
});
"""
REDOCLY_LOGO = "img-src https://cdn.redoc.ly/redoc/logo-mini.svg"


def watched(page: Any) -> list[str]:
    """Console messages about the policy, from now on (Chromium's wording has changed
    over the years: "Refused to ..." then "... violates the following Content Security
    Policy directive")."""
    messages: list[str] = []

    def keep(message: Any) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("Refused to"):
            messages.append(message.text)

    page.on("console", keep)
    page.add_init_script(LISTEN)
    return messages


def violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__cspViolations || []"))


def style(page: Any, selector: str, prop: str) -> str:
    return str(page.locator(selector).first.evaluate(f"(el) => getComputedStyle(el).{prop}"))


def test_the_registrars_pages_break_no_policy(login: Any, demo: Demo) -> None:
    page = login("registrar")
    console = watched(page)
    course, account = demo.facts["course"], demo.facts["account"]
    for url in (
        "/audit/?q=Bio",
        f"/audit/courses/{course['id']}/",
        f"/audit/accounts/{account['id']}/?include_subaccounts=1",
        f"/audit/page-views/{demo.facts['page_view']}/",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
        assert violations(page) == [], url
        # The app's stylesheet applied: the header's colour, the skip link out of sight.
        assert style(page, ".site-header", "backgroundColor") == "rgb(31, 58, 95)", url
        assert style(page, ".skip-link", "position") == "absolute", url
    page.goto(f"/audit/courses/{course['id']}/")
    # The chart's legend: swatches sized by the stylesheet, coloured by SVG attributes.
    assert page.locator(".legend .swatch").count() >= 2
    assert 12 < float(style(page, ".legend .swatch", "width").removesuffix("px")) < 13
    assert style(page, ".legend .swatch path", "fill").startswith("rgb(")
    assert style(page, ".site-header form", "display") == "inline"  # the demo's log-out form
    assert console == []


def test_the_admin_breaks_no_policy(login: Any, demo: Demo) -> None:
    page = login("admin")
    console = watched(page)
    for url in (
        "/admin/",
        "/admin/course_audit/courseevent/",
        "/admin/course_audit/courseevent/?event_type__exact=updated",
        f"/admin/course_audit/course/{demo.facts['course']['id']}/change/",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        assert violations(page) == [], url
        # Django's admin stylesheet applied: its header bar is coloured.
        assert style(page, "#header", "backgroundColor") not in ("", "rgba(0, 0, 0, 0)"), url
    assert console == []


def test_the_api_docs_break_no_policy_but_the_logo(new_page: Any) -> None:
    page = new_page()
    console = watched(page)
    response = page.goto("/api/docs/")
    assert response is not None and response.status == 200
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    page.get_by_role("heading", name="Query by course").wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    assert set(violations(page)) <= {REDOCLY_LOGO}
    assert all("cdn.redoc.ly" in message for message in console), console
    # styled-components' rules (inserted through the CSSOM into the hashed empty <style>)
    # and perfect-scrollbar's stylesheet both applied.
    assert "Montserrat" in style(page, "h1", "fontFamily")
    assert style(page, ".ps", "overflow") == "hidden"
