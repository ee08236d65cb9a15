"""The system checks: each misconfiguration a host can make has its id (course_audit.checks)."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.core.checks import CheckMessage, run_checks
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from course_audit import checks, integrity
from course_audit.checks import AUTH_MIDDLEWARE_PATH, MIDDLEWARE_PATH
from course_audit.middleware import AuditContextMiddleware


class HostAuditMiddleware(AuditContextMiddleware):
    """A host's own subclass, under its own path."""


class HostAuthenticationMiddleware(AuthenticationMiddleware):
    pass


HOST_AUDIT = "tests.test_checks.HostAuditMiddleware"
HOST_AUTH = "tests.test_checks.HostAuthenticationMiddleware"


def _messages() -> list[CheckMessage]:
    return [m for m in run_checks() if m.id and m.id.startswith("course_audit")]


def _ids() -> set[str]:
    return {message.id for message in _messages() if message.id}


def test_the_demo_configuration_passes_the_checks():
    assert _ids() == set()


def test_missing_middleware_is_e001(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert _ids() == {"course_audit.E001"}


def test_middleware_before_authentication_is_e002(settings):
    rest = [m for m in settings.MIDDLEWARE if m not in (MIDDLEWARE_PATH, AUTH_MIDDLEWARE_PATH)]
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *rest, AUTH_MIDDLEWARE_PATH]
    assert _ids() == {"course_audit.E002"}


def test_subclasses_of_either_middleware_count(settings):
    settings.MIDDLEWARE = [
        m.replace(MIDDLEWARE_PATH, HOST_AUDIT).replace(AUTH_MIDDLEWARE_PATH, HOST_AUTH)
        for m in settings.MIDDLEWARE
    ]
    assert _ids() == set()
    rest = [m for m in settings.MIDDLEWARE if m not in (HOST_AUDIT, HOST_AUTH)]
    settings.MIDDLEWARE = [HOST_AUDIT, *rest, HOST_AUTH]
    assert _ids() == {"course_audit.E002"}


@pytest.mark.parametrize("value", ["api/", "/api", "", 42, None, ["/api/"]])
def test_a_bad_api_path_prefix_is_e003(settings, value):
    settings.COURSE_AUDIT_API_PATH_PREFIX = value
    [message] = _messages()
    assert message.id == "course_audit.E003"
    assert message.msg == (
        "COURSE_AUDIT_API_PATH_PREFIX must be a URL path starting and ending with '/'; "
        f"it is {value!r}."
    )
    assert message.hint == "Remove it to use the default, '/api/'."


@pytest.mark.parametrize("value", ["/", "/campus-api/", "/registrar/api/v1/"])
def test_good_api_path_prefixes_pass(settings, value):
    settings.COURSE_AUDIT_API_PATH_PREFIX = value
    assert _ids() == set()


@pytest.mark.parametrize("value", ["false", 0, 1, None])
def test_a_record_page_views_that_is_not_a_bool_is_e004(settings, value):
    settings.COURSE_AUDIT_RECORD_PAGE_VIEWS = value
    assert _ids() == {"course_audit.E004"}


def test_record_page_views_false_passes(settings):
    settings.COURSE_AUDIT_RECORD_PAGE_VIEWS = False
    assert _ids() == set()


@pytest.mark.parametrize("value", [0, -1, "1000", 1.5, True, None])
def test_a_bad_max_diff_string_length_is_e005(settings, value):
    settings.COURSE_AUDIT_MAX_DIFF_STRING_LENGTH = value
    [message] = _messages()
    assert message.id == "course_audit.E005"
    assert message.msg.startswith("COURSE_AUDIT_MAX_DIFF_STRING_LENGTH must be a positive")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("no_such_module.Serializer", "does not import"),
        ("course_audit.api.serializers.NoSuchSerializer", "does not import"),
        ("course_audit.models.Course", "must name a subclass of"),
        ("course_audit.api.serializers.format_time", "must name a subclass of"),
        (42, "must be the dotted path of a serializer class"),
    ],
)
def test_a_bad_user_serializer_is_e006(settings, value, problem):
    settings.COURSE_AUDIT_USER_SERIALIZER = value
    [message] = _messages()
    assert message.id == "course_audit.E006"
    assert message.msg.startswith(f"COURSE_AUDIT_USER_SERIALIZER {problem}")


def test_a_host_user_serializer_passes(settings):
    settings.COURSE_AUDIT_USER_SERIALIZER = "tests.test_api_linked_users.DirectoryUserSerializer"
    assert _ids() == set()


def test_use_tz_off_is_e007(settings):
    settings.USE_TZ = False
    assert _ids() == {"course_audit.E007"}


def test_an_untested_database_is_w001(monkeypatch):
    monkeypatch.setattr(connections["default"], "vendor", "mysql")
    [message] = _messages()
    assert message.id == "course_audit.W001"
    assert message.msg == (
        "course_audit writes its events to the database 'default', which is mysql; "
        "it is built and tested for PostgreSQL and SQLite only."
    )


