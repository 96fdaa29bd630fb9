r"""Inception Score from per-split sufficient statistics.

For a split with ``n`` samples whose class posteriors are ``p(y|x)``,

.. math:: \mathrm{IS} = \exp\Big(\tfrac1n\sum_x \sum_y p\log p \;-\; \sum_y \bar p\log\bar p\Big),
          \quad \bar p = \tfrac1n \sum_x p(y|x),

which equals ``exp(E_x KL(p(y|x) ‖ p̄))``. So a split is summarised by its count, ``Σ_x p`` and
``Σ_x Σ_y p log p``: sums that merge exactly and need no stored logits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_features, check_positive_int, check_tensor

InceptionStatistics = tuple[Tensor, Tensor, Tensor]


def logits_to_statistics(logits: Tensor, split_index: Tensor, splits: int) -> InceptionStatistics:
    """Per-split ``(count, Σ p, Σ p log p)`` of ``[N, C]`` logits, in float64 (counts int64).

    Example:
        >>> import torch
        >>> n, sum_p, sum_plogp = logits_to_statistics(torch.zeros(3, 2), torch.tensor([0, 1, 1]), 2)
        >>> n.tolist(), sum_p.tolist()
        ([1, 2], [[0.5, 0.5], [1.0, 1.0]])
    """
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)
    p = log_p.exp()
    counts = torch.bincount(split_index, minlength=splits).to(torch.int64)
    sum_p = p.new_zeros(splits, p.shape[1]).index_add_(0, split_index, p)
    sum_plogp = p.new_zeros(splits).index_add_(0, split_index, (p * log_p).sum(dim=1))
    return counts, sum_p, sum_plogp


def statistics_to_inception_score(statistics: InceptionStatistics) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` over splits of the per-split Inception Score; std with ddof = 0.

    ddof = 0 is what the original Inception Score code and torch-fidelity report (``np.std``);
    torchmetrics reports ddof = 1.

    Raises:
        RuntimeError: a split has no samples.
    """
    counts, sum_p, sum_plogp = statistics
    if int(counts.min()) < 1:
        raise RuntimeError(
            f"Inception Score needs at least one sample in each of its {counts.numel()} splits, got split "
            f"sizes {counts.tolist()}: add samples or use fewer splits."
        )
    n = counts.to(torch.float64)
    marginal = sum_p / n[:, None]
    scores = torch.exp(sum_plogp / n - torch.special.xlogy(marginal, marginal).sum(dim=1))
    return scores.mean(), scores.std(correction=0)


def inception_score(logits: Tensor, splits: int = 10, *, split_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Inception Score ``(mean, std)`` of ``[N, C]`` classifier logits.

    Args:
        logits: un-normalised class scores (softmax is applied), ``[N, C]``.
        splits: number of splits.
        split_index: the split of each sample, int ``[N]`` in ``[0, splits)``. ``None`` cuts the
            samples in their order into equal contiguous chunks ``[i·N/splits, (i+1)·N/splits)`` (as
            torch-fidelity with ``shuffle=False``). :class:`~lightning_genmetrics.InceptionScore`
            assigns splits by content keys instead, which does not depend on order or batching.

    Raises:
        TypeError: ``logits`` not a floating tensor, or ``split_index`` not an integer tensor.
        ValueError: bad shapes, NaN/Inf, or ``split_index`` values out of range.
        RuntimeError: a split is empty.

    Example:
        >>> import torch
        >>> logits = torch.eye(4) * 50  # four confident, distinct classes
        >>> mean, std = inception_score(logits, splits=1)
        >>> round(mean.item(), 4), std.item()
        (4.0, 0.0)
    """
    check_positive_int(splits, "splits")
    x = check_features(logits, "logits")
    n = x.shape[0]
    if split_index is None:
        # Sample j lies in chunk i when floor(i·N/S) <= j < floor((i+1)·N/S), i.e. i = floor(((j+1)·S - 1)/N).
        split_index = torch.div((torch.arange(n, device=x.device) + 1) * splits - 1, n, rounding_mode="floor")
    else:
        check_split_index(split_index, n, splits)
    return statistics_to_inception_score(logits_to_statistics(x, split_index.to(x.device), splits))


def check_split_index(split_index: Tensor, n: int, splits: int) -> None:
    """Raise unless ``split_index`` is an integer ``[n]`` tensor with values in ``[0, splits)``."""
    check_tensor(split_index, "split_index")
    if split_index.dtype.is_floating_point or split_index.dtype == torch.bool or split_index.is_complex():
        raise TypeError(f"Expected `split_index` to be an integer tensor, got dtype {split_index.dtype}.")
    if split_index.shape != (n,):
        raise ValueError(f"Expected `split_index` to have shape [{n}], got {tuple(split_index.shape)}.")
    if n and (int(split_index.min()) < 0 or int(split_index.max()) >= splits):
        raise ValueError(
            f"Expected `split_index` values in [0, {splits}), got range "
            f"[{int(split_index.min())}, {int(split_index.max())}]."
        )
