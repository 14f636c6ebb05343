"""docs/architecture.md's "where each behaviour lives" stays true: every module and path it names
exists, and every module of grctl is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
SECTION = re.compile(r"^### .*?(?::\s*(grctl/[\w/]+))?$")
TICKED = re.compile(r"`([^`\s]+)`")


def where_section() -> list[tuple[Path, str, bool]]:
    """(the section's directory, a backticked name, whether it heads a table row) from the part of the
    document that says where each behaviour lives."""
    text = DOC.read_text()
    part = text[text.index("## Where each behaviour lives"):text.index("## A run, end to end")]
    found = []
    base = ROOT
    for line in part.splitlines():
        if m := SECTION.match(line):
            base = ROOT / m.group(1) if m.group(1) else ROOT
            continue
        if line.startswith("|---") or line.startswith("| Module") or line.startswith("| Path"):
            continue
        cells = line.split(" | ") if line.startswith("| ") else []
        heads = set(TICKED.findall(cells[0])) if cells else set()
        found += [(base, name, name in heads) for name in TICKED.findall(line)]
    return found


def exists(base: Path, name: str) -> bool:
    return any(list(where.glob(name)) for where in (base, ROOT, ROOT / "grctl"))


def test_every_module_and_path_named_exists() -> None:
    named = where_section()
    heads = [(base, name) for base, name, head in named if head]
    assert len(heads) > 80  # the tables were read
    missing = sorted({f"{name} (under {base.relative_to(ROOT)})" for base, name, head in named
                      if (head or name.endswith(".py")) and not exists(base, name)})
    assert missing == []


def test_every_module_of_grctl_is_named() -> None:
    named = {(base / name).resolve() for base, name, head in where_section() if head}
    named |= {(where / name).resolve() for base, name, _ in where_section() if name.endswith(".py")
              for where in (base, ROOT, ROOT / "grctl")}
    modules = {p.resolve() for p in (ROOT / "grctl").rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules - named)
    assert unnamed == []
