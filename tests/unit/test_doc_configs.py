"""Every grctl.yaml the documents show is one that grctl's own loader takes, as a reader would copy it.

Each ```yaml block of the documents below is read as a whole grctl.yaml (or the part of one that it
shows) by ``load_config``, the loader of grctld and ``grctl -c``. Only "file not found" of a file named
by an absolute path is forgiven: the snippets name files of the hosts they are for (``/etc/grctl/ca.pem``);
a credential named relatively is made beside the file. A ```yaml block
that is not a grctl file at all (a Prometheus configuration) says so on the line before its fence:
``<!-- not a grctl file -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from grctl.daemon.config import load_config
from grctl.daemon.errors import ConfigError, Problem

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["docs/deployment.md", "docs/operations.md", "README.md"]
NOT_GRCTL = "<!-- not a grctl file -->"
# The one problem a snippet may have: it names a file of the host it is for.
FORGIVEN = re.compile(r"^file not found: ")


@dataclass(frozen=True)
class Snippet:
    document: str
    line: int  # of the opening fence, 1-based
    text: str
    marked: bool  # preceded by NOT_GRCTL

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def yaml_blocks(document: str, text: str) -> list[Snippet]:
    """The ```yaml blocks of a markdown ``text``, each with the line of its opening fence."""
    lines = text.splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```yaml":
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{document}:{i + 1}: a ```yaml block that is never closed"
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        found.append(Snippet(document, i + 1, "\n".join(lines[i + 1:end]) + "\n", before == NOT_GRCTL))
        i = end + 1
    return found


def snippets() -> list[Snippet]:
    return [s for doc in DOCUMENTS for s in yaml_blocks(doc, (ROOT / doc).read_text())]


def _load(path: Path) -> list[Problem]:
    try:
        load_config(str(path), environ={}, daemon=False)
    except ConfigError as exc:
        return exc.problems
    return []


def problems(snippet: Snippet, directory: Path) -> list[str]:
    """What ``load_config`` finds wrong with ``snippet`` as a grctl.yaml, but missing files. A file named
    relatively (a credential) is made beside it first with a made-up secret, as the host would have it,
    so that nothing that follows from its absence (a console without its password) is forgiven."""
    path = directory / "grctl.yaml"
    path.write_text(snippet.text)
    found = _load(path)
    beside = [Path(FORGIVEN.sub("", p.message)) for p in found if FORGIVEN.match(p.message)]
    beside = [f for f in beside if f.is_relative_to(directory)]
    for made in beside:
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text("a-made-up-secret\n")
    found = _load(path) if beside else found
    return [str(p) for p in found if not FORGIVEN.match(p.message)]


def test_the_documents_show_grctl_files_at_all() -> None:
    found = snippets()
    assert {s.document for s in found if not s.marked} == set(DOCUMENTS)
    assert any("engine:" in s.text and "http:" in s.text for s in found if s.document == DOCUMENTS[0])


@pytest.mark.parametrize("snippet", [s for s in snippets() if not s.marked], ids=str)
def test_every_grctl_file_of_the_documents_is_valid(snippet: Snippet, tmp_path: Path) -> None:
    assert problems(snippet, tmp_path) == [], f"{snippet}: copied as it is, grctl would refuse it"


@pytest.mark.parametrize("snippet", [s for s in snippets() if s.marked], ids=str)
def test_a_block_marked_as_no_grctl_file_is_none(snippet: Snippet, tmp_path: Path) -> None:
    """The marker is for what grctl refuses as a whole (so it cannot hide a broken grctl file)."""
    assert problems(snippet, tmp_path), f"{snippet} is marked {NOT_GRCTL!r} but is a valid grctl file"


def test_a_misplaced_key_is_caught(tmp_path: Path) -> None:
    """What the guide's engine file once did: ``http`` under ``nats`` instead of ``engine``."""
    broken = Snippet("example", 1, "engine: {embedded: true}\nnats:\n  http: {listen: 127.0.0.1:9465}\n",
                     False)
    assert any("nats: unknown key 'http'" in p for p in problems(broken, tmp_path))
    markdown = "text\n<!-- not a grctl file -->\n\n```yaml\na: 1\n```\n```yaml\nb: 2\n```\n"
    assert yaml_blocks("x.md", markdown) == [Snippet("x.md", 4, "a: 1\n", True),
                                             Snippet("x.md", 7, "b: 2\n", False)]
