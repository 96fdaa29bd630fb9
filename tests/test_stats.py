import zipfile

import numpy as np
import pytest
import torch

from lightning_genmetrics import FrechetDistance, FrechetInceptionDistance
from lightning_genmetrics.stats import Provenance, ReferenceStatistics, load_statistics, save_statistics
from tests.helpers import TinyFeatureNet


def _stats(rng, d=5, **provenance):
    x = rng.standard_normal((40, d))
    return ReferenceStatistics(
        torch.from_numpy(x.mean(0)), torch.from_numpy(np.cov(x, rowvar=False)), Provenance(**provenance)
    )


def _images(rng, n):
    return torch.from_numpy(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8))


def test_round_trip_keeps_values_and_provenance(rng, tmp_path):
    stats = _stats(rng, extractor="Net", weights_sha256="ab" * 32, layer="2048", resize="tf1", num_samples=40)
    loaded = load_statistics(save_statistics(tmp_path / "s.npz", stats))
    assert torch.equal(loaded.mu, stats.mu)
    assert torch.equal(loaded.sigma, stats.sigma)
    assert loaded.provenance == stats.provenance
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temporary file left behind


def test_files_are_readable_by_pytorch_fid_and_clean_fid_conventions(rng, tmp_path):
    stats = _stats(rng)
    path = save_statistics(tmp_path / "s.npz", stats)
    with np.load(path) as data:  # what pytorch-fid and clean-fid do with a statistics file
        np.testing.assert_array_equal(data["mu"], stats.mu.numpy())
        np.testing.assert_array_equal(data["sigma"], stats.sigma.numpy())


def test_foreign_mu_sigma_file_has_unknown_provenance(rng, tmp_path):
    stats = _stats(rng)
    np.savez(tmp_path / "pytorch_fid.npz", mu=stats.mu.numpy(), sigma=stats.sigma.numpy().astype(np.float32))
    loaded = load_statistics(tmp_path / "pytorch_fid.npz")
    assert loaded.provenance.unknown_fields() == ["extractor", "weights_sha256", "layer", "resize"]
    assert loaded.provenance.num_samples is None
    assert loaded.provenance.dtype == "float32"


def test_edited_file_fails_its_checksum(rng, tmp_path):
    path = save_statistics(tmp_path / "s.npz", _stats(rng))
    with np.load(path) as data:
        arrays = dict(data)
    arrays["mu"] = arrays["mu"] + 1e-9
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        load_statistics(path)


@pytest.mark.parametrize(
    ("writer", "match"),
    [
        (lambda p: p.write_bytes(b"not a zip file at all"), "Cannot read statistics file"),
        (lambda p: np.savez(p, mu=np.zeros(3)), r"no \['sigma'\]"),
        (lambda p: np.savez(p, mu=np.zeros(3), sigma=np.eye(4)), r"shapes \(3,\) and \(4, 4\)"),
        (lambda p: np.savez(p, mu=np.array([0, np.nan]), sigma=np.eye(2)), "NaN/Inf"),
        (lambda p: np.savez(p, mu=np.zeros(2), sigma=np.array([[1.0, 0.5], [0.0, 1.0]])), "symmetric"),
        (lambda p: np.savez(p, mu=np.array([object()], dtype=object), sigma=np.eye(1)), "Cannot read"),
    ],
)
def test_bad_files_are_refused(tmp_path, writer, match):
    path = tmp_path / "bad.npz"
    writer(path)
    with pytest.raises(ValueError, match=match):
        load_statistics(path)


def test_truncated_file_is_refused(rng, tmp_path):
    path = save_statistics(tmp_path / "s.npz", _stats(rng))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="Cannot read"):
        load_statistics(path)
    assert not zipfile.is_zipfile(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="No statistics file"):
        load_statistics("/nonexistent/stats.npz")


def test_metric_starts_from_saved_statistics(rng, tmp_path):
    net = TinyFeatureNet(num_features=6, seed=1)
    real, fake = _images(rng, 50), _images(rng, 30)
    original = FrechetInceptionDistance(net)
    original.update(real, real=True)
    original.update(fake, real=False)
    path = original.save_real_statistics(tmp_path / "real.npz")
    provenance = load_statistics(path).provenance
    assert (provenance.extractor, provenance.layer, provenance.num_samples) == ("TinyFeatureNet", "output", 50)

    restored = FrechetInceptionDistance(net, real_statistics=path)
    restored.update(fake, real=False)
    torch.testing.assert_close(restored.compute(), original.compute(), rtol=1e-12, atol=0)
    restored.reset()  # loaded statistics survive reset
    restored.update(fake, real=False)
    torch.testing.assert_close(restored.compute(), original.compute(), rtol=1e-12, atol=0)

    before = {k: v.clone() for k, v in restored.metric_state.items()}
    with pytest.raises(ValueError, match="loaded reference statistics"):
        restored.update(real, real=True)
    assert all(torch.equal(before[k], v) for k, v in restored.metric_state.items())


def test_provenance_mismatch_is_refused_naming_the_field(rng, tmp_path):
    source = FrechetInceptionDistance(TinyFeatureNet(num_features=6, seed=1))
    source.update(_images(rng, 20), real=True)
    path = source.save_real_statistics(tmp_path / "real.npz")
    with pytest.raises(ValueError, match="weights_sha256"):
        FrechetInceptionDistance(TinyFeatureNet(num_features=6, seed=2), real_statistics=path)
    metric = FrechetInceptionDistance(
        TinyFeatureNet(num_features=6, seed=2), real_statistics=path, allow_provenance_mismatch=True
    )
    assert metric.num_features == 6


def test_unknown_provenance_warns_and_dimension_must_match(rng, tmp_path):
    stats = _stats(rng, d=6)
    np.savez(tmp_path / "clean_fid.npz", mu=stats.mu.numpy(), sigma=stats.sigma.numpy())
    with pytest.warns(UserWarning, match="Cannot check"):
        metric = FrechetInceptionDistance(TinyFeatureNet(num_features=6), real_statistics=tmp_path / "clean_fid.npz")
    metric.update(_images(rng, 10), real=False)
    assert metric.compute() > 0
    with pytest.raises(ValueError, match="with 4 features, got 6"):
        FrechetDistance(4, real_statistics=stats)


def test_real_statistics_need_two_samples():
    metric = FrechetDistance(3)
    metric.update(torch.randn(1, 3), real=True)
    with pytest.raises(RuntimeError, match="at least 2 real samples, got 1"):
        metric.real_statistics()
