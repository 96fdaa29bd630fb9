"""Fréchet distance at d = 2048: time and accuracy of three methods on the same statistics.

Methods, all given the same float64 ``(μ1, Σ1, μ2, Σ2)``:

- this project, per evaluation when the real statistics are fixed (the root is computed once and timed
  on its own): what ``FrechetDistance.compute()`` runs with its cached root and the root's rank
  (``_distance_from_root``); the functional ``frechet_distance(..., sqrt_sigma1=psd_sqrt(Σ1, rank=n-1),
  num_samples=(n, n))``, which also measures the supplied root's rank (one Cholesky factorisation when
  n > d); and without a cached root (``psd_sqrt`` inside every call);
- torchmetrics 1.x: ``torchmetrics.image.fid._compute_fid`` (complex ``eigvals(Σ1 Σ2)``);
- pytorch-fid / clean-fid: ``scipy.linalg.sqrtm(Σ1 Σ2).real`` and its trace.

The reference is exact up to float64 rounding of backward-stable factorisations: for centred
features ``A`` (n×d) and ``B`` (m×d), ``tr √(Σ1 Σ2) = ‖A Bᵀ‖_* / √((n-1)(m-1))``; the nuclear norm is
the sum of singular values of ``R_a R_bᵀ`` with ``R`` from an economic QR (a side with n ≤ d is used
as it is). No product of two covariances is formed, so nothing is squared.

Two cases: n > d (full-rank covariances) and n < d (singular covariances, rank n - 1).
Features are correlated Gaussians with a power-law spectrum from a seeded numpy generator.
Every repeat runs the methods one after another, so load from other processes hits all of them.

Run: ``PYTHONPATH=. python benchmarks/frechet_distance.py [--dim 2048 --samples 10000 --few-samples 1000
--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import scipy
import scipy.linalg
import torch
import torchmetrics
from torch import Tensor
from torchmetrics.image.fid import _compute_fid

from lightning_genmetrics.functional import (
    features_to_moments,
    frechet_distance,
    moments_to_covariance,
    psd_sqrt,
)
from lightning_genmetrics.functional.frechet import _distance_from_root, _sqrt_rank


class Timing(NamedTuple):
    median: float
    fastest: float
    relative_error: float


def random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_features(d: int, n_real: int, n_fake: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and generated ``[n, d]`` features: Gaussians with a power-law spectrum, the generated side
    with a perturbed spectrum, a slightly rotated basis and a shifted mean (a plausible FID of a few %
    of ``tr Σ``)."""
    rng = np.random.default_rng(seed)
    spectrum = 2.0 * np.arange(1, d + 1) ** -1.0
    basis = random_rotation(rng, d)
    mean = np.abs(rng.normal(0.4, 0.2, d))
    real = rng.standard_normal((n_real, d)) @ (np.sqrt(spectrum)[:, None] * basis.T) + mean

    fake_spectrum = spectrum * rng.uniform(0.7, 1.3, d)
    fake_basis, _ = np.linalg.qr(basis + 0.02 * rng.standard_normal((d, d)))
    fake_mean = mean + rng.normal(0.0, 0.03, d)
    fake = rng.standard_normal((n_fake, d)) @ (np.sqrt(fake_spectrum)[:, None] * fake_basis.T) + fake_mean
    return real, fake


def exact_trace_sqrt(real: Tensor, fake: Tensor) -> Tensor:
    """``tr √(Σ1 Σ2)`` as the nuclear norm of ``A Bᵀ`` (centred features), via economic QR; float64."""

    def reduced(x: Tensor) -> Tensor:
        centred = x - x.mean(dim=0)
        return torch.linalg.qr(centred, mode="r").R if x.shape[0] > x.shape[1] else centred

    n, m = real.shape[0], fake.shape[0]
    return torch.linalg.svdvals(reduced(real) @ reduced(fake).T).sum() / ((n - 1) * (m - 1)) ** 0.5


