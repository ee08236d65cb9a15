"""Translations: the pages in Spanish, the API's English errors unchanged, and a catalogue
that is complete, fresh and compiled."""

from __future__ import annotations

import datetime as dt
import gettext
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

import course_audit
from course_audit import services
from course_audit.models import CourseEvent

APP = Path(course_audit.__file__).resolve().parent
CATALOGUE = APP / "locale" / "es" / "LC_MESSAGES"
T0 = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC)
SPANISH = {"HTTP_ACCEPT_LANGUAGE": "es"}


def text_of(response) -> str:
    """The page's text as a reader gets it: no tags, entities decoded, spaces collapsed."""
    without_tags = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(without_tags))


def assert_no_words(text: str, *words: str) -> None:
    found = [word for word in words if re.search(rf"\b{re.escape(word)}\b", text)]
    assert not found, f"still in English: {found}"


# --- the pages -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_course_history_page_in_spanish(registrar_browser, course, add_events):
    # Older than the course's own "created" event, the newest; none of them has an actor.
    add_events(course, 30, when=T0, step=dt.timedelta(minutes=1), event_type="published")
    url = reverse("course_audit:course_history", args=[course.pk])

    response = registrar_browser.get(url, **SPANISH)

    assert response.status_code == 200
    assert response["Content-Language"] == "es"
    page = response.content.decode()
    assert '<html lang="es">' in page
    assert re.search(r"<legend>\s*Tipos de evento\s*</legend>", page)
    assert re.search(r"<legend>\s*Orígenes\s*</legend>", page)
    assert re.search(r'class="badge badge-created">\s*Creado\s*<', page)
    assert re.search(r'class="badge badge-published">\s*Publicado\s*<', page)
    text = text_of(response)
    assert "Historial del curso Biology 101" in text
    assert "Filtros" in text
    assert "Aplicar filtros" in text
    assert "Más antiguos →" in text
    assert "Eventos, los más recientes primero" in text
    assert "31 eventos del" in text  # the chart's description, a plural
    assert "Descargar CSV" in text
    assert re.search(r"\bpor sistema\b", text)
    assert_no_words(
        text,
        *("Filters", "Event types", "Sources", "Apply filters", "Older", "Newer"),
        *("Created", "Published", "system", "by"),
    )

    older = re.search(r'href="\?([^"]+)" rel="next"', page)
    assert older is not None
    second = registrar_browser.get(f"{url}?{html.unescape(older.group(1))}", **SPANISH)
    assert second.status_code == 200
    text = text_of(second)
    assert "← Más recientes" in text
    assert re.search(r'class="badge badge-published">\s*Publicado\s*<', second.content.decode())
    assert_no_words(text, "Newer", "Older", "system", "by", "Published")


@pytest.mark.django_db
def test_the_home_page_in_spanish(registrar_browser, course):
    services.course_delete(course=course, user=None)

    response = registrar_browser.get(reverse("course_audit:home"), {"q": "Bio"}, **SPANISH)

    assert response.status_code == 200
    text = text_of(response)
    for spanish in ("Buscar un curso", "Nombre, código o id del SIS", "Cuentas", "Eliminado"):
        assert spanish in text
    assert re.search(r'<button type="submit">\s*Buscar\s*</button>', response.content.decode())
    assert_no_words(text, "Find a course", "Accounts", "Search", "Deleted")


