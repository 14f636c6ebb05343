"""Every ``grctl`` import in the Python code blocks of the public documentation's ``develop`` pages
resolves here: the module imports and each imported name exists in it."""

from __future__ import annotations

import ast
import importlib
import re
import textwrap
from pathlib import Path

import pytest
from support.reference import DEVELOP_DOCS, require_reference

FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```",
                   re.MULTILINE | re.DOTALL)
IMPORT_LINE = re.compile(r"^\s*(?:from\s+(grctl[\w.]*)\s+import\s+([\w\s,()]+)|import\s+(grctl[\w.]*))")


def code_blocks(page: Path) -> list[str]:
    return [textwrap.dedent(m.group("body")) for m in FENCE.finditer(page.read_text())]


def grctl_imports(block: str) -> list[tuple[str, str | None]]:
    """(module, name) of each ``grctl`` import of a block; name None for ``import grctl.x``. Blocks that
    are fragments rather than valid Python are read line by line."""
    try:
        tree = ast.parse(block)  # the parser accepts a top-level await (only compiling refuses it)
    except SyntaxError:
        found: list[tuple[str, str | None]] = []
        for line in block.splitlines():
            m = IMPORT_LINE.match(line)
            if m and m.group(1):
                found += [(m.group(1), n.strip()) for n in m.group(2).strip("() ").split(",") if n.strip()]
            elif m and m.group(3):
                found.append((m.group(3), None))
        return found
    imports: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "grctl":
            imports += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            imports += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "grctl"]
    return imports


def documented_imports() -> list[tuple[str, str, str | None]]:
    docs = require_reference(DEVELOP_DOCS)
    return [(page.name, module, name) for page in sorted(docs.glob("*.md"))
            for block in code_blocks(page) for module, name in grctl_imports(block)]


def test_the_pages_have_grctl_imports_to_check() -> None:
    found = documented_imports()
    pages = {page for page, _, _ in found}
    # Every page that shows setup code imports from grctl; the check below must not be vacuous.
    assert {"client.md", "context.md", "events.md", "serialization.md", "tasks.md", "worker.md",
            "workflows.md"} <= pages, pages
    assert ("serialization.md", "grctl.worker.codec", "CodecRegistry") in found
    assert ("context.md", "grctl.worker", "StoreKeyNotFoundError") in found  # an indented block


def test_every_documented_grctl_import_resolves() -> None:
    missing = []
    for page, module, name in documented_imports():
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{page}: import {module} ({exc})")
            continue
        if name is not None and not hasattr(imported, name):
            missing.append(f"{page}: from {module} import {name}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("block, expected", [
    ("from grctl.client import (\n    Client,\n    Connection,\n)\nawait x()", [
        ("grctl.client", "Client"), ("grctl.client", "Connection")]),
    ("from grctl.models import Directive\n@wf.step()\nasync def f(ctx): ...\n  bad indent", [
        ("grctl.models", "Directive")]),
    ("import grctl.worker.codec\nimport asyncio", [("grctl.worker.codec", None)]),
])
def test_imports_are_read_from_valid_and_fragmentary_blocks(block: str,
                                                            expected: list[tuple[str, str | None]]) -> None:
    assert grctl_imports(block) == expected
