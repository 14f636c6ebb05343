"""The configuration file of a nats-server we start: our few settings, with the operator's own file
included.

nats-server has no command-line flag for JetStream's ``sync_interval``, so it goes into a generated
file. A later top-level block of the same name *replaces* an earlier one (the blocks are not merged),
so when the operator's file has its own ``jetstream`` block, that block is the one that counts and ours
is left out; ``top_level_keys`` finds out, following ``include`` directives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SYNC_ALWAYS = "always"
_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
_INCLUDE = re.compile(r"""^include\s+(?:"([^"]+)"|'([^']+)'|(\S+))""", re.IGNORECASE)
_KEY = re.compile(r"^([A-Za-z_][\w.-]*)")


def sync_interval_text(seconds: float | None) -> str:
    """``None`` → ``always`` (fsync after every write); seconds → a Go duration (``120000ms``)."""
    if seconds is None:
        return SYNC_ALWAYS
    if seconds <= 0:
        raise ValueError(f"a sync interval must be positive, got {seconds}")
    return f"{round(seconds * 1000)}ms"


def _strip_comments_and_strings(text: str) -> str:
    """The text with comments removed and the insides of quoted strings blanked (keeping line breaks),
    so braces and keys inside them are not mistaken for structure."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif c in "\"'":
            end = i + 1
            while end < n and text[end] not in (c, "\n"):
                end += 2 if text[end] == "\\" else 1
            end = min(end, n)
            closed = end < n and text[end] == c
            out.append(c + " " * (end - i - 1) + (c if closed else ""))
            i = end + 1 if closed else end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def top_level_keys(path: str | Path, _seen: frozenset[Path] = frozenset()) -> set[str]:
    """The top-level keys of a nats-server configuration file (lower case, as the server treats them),
    including those of the files it includes at the top level."""
    path = Path(path).resolve()
    if path in _seen:
        return set()
    raw = path.read_text(encoding="utf-8", errors="replace")
    keys: set[str] = set()
    depth = 0
    clean = _strip_comments_and_strings(raw)
    for line_no, line in enumerate(clean.splitlines()):
        stripped = line.strip()
        if depth == 0 and stripped:
            include = _INCLUDE.match(raw.splitlines()[line_no].strip())
            if include:
                target = next(g for g in include.groups() if g)
                # as nats-server does: relative to the including file's directory, even when absolute
                keys |= top_level_keys(Path(f"{path.parent}/{target}"), _seen | {path})
            else:
                key = _KEY.match(stripped)
                if key:
                    keys.add(key.group(1).lower())
        depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
        depth = max(depth, 0)
    return keys


def render(sync_interval: str | None, include: str | os.PathLike[str] | None,
           directory: str | Path = ".") -> str:
    """The generated file, to be written in ``directory``: a ``jetstream`` block with the sync interval
    (when given), then the operator's file (when given)."""
    lines = ["# Written by grctl for the nats-server it starts; rewritten at every start.", ""]
    if sync_interval is not None:
        if sync_interval != SYNC_ALWAYS and not _GO_DURATION.match(sync_interval):
            raise ValueError(f"not a sync interval: {sync_interval!r} (always, or a duration like 30s)")
        lines += ["jetstream {", f"  sync_interval: {sync_interval}", "}", ""]
    if include is not None:
        # nats-server resolves an include against the including file's directory, even an absolute one
        relative = os.path.relpath(Path(include).resolve(), Path(directory).resolve())
        escaped = relative.replace("\\", "\\\\").replace('"', '\\"')
        lines += [f'include "{escaped}"', ""]
    return "\n".join(lines)
