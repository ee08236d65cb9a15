"""System checks for a host's configuration of course_audit."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.utils.translation import gettext as _

MIDDLEWARE_PATH = "course_audit.middleware.AuditContextMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """course_audit.E001: the middleware is missing; E002: it runs before authentication."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return [
            Error(
                _("'%(middleware)s' is not in MIDDLEWARE.") % {"middleware": MIDDLEWARE_PATH},
                hint=_(
                    "Without it, changes made in requests are recorded without actor, "
                    "source or request id. Add it after AuthenticationMiddleware."
                ),
                id="course_audit.E001",
            )
        ]
    if AUTH_MIDDLEWARE_PATH in middleware and middleware.index(MIDDLEWARE_PATH) < middleware.index(
        AUTH_MIDDLEWARE_PATH
    ):
        return [
            Error(
                _("'%(middleware)s' must come after '%(auth)s' in MIDDLEWARE.")
                % {"middleware": MIDDLEWARE_PATH, "auth": AUTH_MIDDLEWARE_PATH},
                hint=_("It reads request.user to attribute events."),
                id="course_audit.E002",
            )
        ]
    return []
