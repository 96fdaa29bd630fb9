"""The runnable examples, run as a user runs them (a subprocess) with their tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run_example(script: str, *args: str, timeout: float = 120) -> str:
    env = dict(os.environ)
    # The checkout under test, whatever the environment's installed copy points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_diffusion_digits_demo_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example("diffusion_digits.py", "--tiny", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))

    assert "held-out accuracy" in stdout
    assert stdout.count("    w       FID       KID      IS  accuracy   AUROC") == 2  # one table per epoch
    assert "best w (lowest FID)" in stdout
    assert f"tensorboard --logdir {out}" in stdout
    for name in ("samples.png", "fid_is_tradeoff.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert min(image.size) > 32
    with Image.open(out / "samples.png") as grid:
        assert grid.size == (10 * (32 + 2) + 2, 10 * (32 + 2) + 2)  # a row per digit, 10 samples of 32×32 each
    assert list((out / "tensorboard").glob("version_*/events.out.tfevents.*"))
    history = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    for key in ("fid/w=0", "fid/w=2", "kid/w=2", "is/w=2", "accuracy/w=0", "auroc/w=2", "best_w"):
        assert key in history[-1], key
    assert list((tmp_path / "cache").glob("digits-classifier-*.pt"))


def test_quickstart_runs() -> None:
    stdout = run_example("quickstart.py", "--num-images", "128", "--size", "16")  # KID subsets of 128
    assert len(stdout.strip().splitlines()) == 5


@pytest.mark.ddp
def test_diffusion_digits_demo_tiny_on_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ("--tiny", "--devices", "2", "--strategy", "ddp", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    stdout = run_example("diffusion_digits.py", *args)
    assert stdout.count("best w (lowest FID)") == 2  # rank 0 alone prints, once per epoch
    assert (out / "samples.png").is_file()
    assert (out / "fid_is_tradeoff.png").is_file()
    assert [record["epoch"] for record in json.loads((out / "metrics.json").read_text())] == [0, 1]
