"""The house's rooms: every import in the package (those inside functions too) read from the source, with no
circle between modules and no arrow from a room to one it must not know.

Imports under ``if TYPE_CHECKING:`` never run and are left out: they name types for the checker only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "midframe"

# Each room and the rooms it may import (beside itself). The base modules (errors, log, regular, signals,
# sentences, loop_thread, desktop_bubbles, commandline, the package's own __init__) import nothing above them.
BASE = {"midframe", "midframe.errors", "midframe.regular", "midframe.signals", "midframe.log",
        "midframe.sentences", "midframe.loop_thread", "midframe.desktop_bubbles", "midframe.commandline"}
ALLOWED: dict[str, set[str]] = {
    "midframe.fs": set(),
    "midframe.engine": {"midframe.fs"},
    "midframe.config": {"midframe.engine", "midframe.fs"},
    "midframe.farm": {"midframe.engine", "midframe.config", "midframe.fs"},
    "midframe.api": {"midframe.config", "midframe.fs"},
    "midframe.web": {"midframe.api", "midframe.fs", "midframe.config"},
    "midframe.tray": {"midframe.api", "midframe.fs", "midframe.config"},
    "midframe.daemon.store": {"midframe.fs"},
    "midframe.daemon.jobs": {"midframe.daemon.store", "midframe.fs", "midframe.engine", "midframe.config",
                             "midframe.farm"},
    "midframe.daemon": {"midframe.daemon.jobs", "midframe.daemon.store", "midframe.api", "midframe.web",
                        "midframe.fs", "midframe.engine", "midframe.config", "midframe.farm"},
    "midframe.service": {"midframe.daemon", "midframe.fs", "midframe.config"},
    "midframe.interpolate_command": {"midframe.engine", "midframe.config"},
    "midframe.run_command": {"midframe.daemon", "midframe.tray", "midframe.config"},
    "midframe.cli": {"midframe.interpolate_command", "midframe.run_command", "midframe.daemon", "midframe.service",
                     "midframe.tray", "midframe.web", "midframe.api", "midframe.farm", "midframe.engine",
                     "midframe.config", "midframe.fs"},
    "midframe.__main__": {"midframe.cli"},
}
for room in BASE:
    ALLOWED.setdefault(room, set())
# The base modules, in the order they may import each other.
BASE_ORDER = ["midframe.errors", "midframe.regular", "midframe.signals", "midframe.log", "midframe.sentences",
              "midframe.loop_thread", "midframe.desktop_bubbles", "midframe.commandline", "midframe"]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["midframe", "daemon"] and len(parts) > 3 and parts[2] in ("store", "jobs"):
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported(module: str, path: Path) -> set[str]:
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    targets = set()
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module and name.startswith("midframe"):
            targets.add(name)
    return targets


IMPORTS = {module: _imported(module, path) for module, path in MODULES.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_reading_sees_every_kind_of_import() -> None:
    # A reading that missed imports inside functions or relative ones would pass any tree.
    assert "midframe.interpolate_command" in IMPORTS["midframe.cli"]  # imported inside a function
    assert "midframe.engine.interpolators.rife.runner" in IMPORTS["midframe.engine.interpolators.rife"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    assert _cycles(IMPORTS) == []


def test_every_module_has_a_room() -> None:
    assert {room_of(module) for module in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_no_upward_arrow(room: str) -> None:
    allowed = ALLOWED[room] | {room}
    rank = BASE_ORDER.index(room) if room in BASE_ORDER else len(BASE_ORDER)
    allowed |= set(BASE_ORDER[:rank])
    wrong = sorted(f"{module} -> {target}" for module in MODULES if room_of(module) == room
                   for target in IMPORTS[module] if room_of(target) not in allowed)
    assert wrong == []


def test_rooms_form_no_circle() -> None:
    assert _cycles({room: set(targets) for room, targets in ALLOWED.items()}) == []


# The engine's face: what other rooms may import of it (the farm renders the pipeline's segments and
# may reach inside). ``midframe.engine.probe`` is public as a module: its functions share their names.
ENGINE_FACE = {"midframe.engine", "midframe.engine.probe"}


def test_other_rooms_use_the_engines_face() -> None:
    inside = [module for module in MODULES if room_of(module) not in ("midframe.engine", "midframe.farm")]
    wrong = sorted(f"{module} -> {target}" for module in inside for target in IMPORTS[module]
                   if room_of(target) == "midframe.engine" and target not in ENGINE_FACE)
    assert wrong == []


def test_the_face_names_what_it_serves() -> None:
    import midframe.engine as engine

    for name in engine.__all__:
        assert getattr(engine, name) is not None
    assert sorted(engine.__all__) == engine.__all__
