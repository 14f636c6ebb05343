"""The README's "Custom types" example as written: its registry carries its ``Money`` both ways."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def readme_codec_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "CodecRegistry()" in b]
    assert len(found) == 1, "the README has one Python example of a CodecRegistry"
    return found[0]


def test_readme_codec_example_round_trips_its_type() -> None:
    namespace: dict[str, Any] = {"__name__": "readme_codec"}
    exec(compile(readme_codec_example(), "README.md", "exec"), namespace)
    codec, money = namespace["codec"], namespace["Money"]
    wire = codec.normalize({"price": money(Decimal("9.90"), "EUR")})
    assert wire == {"price": {"amount": "9.90", "currency": "EUR"}}
    back = codec.convert(wire["price"], money)
    assert isinstance(back, money) and (back.amount, back.currency) == (Decimal("9.90"), "EUR")
