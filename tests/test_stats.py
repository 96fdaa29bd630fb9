import dataclasses
import os
import re
import warnings
import zipfile

import numpy as np
import pytest
import torch

from lightning_genmetrics import FrechetDistance, FrechetInceptionDistance
from lightning_genmetrics.stats import (
    Provenance,
    ReferenceStatistics,
    check_compatible,
    load_statistics,
    save_statistics,
)
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
    original = FrechetInceptionDistance(net, feature_input="float")
    original.update(real, real=True)
    original.update(fake, real=False)
    path = original.save_real_statistics(tmp_path / "real.npz")
    provenance = load_statistics(path).provenance
    assert (provenance.extractor, provenance.layer, provenance.num_samples) == ("TinyFeatureNet", "output", 50)

    restored = FrechetInceptionDistance(net, real_statistics=path, feature_input="float")
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
    source = FrechetInceptionDistance(TinyFeatureNet(num_features=6, seed=1), feature_input="float")
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
        metric = FrechetInceptionDistance(
            TinyFeatureNet(num_features=6), real_statistics=tmp_path / "clean_fid.npz", feature_input="float"
        )
    metric.update(_images(rng, 10), real=False)
    assert metric.compute() > 0
    with pytest.raises(ValueError, match="with 4 features, got 6"):
        FrechetDistance(4, real_statistics=stats)


def test_real_statistics_need_two_samples():
    metric = FrechetDistance(3)
    metric.update(torch.randn(1, 3), real=True)
    with pytest.raises(RuntimeError, match="at least 2 real samples, got 1"):
        metric.real_statistics()


# Files that are damaged, or that look like statistics but are not --------------------------------------


def _write_ours(path, mu, sigma, provenance, num_samples=None, replace=None):
    """A statistics file in our format written with numpy by hand; its checksum recomputed independently.

    Whoever edits a file can do this: the unkeyed checksum then passes, and only validation refuses it.
    """
    import hashlib
    import json

    text = provenance if isinstance(provenance, str) else json.dumps(provenance, sort_keys=True)
    if num_samples is None:
        count = provenance.get("num_samples") if isinstance(provenance, dict) else None
        num_samples = np.array(-1 if count is None else count, dtype=np.int64)
    digest = hashlib.sha256()
    for array in (mu, sigma):  # hashed as float64 (arrays of other kinds are refused before the checksum)
        digest.update((array.astype(np.float64) if array.dtype.kind == "f" else array).tobytes())
    digest.update(num_samples.astype(np.int64).tobytes())
    digest.update(text.encode())
    arrays = {"mu": mu, "sigma": sigma, "num_samples": num_samples, "provenance": np.array(text)}
    np.savez(path, **{**arrays, "checksum": np.array(digest.hexdigest()), **(replace or {})})
    return path


def _provenance(**fields):
    return {**{"extractor": "Net", "weights_sha256": "ab" * 32, "layer": "2048", "resize": "tf1"}, **fields}


def _refused(path, *fragments):
    with pytest.raises(ValueError, match=re.escape(str(path))) as raised:
        load_statistics(path)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_hand_written_format_matches_ours(rng, tmp_path):
    """The independent writer's files load: each case below is refused for its own reason, not the format."""
    x = rng.standard_normal((30, 4))
    path = _write_ours(tmp_path / "s.npz", x.mean(0), np.cov(x, rowvar=False), _provenance(num_samples=30))
    loaded = load_statistics(path)
    assert loaded.provenance.num_samples == 30
    np.testing.assert_array_equal(loaded.sigma.numpy(), np.cov(x, rowvar=False))


# feature_input: what the extractor received ---------------------------------------------------------------


