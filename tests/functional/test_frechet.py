import numpy as np
import pytest
import scipy.linalg
import torch

from lightning_genmetrics.functional import (
    features_to_moments,
    frechet_distance,
    merge_moments,
    moments_to_covariance,
    psd_sqrt,
    trace_sqrt_product,
)
from tests.helpers import exact_frechet

TARGET = 1e-10  # relative error the issue asks for against the exact float64 reference


def _fd_from_features(a: np.ndarray, b: np.ndarray, *, counts: bool = True) -> float:
    mu1, s1 = moments_to_covariance(features_to_moments(torch.from_numpy(a)))
    mu2, s2 = moments_to_covariance(features_to_moments(torch.from_numpy(b)))
    num_samples = (a.shape[0], b.shape[0]) if counts else None
    return frechet_distance(mu1, s1, mu2, s2, num_samples=num_samples).item()


def _correlated(rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return shift + scale * (rng.standard_normal((n, d)) @ mixing) + rng.standard_normal(d)


@pytest.mark.parametrize("counts", [True, False])
@pytest.mark.parametrize(("n", "m", "d"), [(40, 30, 128), (300, 250, 64), (2000, 1500, 32), (7, 5, 256)])
def test_matches_exact_reference(rng, n, m, d, counts):
    a, b = _correlated(rng, n, d), _correlated(rng, m, d, scale=1.3, shift=0.2)
    expected = exact_frechet(a, b)
    assert abs(_fd_from_features(a, b, counts=counts) - expected) <= TARGET * expected


def _power_law_pair(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Features with an Inception-like 1/k spectrum: the smallest genuine eigenvalues of R Σ2 R are tiny."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = 2.0 / np.arange(1, d + 1)
    a = rng.standard_normal((n, d)) @ (np.sqrt(spectrum)[:, None] * basis.T)
    rotated, _ = np.linalg.qr(basis + 0.02 * rng.standard_normal((d, d)))
    b = rng.standard_normal((n, d)) @ (np.sqrt(spectrum * rng.uniform(0.7, 1.3, d))[:, None] * rotated.T) + 0.05
    return a, b


@pytest.mark.parametrize("counts", [True, False])
def test_small_genuine_eigenvalues_are_kept(counts):
    # A case where a λ_max·d·ε tolerance on the eigenvalues of the product R Σ2 R drops a genuine one (6e-8
    # relative error with the former eigvalsh route): the rank bound from the counts, or without them the
    # ranks of the factors themselves, keeps it.
    a, b = _power_law_pair(np.random.default_rng(2), 300, 768)
    expected = exact_frechet(a, b)
    assert abs(_fd_from_features(a, b, counts=counts) - expected) <= TARGET * expected


def test_power_law_spectrum_with_fewer_samples_than_dimensions(rng):
    a, b = _power_law_pair(rng, int(rng.integers(100, 250)), 384)
    expected = exact_frechet(a, b)
    assert abs(_fd_from_features(a, b) - expected) <= TARGET * expected


def test_large_mean_has_no_cancellation(rng):
    # Mean 10⁴ times the standard deviation: Σxxᵀ − nμμᵀ would lose ~8 digits here.
    a = _correlated(rng, 500, 48, shift=1e4)
    b = _correlated(rng, 400, 48, scale=1.1, shift=1e4)
    expected = exact_frechet(a, b)
    assert abs(_fd_from_features(a, b) - expected) <= TARGET * expected


def test_identical_sets_give_zero(rng):
    for n, d in [(30, 64), (500, 16)]:
        a = _correlated(rng, n, d, shift=3.0)
        mu, sigma = moments_to_covariance(features_to_moments(torch.from_numpy(a)))
        value = frechet_distance(mu, sigma, mu, sigma).item()
        assert 0.0 <= value <= 1e-10 * sigma.trace().item()


def test_batch_merging_matches_whole(rng):
    a = _correlated(rng, 257, 40, shift=50.0)
    cuts = np.sort(rng.choice(np.arange(1, 257), size=6, replace=False))
    moments = features_to_moments(torch.from_numpy(a[:0]))
    for part in np.split(a, cuts):
        moments = merge_moments(moments, features_to_moments(torch.from_numpy(part)))
    whole = features_to_moments(torch.from_numpy(a))
    assert int(moments[0]) == 257
    torch.testing.assert_close(moments[1], whole[1], rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(moments[2], whole[2], rtol=1e-11, atol=1e-9)
    cov = np.cov(a, rowvar=False)
    torch.testing.assert_close(moments_to_covariance(moments)[1], torch.from_numpy(cov), rtol=1e-10, atol=1e-10)


def test_agrees_with_scipy_sqrtm_when_well_conditioned(rng):
    a, b = _correlated(rng, 3000, 16), _correlated(rng, 3000, 16, scale=0.8)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    mu1, mu2 = a.mean(0), b.mean(0)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert _fd_from_features(a, b) == pytest.approx(reference, rel=1e-9)


def test_cached_root_gives_same_value(rng):
    a, b = _correlated(rng, 100, 20), _correlated(rng, 80, 20)
    mu1, s1 = moments_to_covariance(features_to_moments(torch.from_numpy(a)))
    mu2, s2 = moments_to_covariance(features_to_moments(torch.from_numpy(b)))
    root = psd_sqrt(s1, rank=99)
    torch.testing.assert_close(root @ root, s1, rtol=1e-10, atol=1e-12)
    assert frechet_distance(mu1, s1, mu2, s2, sqrt_sigma1=root, num_samples=(100, 80)) == frechet_distance(
        mu1, s1, mu2, s2, num_samples=(100, 80)
    )


def test_trace_sqrt_of_rank_deficient_product_ignores_noise(rng):
    # Σ1 of rank 3 in 64 dimensions: all but three eigenvalues of R Σ2 R are zero in exact arithmetic.
    a = rng.standard_normal((4, 64))
    b = rng.standard_normal((200, 64))
    s1 = torch.from_numpy(np.cov(a, rowvar=False))
    s2 = torch.from_numpy(np.cov(b, rowvar=False))
    ca, cb = a - a.mean(0), b - b.mean(0)
    expected = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(3 * 199)
    assert trace_sqrt_product(psd_sqrt(s1), s2).item() == pytest.approx(expected, rel=TARGET)
    assert trace_sqrt_product(psd_sqrt(s1, rank=3), s2, rank=3).item() == pytest.approx(expected, rel=TARGET)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(3)), TypeError, "`mu1` to be a torch.Tensor"),
        ((torch.zeros(3), torch.eye(4), torch.zeros(3), torch.eye(3)), ValueError, r"`sigma1` to have shape \[3, 3\]"),
        ((torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4)), ValueError, "same shape"),
        ((torch.zeros(1, 3), torch.eye(3), torch.zeros(3), torch.eye(3)), ValueError, r"`mu1` to have shape \[D\]"),
        ((torch.zeros(3), torch.eye(3), torch.tensor([0, float("nan"), 0]), torch.eye(3)), ValueError, "`mu2`"),
        ((torch.zeros(0), torch.zeros(0, 0), torch.zeros(0), torch.zeros(0, 0)), ValueError, r"`mu1` .*D >= 1.*\(0,\)"),
        ((torch.zeros(2), torch.eye(2), torch.zeros(0), torch.zeros(0, 0)), ValueError, r"`mu2` .*D >= 1.*\(0,\)"),
    ],
)
def test_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        frechet_distance(*args)


def test_zero_features_and_bad_roots_are_refused():
    empty, eye = torch.zeros(0, 0), torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"`sigma` .*D >= 1.*\(0, 0\)"):
        psd_sqrt(empty)
    with pytest.raises(ValueError, match=r"`sqrt_sigma1` .*D >= 1"):
        trace_sqrt_product(empty, empty)
    with pytest.raises(ValueError, match=r"`sigma2` .*D >= 1"):
        trace_sqrt_product(eye, empty)
    with pytest.raises(ValueError, match="`sqrt_sigma1` and `sigma2` to have the same shape"):
        trace_sqrt_product(eye, torch.eye(3))
    with pytest.raises(ValueError, match=r"`sqrt_sigma1` to have the shape of `sigma1`"):
        frechet_distance(torch.zeros(2), eye, torch.zeros(2), eye, sqrt_sigma1=torch.eye(3))
    with pytest.raises(TypeError, match=r"`sqrt_sigma1` to be a torch\.Tensor"):
        frechet_distance(torch.zeros(2), eye, torch.zeros(2), eye, sqrt_sigma1=np.eye(2))
