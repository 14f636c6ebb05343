"""The package layers hold: every import of every module of grctl (at the top or inside a function) is
read from its source, and the packages' dependencies must follow the layers below, with no cycle and no
private name imported from another package.

    settings  ←  models  ←  ops (metrics hooks)  ←  nats  ←  codec, workflow
              ←  client, worker, engine  ←  daemon, cli
"""

from __future__ import annotations

import ast
from pathlib import Path

GRCTL = Path(__file__).resolve().parents[2] / "grctl"

# What each part may import from grctl (besides itself). Top-level modules are parts of their own.
# settings (every default, limit and backoff) imports nothing of ours; every part may read it.
ALLOWED: dict[str, set[str]] = {
    "settings": set(),
    "models": {"settings"},
    "ops": {"settings", "models"},
    "nats": {"settings", "models", "codec", "ops"},
    "codec": {"settings"},
    "logging_config": {"settings"},
    "workflow": {"settings", "models", "nats", "codec"},
    "client": {"settings", "models", "nats", "codec", "workflow", "logging_config"},
    "worker": {"settings", "models", "nats", "codec", "workflow", "ops"},
    "engine": {"settings", "models", "nats", "ops"},
    "demo": {"settings", "models", "nats", "codec", "workflow", "worker"},
    "daemon": {"settings", "models", "nats", "codec", "workflow", "worker", "engine", "client",
               "logging_config", "ops"},
    "cli": {"settings", "models", "nats", "codec", "workflow", "client", "engine", "daemon", "ops"},
    "__main__": {"settings", "cli"},
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