def test_files_written_before_feature_input_existed_load_as_they_meant(rng, tmp_path):
    x = rng.standard_normal((30, 4))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    # The command line recorded a --feature network's input in the extractor's name.
    for kind in ("float", "uint8"):
        old = _write_ours(tmp_path / f"{kind}.npz", mu, sigma, _provenance(extractor=f"nets.py:tiny ({kind} input)"))
        provenance = load_statistics(old).provenance
        assert (provenance.extractor, provenance.feature_input) == ("nets.py:tiny", kind)
        new = Provenance(extractor="nets.py:tiny", weights_sha256="ab" * 32, layer="2048", resize="tf1")
        assert provenance.differences(dataclasses.replace(new, feature_input=kind)) == []
        other = "uint8" if kind == "float" else "float"
        assert provenance.differences(dataclasses.replace(new, feature_input=other)) == [
            f"feature_input: {kind!r} != {other!r}"
        ]
    # Everything else did not record it: unknown, not compared and not warned about.
    plain = load_statistics(_write_ours(tmp_path / "plain.npz", mu, sigma, _provenance()))
    assert plain.provenance.feature_input == "unknown"
    assert plain.provenance.unknown_fields() == []
    recorded = dataclasses.replace(plain.provenance, feature_input="uint8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_compatible(recorded, plain.provenance, what="statistics")
    # A record that has the field keeps its extractor's name as it is, whatever it looks like.
    named = _provenance(extractor="odd (float input)", feature_input="uint8")
    kept = load_statistics(_write_ours(tmp_path / "named.npz", mu, sigma, named)).provenance
    assert (kept.extractor, kept.feature_input) == ("odd (float input)", "uint8")


def test_feature_input_round_trips_and_is_compared_like_the_other_fields(rng, tmp_path):
    stats = _stats(rng, **_provenance(feature_input="float"), num_samples=40)
    loaded = load_statistics(save_statistics(tmp_path / "s.npz", stats))
    assert loaded.provenance == stats.provenance
    with pytest.raises(ValueError, match=r"feature_input: 'as_given' != 'float'.*allow_provenance_mismatch=True"):
        check_compatible(dataclasses.replace(stats.provenance, feature_input="as_given"), loaded.provenance, what="x")
    check_compatible(
        dataclasses.replace(stats.provenance, feature_input="as_given"),
        loaded.provenance,
        what="x",
        allow_mismatch=True,
    )
    with pytest.raises(TypeError, match="`feature_input`"):
        Provenance(feature_input=None)


@pytest.mark.parametrize(
    ("mu", "sigma", "fragments"),
    [
        (np.zeros(4), np.diag([1.0, 1.0, 1.0, -5.0]), ("`sigma`", "positive semi-definite", "-5")),
        (np.zeros(0), np.zeros((0, 0)), ("D = 0",)),
        (np.zeros(3, dtype=np.complex128), np.eye(3, dtype=np.complex128), ("`mu`", "complex128")),
        (np.zeros(3), np.eye(3) * (1 + 0j), ("`sigma`", "complex128")),
        (np.zeros(3, dtype=np.int64), np.eye(3), ("`mu`", "int64")),
        (np.array(["0", "1"]), np.eye(2), ("`mu`", "<U1")),
        (np.zeros(3), np.eye(4), ("`mu` [D] and `sigma` [D, D]", "(3,)", "(4, 4)")),
        (np.zeros((2, 2)), np.eye(2), ("(2, 2)",)),
        (np.array([0.0, np.inf]), np.eye(2), ("NaN/Inf", "`mu`")),
        (np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), ("NaN/Inf", "`sigma`")),
        (np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), ("symmetric", "`sigma`")),
    ],
)
@pytest.mark.parametrize("ours", [True, False], ids=["ours", "foreign"])
def test_arrays_that_are_not_statistics_are_refused_naming_file_and_field(tmp_path, mu, sigma, fragments, ours):
    path = tmp_path / "s.npz"
    if ours:
        _write_ours(path, mu, sigma, _provenance())
    else:
        np.savez(path, mu=mu, sigma=sigma)  # pytorch-fid / clean-fid layout
    _refused(path, *fragments)


