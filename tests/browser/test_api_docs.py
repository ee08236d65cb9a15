"""The API documentation page renders in a real browser with no internet."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_render_offline(live_server, page):
    blocked: list[str] = []

    def offline(route):
        url = route.request.url
        if url.startswith((live_server.url, "blob:", "data:")):
            route.continue_()
        else:  # anything on the internet
            blocked.append(url)
            route.abort()

    page.route("**/*", offline)
    response = page.goto(f"{live_server.url}/api/docs/")
    assert response is not None and response.status == 200
    page.get_by_role("heading", name="Query by course").wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="Query by account").is_visible()
    assert page.title() == "course_audit API"
    # The only outside request is Redoc's own "by Redocly" logo, which is decoration.
    assert all(url.startswith("https://cdn.redoc.ly/") for url in blocked), blocked
    assert screenshot(page, "api-docs", full_page=False).stat().st_size > 10_000
