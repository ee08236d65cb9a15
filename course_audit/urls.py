"""Everything course_audit serves, for one ``include()`` in the host's URLconf::

    path("", include("course_audit.urls")),

The REST API is under ``api/v1/`` (Canvas's paths).
"""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("course_audit.api.urls")),
]
