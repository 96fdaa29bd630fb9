"""The runnable examples, run as a user runs them (a subprocess) with their tiny settings."""

from __future__ import annotations

import json
import math
import os
import re
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


def table_rows(stdout: str, header: str) -> list[list[float]]:
    """The numbers of the rows printed under ``header`` (a line of its own), up to the first line that is no row."""
    lines = stdout.splitlines()
    rows = []
    for line in lines[lines.index(header) + 1 :]:
        if not re.fullmatch(r"\s*\d+(\s+\S+)+", line):
            break
        rows.append([float(value) for value in line.split()])
    return rows


def tensorboard_scalars(logdir: Path) -> dict[str, list[float]]:
    """Every scalar series of the one TensorBoard run under ``logdir``, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (version,) = logdir.glob("version_*")
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def tensorboard_image_tags(logdir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (version,) = logdir.glob("version_*")
    accumulator = EventAccumulator(str(version))
    accumulator.Reload()
    return accumulator.Tags()["images"]


GAN_HEADER = "epoch       FID       KID      IS  eval s"


def test_gan_digits_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # One thread: on a machine other jobs keep busy, two threads per process are several times slower.
    args = ("--tiny", "--threads", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    stdout = run_example("gan_digits.py", *args)

    assert "held-out accuracy" in stdout
    assert stdout.count(GAN_HEADER) == 1
    rows = table_rows(stdout, GAN_HEADER)
    history = json.loads((out / "metrics.json").read_text())
    assert [int(row[0]) for row in rows] == [record["epoch"] for record in history] == [0, 1]  # a row per epoch
    for row, record in zip(rows, history, strict=True):
        assert all(math.isfinite(record[key]) for key in ("fid", "kid", "kid_std", "is", "is_std", "eval_seconds"))
        assert row[1:4] == pytest.approx([record["fid"], record["kid"], record["is"]], abs=1e-3)  # as printed
        assert record["fid"] > 0
        assert 1.0 <= record["is"] <= 10.0  # exp of a KL divergence, at most the number of digit classes
        assert record["kid_std"] >= 0
    assert f"FID {history[0]['fid']:.2f} after epoch 0 -> {history[1]['fid']:.2f} after epoch 1" in stdout
    assert f"tensorboard --logdir {out}" in stdout

    scalars = tensorboard_scalars(out / "tensorboard")
    for name in ("fid", "kid", "is"):
        assert scalars[f"gen/{name}"] == pytest.approx([record[name] for record in history], rel=1e-6)
    assert scalars["train/loss_d"]
    assert scalars["train/loss_g"]
    assert "gen/samples" in tensorboard_image_tags(out / "tensorboard")
    with Image.open(out / "samples.png") as grid:
        assert grid.format == "PNG"
        assert grid.size == (10 * (32 + 2) + 2, 10 * (32 + 2) + 2)  # 10 × 10 samples of 32×32 each
    assert list((tmp_path / "cache").glob("digits-classifier-*.pt"))
    assert list((out / "real-statistics").glob("real-statistics-*.npz"))


SEGMENTATION_HEADER = "epoch    mIoU pix acc  IoU sq   AUROC   spec   prec recall    acc"
SEGMENTATION_KEYS = ("val/miou", "val/pixel_accuracy", "val/iou_square", "val/auroc")
THRESHOLD_KEYS = ("val/specificity", "val/precision", "val/recall", "val/accuracy")


def test_segmentation_auroc_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example("segmentation_auroc.py", "--tiny", "--threads", "1", "--out", str(out))

    assert stdout.count(SEGMENTATION_HEADER) == 1
    rows = table_rows(stdout, SEGMENTATION_HEADER)
    history = json.loads((out / "metrics.json").read_text())
    assert [int(row[0]) for row in rows] == [record["epoch"] for record in history] == [0, 1]  # not the sanity check
    for row, record in zip(rows, history, strict=True):
        printed = [record[key] for key in (*SEGMENTATION_KEYS, *THRESHOLD_KEYS)]
        assert row[1:] == pytest.approx(printed, abs=1e-3)
        assert all(0.0 <= value <= 1.0 for value in printed), record
        # SegmentationMetrics' dataset-level mIoU is the mean of its per-class IoUs (MeanIoU is torchmetrics'
        # per-image mean, another number).
        ious = [record[f"val/iou_{name}"] for name in ("background", "disc", "square")]
        assert record["val/miou_dataset"] == pytest.approx(sum(ious) / 3, rel=1e-6)
    assert f"tensorboard --logdir {out}" in stdout

    scalars = tensorboard_scalars(out / "tensorboard")
    for key in (*SEGMENTATION_KEYS, *THRESHOLD_KEYS, "val/mdice", "val/mean_class_accuracy"):
        # One value per epoch (none from the sanity check), equal to what the module computed.
        assert scalars[key] == pytest.approx([record[key] for record in history], rel=1e-6), key
    assert len(scalars["train/loss_epoch"]) == len(scalars["val/loss"]) == 2


@pytest.mark.ddp
def test_segmentation_auroc_tiny_on_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example("segmentation_auroc.py", "--tiny", "--devices", "2", "--strategy", "ddp", "--out", str(out))
    assert stdout.count(SEGMENTATION_HEADER) == 1  # rank 0 alone prints
    assert len(table_rows(stdout, SEGMENTATION_HEADER)) == 2
    history = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    assert all(0.0 <= history[-1][key] <= 1.0 for key in (*SEGMENTATION_KEYS, *THRESHOLD_KEYS))


@pytest.mark.ddp
def test_gan_digits_tiny_on_two_processes(tmp_path: Path) -> None:
    # Manual optimization under DDP: the script must allow the parameters a backward pass does not reach.
    out = tmp_path / "run"
    args = ("--tiny", "--devices", "2", "--strategy", "ddp", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    stdout = run_example("gan_digits.py", *args)
    assert stdout.count(GAN_HEADER) == 1  # rank 0 alone prints
    assert len(table_rows(stdout, GAN_HEADER)) == 2
    history = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    assert all(math.isfinite(history[-1][key]) for key in ("fid", "kid", "is"))
    assert (out / "samples.png").is_file()


def test_vae_digits_tiny(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run_example("vae_digits.py", "--tiny", "--out", str(out), "--cache-dir", str(tmp_path / "cache"))

    header = "epoch         fid         kid          is  recon/ssim  recon/psnr  weights   seconds"
    assert stdout.count(header) == 1
    history = json.loads((out / "metrics.json").read_text())
    assert [record["epoch"] for record in history] == [0, 1]
    lines = stdout.splitlines()
    rows = [line.split() for line in lines[lines.index(header) + 1 :][:2]]
    for row, record in zip(rows, history, strict=True):
        assert record["ema"] is True  # EMAWeightAveraging has averaged by the end of each epoch
        assert row[-2] == "EMA"
        assert [float(value) for value in row[1:6]] == pytest.approx(
            [record[key] for key in ("fid", "kid", "is", "recon/ssim", "recon/psnr")], abs=1e-4
        )
        assert -1.0 <= record["recon/ssim"] <= 1.0
        assert 0.0 < record["recon/psnr"] < 60.0
        assert all(math.isfinite(record[key]) for key in ("fid", "kid", "is"))
    scalars = tensorboard_scalars(out / "tensorboard")
    for name in ("recon/ssim", "recon/psnr", "fid"):
        assert scalars[f"gen/{name}"] == pytest.approx([record[name] for record in history], rel=1e-6), name
    for name in ("reconstructions.png", "samples.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