@pytest.mark.parametrize(
    ("provenance", "num_samples", "fragments"),
    [
        ('["extractor", "Net"]', None, ("JSON object", "list")),
        ("extractor=Net", None, ("not JSON",)),
        ('{"num_samples": "40"}', np.array(-1), ("`num_samples`", "'40'")),
        ('{"num_samples": 40.5}', np.array(-1), ("`num_samples`", "40.5")),
        ('{"num_samples": true}', np.array(-1), ("`num_samples`", "True")),
        ('{"num_samples": -3}', np.array(-3), ("`num_samples`", "-3")),
        ('{"num_samples": 1}', np.array(1), ("`num_samples`", "at least 2")),
        ('{"num_samples": 40}', np.array(41), ("`num_samples` is 41", "40")),
        ('{"layer": 2048}', None, ("`layer`", "2048")),
        ('{"dtype": "int64"}', None, ("`dtype`", "int64")),
        ('{"extractor": null}', None, ("`extractor`", "None")),
    ],
)
def test_malformed_provenance_is_refused_naming_file_and_field(rng, tmp_path, provenance, num_samples, fragments):
    x = rng.standard_normal((30, 3))
    path = _write_ours(tmp_path / "s.npz", x.mean(0), np.cov(x, rowvar=False), provenance, num_samples)
    _refused(path, *fragments)


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        ({"provenance": np.array(["{}", "{}"])}, ("`provenance`", "JSON string")),
        ({"num_samples": np.array(40.0)}, ("`num_samples`", "integer")),
        ({"checksum": np.array([1, 2])}, ("`checksum`",)),
    ],
)
def test_bookkeeping_arrays_of_the_wrong_kind_are_refused(rng, tmp_path, extra, fragments):
    x = rng.standard_normal((30, 3))
    path = _write_ours(tmp_path / "s.npz", x.mean(0), np.cov(x, rowvar=False), _provenance(), replace=extra)
    _refused(path, *fragments)


