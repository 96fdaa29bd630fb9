"""The `genmetrics` command on folders of PNGs written by the test, with seeded Inception weights."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_genmetrics import FIDInceptionV3, FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.cli import main
from lightning_genmetrics.stats import load_statistics
from tests.helpers import seeded_inception_state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "seeded-inception.pth"
    torch.save(seeded_inception_state(), path)
    return path


def _write_folder(path, images):
    path.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path / f"{i:03d}.png")
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    rng = np.random.default_rng(int(np.random.SeedSequence().entropy % 2**32))
    root = tmp_path_factory.mktemp("images")
    real = torch.from_numpy(rng.integers(0, 256, (5, 3, 24, 24), dtype=np.uint8))
    fake = torch.from_numpy(rng.integers(0, 160, (4, 3, 24, 24), dtype=np.uint8))
    return {"real": (_write_folder(root / "real", real), real), "fake": (_write_folder(root / "fake", fake), fake)}


def _options(weights):
    return ["--weights", str(weights), "--no-verify-weights", "--batch-size", "4", "--json"]


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "lightning_genmetrics.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_stats_then_fid_as_subprocesses(folders, weights, tmp_path):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    stats_path = tmp_path / "real.npz"
    done = _run(["stats", str(real_dir), "-o", str(stats_path), *_options(weights)])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_samples"] == 5
    provenance = load_statistics(stats_path).provenance
    assert (provenance.extractor, provenance.layer, provenance.resize) == ("FIDInceptionV3", "2048", "tf1")
    assert "5/5 images" in done.stderr  # progress on stderr

    done = _run(["fid", str(stats_path), str(fake_dir), *_options(weights)])
    assert done.returncode == 0, done.stderr
    network = FIDInceptionV3("2048", weights_path=weights, verify_weights=False)
    metric = FrechetInceptionDistance(network)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert json.loads(done.stdout)["fid"] == pytest.approx(metric.compute().item(), rel=1e-6)


def test_is_and_kid(folders, weights, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["is", str(fake_dir), "--splits", "1", *_options(weights)]) == 0  # 4 images: 2 hash splits may be empty
    result = json.loads(capsys.readouterr().out)
    metric = InceptionScore(FIDInceptionV3("logits_unbiased", weights_path=weights, verify_weights=False), splits=1)
    metric.update(fake)
    assert result["inception_score_mean"] == pytest.approx(metric.compute()[0].item(), rel=1e-6)

    assert main(["kid", str(real_dir), str(fake_dir), "--subsets", "3", "--subset-size", "3", *_options(weights)]) == 0
    result = json.loads(capsys.readouterr().out)
    kid = KernelInceptionDistance(
        FIDInceptionV3("2048", weights_path=weights, verify_weights=False), subsets=3, subset_size=3
    )
    kid.update(real, real=True)
    kid.update(fake, real=False)
    assert result["kid_mean"] == pytest.approx(kid.compute()[0].item(), rel=1e-5)
    assert result["num_samples"] == [5, 4]


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_empty_folder(tmp_path, weights, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["is", str(tmp_path / "empty"), *_options(weights)]) == 2
    assert "no images in" in _one_line_error(capsys)


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image(tmp_path, weights, capsys, workers):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "bad.png").write_bytes(b"this is not a png")
    assert main(["is", str(folder), "--num-workers", str(workers), "--quiet", *_options(weights)]) == 2
    line = _one_line_error(capsys)
    assert line.startswith("genmetrics: error: cannot read image")
    assert "bad.png" in line


def test_mismatched_and_corrupt_statistics(folders, weights, tmp_path, capsys):
    small = tmp_path / "layer768.npz"
    assert (
        main(["stats", str(folders["real"][0]), "-o", str(small), "--layer", "768", "--quiet", *_options(weights)]) == 0
    )
    capsys.readouterr()
    assert main(["fid", str(small), str(folders["fake"][0]), "--quiet", *_options(weights)]) == 2
    assert "768 and 2048 features" in _one_line_error(capsys)

    other = tmp_path / "other_resize.npz"
    args = ["stats", str(folders["fake"][0]), "-o", str(other), "--layer", "768", "--resize", "torch-antialias"]
    assert main([*args, "--quiet", *_options(weights)]) == 0
    capsys.readouterr()
    assert main(["fid", str(small), str(other), "--quiet", *_options(weights)]) == 2
    assert "resize: 'tf1' != 'torch-antialias'" in _one_line_error(capsys)

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"garbage")
    assert main(["fid", str(corrupt), str(small), "--quiet"]) == 2
    assert "Cannot read statistics file" in _one_line_error(capsys)


def test_missing_weights_offline_is_one_line(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS", raising=False)
    from lightning_genmetrics.features import weights as weights_module

    spec = weights_module.INCEPTION_FID_WEIGHTS
    offline = type(spec)(spec.filename, spec.sha256, ("http://127.0.0.1:9/unreachable.pth",), spec.source, spec.license)
    monkeypatch.setattr(weights_module, "INCEPTION_FID_WEIGHTS", offline)
    assert main(["is", str(folders["fake"][0]), "--quiet"]) == 2
    line = _one_line_error(capsys)
    assert spec.sha256 in line
    assert spec.filename in line
