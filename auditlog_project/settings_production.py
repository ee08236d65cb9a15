"""Production settings of the demo host: an example to start a real deployment from.

Everything secret or site-specific comes from the environment, and nothing has a default
that would do in production:

- ``SECRET_KEY`` (required): at least 50 random characters, e.g.
  ``python -c "import secrets; print(secrets.token_urlsafe(50))"``.
- ``ALLOWED_HOSTS`` (required): the site's host names, comma-separated.
- ``DATABASE_URL`` (required): ``postgres://user:password@host:5432/name``.
- ``CSRF_TRUSTED_ORIGINS`` (optional): comma-separated ``https://`` origins, when forms are
  posted from another origin than the site's own.
- ``BEHIND_TLS_PROXY`` (optional, default off): set it to ``true`` only when the site runs
  behind a proxy that terminates TLS, **sets** ``X-Forwarded-Proto`` and ``X-Forwarded-Host``
  and **removes** any a client sent. Django then believes those headers; anywhere else a
  client could claim HTTPS or another host with them.
- ``SECURE_HSTS_SECONDS`` (optional, default one year). Start with a few minutes until HTTPS
  is known to work everywhere on the domain: browsers remember it.

Run with it::

    DJANGO_SETTINGS_MODULE=auditlog_project.settings_production \\
    SECRET_KEY=... ALLOWED_HOSTS=audit.example.edu DATABASE_URL=postgres://... \\
        python manage.py check --deploy --fail-level WARNING
    ... python manage.py migrate && python manage.py collectstatic --noinput
    ... gunicorn auditlog_project.wsgi

Static files: ``collectstatic`` puts them in ``STATIC_ROOT`` for the web server to serve
under ``STATIC_URL``.
"""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from auditlog_project.settings import *  # noqa: F403
from auditlog_project.settings import env_bool


def required(name: str) -> str:
    """The environment variable ``name``; starting without it is an error, not a default."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(f"Set the environment variable {name} (see {__name__}).")
    return value


def listed(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = False
SECRET_KEY = required("SECRET_KEY")
SECRET_KEY_FALLBACKS: list[str] = []
ALLOWED_HOSTS = listed(required("ALLOWED_HOSTS"))
CSRF_TRUSTED_ORIGINS = listed(os.environ.get("CSRF_TRUSTED_ORIGINS", ""))

DATABASES = {
    "default": dj_database_url.parse(
        required("DATABASE_URL"), conn_max_age=60, conn_health_checks=True
    )
}

# HTTPS only: plain HTTP is redirected, browsers are told to remember it (HSTS), and the
# session and CSRF cookies are never sent over plain HTTP. The session cookie stays out of
# reach of scripts (HttpOnly) and of other sites' requests but top-level links (Lax).
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Lets the domain be submitted to browsers' preload list (hstspreload.org), a commitment that
# takes months to undo: every subdomain must serve HTTPS.
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = True
# Django's defaults, stated: no sniffing of content types, the referrer only to this site,
# no framing (X-Frame-Options here, frame-ancestors in the CSP of the demo's settings).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

if env_bool("BEHIND_TLS_PROXY", False):
    # Only behind a proxy that sets these headers and strips them from clients' requests.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