def test_each_kind_of_damaged_file_is_a_value_error_naming_it(rng, tmp_path):
    intact = save_statistics(tmp_path / "intact.npz", _stats(rng, num_samples=40)).read_bytes()
    (tmp_path / "empty.npz").write_bytes(b"")
    with open(tmp_path / "npy.npz", "wb") as file:
        np.save(file, np.eye(3))
    with open(tmp_path / "pickle.npz", "wb") as file:
        np.save(file, np.array([{"mu": 0}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "pickled_member.npz", mu=np.array([object()], dtype=object), sigma=np.eye(1))
    (tmp_path / "half.npz").write_bytes(intact[: len(intact) // 2])
    (tmp_path / "no_end.npz").write_bytes(intact[:-1])
    for name in ("empty", "npy", "pickle", "pickled_member", "half", "no_end"):
        _refused(tmp_path / f"{name}.npz", "Cannot read statistics file")


def test_every_cut_and_every_byte_flip_of_a_real_file_is_refused_or_harmless(rng, tmp_path):
    """A damaged copy never loads as other statistics: it is refused (a ValueError naming it) or reads the same.

    (Compressed members, where damage reaches zlib, are covered in tests/reliability/test_files.py.)
    """
    original = _stats(rng, d=2, extractor="Net", num_samples=40)
    path = save_statistics(tmp_path / "s.npz", original)
    intact = path.read_bytes()
    for length in sorted({*range(0, len(intact), 16), *range(len(intact) - 120, len(intact))}):
        path.write_bytes(intact[:length])  # cut at every 16th byte and everywhere in the directory at the end
        _refused(path)
    path.write_bytes(intact)
    refusals = []
    descriptor = os.open(path, os.O_WRONLY)
    try:
        for position in range(len(intact)):
            os.pwrite(descriptor, bytes([intact[position] ^ 0x5A]), position)
            try:
                loaded = load_statistics(path)
            except ValueError as error:
                refusals.append(str(error))
            else:  # a byte nobody reads (a timestamp, a version field): the same statistics
                assert torch.equal(loaded.mu, original.mu)
                assert torch.equal(loaded.sigma, original.sigma)
                assert loaded.provenance == original.provenance
            os.pwrite(descriptor, intact[position : position + 1], position)
    finally:
        os.close(descriptor)
    assert len(refusals) > len(intact) // 2
    assert all(str(path) in message for message in refusals)


# Positive semi-definiteness: refuse what is not a covariance, accept what rounding did to one --------------


def _with_spectrum(rng, eigenvalues):
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    sigma = (q * eigenvalues) @ q.T
    return (sigma + sigma.T) / 2


def test_the_negative_eigenvalue_allowance_is_relative_to_the_largest(rng):
    eigenvalues = np.geomspace(1.0, 1e-3, 40) * 7.0
    for negative, accepted in [(-0.3e-9 * 7.0, True), (-3e-9 * 7.0, False), (-1e-3, False)]:
        sigma = torch.from_numpy(_with_spectrum(rng, np.append(eigenvalues, negative)))
        mu = torch.zeros(41, dtype=torch.float64)
        if accepted:
            ReferenceStatistics(mu, sigma)
        else:
            with pytest.raises(ValueError, match="positive semi-definite") as raised:
                ReferenceStatistics(mu, sigma)
            reported = float(str(raised.value).split("eigenvalue ")[1].split(" ")[0])
            assert reported == pytest.approx(negative, rel=1e-4)


def test_genuine_sample_covariances_are_accepted_through_every_path(rng, tmp_path):
    """np.cov, the metric's own moments, rank-deficient n < d, large offsets, float32 pytorch-fid-style files."""
    for n, d, offset in [(5, 40, 0.0), (30, 100, 1e3), (200, 64, 1e2)]:
        x = rng.standard_normal((n, d)) * np.linspace(0.01, 1.0, d) + offset
        sigma = np.cov(x, rowvar=False)
        assert np.linalg.eigvalsh(sigma)[0] < 0 or n > d  # rank-deficient ones really have rounded negatives
        ReferenceStatistics(torch.from_numpy(x.mean(0)), torch.from_numpy(sigma))
        metric = FrechetDistance(d)
        for chunk in np.array_split(x, 3):
            metric.update(torch.from_numpy(chunk), real=True)
        statistics = metric.real_statistics()
        assert load_statistics(save_statistics(tmp_path / "m.npz", statistics)).num_features == d
        np.savez(tmp_path / "f32.npz", mu=x.mean(0).astype(np.float32), sigma=sigma.astype(np.float32))
        assert load_statistics(tmp_path / "f32.npz").provenance.dtype == "float32"


def test_the_check_at_d_2048_is_one_cholesky_for_a_genuine_singular_covariance(rng, monkeypatch):
    """The eigensolver (2–12 s at D = 2048 on a loaded 2-core CPU) runs only for matrices the factorisation refuses."""
    x = rng.standard_normal((100, 2048)) * np.linspace(0.01, 1.0, 2048)  # rank 99 of 2048
    mu, sigma = torch.from_numpy(x.mean(0)), torch.from_numpy(np.cov(x, rowvar=False))

    def forbidden(*args, **kwargs):
        raise AssertionError("the eigensolver ran for a genuine covariance")

    monkeypatch.setattr(torch.linalg, "eigvalsh", forbidden)
    ReferenceStatistics(mu, sigma)


def test_direct_construction_refuses_wrong_types():
    eye = torch.eye(2, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"`mu` to be a real floating-point tensor, got torch\.complex128"):
        ReferenceStatistics(torch.zeros(2, dtype=torch.complex128), eye)
    with pytest.raises(TypeError, match=r"`sigma` to be a real floating-point tensor, got torch\.int64"):
        ReferenceStatistics(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="got ndarray"):
        ReferenceStatistics(np.zeros(2), eye)
    with pytest.raises(ValueError, match="D = 0"):
        ReferenceStatistics(torch.zeros(0, dtype=torch.float64), torch.zeros(0, 0, dtype=torch.float64))


def test_provenance_sample_count_accepts_numpy_integers_and_refuses_the_rest():
    assert Provenance(num_samples=np.int64(5)).num_samples == 5
    assert type(Provenance(num_samples=np.int64(5)).num_samples) is int
    for bad, error in [(True, TypeError), (2.0, TypeError), ("5", TypeError), (1, ValueError), (-1, ValueError)]:
        with pytest.raises(error, match="`num_samples`"):
            Provenance(num_samples=bad)


# One artifact format --------------------------------------------------------------------------------------------


def _legacy_checksum(path):
    """The checksum of the first statistics format, written out independently: bytes of mu, sigma, num_samples,
    then the provenance text."""
    import hashlib

    with np.load(path) as data:
        digest = hashlib.sha256()
        for name in ("mu", "sigma", "num_samples"):
            digest.update(np.ascontiguousarray(data[name]).tobytes())
        digest.update(str(data["provenance"]).encode())
        return digest.hexdigest(), str(data["checksum"])


def test_statistics_without_a_root_keep_the_first_formats_checksum(rng, tmp_path):
    path = save_statistics(tmp_path / "s.npz", _stats(rng, extractor="Net", num_samples=40))
    expected, stored = _legacy_checksum(path)
    assert stored == expected
    with np.load(path) as data:
        assert sorted(data.files) == ["checksum", "mu", "num_samples", "provenance", "sigma"]


def test_a_root_travels_in_the_statistics_file_and_its_checksum(rng, tmp_path):
    from scipy.linalg import sqrtm

    stats = _stats(rng, num_samples=40)
    root = torch.from_numpy(np.real(sqrtm(stats.sigma.numpy())))
    path = save_statistics(tmp_path / "s.npz", ReferenceStatistics(stats.mu, stats.sigma, stats.provenance, root))
    loaded = load_statistics(path)
    assert torch.equal(loaded.sigma_root, root)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["sigma_root"] = arrays["sigma_root"] * (1 + 1e-12)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        load_statistics(path)


@pytest.mark.filterwarnings("ignore:Cannot check the reference statistics")  # plain features have no provenance
def test_frechet_distance_uses_a_loaded_root_after_checking_it(rng, tmp_path):
    from scipy.linalg import sqrtm

    x = rng.standard_normal((60, 6))
    metric = FrechetDistance()
    metric.update(torch.from_numpy(x), real=True)
    written = metric.save_real_statistics(tmp_path / "s.npz", with_root=True)
    assert torch.equal(load_statistics(written).sigma_root, metric.real_sqrt().cpu())

    stats = load_statistics(written)
    scipy_root = torch.from_numpy(np.real(sqrtm(stats.sigma.numpy())))  # rounds differently from ours
    other = FrechetDistance()
    other.load_real_statistics(ReferenceStatistics(stats.mu, stats.sigma, stats.provenance, scipy_root))
    assert torch.equal(other.real_sqrt().cpu(), scipy_root)  # used as given: no eigendecomposition

    kept = FrechetDistance()
    kept.load_real_statistics(stats)
    wrong = ReferenceStatistics(stats.mu + 1, stats.sigma, stats.provenance, 2 * scipy_root)
    with pytest.raises(ValueError, match="square root"):
        kept.load_real_statistics(wrong)
    assert torch.equal(kept.real_statistics().mu, stats.mu)  # the previous real side stays


def test_a_root_of_another_shape_or_non_finite_is_refused(rng):
    stats = _stats(rng)
    with pytest.raises(ValueError, match="sigma_root"):
        ReferenceStatistics(stats.mu, stats.sigma, sigma_root=torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma_root"):
        ReferenceStatistics(stats.mu, stats.sigma, sigma_root=torch.full_like(stats.sigma, float("nan")))
    with pytest.raises(TypeError, match="sigma_root"):
        ReferenceStatistics(stats.mu, stats.sigma, sigma_root=stats.sigma.numpy())


def test_artifacts_round_trip_with_provenance_and_refuse_another_kind(rng, tmp_path):
    from lightning_genmetrics.stats import load_artifact, save_artifact

    features = torch.from_numpy(rng.standard_normal((7, 4)).astype(np.float32))
    keys = torch.from_numpy(rng.permutation(7).astype(np.int64))
    provenance = Provenance(extractor="Net", weights_sha256="ab" * 32, layer="out", resize="none", num_samples=9)
    path = save_artifact(
        tmp_path / "r.npz", {"features": features, "keys": keys}, kind="reservoir", provenance=provenance
    )
    loaded = load_artifact(path, kind="reservoir", names=("features", "keys"))
    assert loaded.kind == "reservoir"
    assert torch.equal(loaded.arrays["features"], features)
    assert torch.equal(loaded.arrays["keys"], keys)
    assert loaded.provenance == provenance
    with pytest.raises(ValueError, match="'reservoir' artifact, not 'radii'"):
        load_artifact(path, kind="radii", names=("features",))
    with pytest.raises(ValueError, match="not statistics"):
        load_statistics(path)
    statistics = save_statistics(tmp_path / "s.npz", _stats(rng))
    with pytest.raises(ValueError, match="'statistics' artifact, not 'reservoir'"):
        load_artifact(statistics, kind="reservoir", names=("features",))
    with pytest.raises(ValueError, match=r"no \['radii'\]"):
        load_artifact(path, kind="reservoir", names=("radii",))
    with pytest.raises(FileNotFoundError):
        load_artifact(tmp_path / "absent.npz", kind="reservoir", names=())


def test_artifact_without_names_gives_every_array_and_still_verifies_them_all(rng, tmp_path):
    from lightning_genmetrics.stats import load_artifact, save_artifact

    features = torch.from_numpy(rng.standard_normal((5, 3)))
    radii = torch.from_numpy(rng.random(5))
    provenance = Provenance(extractor="Net", num_samples=5)
    path = save_artifact(
        tmp_path / "r.npz", {"features": features, "radii": radii}, kind="reservoir", provenance=provenance
    )
    loaded = load_artifact(path, kind="reservoir", names=None)
    assert sorted(loaded.arrays) == ["features", "radii"]
    assert torch.equal(loaded.arrays["features"], features)
    assert torch.equal(loaded.arrays["radii"], radii)
    assert loaded.provenance == provenance
    assert sorted(load_artifact(path, kind="reservoir").arrays) == ["features", "radii"]
    # Without the optional array, the same call gives what is there.
    bare = save_artifact(tmp_path / "b.npz", {"features": features}, kind="reservoir", provenance=provenance)
    assert sorted(load_artifact(bare, kind="reservoir").arrays) == ["features"]
    # The checksum still covers every array, named or not.
    with np.load(path) as data:
        edited = {**dict(data), "radii": data["radii"] * 2}
    np.savez(path, **edited)
    for names in (None, ("features",)):
        with pytest.raises(ValueError, match="checksum"):
            load_artifact(path, kind="reservoir", names=names)
    with pytest.raises(ValueError, match="'reservoir' artifact, not 'radii'"):
        load_artifact(bare, kind="radii")


def test_artifact_checksum_covers_arrays_kind_and_provenance(rng, tmp_path):
    from lightning_genmetrics.stats import load_artifact, save_artifact

    path = save_artifact(
        tmp_path / "r.npz",
        {"x": torch.from_numpy(rng.standard_normal(5))},
        kind="reservoir",
        provenance=Provenance(num_samples=5),
    )
    with np.load(path) as data:
        intact = dict(data)
    edits = {
        "x": lambda a: {**a, "x": a["x"] + 1e-12},
        "renamed": lambda a: {**{k: v for k, v in a.items() if k != "x"}, "y": a["x"]},
        "kind": lambda a: {**a, "kind": np.array("other")},
        "provenance": lambda a: {**a, "provenance": np.array(str(a["provenance"]).replace('"unknown"', '"Net"', 1))},
        "dtype": lambda a: {**a, "x": a["x"].astype(np.float32)},
    }
    for what, edit in edits.items():
        np.savez(path, **edit(intact))
        names = ("y",) if what == "renamed" else ("x",)
        kind = "other" if what == "kind" else "reservoir"
        with pytest.raises(ValueError, match="checksum"):
            load_artifact(path, kind=kind, names=names)


def test_save_artifact_refuses_reserved_names_and_kinds(tmp_path):
    from lightning_genmetrics.stats import save_artifact

    with pytest.raises(ValueError, match="bookkeeping"):
        save_artifact(tmp_path / "a.npz", {"checksum": torch.zeros(1)}, kind="k", provenance=Provenance())
    with pytest.raises(ValueError, match="kind"):
        save_artifact(tmp_path / "a.npz", {"x": torch.zeros(1)}, kind="statistics", provenance=Provenance())
    with pytest.raises(TypeError, match="x"):
        save_artifact(tmp_path / "a.npz", {"x": [1.0]}, kind="k", provenance=Provenance())
    assert not any(tmp_path.iterdir())
