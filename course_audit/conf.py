"""Settings of course_audit, read lazily so ``override_settings`` just works.

Every setting is optional; the defaults suit most sites.
"""

from __future__ import annotations

from django.conf import settings


class Settings:
    @property
    def API_PATH_PREFIX(self) -> str:
        """Requests whose path starts with this prefix are recorded with source ``api``."""
        return str(getattr(settings, "COURSE_AUDIT_API_PATH_PREFIX", "/api/"))

    @property
    def RECORD_PAGE_VIEWS(self) -> bool:
        """Store a ``PageView`` for each request that records at least one course event."""
        return bool(getattr(settings, "COURSE_AUDIT_RECORD_PAGE_VIEWS", True))

    @property
    def MAX_DIFF_STRING_LENGTH(self) -> int:
        """Strings in an event's diff are cut to this many characters (Canvas: 1000)."""
        return int(getattr(settings, "COURSE_AUDIT_MAX_DIFF_STRING_LENGTH", 1000))


conf = Settings()
