"""`genmetrics fd --encoder`, `stats --encoder`, `prdc` and `cmmd` on tiny seeded DINOv2 and CLIP networks.

The encoders' names are bound to tiny architectures (as tests/features/test_dinov2.py and test_clip.py do), and their
seeded weights are written to files passed with ``--weights``: the command builds the network as a user's would, from
a file, and each value is compared with the library's metric (and a float64 reference) on the same images.
"""

import dataclasses
import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lightning_genmetrics.cli import _ENCODERS, _INCEPTION_RESIZES, main
from lightning_genmetrics.features import clip, dinov2, resize
from lightning_genmetrics.features.clip import CLIPImageEncoder, CLIPVisionConfig
from lightning_genmetrics.features.dinov2 import DINOv2Architecture, DINOv2Encoder
from lightning_genmetrics.features.inception import FIDInceptionV3
from lightning_genmetrics.metrics import (
    CLIPMaximumMeanDiscrepancy,
    FrechetInceptionDistance,
    KernelInceptionDistance,
    PrecisionRecallDensityCoverage,
)
from lightning_genmetrics.metrics import prdc as prdc_module
from lightning_genmetrics.stats import load_statistics, weights_fingerprint
from tests.helpers import TinyFeatureNet, exact_frechet, fresh_seed, write_image_folder

TINY_DINOV2 = DINOv2Architecture("tiny", embed_dim=32, depth=2, num_heads=4, pos_grid=5)
TINY_CLIP = CLIPVisionConfig(image_size=32, patch_size=16, width=64, layers=2, output_dim=8)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_encoders(monkeypatch):
    """Every DINOv2 and CLIP name builds a tiny network; no download can happen (TORCH_HOME is empty and the URLs
    refuse connections)."""
    for variant in dinov2.DINOV2_VARIANTS:
        monkeypatch.setitem(dinov2.DINOV2_ARCHITECTURES, variant, TINY_DINOV2)
    for model in clip.CLIP_MODEL_NAMES:
        monkeypatch.setitem(clip.CLIP_CONFIGS, model, TINY_CLIP)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Seeded weights files of the tiny DINOv2 and CLIP networks."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    files = {"dinov2": folder / "dinov2.pth", "clip": folder / "clip.pth"}
    torch.save(DINOv2Encoder(TINY_DINOV2, pretrained=False).state_dict(), files["dinov2"])
    tower = clip.CLIPVisionTransformer(TINY_CLIP)
    torch.save({f"visual.{name}": tensor for name, tensor in tower.state_dict().items()}, files["clip"])
    return files


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("images")
    sides = {
        "real": rng.integers(0, 256, (7, 3, 20, 24), dtype=np.uint8),
        "fake": rng.integers(0, 170, (6, 3, 20, 24), dtype=np.uint8),
        "one": rng.integers(0, 256, (1, 3, 20, 24), dtype=np.uint8),
    }
    tensors = {name: torch.from_numpy(x) for name, x in sides.items()}
    return {name: (write_image_folder(root / name, x), x) for name, x in tensors.items()}


def _dinov2(weights, **kwargs):
    return DINOv2Encoder("vits14", weights_path=weights["dinov2"], verify_weights=False, **kwargs)


def _clip(weights, name="clip-vit-l14-336"):
    return CLIPImageEncoder.from_name(name, weights_path=weights["clip"], verify_weights=False)


