"""Everything course_audit serves, for one ``include()`` in the host's URLconf::

    path("", include("course_audit.urls")),

The registrar's pages are under ``audit/`` (they need a login: set ``LOGIN_URL``), the REST
API under ``api/v1/`` (Canvas's paths), its OpenAPI schema at ``api/schema/`` and its
documentation at ``api/docs/``. The pages, the schema and the docs are named in the
``course_audit`` namespace (``page_urls.py``: ``course_audit:course_history``), the API in
``course_audit_api``.
"""

from __future__ import annotations

from django.urls import include, path

from course_audit import page_urls

# The pages that had a flat name before the namespace; pages added since have none.
_FLAT_NAMED = (
    "home",
    "course_history",
    "course_export",
    "account_history",
    "account_export",
    "page_view",
    "set_timezone",
    "schema",
    "docs",
)
DEPRECATED_NAMES = {f"course_audit_{name}": f"course_audit:{name}" for name in _FLAT_NAMED}
"""The pages' names before the namespace, each with its namespaced name
(``course_audit_home``: ``course_audit:home``). Deprecated: they still reverse, to the same
paths, for hosts that name them; a request always resolves to the namespaced name."""

urlpatterns = [
    path("", include(page_urls)),
    path("api/v1/", include("course_audit.api.urls")),
    # The same pages once more under their deprecated names, for reverse() only: listed
    # after the namespaced ones, they never answer a request.
    *(
        path(str(pattern.pattern), pattern.callback, name=f"course_audit_{pattern.name}")
        for pattern in page_urls.urlpatterns
        if pattern.name in _FLAT_NAMED
    ),
]
