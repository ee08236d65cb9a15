"""The built wheel is the app alone: no demo in it, and no dependency the demo brings.

The wheel is built once per run from a copy of the distribution's sources, in a temporary
folder (the source tree gets no ``build/`` or ``*.egg-info``). ``scripts/host_smoke`` then
installs such a wheel in a clean virtualenv and runs a foreign site against it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# What the sdist and the wheel are built from (MANIFEST.in and pyproject.toml say the rest).
SOURCES = ("pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md", "LICENSE", "docs")
# Words of the demo university: the wheel must hold none of them, whatever the file.
DEMO_WORDS = ("seed_demo", "Northwind State University", "auditlog_project")


def _build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this source tree (``COURSE_AUDIT_WHEEL`` names one already built)."""
    if "COURSE_AUDIT_WHEEL" in os.environ:
        return Path(os.environ["COURSE_AUDIT_WHEEL"])
    if importlib.util.find_spec("build") is None:
        pytest.skip("the build frontend is not installed (the dev extra has it)")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name)
        elif path.exists():
            shutil.copy2(path, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".mypy_cache")
    shutil.copytree(ROOT / "course_audit", source / "course_audit", ignore=ignore)
    result = _build(source, work / "dist")
    if result.returncode != 0:
        # The isolated build fetches setuptools from the package index: offline, there is
        # nothing to build with, which says nothing about the wheel.
        unreachable = ("Could not find a version", "No matching distribution", "NewConnection")
        if any(reason in result.stdout + result.stderr for reason in unreachable):
            pytest.skip("no build backend to be had (offline?): " + result.stderr[-300:])
        pytest.fail(f"the wheel did not build:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    [built] = (work / "dist").glob("*.whl")
    return built


def _names(wheel: Path) -> list[PurePosixPath]:
    with zipfile.ZipFile(wheel) as archive:
        return [PurePosixPath(name) for name in archive.namelist()]


def _metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    return {key: message.get_all(key) or [] for key in set(message.keys())}


def test_the_wheel_holds_the_app_and_no_demo(wheel):
    names = _names(wheel)
    assert PurePosixPath("course_audit/__init__.py") in names
    assert PurePosixPath("course_audit/management/commands/sis_import.py") in names
    top = {name.parts[0] for name in names}
    assert {part for part in top if not part.endswith(".dist-info")} == {"course_audit"}
    demo = [
        str(name)
        for name in names
        if "seed_demo" in name.name
        or "demo" in name.parts[:-1]
        or name.stem in {"catalogue", "planner", "seeder", "synthetic"}
    ]
    assert not demo


def test_no_file_of_the_wheel_speaks_of_the_demo(wheel):
    with zipfile.ZipFile(wheel) as archive:
        found = {
            (name, word)
            for name in archive.namelist()
            if not name.endswith((".mo", ".png", ".woff2")) and ".dist-info/" not in name
            for word in DEMO_WORDS
            if word in archive.read(name).decode(errors="replace")
        }
    assert not found


def test_installing_the_wheel_pulls_tqdm_only_with_an_extra(wheel):
    requires = [Requirement(line) for line in _metadata(wheel)["Requires-Dist"]]
    assert {requirement.name for requirement in requires} >= {"Django", "tqdm"}
    for requirement in requires:
        if requirement.name == "tqdm":
            assert requirement.marker is not None
            assert "extra" in str(requirement.marker), requirement
    core = {requirement.name for requirement in requires if requirement.marker is None}
    assert "tqdm" not in core
    assert "Django" in core


def test_the_sis_import_runs_without_tqdm():
    """With tqdm not installed, ``course_audit.sis`` imports and its bar draws nothing."""
    script = (
        "import sys\n"
        "sys.modules['tqdm'] = None\n"  # what an environment without tqdm looks like
        "import django\n"
        "django.setup()\n"
        "from course_audit import sis\n"
        "assert sis.tqdm.__module__ == 'course_audit.sis', sis.tqdm\n"
        "with sis.tqdm(total=3, unit='row', file=sys.stderr, disable=False) as bar:\n"
        "    bar.update(3)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