def test_the_api_docs_without_their_script_is_w002(settings):
    settings.INSTALLED_APPS = [
        app for app in settings.INSTALLED_APPS if app != "drf_spectacular_sidecar"
    ]
    assert _ids() == {"course_audit.W002"}


@pytest.mark.parametrize("value", [0, -3, "14", 2.5, True])
def test_a_bad_retention_is_e009(settings, value):
    settings.COURSE_AUDIT_RETENTION_MONTHS = value
    [message] = _messages()
    assert message.id == "course_audit.E009"
    assert message.msg.startswith("COURSE_AUDIT_RETENTION_MONTHS must be a positive integer")


@pytest.mark.parametrize("value", [None, 14])
def test_retention_may_be_a_count_or_none(settings, value):
    settings.COURSE_AUDIT_RETENTION_MONTHS = value
    assert _messages() == []


def test_a_non_boolean_access_log_is_e016(settings):
    settings.COURSE_AUDIT_ACCESS_LOG = "off"
    [message] = _messages()
    assert message.id == "course_audit.E016"
    assert message.msg == "COURSE_AUDIT_ACCESS_LOG must be True or False; it is 'off'."


def test_a_non_boolean_synchronous_commit_of_the_access_log_is_e020(settings):
    settings.COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT = "yes"
    [message] = _messages()
    assert message.id == "course_audit.E020"
    assert message.msg == (
        "COURSE_AUDIT_ACCESS_LOG_SYNCHRONOUS_COMMIT must be True or False; it is 'yes'."
    )
    assert message.hint == "Remove it to use the default, False."


@pytest.mark.parametrize("value", [0, -3, "24", 2.5, True])
def test_a_bad_access_log_retention_is_e017(settings, value):
    settings.COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS = value
    [message] = _messages()
    assert message.id == "course_audit.E017"
    assert message.msg.startswith(
        "COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS must be a positive integer"
    )


@pytest.mark.parametrize("value", [None, 24])
def test_access_log_retention_may_be_a_count_or_none(settings, value):
    settings.COURSE_AUDIT_ACCESS_LOG_RETENTION_MONTHS = value
    assert _messages() == []


def test_a_non_boolean_allow_truncate_is_e010(settings):
    settings.COURSE_AUDIT_ALLOW_TRUNCATE = "yes"
    [message] = _messages()
    assert message.id == "course_audit.E010"


@pytest.mark.parametrize("value", ["replica_db", "", "Replica", 5, ["replica"]])
def test_a_read_database_that_is_no_alias_is_e008(settings, value):
    settings.COURSE_AUDIT_READ_DATABASE = value
    [message] = _messages()
    assert message.id == "course_audit.E008"
    assert message.msg == (
        "COURSE_AUDIT_READ_DATABASE must be the alias of a database in DATABASES "
        f"('default', 'replica'); it is {value!r}."
    )
    assert message.hint == (
        "Name the alias of your read replica, or remove the setting to read from the "
        "database your routers choose."
    )


@pytest.mark.parametrize("value", ["replica", "default", None])
def test_a_read_database_alias_passes(settings, value):
    settings.COURSE_AUDIT_READ_DATABASE = value
    settings.DATABASE_ROUTERS = ["course_audit.routers.ReadOnlyFailoverRouter"]
    assert _ids() == set()


def test_a_read_database_without_the_failover_router_is_w006(settings):
    settings.COURSE_AUDIT_READ_DATABASE = "replica"
    settings.DATABASE_ROUTERS = []
    [message] = _messages()
    assert message.id == "course_audit.W006"
    assert "course_audit.routers.ReadOnlyFailoverRouter is not in DATABASE_ROUTERS" in message.msg
    assert message.hint == (
        "Put course_audit.routers.ReadOnlyFailoverRouter first in DATABASE_ROUTERS."
    )


@pytest.mark.parametrize("value", [1, 0.5, dt.timedelta(seconds=10), None])
def test_a_max_lag_of_seconds_or_none_passes(settings, value):
    settings.COURSE_AUDIT_READ_MAX_LAG = value
    assert _ids() == set()


@pytest.mark.parametrize("value", [0, -1, "30", True, dt.timedelta(0)])
def test_a_bad_max_lag_is_e014(settings, value):
    settings.COURSE_AUDIT_READ_MAX_LAG = value
    [message] = _messages()
    assert message.id == "course_audit.E014"
    assert message.msg == (
        "COURSE_AUDIT_READ_MAX_LAG must be None or a positive number of seconds or "
        f"datetime.timedelta; it is {value!r}."
    )


@pytest.mark.parametrize("value", ["direct", 5, ""])
def test_a_direct_database_that_is_no_alias_is_e015(settings, value):
    settings.COURSE_AUDIT_DIRECT_DATABASE = value
    [message] = _messages()
    assert message.id == "course_audit.E015"
    assert message.msg == (
        "COURSE_AUDIT_DIRECT_DATABASE must be the alias of a database in DATABASES; it is "
        f"{value!r}."
    )