@pytest.mark.django_db
def test_a_filter_error_is_spanish_on_the_page_and_unchanged_in_the_api(
    registrar_browser, course, caller, root_account, admin_role
):
    url = reverse("course_audit:course_history", args=[course.pk])

    page = registrar_browser.get(url, {"start_time": "yesterday"}, **SPANISH)
    reversed_range = registrar_browser.get(
        url, {"start_time": "2025-03-05", "end_time": "2025-03-01"}, **SPANISH
    )

    assert page.status_code == 400
    text = text_of(page)
    assert "Corrija estos filtros:" in text
    assert (
        "Desde: 'yesterday' no es una fecha y hora ISO 8601 (p. ej., 2012-07-19T15:00:00-06:00)"
    ) in text
    assert_no_words(text, "is not an ISO 8601 date-time", "Please correct these filters")
    assert reversed_range.status_code == 400
    assert "Desde: start_time no debe ser posterior a end_time" in text_of(reversed_range)

    # The API's clients, with or without a language, read the contract's English.
    api = caller("api", (root_account, admin_role))
    path = f"/api/v1/audit/course/courses/{course.pk}"
    for headers in ({}, {"HTTP_ACCEPT_LANGUAGE": "en"}):
        response = api.client.get(
            path,
            {"start_time": "yesterday", "event_type": "renamed"},
            HTTP_AUTHORIZATION=f"Bearer {api.token}",
            **headers,
        )
        assert response.status_code == 400
        assert response.json() == {
            "errors": [
                {
                    "message": "start_time: 'yesterday' is not an ISO 8601 date-time "
                    "(e.g. 2012-07-19T15:00:00-06:00)"
                },
                {
                    "message": "event_type: unknown value 'renamed'; expected a comma-separated "
                    "list of " + ", ".join(CourseEvent.EventType.values)
                },
            ]
        }


# --- the catalogue -------------------------------------------------------------------------


def gettext_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"GNU gettext's {name} is not installed: the catalogue cannot be checked "
            "(install the gettext package, e.g. apt-get install gettext)",
            pytrace=False,
        )
    return path


def compiled(po: Path, mo: Path) -> gettext.GNUTranslations:
    """The catalogue ``msgfmt`` makes of ``po``: its translated, non-fuzzy entries."""
    subprocess.run([gettext_tool("msgfmt"), "--check", "-o", mo, po], check=True)
    with mo.open("rb") as file:
        return gettext.GNUTranslations(file)


def by_msgid(catalogue: gettext.GNUTranslations) -> dict[str, list[str]]:
    """Each message (its context, if any, before a \\x04) with its translations: one, or
    one per plural form."""
    entries: dict[str, list[str]] = {}
    for key, value in catalogue._catalog.items():
        entries.setdefault(key[0] if isinstance(key, tuple) else key, []).append(value)
    entries.pop("", None)  # the header
    return entries


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    """The messages ``makemessages -l es`` extracts from the app as it is now."""
    gettext_tool("xgettext")
    gettext_tool("msgmerge")
    copy = tmp_path_factory.mktemp("app") / "course_audit"
    shutil.copytree(APP, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(copy)
        call_command("makemessages", locale=["es"], verbosity=0)
    po = copy / "locale" / "es" / "LC_MESSAGES" / "django.po"
    # Every entry is untranslated; msgen fills in the msgids so that msgfmt keeps them all.
    filled = po.with_suffix(".en.po")
    subprocess.run([gettext_tool("msgen"), "-o", filled, po], check=True)
    subprocess.run([gettext_tool("msgfmt"), "-o", po.with_suffix(".mo"), filled], check=True)
    with po.with_suffix(".mo").open("rb") as file:
        return set(by_msgid(gettext.GNUTranslations(file)))


def test_the_catalogue_translates_every_string_and_nothing_else(extracted, tmp_path):
    po = CATALOGUE / "django.po"
    committed = compiled(po, tmp_path / "django.mo")
    plural_forms = committed.info()["plural-forms"]
    forms = int(re.search(r"nplurals=(\d+)", plural_forms).group(1))
    translations = by_msgid(committed)

    def translated(msgid: str) -> bool:
        found = translations.get(msgid, [])
        return all(found) and len(found) in (1, forms)

    missing = sorted(msgid for msgid in extracted if not translated(msgid))
    assert not missing, f"untranslated or fuzzy in {po}: {missing}"
    stale = sorted(translations.keys() - extracted)
    assert not stale, f"no longer in the code: {stale}; run makemessages -l es in course_audit/"
    assert "#~" not in po.read_text(encoding="utf-8"), f"obsolete entries in {po}"
    assert len(extracted) > 200


def test_the_compiled_catalogue_is_the_po_file(tmp_path):
    fresh = compiled(CATALOGUE / "django.po", tmp_path / "django.mo")
    with (CATALOGUE / "django.mo").open("rb") as file:
        shipped = gettext.GNUTranslations(file)
    assert shipped._catalog == fresh._catalog, (
        "django.mo is out of date: run django-admin compilemessages in course_audit/"
    )
