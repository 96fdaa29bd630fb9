"""Fréchet distance between two Gaussians, with the trace-sqrt term from one symmetric eigensolve.

    d² = |μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr √(Σ1 Σ2)

``Σ1 Σ2`` is similar to the symmetric PSD matrix ``R Σ2 R`` with ``R = Σ1^½``, so
``tr √(Σ1 Σ2) = Σ √λ`` over ``eigvalsh(R Σ2 R)``: no ``scipy.linalg.sqrtm`` (iterative, loses digits
on singular covariances) and no complex ``eigvals`` of a non-symmetric product (slow, and its
eigenvalues pick up imaginary noise). Eigenvalues below the numerical-rank tolerance
``λ_max · d · ε`` (as numpy's ``matrix_rank``) are zero in exact arithmetic and are counted as zero;
otherwise, with fewer samples than dimensions, the square roots of their ±1e-15 noise add up to a
~1e-8 relative error. ``R`` depends only on ``Σ1``, so callers that compare many ``Σ2`` against
fixed reference statistics compute it once (``psd_sqrt``) and pass it as ``sqrt_sigma1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_tensor


def _rank_tolerance(eigenvalues: Tensor, dim: int) -> Tensor:
    return eigenvalues.abs().max() * dim * torch.finfo(torch.float64).eps


def psd_sqrt(sigma: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix, in float64.

    Eigenvalues below the numerical-rank tolerance (including small negative rounding noise) are
    set to zero.

    Example:
        >>> import torch
        >>> psd_sqrt(torch.tensor([[4.0, 0.0], [0.0, 9.0]]))
        tensor([[2., 0.],
                [0., 3.]], dtype=torch.float64)
    """
    s = sigma.to(torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh((s + s.T) / 2)
    kept = torch.where(eigenvalues > _rank_tolerance(eigenvalues, s.shape[0]), eigenvalues, 0.0)
    return (eigenvectors * kept.sqrt()) @ eigenvectors.T


def trace_sqrt_product(sqrt_sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """``tr √(Σ1 Σ2)`` given ``R = Σ1^½`` (from ``psd_sqrt``) and ``Σ2``: one ``eigvalsh`` of ``R Σ2 R``.

    Example:
        >>> import torch
        >>> sigma = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
        >>> trace_sqrt_product(psd_sqrt(sigma), sigma)  # tr √(Σ²) = tr Σ
        tensor(5., dtype=torch.float64)
    """
    r = sqrt_sigma1.to(torch.float64)
    product = r @ sigma2.to(torch.float64) @ r
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)
    kept = eigenvalues[eigenvalues > _rank_tolerance(eigenvalues, r.shape[0])]
    return kept.sqrt().sum()


def _check_gaussian(mu: Tensor, sigma: Tensor, mu_name: str, sigma_name: str) -> None:
    check_tensor(mu, mu_name)
    check_tensor(sigma, sigma_name)
    if mu.ndim != 1:
        raise ValueError(f"Expected `{mu_name}` to have shape [D], got shape {tuple(mu.shape)}.")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(
            f"Expected `{sigma_name}` to have shape [{d}, {d}] to match `{mu_name}`, got {tuple(sigma.shape)}."
        )
    check_finite(mu, mu_name)
    check_finite(sigma, sigma_name)


def frechet_distance(
    mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, *, sqrt_sigma1: Tensor | None = None
) -> Tensor:
    """Squared Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2), as a float64 scalar.

    Args:
        mu1: mean of the first Gaussian, ``[D]``.
        sigma1: covariance of the first Gaussian, ``[D, D]`` (symmetric PSD).
        mu2: mean of the second Gaussian, ``[D]``.
        sigma2: covariance of the second Gaussian, ``[D, D]``.
        sqrt_sigma1: ``psd_sqrt(sigma1)`` if already known (it is what costs the second
            eigendecomposition); computed when ``None``.

    Returns:
        ``|μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr √(Σ1 Σ2)``, clamped at 0 (it is non-negative in exact
        arithmetic; rounding can leave ~1e-13 below zero for identical inputs).

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: shapes disagree, or an argument holds NaN/Inf.

    Example:
        >>> import torch
        >>> eye = torch.eye(3, dtype=torch.float64)
        >>> frechet_distance(torch.zeros(3), eye, torch.ones(3), 4 * eye)  # 3 + 3 + 12 - 2·6
        tensor(6., dtype=torch.float64)
    """
    _check_gaussian(mu1, sigma1, "mu1", "sigma1")
    _check_gaussian(mu2, sigma2, "mu2", "sigma2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"Expected `mu1` and `mu2` to have the same shape, got {tuple(mu1.shape)} and {tuple(mu2.shape)}."
        )
    mu1, sigma1, mu2, sigma2 = (t.to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    root = psd_sqrt(sigma1) if sqrt_sigma1 is None else sqrt_sigma1
    mean_term = (mu1 - mu2).square().sum()
    value = mean_term + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(root, sigma2)
    return value.clamp_min(0.0)
