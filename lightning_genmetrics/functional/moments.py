"""Mean and centred second moment of feature vectors, merged exactly (Chan et al.).

A side of a Fréchet distance is summarised by ``(n, mean, m2)`` with
``m2 = Σ (x - mean)(x - mean)ᵀ``. Keeping the *centred* sum avoids the catastrophic cancellation
of ``Σ xxᵀ - n·μμᵀ`` when the features have a large mean; two summaries combine with

    δ = mean_b - mean_a,  n = n_a + n_b,  mean = mean_a + δ·n_b/n,  m2 = m2_a + m2_b + δδᵀ·n_a·n_b/n,

which is exact in exact arithmetic, so any batching or sharding gives the same statistics up to
float64 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

Moments = tuple[Tensor, Tensor, Tensor]


def features_to_moments(features: Tensor) -> Moments:
    """Summarise a ``[N, D]`` batch as ``(n, mean, m2)`` in float64 (``n`` an int64 scalar).

    Example:
        >>> import torch
        >>> n, mean, m2 = features_to_moments(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
        >>> int(n), mean.tolist(), m2.tolist()
        (2, [2.0, 4.0], [[2.0, 4.0], [4.0, 8.0]])
    """
    x = features.to(torch.float64)
    n = torch.tensor(x.shape[0], dtype=torch.int64, device=x.device)
    if x.shape[0] == 0:
        d = x.shape[1]
        return n, x.new_zeros(d), x.new_zeros(d, d)
    mean = x.mean(dim=0)
    centred = x - mean
    return n, mean, centred.T @ centred


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Combine two ``(n, mean, m2)`` summaries into the summary of the union.

    Example:
        >>> import torch
        >>> x = torch.randn(10, 3, dtype=torch.float64)
        >>> merged = merge_moments(features_to_moments(x[:4]), features_to_moments(x[4:]))
        >>> all(torch.allclose(u, v) for u, v in zip(merged, features_to_moments(x)))
        True
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if int(n_b) == 0:
        return n, mean_a, m2_a
    if int(n_a) == 0:
        return n, mean_b, m2_b
    weight_b = n_b.to(torch.float64) / n.to(torch.float64)
    delta = mean_b - mean_a
    mean = mean_a + delta * weight_b
    m2 = m2_a + m2_b + torch.outer(delta, delta) * (n_a.to(torch.float64) * weight_b)
    return n, mean, m2


def moments_to_covariance(moments: Moments) -> tuple[Tensor, Tensor]:
    """Return ``(mean, covariance)`` with the unbiased ``n - 1`` normalisation (as numpy's ``cov``).

    Raises:
        RuntimeError: fewer than two samples.
    """
    n, mean, m2 = moments
    if int(n) < 2:
        raise RuntimeError(f"A covariance needs at least 2 samples, got {int(n)}.")
    sigma = m2 / (n.to(torch.float64) - 1)
    return mean, (sigma + sigma.T) / 2
