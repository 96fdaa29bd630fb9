r"""CMMD (Jayasumana et al. 2024): the maximum mean discrepancy of CLIP embeddings under a Gaussian RBF kernel.

With ``k(x, y) = exp(−‖x − y‖² / (2σ²))`` (σ = 10), real embeddings ``x_1..x_N`` and generated ``y_1..y_M``,
the reference code reports the biased (V-statistic) estimator, every pair including ``i = j``, scaled by 1000:

.. math:: \text{CMMD} = 1000\Big(\frac1{N^2}\sum_{i,i'}k(x_i,x_{i'}) + \frac1{M^2}\sum_{j,j'}k(y_j,y_{j'})
          - \frac2{NM}\sum_{i,j}k(x_i,y_j)\Big).

The kernel sums are accumulated in float64, ``block_size`` rows at a time: memory ``O(block_size · max(N, M))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_features, check_positive_int, check_positive_number

CMMD_SIGMA = 10.0
CMMD_SCALE = 1000.0


def gaussian_kernel_sum(a: Tensor, b: Tensor, sigma: float = CMMD_SIGMA, *, block_size: int = 1024) -> Tensor:
    """``Σ_ij exp(−‖a_i − b_j‖² / (2σ²))`` in float64, ``block_size`` rows of ``a`` at a time.

    Example:
        >>> import torch
        >>> float(gaussian_kernel_sum(torch.zeros(2, 3), torch.zeros(5, 3)))
        10.0
    """
    a, b = a.detach().to(torch.float64), b.detach().to(a.device, torch.float64)
    gamma = 1.0 / (2.0 * sigma**2)
    b_norms = (b * b).sum(1)
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for block in a.split(block_size):
        d2 = ((block * block).sum(1, keepdim=True) + b_norms.unsqueeze(0) - 2.0 * (block @ b.T)).clamp_min_(0.0)
        total += torch.exp(-gamma * d2).sum()
    return total


def cmmd(
    real: Tensor,
    fake: Tensor,
    *,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    block_size: int = 1024,
    real_kernel_mean: Tensor | None = None,
) -> Tensor:
    """CMMD of ``fake`` against ``real`` embeddings (a float64 scalar), the reference code's estimator.

    The embeddings are used as given: the reference normalises CLIP embeddings to unit length before this step
    (the metric class does it with ``normalize_embeddings=True``).

    Args:
        real: ``[N, D]`` real embeddings.
        fake: ``[M, D]`` generated embeddings.
        sigma: the kernel's bandwidth (10, as the reference).
        scale: the factor in front (1000, as the reference).
        block_size: rows of kernel values computed at once.
        real_kernel_mean: ``gaussian_kernel_sum(real, real, sigma) / N²`` if already known (it does not depend
            on the generated side).

    Raises:
        TypeError, ValueError: features that are not finite real ``[*, D]`` tensors of one ``D``; a bandwidth or
            scale that is not a finite number > 0.
        RuntimeError: an empty side.

    Example:
        >>> import torch
        >>> x = torch.randn(20, 4)
        >>> float(cmmd(x, x))
        0.0
    """
    check_features(real, "real")
    check_features(fake, "fake")
    check_positive_number(sigma, "sigma")
    check_positive_number(scale, "scale")
    check_positive_int(block_size, "block_size")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Expected features of one dimension, got {real.shape[1]} (real) and {fake.shape[1]} (fake).")
    n, m = real.shape[0], fake.shape[0]
    if n == 0 or m == 0:
        raise RuntimeError(f"CMMD needs at least 1 real and 1 generated sample, got {n} and {m}.")
    if real_kernel_mean is None:
        real_kernel_mean = gaussian_kernel_sum(real, real, sigma, block_size=block_size) / (n * n)
    fake_mean = gaussian_kernel_sum(fake, fake, sigma, block_size=block_size) / (m * m)
    cross_mean = gaussian_kernel_sum(fake, real, sigma, block_size=block_size) / (n * m)
    return scale * (real_kernel_mean.to(fake_mean) + fake_mean - 2.0 * cross_mean)
