"""Fréchet distance between two Gaussians, with the trace-sqrt term from one symmetric eigensolve.

    d² = |μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr √(Σ1 Σ2)

``Σ1 Σ2`` is similar to the symmetric PSD matrix ``R Σ2 R`` with ``R = Σ1^½``, so
``tr √(Σ1 Σ2) = Σ √λ`` over ``eigvalsh(R Σ2 R)``: no ``scipy.linalg.sqrtm`` (iterative, loses digits
on singular covariances) and no complex ``eigvals`` of a non-symmetric product (slow, and its
eigenvalues pick up imaginary noise). ``R`` depends only on ``Σ1``, so callers that compare many
``Σ2`` against fixed reference statistics compute it once (``psd_sqrt``) and pass it as
``sqrt_sigma1``.

Eigenvalues that are zero in exact arithmetic come out of the eigensolver as ±1e-15·λ_max noise,
and the square roots of that noise add up to a ~1e-8 relative error, so they must be counted as
zero. Which ones they are: with the sample counts (``num_samples``), exactly those beyond the rank
bound — a covariance of ``n`` samples has rank at most ``n - 1``, and ``R Σ2 R`` at most
``min(n1, n2) - 1`` — so only the largest ``rank`` eigenvalues are kept. Without counts (or when
the bound is not below ``d``), eigenvalues under the numerical-rank tolerance ``λ_max · d · ε`` (as
numpy's ``matrix_rank``) count as zero. The rank bound is the sharper rule: with a power-law
spectrum at d = 2048 and n = 1000 the tolerance also drops a genuine small eigenvalue (relative
error 6e-8), while the bound keeps it (4e-14).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_tensor


def _nonzero_eigenvalues(eigenvalues: Tensor, rank: int | None) -> Tensor:
    """Zero the eigenvalues (ascending, from ``eigh``/``eigvalsh``) that vanish in exact arithmetic."""
    dim = eigenvalues.shape[0]
    if rank is not None and rank < dim:
        keep = torch.arange(dim, device=eigenvalues.device) >= dim - max(rank, 0)
    else:
        keep = eigenvalues > eigenvalues.abs().max() * dim * torch.finfo(torch.float64).eps
    return torch.where(keep, eigenvalues.clamp_min(0.0), 0.0)


def psd_sqrt(sigma: Tensor, *, rank: int | None = None) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix, in float64.

    Args:
        sigma: the matrix ``[D, D]``.
        rank: an upper bound on its rank (``n - 1`` for a covariance of ``n`` samples); only the
            largest ``rank`` eigenvalues are kept. ``None`` drops those below ``λ_max · D · ε``.

    Example:
        >>> import torch
        >>> psd_sqrt(torch.tensor([[4.0, 0.0], [0.0, 9.0]]))
        tensor([[2., 0.],
                [0., 3.]], dtype=torch.float64)
    """
    s = sigma.to(torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh((s + s.T) / 2)
    return (eigenvectors * _nonzero_eigenvalues(eigenvalues, rank).sqrt()) @ eigenvectors.T


def trace_sqrt_product(sqrt_sigma1: Tensor, sigma2: Tensor, *, rank: int | None = None) -> Tensor:
    """``tr √(Σ1 Σ2)`` given ``R = Σ1^½`` (from ``psd_sqrt``) and ``Σ2``: one ``eigvalsh`` of ``R Σ2 R``.

    ``rank`` bounds the rank of ``R Σ2 R`` (``min(n1, n2) - 1``), as in ``psd_sqrt``.

    Example:
        >>> import torch
        >>> sigma = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
        >>> trace_sqrt_product(psd_sqrt(sigma), sigma)  # tr √(Σ²) = tr Σ
        tensor(5., dtype=torch.float64)
    """
    r = sqrt_sigma1.to(torch.float64)
    product = r @ sigma2.to(torch.float64) @ r
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)
    return _nonzero_eigenvalues(eigenvalues, rank).sqrt().sum()


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
    mu1: Tensor,
    sigma1: Tensor,
    mu2: Tensor,
    sigma2: Tensor,
    *,
    sqrt_sigma1: Tensor | None = None,
    num_samples: tuple[int | None, int | None] | None = None,
) -> Tensor:
    """Squared Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2), as a float64 scalar.

    Args:
        mu1: mean of the first Gaussian, ``[D]``.
        sigma1: covariance of the first Gaussian, ``[D, D]`` (symmetric PSD).
        mu2: mean of the second Gaussian, ``[D]``.
        sigma2: covariance of the second Gaussian, ``[D, D]``.
        sqrt_sigma1: ``psd_sqrt(sigma1, rank=n1 - 1)`` if already known (it is what costs the
            second eigendecomposition); computed when ``None``.
        num_samples: ``(n1, n2)``, the sample counts behind the covariances (``None`` where
            unknown); they give the rank bounds that decide which eigenvalues are zero.

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
    n1, n2 = num_samples if num_samples is not None else (None, None)
    root = psd_sqrt(sigma1, rank=None if n1 is None else n1 - 1) if sqrt_sigma1 is None else sqrt_sigma1
    rank = None if n1 is None or n2 is None else min(n1, n2) - 1
    mean_term = (mu1 - mu2).square().sum()
    value = mean_term + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt_product(root, sigma2, rank=rank)
    return value.clamp_min(0.0)