def _with(weights, kind):
    return ["--weights", str(weights[kind]), "--no-verify-weights", "--quiet", "--json"]


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def _error(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("genmetrics: error: "), lines
    return lines[0]


# The names the command line writes out (its parser imports nothing) are the feature modules' ------------------


def test_encoder_names_and_preprocessing_modes_are_the_libraries():
    assert [name for name in _ENCODERS if name.startswith("dinov2-")] == list(dinov2.DINOV2_ENCODER_NAMES)
    assert [name for name in _ENCODERS if name.startswith("clip-")] == list(clip.CLIP_ENCODERS)
    assert set(_INCEPTION_RESIZES) == set(resize.RESIZE_PROTOCOLS)
    assert _ENCODERS["inception"][0] == "tf1"
    for name in dinov2.DINOV2_ENCODER_NAMES:
        assert set(_ENCODERS[name]) == set(dinov2.DINOV2_RESIZE_MODES)
        assert _ENCODERS[name][0] == "dgm-eval"  # DINOv2Encoder's default, FD_DINOv2's definition
    for name, settings in clip.CLIP_ENCODERS.items():
        assert set(_ENCODERS[name]) == set(clip.CLIP_PREPROCESS_MODES)
        assert _ENCODERS[name][0] == settings["preprocess"]


# fd and stats on DINOv2 ---------------------------------------------------------------------------------------


def test_fd_on_dinov2_equals_the_metric_and_the_float64_reference(tiny_encoders, weights, folders, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["fd", str(real_dir), str(fake_dir), "--encoder", "dinov2-vits14", *_with(weights, "dinov2")]) == 0
    result = _json(capsys)
    encoder = _dinov2(weights)
    metric = FrechetInceptionDistance(encoder)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert result["fd"] == pytest.approx(metric.compute().item(), rel=1e-9)
    expected = exact_frechet(encoder(real).double().numpy(), encoder(fake).double().numpy())
    assert result["fd"] == pytest.approx(expected, rel=1e-6)
    assert result["num_samples"] == [7, 6]
    assert result["extractor"] == f"DINOv2-{TINY_DINOV2.name}"


def test_stats_per_encoder_then_fd_on_the_files_equals_the_folders(tiny_encoders, weights, folders, tmp_path, capsys):
    (real_dir, real), (fake_dir, _) = folders["real"], folders["fake"]
    dinov2_args = ["--encoder", "dinov2-vits14", "--resize", "edm2", *_with(weights, "dinov2")]
    first, second = tmp_path / "real.npz", tmp_path / "fake.npz"
    assert main(["stats", str(real_dir), "-o", str(first), *dinov2_args]) == 0
    assert _json(capsys)["resize"] == "edm2"
    assert main(["stats", str(fake_dir), "-o", str(second), *dinov2_args]) == 0
    capsys.readouterr()
    statistics = load_statistics(first)
    encoder = _dinov2(weights, resize="edm2")
    provenance = statistics.provenance
    assert (provenance.extractor, provenance.layer, provenance.resize) == ("DINOv2-tiny", "cls", "edm2")
    assert (provenance.feature_input, provenance.num_samples) == ("uint8", 7)
    assert provenance.weights_sha256 == weights_fingerprint(encoder)
    features = encoder(real).double()
    torch.testing.assert_close(statistics.mu, features.mean(0), rtol=1e-6, atol=1e-6)

    assert main(["fd", str(real_dir), str(fake_dir), *dinov2_args]) == 0
    from_folders = _json(capsys)["fd"]
    assert main(["fd", str(first), str(second), "--json"]) == 0
    assert _json(capsys)["fd"] == pytest.approx(from_folders, rel=1e-12)
    assert main(["fd", str(first), str(fake_dir), *dinov2_args]) == 0  # a file on one side, a folder on the other
    assert _json(capsys)["fd"] == pytest.approx(from_folders, rel=1e-12)


def test_statistics_of_another_encoder_or_preprocessing_are_refused_naming_the_flag(
    tiny_encoders, weights, folders, tmp_path, capsys, monkeypatch
):
    real_dir, fake_dir = folders["real"][0], folders["fake"][0]
    paths = {}
    for name, args in {
        "dinov2": ["--encoder", "dinov2-vits14", *_with(weights, "dinov2")],
        "dinov2-edm2": ["--encoder", "dinov2-vits14", "--resize", "edm2", *_with(weights, "dinov2")],
        "clip": ["--encoder", "clip-vit-b32", *_with(weights, "clip")],
    }.items():
        paths[name] = tmp_path / f"{name}.npz"
        assert main(["stats", str(fake_dir if name == "dinov2" else real_dir), "-o", str(paths[name]), *args]) == 0
    capsys.readouterr()

    assert main(["fd", str(paths["dinov2"]), str(paths["clip"])]) == 2
    line = _error(capsys)
    assert "extractor: 'DINOv2-tiny' != 'CLIP-ViT-B/32'" in line
    assert "--allow-provenance-mismatch" in line
    assert "allow_provenance_mismatch" not in line
    assert main(["fd", str(paths["dinov2"]), str(paths["clip"]), "--allow-provenance-mismatch"]) == 2
    assert "the statistics have 32 and 8 features" in _error(capsys)

    assert main(["fd", str(paths["dinov2"]), str(paths["dinov2-edm2"])]) == 2
    line = _error(capsys)
    assert "resize: 'dgm-eval' != 'edm2'" in line
    assert "--allow-provenance-mismatch" in line
    assert main(["fd", str(paths["dinov2"]), str(paths["dinov2-edm2"]), "--allow-provenance-mismatch", "--json"]) == 0
    assert _json(capsys)["fd"] > 0

    # Against a folder, the file is refused before any image goes through the network.
    monkeypatch.setattr(CLIPImageEncoder, "forward", _never_called)
    assert main(["fd", str(paths["dinov2"]), str(real_dir), "--encoder", "clip-vit-b32", *_with(weights, "clip")]) == 2
    line = _error(capsys)
    assert f"the statistics in '{paths['dinov2']}' were produced differently" in line
    assert "--allow-provenance-mismatch" in line


def _never_called(*args, **kwargs):
    raise AssertionError("an image went through the network")


def test_sfid_statistics_come_from_the_spatial_inception_features(seeded_inception_weights, folders, tmp_path, capsys):
    real_dir, real = folders["real"]
    out = tmp_path / "sfid.npz"
    args = ["--encoder", "inception-spatial", "--weights", str(seeded_inception_weights), "--no-verify-weights"]
    assert main(["stats", str(real_dir), "-o", str(out), *args, "--quiet"]) == 0
    statistics = load_statistics(out)
    assert (statistics.num_features, statistics.provenance.layer) == (2023, "2023")
    network = FIDInceptionV3("2023", weights_path=seeded_inception_weights, verify_weights=False)
    torch.testing.assert_close(statistics.mu, network(real).double().mean(0), rtol=1e-6, atol=1e-6)


# prdc and cmmd ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subset", [None, 5])
def test_prdc_equals_the_metric(tiny_encoders, weights, folders, capsys, monkeypatch, subset):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    extra = [] if subset is None else ["--max-samples", str(subset), "--seed", "3"]
    args = ["prdc", str(real_dir), str(fake_dir), "--encoder", "dinov2-vits14", "--k", "2", *extra]
    built = []

    class Recording(PrecisionRecallDensityCoverage):
        """The metric the command builds, recording its settings (a subset's values need not tell the seed)."""

        def __init__(self, *args, **kwargs):
            built.append({name: kwargs[name] for name in ("k", "max_samples", "seed")})
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(prdc_module, "PrecisionRecallDensityCoverage", Recording)
    assert main([*args, *_with(weights, "dinov2")]) == 0
    result = _json(capsys)
    assert built == [{"k": 2, "max_samples": subset, "seed": 3 if subset else 0}]
    metric = PrecisionRecallDensityCoverage(_dinov2(weights), k=2, max_samples=subset, seed=3 if subset else 0)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    expected = metric.compute()
    for name in ("precision", "recall", "density", "coverage"):
        assert result[name] == pytest.approx(expected[name].item(), rel=1e-12, abs=1e-12), name
    assert result["num_samples"] == [7, 6]
    assert result["samples_used"] == ([7, 6] if subset is None else [5, 5])


def test_prdc_with_a_feature_network(folders, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["prdc", str(real_dir), str(fake_dir), "--feature", "tests.helpers:TinyFeatureNet", "--json"]) == 0
    result = _json(capsys)
    metric = PrecisionRecallDensityCoverage(TinyFeatureNet(), feature_input="float")
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert result["density"] == pytest.approx(metric.compute()["density"].item(), rel=1e-12)


def test_cmmd_on_clip_l14_336_by_default_equals_the_metric(tiny_encoders, weights, folders, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    assert main(["cmmd", str(real_dir), str(fake_dir), *_with(weights, "clip")]) == 0
    result = _json(capsys)
    encoder = _clip(weights)
    assert (encoder.preprocess, encoder.normalize) == ("cmmd", True)
    metric = CLIPMaximumMeanDiscrepancy(encoder)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert result["cmmd"] == pytest.approx(metric.compute().item(), rel=1e-9)
    assert result["cmmd"] > 0
    assert (result["num_samples"], result["samples_used"]) == ([7, 6], [7, 6])


def test_kid_on_an_encoder_equals_the_metric(tiny_encoders, weights, folders, capsys):
    (real_dir, real), (fake_dir, fake) = folders["real"], folders["fake"]
    args = ["kid", str(real_dir), str(fake_dir), "--encoder", "dinov2-vits14", "--subsets", "4", "--subset-size", "5"]
    assert main([*args, *_with(weights, "dinov2")]) == 0
    result = _json(capsys)
    metric = KernelInceptionDistance(_dinov2(weights), subsets=4, subset_size=5)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    mean, std = metric.compute()
    assert (result["kid_mean"], result["kid_std"]) == pytest.approx((mean.item(), std.item()), rel=1e-9)


# Weights: the chosen encoder's, verified, with the offline message naming flags ----------------------------------


def test_weights_flags_apply_to_the_chosen_encoder(tiny_encoders, weights, folders, tmp_path, monkeypatch, capsys):
    real_dir, fake_dir = folders["real"][0], folders["fake"][0]
    file = weights["dinov2"]
    spec = dataclasses.replace(dinov2.DINOV2_WEIGHTS["vitl14"], sha256=hashlib.sha256(file.read_bytes()).hexdigest())
    monkeypatch.setitem(dinov2.DINOV2_WEIGHTS, "vitl14", spec)
    args = ["fd", str(real_dir), str(fake_dir), "--encoder", "dinov2-vitl14", "--quiet"]
    assert main([*args, "--weights", str(file), "--json"]) == 0  # the pinned hash: verified, accepted
    assert _json(capsys)["fd"] > 0

    assert main([*args, "--weights", str(weights["clip"])]) == 2  # another file: refused
    line = _error(capsys)
    assert "SHA-256 mismatch" in line
    assert "given by --weights" in line
    assert "pass --no-verify-weights" in line
    assert "verify=False" not in line


def test_missing_encoder_weights_offline_is_one_line_naming_flags(
    tiny_encoders, folders, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(dinov2.dinov2_weights_env_var("vitb14"), raising=False)
    spec = dinov2.DINOV2_WEIGHTS["vitb14"]
    monkeypatch.setitem(dinov2.DINOV2_WEIGHTS, "vitb14", dataclasses.replace(spec, urls=("http://127.0.0.1:9/x.pth",)))
    assert main(["fd", str(folders["real"][0]), str(folders["fake"][0]), "--encoder", "dinov2-vitb14"]) == 2
    line = _error(capsys)
    assert spec.sha256 in line
    assert f"--weights /path/to/{spec.filename}" in line
    assert dinov2.dinov2_weights_env_var("vitb14") in line
    assert "--feature SPEC" in line
    assert "weights_path" not in line


# Bad flags: one line naming the flags, before any network is built or image read --------------------------------


@pytest.fixture
def no_network(monkeypatch):
    for network in (DINOv2Encoder, CLIPImageEncoder, FIDInceptionV3):
        monkeypatch.setattr(network, "__init__", _never_built)


def _never_built(*args, **kwargs):
    raise AssertionError("a network was built")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["fd", "{real}", "{fake}", "--encoder", "dinov2-vitl14", "--feature", "x.py:net"], ["--encoder", "--feature"]),
        (["fd", "{real}", "{fake}", "--resize", "edm2"], ["--resize edm2", "--encoder inception", "tf1"]),
        (["fd", "{real}", "{fake}", "--encoder", "dinov2-vitb14", "--resize", "tf1"], ["--resize tf1", "dgm-eval"]),
        (["cmmd", "{real}", "{fake}", "--resize", "edm2"], ["--encoder clip-vit-l14-336", "cmmd"]),
        (["fid", "{real}", "{fake}", "--resize", "dgm-eval"], ["--resize dgm-eval", "the Inception network"]),
        (["stats", "{real}", "-o", "{tmp}/s.npz", "--encoder", "clip-vit-b32", "--layer", "768"], ["--layer"]),
        (["cmmd", "{real}", "{fake}", "--feature", "x.py:net", "--weights", "w.pth"], ["--weights configures"]),
        (["prdc", "{real}", "{fake}", "--k", "5", "--max-samples", "4"], ["--max-samples 4", "--k 5", "at least 6"]),
        (["prdc", "{real}", "{fake}", "--k", "6"], ["at least 7 images", "got 6", "lower --k"]),
        (["prdc", "{tmp}/s.npz", "{fake}"], ["needs image folders"]),
        (["fd", "{one}", "{fake}", "--encoder", "dinov2-vits14"], ["at least 2 images", "got 1"]),
        (["stats", "{real}", "-o", "{tmp}/absent/s.npz", "--encoder", "dinov2-vitg14"], ["-o/--output", "not exist"]),
    ],
)
def test_bad_flags_fail_before_any_network_is_built(folders, tmp_path, capsys, no_network, argv, fragments):
    paths = {name: folders[name][0] for name in ("real", "fake", "one")}
    argv = [arg.format(tmp=tmp_path, **paths) for arg in argv]
    assert main(argv) == 2
    line = _error(capsys)
    for fragment in fragments:
        assert fragment in line, line


def test_an_unknown_encoder_is_refused_by_the_parser(folders, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["fd", str(folders["real"][0]), str(folders["fake"][0]), "--encoder", "dinov3"])
    assert exited.value.code == 2
    assert "argument --encoder: invalid choice: 'dinov3'" in capsys.readouterr().err


# --help is fast ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["fd", "--help"], ["prdc", "--help"]])
def test_help_answers_within_two_seconds(argv):
    # A fresh interpreter each time, as a user's shell starts one; the best of three absorbs a busy machine's spikes.
    times = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "lightning_genmetrics.cli", *argv], capture_output=True, text=True, timeout=60
        )
        times.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: genmetrics")
    print(f"genmetrics {' '.join(argv)}: best of three {min(times):.2f} s")
    assert min(times) < 2.0
