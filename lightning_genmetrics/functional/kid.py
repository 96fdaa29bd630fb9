r"""Kernel Inception Distance: unbiased MMD² with a polynomial kernel, averaged over random subsets.

With ``k(x, y) = (γ·xᵀy + c)^d`` (defaults ``γ = 1/D``, ``c = 1``, ``d = 3``) and two subsets of
``m`` samples, the estimator of Bińkowski et al. (2018), as in torch-fidelity and torchmetrics, is

.. math:: \frac{\sum_{i\ne j}k(x_i,x_j) + \sum_{i\ne j}k(y_i,y_j)}{m(m-1)} - \frac{2}{m^2}\sum_{i,j}k(x_i,y_j).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_features, check_positive_int, check_positive_number


def check_kernel_parameters(
    degree: Any, gamma: Any, coef0: Any, *, offset_name: str = "coef0"
) -> tuple[int, float | None, float]:
    """Validate the polynomial kernel's ``degree`` (int >= 1), ``gamma`` (``None`` or a finite number > 0) and
    ``coef0`` (a finite number, named ``offset_name`` in errors); return them as ``(int, float | None, float)``.

    Raises:
        TypeError: a value that is not an int (``degree``) or not a real number (bools are refused).
        ValueError: ``degree < 1``, ``gamma`` not finite or not > 0, ``coef0`` NaN or infinite.

    Example:
        >>> check_kernel_parameters(3, None, 1)
        (3, None, 1.0)
        >>> check_kernel_parameters(3, None, float("nan"))
        Traceback (most recent call last):
            ...
        ValueError: Expected `coef0` to be a finite number, got nan.
    """
    check_positive_int(degree, "degree")
    if gamma is not None:
        gamma = check_positive_number(gamma, "gamma")
    if isinstance(coef0, bool) or not isinstance(coef0, (int, float)):
        raise TypeError(
            f"Expected `{offset_name}` to be a finite number, got {coef0!r} of type {type(coef0).__name__}."
        )
    if not math.isfinite(coef0):
        raise ValueError(f"Expected `{offset_name}` to be a finite number, got {coef0}.")
    return degree, gamma, float(coef0)


def polynomial_kernel(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> Tensor:
    """``(γ·x yᵀ + coef0)^degree`` for ``[N, D]`` and ``[M, D]`` inputs; ``γ = 1/D`` when ``None``.

    Raises:
        TypeError, ValueError: bad kernel parameters (see :func:`check_kernel_parameters`).

    Example:
        >>> import torch
        >>> polynomial_kernel(torch.ones(1, 2), torch.ones(1, 2), degree=2, coef0=0.0)
        tensor([[1.]])
    """
    return _polynomial_kernel(x, y, *check_kernel_parameters(degree, gamma, coef0))


def _polynomial_kernel(x: Tensor, y: Tensor, degree: int, gamma: float | None, coef0: float) -> Tensor:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: Tensor, y: Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> Tensor:
    """Unbiased polynomial-kernel MMD² between two equally sized samples ``[m, D]`` (float64).

    Raises:
        TypeError, ValueError: bad kernel parameters (see :func:`check_kernel_parameters`).

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(200, 4, dtype=torch.float64)
        >>> bool(mmd2_unbiased(x, x + 2).item() > mmd2_unbiased(x, torch.randn(200, 4, dtype=torch.float64)).item())
        True
    """
    return _mmd2_unbiased(x, y, *check_kernel_parameters(degree, gamma, coef0))


def _mmd2_unbiased(x: Tensor, y: Tensor, degree: int, gamma: float | None, coef0: float) -> Tensor:
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = _polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = _polynomial_kernel(x, y, degree, gamma, coef0)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def kernel_inception_distance(
    real_features: Tensor,
    fake_features: Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int | None = 0,
) -> tuple[Tensor, Tensor]:
    """KID ``(mean, std)`` over ``subsets`` random subsets; std with ddof = 0 (as torch-fidelity and torchmetrics).

    Subset ``i`` takes the first ``subset_size`` entries of ``torch.randperm(n_real)`` and then of
    ``torch.randperm(n_fake)``, drawn in that order from one CPU ``torch.Generator`` seeded with
    ``seed``, or with ``seed=None`` from torch's global generator, as torchmetrics draws them (so
    after the same ``torch.manual_seed``, the same features in the same order give torchmetrics'
    subsets). Computed in float64.

    Raises:
        TypeError: features not floating tensors; a kernel parameter or ``seed`` of the wrong type.
        ValueError: bad shapes or NaN/Inf; ``subset_size`` < 2; ``degree < 1``, ``gamma`` not a finite
            number > 0, or ``coef0`` NaN or infinite.
        RuntimeError: fewer than ``subset_size`` samples on a side.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> real, fake = torch.randn(50, 8), torch.randn(50, 8) + 1
        >>> mean, std = kernel_inception_distance(real, fake, subsets=10, subset_size=20)
        >>> bool(mean > 0)
        True
    """
    check_positive_int(subsets, "subsets")
    check_positive_int(subset_size, "subset_size", minimum=2)
    degree, gamma, coef0 = check_kernel_parameters(degree, gamma, coef0)
    real = check_features(real_features, "real_features")
    fake = check_features(fake_features, "fake_features", real.shape[1])
    if min(real.shape[0], fake.shape[0]) < subset_size:
        raise RuntimeError(
            f"KID needs at least subset_size={subset_size} samples on each side, got {real.shape[0]} real "
            f"and {fake.shape[0]} generated: add samples or lower `subset_size`."
        )
    if seed is not None:
        check_positive_int(seed, "seed", minimum=0)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    scores = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        real_idx = torch.randperm(real.shape[0], generator=generator)[:subset_size].to(real.device)
        fake_idx = torch.randperm(fake.shape[0], generator=generator)[:subset_size].to(fake.device)
        scores[i] = _mmd2_unbiased(real[real_idx], fake[fake_idx], degree, gamma, coef0)
    return scores.mean(), scores.std(correction=0)