@pytest.mark.django_db
def test_a_direct_connection_passes_the_pooler_check(settings):
    # The suite's database is the server itself, on the port its settings name.
    settings.COURSE_AUDIT_DIRECT_DATABASE = "default"
    found = checks.check_direct_connection(databases=["default"])
    assert found == []


def test_a_key_that_cannot_be_read_is_e012(settings, tmp_path):
    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "absent.pem")
    assert _ids() == {"course_audit.E012"}
    (tmp_path / "not-a-key.pem").write_text("hello")
    settings.COURSE_AUDIT_SIGNING_KEY = None
    settings.COURSE_AUDIT_TRUSTED_KEYS = [str(tmp_path / "not-a-key.pem")]
    assert _ids() == {"course_audit.E012"}


@pytest.mark.django_db
def test_no_signing_key_on_postgresql_is_w004(settings, tmp_path):
    def database_ids() -> set[str]:
        return {
            m.id
            for m in run_checks(databases=["default"])
            if m.id and m.id.startswith("course_audit")
        }

    expected = {"course_audit.W004"} if connections["default"].vendor == "postgresql" else set()
    assert database_ids() == expected
    call_command("course_audit_keygen", str(tmp_path / "signing.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "signing.pem")
    assert database_ids() == set()


@pytest.mark.parametrize("value", ["1h", -5, 0, dt.timedelta(0), True, None])
def test_a_checkpoint_max_age_that_is_no_positive_duration_is_e013(settings, value):
    settings.COURSE_AUDIT_CHECKPOINT_MAX_AGE = value
    assert _ids() == {"course_audit.E013"}


@pytest.mark.parametrize("value", [300, 0.5, dt.timedelta(minutes=20)])
def test_a_positive_checkpoint_max_age_passes(settings, value):
    settings.COURSE_AUDIT_CHECKPOINT_MAX_AGE = value
    assert _ids() == set()


@pytest.mark.django_db
def test_a_stale_newest_checkpoint_with_events_waiting_is_w005(settings, tmp_path, make_course):
    def w005() -> list[CheckMessage]:
        return [m for m in run_checks(databases=["default"]) if m.id == "course_audit.W005"]

    make_course(name="Before any key")
    assert w005() == []  # no key: W004's to say (on PostgreSQL)
    call_command("course_audit_keygen", str(tmp_path / "signing.pem"), stdout=StringIO())
    settings.COURSE_AUDIT_SIGNING_KEY = str(tmp_path / "signing.pem")
    settings.COURSE_AUDIT_DIGEST_DIR = str(tmp_path / "digests")
    [never] = w005()
    assert "No checkpoint seals the course events on 'default'" in never.msg
    assert "every few minutes" in never.hint

    integrity.seal(now=timezone.now() - dt.timedelta(hours=2))
    assert w005() == []  # old, but nothing waits: a quiet site
    make_course(name="Waiting")
    [stale] = w005()
    assert "The newest checkpoint on 'default' (#1) was made 2\xa0hours ago" in stale.msg
    settings.COURSE_AUDIT_CHECKPOINT_MAX_AGE = dt.timedelta(hours=3)
    assert w005() == []
    settings.COURSE_AUDIT_CHECKPOINT_MAX_AGE = 3600
    integrity.seal()
    assert w005() == []


@pytest.mark.parametrize("value", [0, -5, "1000", 2.5, True])
def test_a_bad_export_background_threshold_is_e018(settings, value):
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = value
    [message] = _messages()
    assert message.id == "course_audit.E018"
    assert message.msg == (
        "COURSE_AUDIT_EXPORT_BACKGROUND_ROWS must be a positive integer, or None for no "
        f"background exports; it is {value!r}."
    )
    assert message.hint == "Remove it to use the default, 100000."


@pytest.mark.parametrize("value", [None, 1, 100_000])
def test_a_background_threshold_or_none_passes(settings, value):
    settings.COURSE_AUDIT_EXPORT_BACKGROUND_ROWS = value
    assert _ids() == set()


@pytest.mark.parametrize("value", [0, -1, "30", 1.5, False])
def test_a_bad_export_retention_is_e019(settings, value):
    settings.COURSE_AUDIT_EXPORT_RETENTION_DAYS = value
    [message] = _messages()
    assert message.id == "course_audit.E019"
    assert message.msg == (
        "COURSE_AUDIT_EXPORT_RETENTION_DAYS must be a positive integer, or None to keep "
        f"every background export; it is {value!r}."
    )
    assert message.hint == "Remove it to use the default, 30."


@pytest.mark.parametrize("value", [None, 1, 365])
def test_an_export_retention_or_none_passes(settings, value):
    settings.COURSE_AUDIT_EXPORT_RETENTION_DAYS = value
    assert _ids() == set()
