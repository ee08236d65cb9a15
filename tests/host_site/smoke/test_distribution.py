"""course_audit as installed from its wheel: where it is imported from and what it ships.

``scripts/host_smoke`` sets ``COURSE_AUDIT_SOURCE`` (the source tree the wheel was built
from) and ``COURSE_AUDIT_SDIST`` (the sdist built with it).
"""

from __future__ import annotations

import os
import sys
import tarfile
from importlib import metadata
from pathlib import Path, PurePosixPath

import course_audit
import pytest
from django.core.management import get_commands

SOURCE = Path(os.environ["COURSE_AUDIT_SOURCE"]) if "COURSE_AUDIT_SOURCE" in os.environ else None
SDIST = Path(os.environ["COURSE_AUDIT_SDIST"]) if "COURSE_AUDIT_SDIST" in os.environ else None
DISTRIBUTION = metadata.distribution("course-audit")
SHIPPED = {PurePosixPath(str(path)) for path in DISTRIBUTION.files or []}
# What a source tree holds that the package does not ship.
NOT_SHIPPED = {"__pycache__", ".mypy_cache"}


def test_course_audit_comes_from_the_installed_wheel():
    location = Path(course_audit.__file__).resolve()
    assert location.is_relative_to(Path(sys.prefix).resolve())
    assert "site-packages" in location.parts
    if SOURCE is not None:
        assert not location.is_relative_to(SOURCE.resolve())
    assert DISTRIBUTION.locate_file("course_audit/__init__.py").resolve() == location


def test_the_metadata():
    meta = DISTRIBUTION.metadata
    assert meta["Name"] == "course-audit"
    assert meta["Version"] == course_audit.__version__
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert "Framework :: Django :: 5.2" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Changelog"}
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().startswith("# course_audit\n")
    requires = meta.get_all("Requires-Dist") or []
    assert any(requirement.startswith("Django") for requirement in requires)
    assert not any("dj-database-url" in r and "extra" not in r for r in requires)
    # A progress bar is the only use of tqdm: the app installs without it.
    assert not any(r.startswith("tqdm") and "extra" not in r for r in requires)


def test_the_wheel_ships_the_app_and_nothing_else():
    top = {path.parts[0] for path in SHIPPED}
    assert top == {"course_audit", f"course_audit-{course_audit.__version__}.dist-info"}
    for wanted in (
        "course_audit/py.typed",
        "course_audit/migrations/0001_initial.py",
        "course_audit/templates/course_audit/site_base.html",
        "course_audit/static/course_audit/audit.css",
        f"course_audit-{course_audit.__version__}.dist-info/licenses/LICENSE",
    ):
        assert PurePosixPath(wanted) in SHIPPED, wanted
    # The demo is the demo host's (auditlog_project.demo), never the app's.
    assert not [str(path) for path in SHIPPED if "seed_demo" in path.name]


def test_the_site_has_no_demo_command():
    assert "seed_demo" not in get_commands()
    assert "sis_import" in get_commands()


@pytest.mark.skipif(SOURCE is None, reason="COURSE_AUDIT_SOURCE is not set")
def test_every_file_of_the_app_is_in_the_wheel():
    """Migrations, templates, static files, translations (.po and .mo) and the code."""
    assert SOURCE is not None
    package = SOURCE / "course_audit"
    in_source = {
        PurePosixPath(path.relative_to(SOURCE).as_posix())
        for path in package.rglob("*")
        if path.is_file() and not NOT_SHIPPED & set(path.parts) and path.suffix != ".pyc"
    }
    missing = in_source - SHIPPED
    assert not missing, sorted(map(str, missing))
    if (package / "locale").is_dir():
        assert any(path.suffix == ".mo" for path in SHIPPED)


@pytest.mark.skipif(SDIST is None, reason="COURSE_AUDIT_SDIST is not set")
def test_the_sdist_holds_the_app_not_the_project_around_it():
    assert SDIST is not None
    with tarfile.open(SDIST) as archive:
        names = {PurePosixPath(name) for name in archive.getnames()}
    root = PurePosixPath(f"course_audit-{course_audit.__version__}")
    top = {name.relative_to(root).parts[0] for name in names if name != root}
    assert {"course_audit", "LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= top
    assert not top & {"auditlog_project", "tests", "bench", "scripts", "templates", "manage.py"}
    assert root / "course_audit/migrations/0001_initial.py" in names
