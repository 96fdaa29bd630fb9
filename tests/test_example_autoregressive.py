"""examples/autoregressive_digits.py, run as a user runs it (a subprocess) with its tiny settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import run_example

HEADER = "    w       FID       KID      IS  accuracy   AUROC"


def test_autoregressive_digits_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # One thread: on a machine other jobs keep busy, two threads per process are several times slower.
    args = ("--tiny", "--threads", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    stdout = run_example("autoregressive_digits.py", *args, timeout=300)

    assert "held-out accuracy" in stdout
    assert stdout.count(HEADER) == 2  # one table per epoch
    history = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line == HEADER]
    for start, record in zip(starts, history, strict=True):
        rows = [line.split() for line in lines[start + 1 : start + 3]]
        assert [float(row[0]) for row in rows] == [0.0, 2.0]  # the tiny sweep's strengths
        for row in rows:
            w = f"{float(row[0]):g}"
            printed = [float(value) for value in row[1:]]
            logged = [record[f"{name}/w={w}"] for name in ("fid", "kid", "is", "accuracy", "auroc")]
            assert printed == pytest.approx(logged, abs=1e-3)
            assert all(math.isfinite(value) for value in logged)
            assert record[f"fid/w={w}"] > 0
            assert 1.0 <= record[f"is/w={w}"] <= 10.0  # exp of a KL divergence, at most the number of classes
            assert 0.0 <= record[f"accuracy/w={w}"] <= 1.0
        assert record["best_w"] == min((0.0, 2.0), key=lambda v: record[f"fid/w={v:g}"])
    assert f"best w (lowest FID): {history[-1]['best_w']:g}" in stdout
    assert f"tensorboard --logdir {out}" in stdout

    for name in ("samples.png", "fid_is_tradeoff.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
    with Image.open(out / "samples.png") as grid:
        assert grid.size == (10 * (32 + 2) + 2, 10 * (32 + 2) + 2)  # a row per digit, 10 samples of 32×32 each
    assert list((out / "tensorboard").glob("version_*/events.out.tfevents.*"))
    assert list((out / "real-statistics").glob("real-statistics-*.npz"))
    assert list((tmp_path / "cache").glob("digits-classifier-*.pt"))


def test_the_example_model_gives_the_same_logits_through_its_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sampler trusts the model's cache: the example's transformer must give the logits of a full recomputation.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples"))
    import torch
    from autoregressive_digits import PixelTransformer

    torch.manual_seed(0)
    model = PixelTransformer(levels=4, dim=16, heads=2, depth=2).eval()
    tokens, labels = torch.randint(4, (3, 64)), torch.tensor([0, 7, 10])
    with torch.no_grad():
        full = model(tokens, labels)  # [3, 65, 4]: the class token, then every pixel
        logits, cache = model(tokens[:, :0], labels, cache=None)
        steps = [logits]
        for t in range(64):
            logits, cache = model(tokens[:, t : t + 1], labels, cache=cache)
            steps.append(logits)
    assert full.shape == (3, 65, 4)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    # Causal: changing a later pixel leaves the logits of earlier positions alone.
    changed = tokens.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 4
    with torch.no_grad():
        torch.testing.assert_close(model(changed, labels)[:, :41], full[:, :41])
        assert not torch.allclose(model(changed, labels)[:, 41:], full[:, 41:])
