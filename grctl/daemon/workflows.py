"""Import the configured workflow modules and collect their ``Workflow`` objects.

``pkg.mod`` registers every Workflow found at the module's top level; ``pkg.mod:name`` registers one
object (a Workflow, or a list/tuple of them). Import problems become one-line messages that say what
failed and where (the file and line of the failing code when it raised during import).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from grctl.workflow import Workflow


class WorkflowImportError(Exception):
    """Entry ``index`` of ``workflows`` could not be used."""

    def __init__(self, index: int, ref: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.ref = ref
        self.message = message


def add_python_path(paths: Iterable[str]) -> None:
    """Put extra import roots at the front of sys.path (in the given order)."""
    for path in reversed(list(paths)):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [
        f
        for f in frames
        if "importlib" not in f.filename and os.sep + "grctl" + os.sep + "daemon" not in f.filename
    ]
    if ours:
        last = ours[-1]
        return f" (at {last.filename}:{last.lineno})"
    return ""


def _import(index: int, ref: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            message = f"cannot import '{module_name}': no module named '{exc.name}' (check python_path)"
        else:
            message = f"cannot import '{module_name}': ModuleNotFoundError: {exc}{_where(exc)}"
        raise WorkflowImportError(index, ref, message) from exc
    except (Exception, SystemExit) as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise WorkflowImportError(
            index, ref, f"cannot import '{module_name}': {detail}{_where(exc)}"
        ) from exc


def _resolve_attribute(index: int, ref: str, module: ModuleType, attribute: str) -> Any:
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise WorkflowImportError(
                index, ref, f"module '{module.__name__}' has no attribute '{attribute}'"
            ) from None
    return obj


def _workflows_of(index: int, ref: str) -> list[Workflow]:
    module_name, _, attribute = ref.partition(":")
    module = _import(index, ref, module_name)
    if not attribute:
        found = [v for v in vars(module).values() if isinstance(v, Workflow)]
        if not found:
            raise WorkflowImportError(
                index, ref, f"module '{module_name}' defines no Workflow at its top level"
            )
        return found
    obj = _resolve_attribute(index, ref, module, attribute)
    items = list(obj) if isinstance(obj, list | tuple) else [obj]
    if not items or not all(isinstance(i, Workflow) for i in items):
        raise WorkflowImportError(index, ref, f"'{ref}' is not a Workflow (it is {type(obj).__name__})")
    return items


def load_workflows(refs: list[str], python_path: Iterable[str] = ()) -> list[Workflow]:
    """The Workflows named by ``refs``, each once; WorkflowImportError on the first entry that fails."""
    add_python_path(python_path)
    result: list[Workflow] = []
    types: dict[str, str] = {}
    for index, ref in enumerate(refs):
        for wf in _workflows_of(index, ref):
            if any(wf is seen for seen in result):
                continue
            if wf.workflow_type in types:
                raise WorkflowImportError(
                    index,
                    ref,
                    f"workflow type '{wf.workflow_type}' is defined twice "
                    f"(also by '{types[wf.workflow_type]}')",
                )
            types[wf.workflow_type] = ref
            result.append(wf)
    return result


def module_files(refs: list[str]) -> dict[str, str]:
    """Source files of the imported workflow modules (after ``load_workflows``) with the SHA-256 of
    the content that was imported, so the supervisor can tell when they change."""
    files: dict[str, str] = {}
    for ref in refs:
        module = sys.modules.get(ref.partition(":")[0])
        path = getattr(module, "__file__", None)
        if path:
            try:
                with open(path, "rb") as fh:
                    files[os.path.abspath(path)] = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                continue
    return files
