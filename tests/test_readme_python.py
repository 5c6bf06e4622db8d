"""The README's Python example runs as written, and its step-by-step sampler ends where the one-shot sampler does."""
import contextlib
import io
import re
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    code = _example().replace('"autonat/assets/', f'"{ROOT}/autonat/assets/')
    monkeypatch.chdir(tmp_path)  # the example writes four.png into the working directory
    out, names = io.StringIO(), {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), names)  # noqa: S102 - the README's own example
    with Image.open(tmp_path / "four.png") as grid:
        assert grid.width > grid.height > 0  # one row of four images
    lines = out.getvalue().splitlines()
    assert len(lines) == names["strategy"].steps and lines[-1].endswith(": 0 tokens of image 0 still masked")
    pipe, strategy, labels, seeds = names["pipe"], names["strategy"], names["labels"], names["seeds"]
    final = names["state"].tokens.view(len(labels), -1)
    assert torch.equal(final, pipe.tokens(strategy, labels, seeds).view(len(labels), -1))
