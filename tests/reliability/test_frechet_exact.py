"""The Fréchet distance to 1e-10 of its value on ill-conditioned, singular and dead-channel covariances.

Every case is checked against the exact float64 reference (the trace-sqrt term as the nuclear norm of the
centred cross-product ``A Bᵀ / √((n1-1)(n2-1))``, from the QR factors of the centred features, so no
covariance product is ever formed) and against torchmetrics' ``_compute_fid`` on the same statistics: ours
may not be worse, except within the rounding level of the inputs themselves (``ε · (tr Σ1 + tr Σ2) / FD``,
the error that rounding the covariances alone can cause, times a margin of 50).
"""

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import _compute_fid

from lightning_genmetrics import FrechetDistance
from lightning_genmetrics.functional import frechet_distance

TARGET = 1e-10
EPS = np.finfo(np.float64).eps


def _exact(a: torch.Tensor, b: torch.Tensor) -> float:
    """The exact Fréchet distance of two float64 feature sets (QR of the centred features, then an SVD)."""

    def reduced(x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=0)
        return torch.linalg.qr(centred, mode="r").R if x.shape[0] > x.shape[1] else centred

    n, m = a.shape[0], b.shape[0]
    ca, cb = a - a.mean(0), b - b.mean(0)
    traces = ca.square().sum() / (n - 1) + cb.square().sum() / (m - 1)
    nuclear = torch.linalg.svdvals(reduced(a) @ reduced(b).T).sum() / ((n - 1) * (m - 1)) ** 0.5
    return float((a.mean(0) - b.mean(0)).square().sum() + traces - 2 * nuclear)


def _errors(a: np.ndarray, b: np.ndarray, *, without_counts: bool = True) -> dict[str, float]:
    """Relative errors of the metric, the functional form (with a supplied root and counts; without counts,
    which computes its own root) and torchmetrics, on the same features; plus ``floor``, the rounding level
    of the inputs."""
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    metric = FrechetDistance()
    metric.update(x, real=True)
    metric.update(y, real=False)
    values = {"metric": metric.compute().item()}
    mu1, sigma1, mu2, sigma2 = metric.gaussians()
    counts = (a.shape[0], b.shape[0])
    root = metric.real_sqrt()  # psd_sqrt(sigma1, rank=n1 - 1), cached by compute()
    values["supplied root"] = frechet_distance(mu1, sigma1, mu2, sigma2, sqrt_sigma1=root, num_samples=counts).item()
    if without_counts:
        values["functional"] = frechet_distance(mu1, sigma1, mu2, sigma2).item()
    values["torchmetrics"] = _compute_fid(mu1, sigma1, mu2, sigma2).item()
    exact = _exact(x, y)
    errors = {name: abs(value - exact) / exact for name, value in values.items()}
    errors["floor"] = 50 * EPS * float(sigma1.trace() + sigma2.trace()) / exact
    print({name: f"{error:.1e}" for name, error in errors.items()})
    return errors


def _assert_exact(errors: dict[str, float]) -> None:
    anchor = max(errors["torchmetrics"], errors["floor"])
    for name in ("metric", "functional", "supplied root"):
        if name not in errors:
            continue
        assert errors[name] <= TARGET, (name, errors)
        assert errors[name] <= anchor, (name, errors)


def _close_pair(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``randn(n, d) @ A`` with Gaussian ``A / √d`` (full rank, condition ~1e7-1e8 when n > d), and a close
    perturbation of it: the eigenvalues of Σ1 Σ2 span ~15 decades. Drawn by torch (seeded from ``rng``),
    whose products are faster here than numpy's."""
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, generator=generator)

    mixing = randn(d, d) / d**0.5
    a = randn(n, d) @ mixing
    b = randn(n, d) @ (mixing + 0.1 * randn(d, d) / d**0.5) + 0.01 * randn(d)
    return a.numpy(), b.numpy()


def _power_law_pair(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """An Inception-like 1/k spectrum in a random basis, and a perturbed spectrum in a slightly rotated one."""
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = 2.0 / np.arange(1, d + 1)
    a = rng.standard_normal((n, d)) @ (np.sqrt(spectrum)[:, None] * basis.T)
    rotated, _ = np.linalg.qr(basis + 0.02 * rng.standard_normal((d, d)))
    b = rng.standard_normal((n, d)) @ (np.sqrt(spectrum * rng.uniform(0.7, 1.3, d))[:, None] * rotated.T)
    return a, b + 0.05


def test_issue_case_at_inception_width(rng):
    # The case of the issue: n = 6000 > d = 2048, where a numerical-rank tolerance on the eigenvalues of
    # R Σ2 R dropped genuine ones (1.5e-8 to 3.3e-8), and torchmetrics is off by ~5e-12. The largest case of
    # the suite (~10 s): the paths without counts are checked on the smaller pairs below.
    _assert_exact(_errors(*_close_pair(rng, 6000, 2048), without_counts=False))


@pytest.mark.parametrize(("n", "d"), [(800, 256), (1500, 512)])
def test_close_full_rank_pairs(rng, n, d):
    _assert_exact(_errors(*_close_pair(rng, n, d)))


@pytest.mark.parametrize(("n", "d"), [(150, 384), (400, 512), (1500, 256)])
def test_power_law_spectra(rng, n, d):
    # n < d: both covariances are singular (rank n - 1); torchmetrics is off by ~3e-7 there.
    _assert_exact(_errors(*_power_law_pair(rng, int(rng.integers(n // 2, n + 1)), d)))


def test_features_scaled_over_six_decades(rng):
    # Per-feature scales from 1e-3 to 1e3 (condition ~1e16): ordering by variance keeps C graded.
    a, b = _close_pair(rng, 1000, 256)
    scale = 10.0 ** rng.uniform(-3, 3, 256)
    _assert_exact(_errors(a * scale, b * scale))


@pytest.mark.parametrize(("n", "d"), [(1200, 256), (120, 256)])
def test_dead_channels(rng, n, d):
    # ReLU features with exactly-zero channels: some dead on both sides, some only on the generated side.
    a, b = _close_pair(rng, n, d)
    a, b = np.maximum(a, 0.0), np.maximum(b + 0.05, 0.0)
    dead_both, dead_fake = rng.random(d) < 0.1, rng.random(d) < 0.05
    a[:, dead_both] = 0.0
    b[:, dead_both | dead_fake] = 0.0
    _assert_exact(_errors(a, b))

    # Channels dead on both sides contribute exactly nothing: the distance is that of the live channels.
    live = ~dead_both
    full, reduced = (
        frechet_distance(*FrechetDistance.gaussians(_fitted(x, y)), num_samples=(len(x), len(y)))
        for x, y in ((a, b), (a[:, live], b[:, live]))
    )
    torch.testing.assert_close(full, reduced, rtol=1e-12, atol=0)


def _fitted(a: np.ndarray, b: np.ndarray) -> FrechetDistance:
    metric = FrechetDistance()
    metric.update(torch.from_numpy(np.ascontiguousarray(a)), real=True)
    metric.update(torch.from_numpy(np.ascontiguousarray(b)), real=False)
    return metric


def test_collinear_features_with_more_samples_than_dimensions(rng):
    # A linear layer widening 48 features to 128: rank 48 with n > d, which no sample count reveals; the
    # ranks of the factors (pivot test, then eigenvalues of Σ and of the root) decide what is zero.
    widen = rng.standard_normal((48, 128))
    a = rng.standard_normal((600, 48)) @ widen
    b = (rng.standard_normal((500, 48)) * 1.1 + 0.2) @ widen
    _assert_exact(_errors(a, b))
