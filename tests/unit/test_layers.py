"""The package layers hold: every import of every module of grctl (at the top or inside a function) is
read from its source, and the packages' dependencies must follow the layers below, with no cycle and no
private name imported from another package.

    settings  ←  models  ←  ops (metrics hooks)  ←  nats  ←  codec, workflow
              ←  client, worker, engine  ←  console  ←  daemon, cli
"""

from __future__ import annotations

import ast
from pathlib import Path

GRCTL = Path(__file__).resolve().parents[2] / "grctl"

# What each part may import from grctl (besides itself). Top-level modules are parts of their own.
# settings (every default, limit and backoff) imports nothing of ours, lifecycle (states, waiting for
# work or a stop) only settings; every part may use them.
ALLOWED: dict[str, set[str]] = {
    "settings": set(),
    "lifecycle": {"settings"},
    "models": {"settings", "lifecycle"},
    "ops": {"settings", "lifecycle", "models"},
    "nats": {"settings", "lifecycle", "models", "codec", "ops"},
    "codec": {"settings", "lifecycle"},
    "logging_config": {"settings", "lifecycle"},
    "eventloop": {"settings"},
    "workflow": {"settings", "lifecycle", "models", "nats", "codec"},
    "client": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "logging_config"},
    "worker": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "ops"},
    "engine": {"settings", "lifecycle", "models", "nats", "ops"},
    "demo": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "worker"},
    "console": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "client", "engine", "ops"},
    "daemon": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "worker", "engine", "client",
               "logging_config", "ops", "eventloop", "console"},
    "cli": {"settings", "lifecycle", "models", "nats", "codec", "workflow", "client", "engine", "daemon",
            "ops", "eventloop", "console"},
    "__main__": {"settings", "lifecycle", "cli"},
}


def part_of(module: str) -> str:
    """``grctl.nats.pull`` → ``nats``; ``grctl.cli`` → ``cli``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def imports() -> list[tuple[str, str, list[str]]]:
    """(importing module, imported grctl module, names imported) for every import in grctl."""
    found = []
    for path in sorted(GRCTL.rglob("*.py")):
        module = ".".join(("grctl", *path.relative_to(GRCTL).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(module, a.name, []) for a in node.names if a.name.startswith("grctl.")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grctl"):
                names = [a.name for a in node.names]
                if node.module == "grctl":
                    found += [(module, f"grctl.{n}", []) for n in names]
                else:
                    found.append((module, node.module, names))
    return found


def test_every_part_imports_only_the_layers_below_it() -> None:
    wrong = sorted({f"{importer} imports {imported}" for importer, imported, _ in imports()
                    if (a := part_of(importer)) != (b := part_of(imported))
                    and b not in ALLOWED.get(a, set())})
    assert wrong == []


def test_the_parts_form_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in imports():
        a, b = part_of(importer), part_of(imported)
        if a != b:
            graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
                   for nxt in graph.get(start, ()))

    assert [part for part in graph if reaches(part, part, {part})] == []


def test_no_private_name_is_imported_from_another_part() -> None:
    private = sorted(f"{importer} imports {name} from {imported}" for importer, imported, names in imports()
                     for name in names
                     if name.startswith("_") and part_of(importer) != part_of(imported))
    assert private == []


def module_graph() -> dict[str, set[str]]:
    """Module → the grctl modules it imports (a name imported from a package counts as its submodule
    when there is one), whether at the top, inside a function or only for type checking."""
    modules = {".".join(("grctl", *p.relative_to(GRCTL).with_suffix("").parts)).removesuffix(".__init__")
               for p in GRCTL.rglob("*.py")}

    def module_of(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for importer, imported, names in imports():
        targets = [f"{imported}.{n}" if f"{imported}.{n}" in modules else imported for n in names]
        graph[importer] |= {module_of(t) for t in targets or [imported]} - {importer}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    """No import circle between modules, not even a deferred one: each module can be read on its own,
    below everything that uses it."""
    graph = module_graph()
    circles = set()
    for start in graph:
        stack, seen = [(start, [start])], {start}
        while stack:
            module, path = stack.pop()
            for nxt in graph[module]:
                if nxt == start:
                    circles.add(" → ".join(sorted(path)))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert sorted(circles) == []


def test_the_circle_check_sees_deferred_imports() -> None:
    graph = module_graph()
    assert "grctl.engine.engine" in graph["grctl.engine"]  # a package's re-export
    assert "grctl.settings" in graph["grctl.nats.retry"]


MAX_MODULE_LINES = 400  # a module longer than this holds more than one idea: split it along them


def test_no_module_is_longer_than_the_limit() -> None:
    sizes = {str(path.relative_to(GRCTL)): len(path.read_text(encoding="utf-8").splitlines())
             for path in GRCTL.rglob("*.py")}
    assert len(sizes) > 100  # the whole package was read
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
