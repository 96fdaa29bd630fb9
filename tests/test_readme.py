"""The README's code runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _first_python_block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


def test_quick_start_runs_as_written():
    code = _first_python_block("## Quick start: the metrics on their own")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README quick start", "exec"), {"__name__": "readme"})
    lines = printed.getvalue().split("\n")[:-1]
    assert [line.split(":")[0] for line in lines] == ["epoch 0", "epoch 1", "epoch 2"]
    values = [float(line.split("FID ")[1]) for line in lines]
    assert values[0] < values[1] < values[2]  # generated images of ever lower contrast than the real ones
