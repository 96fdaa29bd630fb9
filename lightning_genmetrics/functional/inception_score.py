r"""Inception Score from per-split sufficient statistics.

For a split with ``n`` samples whose class posteriors are ``p(y|x)``,

.. math:: \mathrm{IS} = \exp\Big(\tfrac1n\sum_x \sum_y p\log p \;-\; \sum_y \bar p\log\bar p\Big),
          \quad \bar p = \tfrac1n \sum_x p(y|x),

which equals ``exp(E_x KL(p(y|x) ‖ p̄))``. So a split is summarised by its count, ``Σ_x p`` and
``Σ_x Σ_y p log p``: sums that merge exactly and need no stored logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lightning_genmetrics._checks import check_features, check_positive_int, check_tensor

InceptionStatistics = tuple[Tensor, Tensor, Tensor]
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 divided by the golden ratio, made odd


def contiguous_split_index(n: int, splits: int, device: torch.device | str | None = None) -> Tensor:
    """The split of each of ``n`` ordered samples when cut into equal contiguous chunks (int64 ``[n]``).

    Chunk ``i`` holds positions ``[⌊i·n/splits⌋, ⌊(i+1)·n/splits⌋)``, as torch-fidelity with
    ``shuffle=False``: chunk sizes differ by at most one, so every chunk is non-empty when ``n >= splits``.

    Example:
        >>> contiguous_split_index(7, 3).tolist()
        [0, 0, 1, 1, 2, 2, 2]
    """
    # Position j lies in chunk i when floor(i·n/S) <= j < floor((i+1)·n/S), i.e. i = floor(((j+1)·S - 1)/n).
    positions = torch.arange(n, device=device)
    return torch.div((positions + 1) * splits - 1, max(n, 1), rounding_mode="floor")


def chunk_split_index(n: int, splits: int, device: torch.device | str | None = None) -> tuple[Tensor, int]:
    """The split of each of ``n`` ordered samples cut as ``torch.chunk(splits)`` cuts them, and the number of splits.

    ``torch.chunk`` makes chunks of ``ceil(n / splits)`` samples, the last one smaller, so it may make fewer
    than ``splits`` chunks (``n = 9, splits = 4``: three chunks of three). This is how torchmetrics' Inception
    Score splits its images.

    Example:
        >>> index, count = chunk_split_index(9, 4)
        >>> index.tolist(), count
        ([0, 0, 0, 1, 1, 1, 2, 2, 2], 3)
    """
    size = max(-(-n // splits), 1)
    return torch.div(torch.arange(n, device=device), size, rounding_mode="floor"), -(-n // size)


def keys_to_balanced_splits(keys: Tensor, splits: int) -> Tensor:
    """Splits by the rank of each sample's key: equal contiguous chunks of the ascending key order.

    The result depends only on the multiset of keys (equal keys are ordered by position), and split
    sizes differ by at most one.

    Example:
        >>> import torch
        >>> keys_to_balanced_splits(torch.tensor([40, 10, 30, 20]), 2).tolist()
        [1, 0, 1, 0]
    """
    order = torch.sort(keys, stable=True).indices
    split_index = torch.empty_like(order)
    split_index[order] = contiguous_split_index(keys.shape[0], splits, keys.device)
    return split_index


def ids_to_keys(ids: Tensor, seed: int = 0) -> Tensor:
    """Well-mixed 64-bit keys of integer ids: output number ``id`` (from 0) of SplitMix64 seeded with ``seed``.

    That is ``mix(seed + (id + 1)·γ mod 2⁶⁴)`` with SplitMix64's increment ``γ = 0x9E3779B97F4A7C15``
    and output function ``mix`` (Steele, Lea and Flood, 2014), in wrapping uint64 arithmetic,
    returned as the int64 with the same bits ``[N]``. Unlike the linear
    :func:`~lightning_genmetrics.functional.sample_keys`, the keys of consecutive ids behave as
    independent random numbers.

    Example:
        >>> import torch
        >>> [key % 2**64 for key in ids_to_keys(torch.tensor([0, 1]), seed=1234567).tolist()]
        [6457827717110365317, 3203168211198807973]
    """
    with np.errstate(over="ignore"):
        positions = ids.detach().to("cpu", torch.int64).numpy().astype(np.uint64) + np.uint64(1)
        keys = _splitmix64(np.uint64(seed % 2**64) + positions * np.uint64(_GOLDEN_GAMMA))
    return torch.from_numpy(keys.view(np.int64)).to(ids.device)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    # SplitMix64's output function (Steele, Lea and Flood, 2014): wrapping uint64 multiplies and xor-shifts.
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def ids_to_balanced_splits(ids: Tensor, splits: int, seed: int = 0) -> Tensor:
    """Splits of integer sample ids: each block of ``splits`` consecutive ids is spread over all splits.

    Id ``i`` lies in block ``b = ⌊i / splits⌋``; its split is the rank of its key among the keys of the
    block's ids ``b·splits … b·splits + splits - 1`` (:func:`ids_to_keys`, unsigned order). So each
    block is a seeded random permutation of the splits: the split of an id depends on the id alone,
    the consecutive ids ``0 … n-1`` give split sizes that differ by at most one, and the splits do
    not line up with ``i mod k`` for any ``k`` (such as class labels cycling with the id, the
    callback's balanced conditioning).

    Example:
        >>> import torch
        >>> split_index = ids_to_balanced_splits(torch.arange(6), 3, seed=0)
        >>> sorted(split_index[:3].tolist()), sorted(split_index[3:].tolist())
        ([0, 1, 2], [0, 1, 2])
    """
    ids = ids.to(torch.int64)
    n = ids.shape[0]
    offsets = torch.arange(splits, device=ids.device)
    members = torch.div(ids, splits, rounding_mode="floor")[:, None] * splits + offsets  # [n, splits]
    # Flipping the sign bit maps the unsigned order of the keys onto int64's signed order.
    keys = ids_to_keys(members.reshape(-1), seed).view(n, splits) ^ torch.iinfo(torch.int64).min
    position = torch.remainder(ids, splits)
    own = keys.gather(1, position[:, None])
    # Rank of the id's key in its block; equal keys (a 2**-64 event) are ordered by position in the block.
    below = (keys < own) | ((keys == own) & (offsets < position[:, None]))
    return below.sum(1)


def logits_to_posteriors(logits: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample class posteriors ``p(y|x)`` ``[N, C]`` and ``Σ_y p log p`` ``[N]`` of ``[N, C]`` logits (float64).

    Example:
        >>> import torch
        >>> p, plogp = logits_to_posteriors(torch.zeros(1, 2))
        >>> p.tolist(), round(plogp.item(), 6)
        ([[0.5, 0.5]], -0.693147)
    """
    log_p = torch.log_softmax(logits.to(torch.float64), dim=1)
    p = log_p.exp()
    return p, (p * log_p).sum(dim=1)


def posteriors_to_statistics(p: Tensor, plogp: Tensor, split_index: Tensor, splits: int) -> InceptionStatistics:
    """Per-split ``(count, Σ p, Σ p log p)`` of per-sample posteriors ``[N, C]`` and ``Σ_y p log p`` ``[N]``.

    Example:
        >>> import torch
        >>> n, sum_p, sum_plogp = posteriors_to_statistics(
        ...     torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
        ...     torch.tensor([1, 1]), 2)
        >>> n.tolist(), sum_p.tolist()
        ([0, 2], [[0.0, 0.0], [1.5, 0.5]])
    """
    counts = torch.bincount(split_index, minlength=splits).to(torch.int64)
    sum_p = p.new_zeros(splits, p.shape[1]).index_add_(0, split_index, p)
    sum_plogp = p.new_zeros(splits).index_add_(0, split_index, plogp)
    return counts, sum_p, sum_plogp


def logits_to_statistics(logits: Tensor, split_index: Tensor, splits: int) -> InceptionStatistics:
    """Per-split ``(count, Σ p, Σ p log p)`` of ``[N, C]`` logits, in float64 (counts int64).

    Example:
        >>> import torch
        >>> n, sum_p, sum_plogp = logits_to_statistics(torch.zeros(3, 2), torch.tensor([0, 1, 1]), 2)
        >>> n.tolist(), sum_p.tolist()
        ([1, 2], [[0.5, 0.5], [1.0, 1.0]])
    """
    return posteriors_to_statistics(*logits_to_posteriors(logits), split_index, splits)


def statistics_to_inception_score(statistics: InceptionStatistics, *, correction: int = 0) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` over splits of the per-split Inception Score; std with ddof = ``correction``.

    ddof = 0 is what the original Inception Score code and torch-fidelity report (``np.std``);
    torchmetrics reports ddof = 1 (``correction=1``; NaN for a single split, as torch's ``std``).

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
    return scores.mean(), scores.std(correction=correction)


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
        split_index = contiguous_split_index(n, splits, x.device)
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
