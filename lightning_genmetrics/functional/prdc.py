r"""Improved precision and recall (Kynkäänniemi et al. 2019) with density and coverage (Naeem et al. 2020).

Each side's *manifold* is the union of balls around its samples, the ball of sample ``x`` having the
distance to its ``k``-th nearest neighbour in the same set as radius, ``r_k(x)`` (the sample itself is
not its own neighbour). With real samples ``X = {x_i}`` (``N`` of them) and generated samples
``Y = {y_j}`` (``M``):

.. math::

    \text{precision} = \frac1M\sum_j 1[\exists i: \|y_j - x_i\| \le r_k(x_i)]
    \qquad
    \text{recall} = \frac1N\sum_i 1[\exists j: \|x_i - y_j\| \le r_k(y_j)]

    \text{density} = \frac1{kM}\sum_j\sum_i 1[\|y_j - x_i\| \le r_k(x_i)]
    \qquad
    \text{coverage} = \frac1N\sum_i 1[\min_j \|x_i - y_j\| \le r_k(x_i)]

The balls are closed, as in Kynkäänniemi et al.'s definition and torch-fidelity; Naeem et al.'s code uses
open balls (``<``), which differs only for a distance exactly equal to a radius. Distances are computed in
float64, block by block, so peak memory is ``O(block_size · max(N, M))``, never ``O(N · M)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_features, check_positive_int

_NAMES = ("precision", "recall", "density", "coverage")


def _squared_distances(a: Tensor, b: Tensor, b_norms: Tensor) -> Tensor:
    """``‖a_i − b_j‖²`` in float64 (``b_norms`` = ``‖b_j‖²``), clamped at 0 against rounding."""
    d2 = (a * a).sum(1, keepdim=True) + b_norms.unsqueeze(0) - 2.0 * (a @ b.T)
    return d2.clamp_min_(0.0)


def _check_k(k: int, n: int, what: str) -> None:
    if n < k + 1:
        raise RuntimeError(f"The k-nearest-neighbour radii with k={k} need at least {k + 1} {what}, got {n}.")


def knn_radii(features: Tensor, k: int = 3, *, block_size: int = 1024) -> Tensor:
    """The distance of every row to its ``k``-th nearest other row (float64 ``[N]``), block by block.

    Args:
        features: ``[N, D]`` feature vectors.
        k: which neighbour, ``>= 1``.
        block_size: rows compared with all others at once (memory ``O(block_size · N)``).

    Raises:
        RuntimeError: fewer than ``k + 1`` rows.
        TypeError, ValueError: features that are not a finite real ``[N, D]`` tensor, ``k`` or ``block_size`` < 1.

    Example:
        >>> import torch
        >>> knn_radii(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1., 1., 2.], dtype=torch.float64)
    """
    check_features(features, "features")
    check_positive_int(k, "k")
    check_positive_int(block_size, "block_size")
    x = features.detach().to(torch.float64)
    _check_k(k, x.shape[0], "rows")
    norms = (x * x).sum(1)
    radii = []
    for block in x.split(block_size):
        # Column k of the sorted row is the k-th neighbour: column 0 is the row itself (distance 0).
        radii.append(_squared_distances(block, x, norms).kthvalue(k + 1, dim=1).values)
    return torch.cat(radii).sqrt()


def precision_recall_density_coverage(
    real: Tensor,
    fake: Tensor,
    k: int = 3,
    *,
    block_size: int = 1024,
    real_radii: Tensor | None = None,
) -> dict[str, Tensor]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (float64 scalars).

    Args:
        real: ``[N, D]`` real features.
        fake: ``[M, D]`` generated features.
        k: the neighbour that sets each ball's radius (3, as both papers).
        block_size: generated rows compared with all real rows at once (memory ``O(block_size · max(N, M))``).
        real_radii: ``knn_radii(real, k)`` if already known (it does not depend on the generated side).

    Returns:
        ``{"precision", "recall", "density", "coverage"}``.

    Raises:
        RuntimeError: fewer than ``k + 1`` samples on a side.
        TypeError, ValueError: features that are not finite real ``[*, D]`` tensors of one ``D``, bad ``k``,
            ``block_size`` or ``real_radii``.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(200, 4)
        >>> values = precision_recall_density_coverage(x, x)
        >>> float(values["precision"]), float(values["recall"]), float(values["coverage"])
        (1.0, 1.0, 1.0)
    """
    check_features(real, "real")
    check_features(fake, "fake")
    check_positive_int(k, "k")
    check_positive_int(block_size, "block_size")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"Expected features of one dimension, got {real.shape[1]} (real) and {fake.shape[1]} (fake).")
    _check_k(k, real.shape[0], "real samples")
    _check_k(k, fake.shape[0], "generated samples")
    x, y = real.detach().to(torch.float64), fake.detach().to(real.device, torch.float64)
    if real_radii is None:
        real_radii = knn_radii(x, k, block_size=block_size)
    elif real_radii.shape != (x.shape[0],):
        raise ValueError(f"Expected `real_radii` of shape [{x.shape[0]}], got {tuple(real_radii.shape)}.")
    real_r2 = real_radii.to(x).square()
    fake_r2 = knn_radii(y, k, block_size=block_size).square()
    x_norms = (x * x).sum(1)
    inside_real = torch.zeros((), dtype=torch.int64, device=x.device)  # generated samples in the real manifold
    ball_count = torch.zeros((), dtype=torch.int64, device=x.device)  # (generated, real ball) incidences
    recalled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    nearest = torch.full((x.shape[0],), float("inf"), dtype=torch.float64, device=x.device)
    for block, block_r2 in zip(y.split(block_size), fake_r2.split(block_size), strict=True):
        d2 = _squared_distances(block, x, x_norms)  # [B, N]
        in_ball = d2 <= real_r2.unsqueeze(0)
        inside_real += in_ball.any(1).sum()
        ball_count += in_ball.sum()
        recalled |= (d2 <= block_r2.unsqueeze(1)).any(0)
        nearest = torch.minimum(nearest, d2.min(0).values)
    n, m = x.shape[0], y.shape[0]
    values = (
        inside_real.double() / m,
        recalled.sum().double() / n,
        ball_count.double() / (k * m),
        (nearest <= real_r2).sum().double() / n,
    )
    return dict(zip(_NAMES, values, strict=True))