def scipy_fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (clean-fid uses the same), minus its error checks.

    ``disp=False`` is deprecated in SciPy >= 1.16; without it ``sqrtm`` returns only the root.
    """
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def warm_up(d: int = 64) -> None:
    """Run every code path once on small matrices: the first LAPACK/MKL call of a process loads code."""
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((2 * d, d)))
    mu, sigma = moments_to_covariance(features_to_moments(x))
    frechet_distance(mu, sigma, mu + 1, 2 * sigma)
    _compute_fid(mu, sigma, mu + 1, 2 * sigma)
    scipy_fid(mu.numpy(), sigma.numpy(), mu.numpy() + 1, 2 * sigma.numpy())


def run_case(d: int, n: int, repeats: int, seed: int) -> dict[str, Timing]:
    """Print one case's table; return each method's timing and relative error."""
    real_np, fake_np = make_features(d, n, n, seed)
    real, fake = torch.from_numpy(real_np), torch.from_numpy(fake_np)
    mu1, sigma1 = moments_to_covariance(features_to_moments(real))
    mu2, sigma2 = moments_to_covariance(features_to_moments(fake))
    mu1_np, sigma1_np, mu2_np, sigma2_np = (t.numpy() for t in (mu1, sigma1, mu2, sigma2))

    reference = float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * exact_trace_sqrt(real, fake))
    # As FrechetDistance.compute() does: the sample counts give the rank bounds of the eigenvalue cut.
    counts = (n, n)
    root = psd_sqrt(sigma1, rank=n - 1)
    root_rank = _sqrt_rank(root, n)
    methods: dict[str, Callable[[], object]] = {
        "psd_sqrt(sigma1), once": lambda: psd_sqrt(sigma1, rank=n - 1),
        "ours, metric cached root": lambda: _distance_from_root(mu1, sigma1, mu2, sigma2, root, root_rank, counts),
        "ours, functional root": lambda: frechet_distance(
            mu1, sigma1, mu2, sigma2, sqrt_sigma1=root, num_samples=counts
        ),
        "ours, uncached": lambda: frechet_distance(mu1, sigma1, mu2, sigma2, num_samples=counts),
        "torchmetrics _compute_fid": lambda: _compute_fid(mu1, sigma1, mu2, sigma2),
        "scipy sqrtm (pytorch-fid)": lambda: scipy_fid(mu1_np, sigma1_np, mu2_np, sigma2_np),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    values: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds, value = timed(fn)
            times[name].append(seconds)
            if isinstance(value, float) or value.ndim == 0:  # psd_sqrt returns a matrix, not a distance
                values[name] = float(value)

    rank = "full rank" if n > d else f"singular, rank <= {n - 1}"
    print(
        f"\nd = {d}, n = m = {n} ({rank}); exact FID = {reference:.12g}, tr Σ1 + tr Σ2 = "
        f"{float(sigma1.trace() + sigma2.trace()):.6g}"
    )
    header = f"{'method':<28} {'median s':>8} {'min s':>7}  {'all runs (s)':<20}"
    print(f"{header} {'FID':>18} {'abs error':>9} {'rel error':>9}")
    results: dict[str, Timing] = {}
    for name in methods:
        median, fastest = statistics.median(times[name]), min(times[name])
        runs = " ".join(f"{t:.2f}" for t in times[name])
        line = f"{name:<28} {median:>8.2f} {fastest:>7.2f}  {runs:<20}"
        if name in values:
            error = abs(values[name] - reference)
            relative = error / abs(reference)
            print(f"{line} {values[name]:>18.12g} {error:>9.1e} {relative:>9.1e}")
        else:
            relative = float("nan")
            print(f"{line} {'(root only)':>18}")
        results[name] = Timing(median, fastest, relative)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension d")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per side, full-rank case (n > d)")
    parser.add_argument("--few-samples", type=int, default=1000, help="samples per side, singular case (n < d)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}, "
        f"scipy {scipy.__version__}, numpy {np.__version__}; {os.cpu_count()} CPUs; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    warm_up()
    cases = {n: run_case(args.dim, n, args.repeats, args.seed) for n in (args.samples, args.few_samples)}
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")

    for n, results in cases.items():
        ours, uncached = results["ours, metric cached root"], results["ours, uncached"]
        functional = results["ours, functional root"]
        root = results["psd_sqrt(sigma1), once"]
        print(f"\nn = {n}, d = {args.dim} (ratios of median times; of fastest runs in brackets):")
        for label, anchor in (
            ("torchmetrics", "torchmetrics _compute_fid"),
            ("scipy sqrtm", "scipy sqrtm (pytorch-fid)"),
        ):
            other = results[anchor]
            print(
                f"  {label} time / ours (cached root) = {other.median / ours.median:.1f}x "
                f"[{other.fastest / ours.fastest:.1f}x]; uncached: {other.median / uncached.median:.1f}x "
                f"[{other.fastest / uncached.fastest:.1f}x]; functional with a root: "
                f"{other.median / functional.median:.1f}x [{other.fastest / functional.fastest:.1f}x]; rel error "
                f"{other.relative_error:.1e} vs ours {ours.relative_error:.1e}"
            )
        print(f"  cached root: psd_sqrt {root.median:.2f} s once, then {ours.median:.2f} s per evaluation")


if __name__ == "__main__":
    main()
