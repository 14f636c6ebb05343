"""The README's "Write a workflow" example, run as written (a real process) against a real engine."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    return blocks[0]


async def test_readme_example_runs_as_written(engine_process: subprocess.Popen[bytes],
                                              subprocess_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(readme_python_example())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=subprocess_env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "{'receipt': 'receipt-A-1'}"
