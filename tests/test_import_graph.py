"""The app's imports flow one way: a graph built from the source has no cycle.

Every import counts, at the top of a module or inside a function, except those under
``if TYPE_CHECKING:`` (they never run). Migrations are left out: Django loads them apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = "course_audit"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(ROOT.rglob("*.py"))
        if "migrations" not in path.relative_to(ROOT).parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: outside ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _resolve(name: str, known: Mapping[str, Path]) -> str | None:
    """The app's module that importing ``name`` loads (its package for a name in it)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                # ``from course_audit import recording`` loads the module recording; a name
                # that is no module (``from course_audit.models import Course``) its module.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            for target in targets:
                resolved = _resolve(target, known) if target.split(".")[0] == PACKAGE else None
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the list of its modules (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state:
                found = visit(successor)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_detector_finds_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking():
    graph = import_graph()
    # querysets imports recording at its top; models imports querysets.
    assert "course_audit.recording" in graph["course_audit.querysets"]
    assert "course_audit.querysets" in graph["course_audit.models"]
    # apps.py imports checks and receivers inside ready(): counted.
    assert {"course_audit.checks", "course_audit.receivers"} <= graph["course_audit.apps"]
    # recording names the models only for type checking: not an edge.
    assert "course_audit.models" not in graph["course_audit.recording"]


def test_the_app_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("course_audit.context", {"course_audit.choices", "course_audit.conf"}),
        ("course_audit.diff", {"course_audit.choices", "course_audit.conf"}),
        ("course_audit.choices", set()),
    ],
)
def test_the_bottom_modules_import_only_what_they_may(module, allowed):
    assert import_graph()[module] <= allowed


def test_the_pure_rules_import_nothing_of_django_themselves():
    source = (ROOT / "diff.py").read_text()
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in _imports(ast.parse(source))
        for alias in node.names
    }
    assert not {name for name in imported if name and name.startswith("django")}


def test_only_the_api_and_the_checks_import_rest_framework():
    offenders = []
    for name, path in _modules().items():
        if name.startswith(f"{PACKAGE}.api") or name == f"{PACKAGE}.checks":
            continue
        for node in _imports(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            if any(n.split(".")[0] == "rest_framework" for n in names):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == []
