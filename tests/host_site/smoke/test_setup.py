"""Installing course_audit into the site: migrations from zero, checks, static files."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import course_audit
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder


@pytest.mark.django_db
def test_every_migration_of_the_app_was_applied_from_zero():
    shipped = {
        path.stem for path in (Path(course_audit.__file__).parent / "migrations").glob("0*.py")
    }
    applied = set(
        MigrationRecorder.Migration.objects.filter(app="course_audit").values_list(
            "name", flat=True
        )
    )
    assert shipped and applied == shipped
    assert "course_audit_courseevent" in connection.introspection.table_names()


@pytest.mark.django_db
def test_the_site_s_models_and_the_app_s_migrations_agree():
    """An AutoField site (DEFAULT_AUTO_FIELD) and an email user model need no new migration."""
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_app_migrates_back_to_zero_and_forward_again():
    call_command("migrate", "course_audit", "zero", verbosity=0)
    assert "course_audit_courseevent" not in connection.introspection.table_names()
    call_command("migrate", verbosity=0)
    assert "course_audit_courseevent" in connection.introspection.table_names()


def test_the_site_passes_course_audit_s_checks():
    assert [m for m in run_checks() if (m.id or "").startswith("course_audit")] == []
    call_command("check", fail_level="WARNING", stdout=StringIO())


def test_the_app_s_static_files_are_found_and_collected():
    found = finders.find("course_audit/audit.css")
    assert found is not None
    assert Path(found).is_relative_to(Path(course_audit.__file__).parent)
    assert staticfiles_storage.url("course_audit/audit.css").startswith(
        "/assets/course_audit/audit."
    )
    collected = Path(settings.STATIC_ROOT) / staticfiles_storage.stored_name(
        "course_audit/audit.css"
    )
    assert collected.is_file()
