"""Inception Score with constant memory: per-split sums of class posteriors and their entropies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_positive_int
from lightning_genmetrics.features.extractor import ImageFeatures, InputRange
from lightning_genmetrics.functional.inception_score import logits_to_statistics, statistics_to_inception_score
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum
from lightning_genmetrics.metrics._keys import image_keys

_STATES = ("split_n", "split_sum_p", "split_sum_plogp")


class InceptionScore(SufficientStatisticMetric):
    r"""Inception Score ``(mean, std)`` over splits, keeping only per-split sums.

    Per split, float64 state: the count, ``Σ_x p(y|x)`` (``[C]``) and ``Σ_x Σ_y p log p``; the score
    of a split is ``exp(mean_x Σ_y p log p - Σ_y p̄ log p̄)``
    (:func:`~lightning_genmetrics.functional.statistics_to_inception_score`). Memory is
    ``splits·(C + 2)`` numbers whatever the number of images, and DDP sync is one all-reduce.

    **Splits.** Each image goes to split ``key mod splits``, where ``key`` is a seeded hash of its
    uint8 pixels (:func:`~lightning_genmetrics.functional.sample_keys`), or of its entry in
    ``sample_ids`` when given. So the same images give the same value in any order, batching or
    DDP sharding. Split sizes are multinomial rather than exactly ``N/splits`` (torch-fidelity
    shuffles and cuts equal chunks); with ``splits=1`` the two agree exactly. Bit-identical images
    always share a split; pass ``sample_ids`` if exact duplicates are frequent. The std has ddof = 0,
    as torch-fidelity and the original code (torchmetrics uses ddof = 1).

    Args:
        feature: ``"logits_unbiased"`` or ``"logits"`` of the standard FID InceptionV3, or a
            classifier module whose output is taken as logits.
        splits: number of splits.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        seed: selects the split-assignment hash.
        weights_path: a local copy of the Inception weights (standard network only).
        kwargs: passed to ``torchmetrics.Metric``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> metric = InceptionScore(feature=classifier, splits=2, input_range=(0, 1))
        >>> metric.update(torch.rand(32, 3, 8, 8))
        >>> mean, std = metric.compute()
        >>> bool(1.0 <= mean <= 10.0)
        True
    """

    higher_is_better = True
    plot_lower_bound = 1.0

    def __init__(
        self,
        feature: str | nn.Module = "logits_unbiased",
        splits: int = 10,
        *,
        input_range: InputRange | None = None,
        seed: int = 0,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.splits = check_positive_int(splits, "splits")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.extractor = ImageFeatures.resolve(
            feature, input_range=input_range, weights_path=weights_path, layers=("logits_unbiased", "logits")
        )
        c = self.extractor.num_features or 0
        self.add_state("split_n", torch.zeros(splits, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("split_sum_p", torch.zeros(splits, c, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("split_sum_plogp", torch.zeros(splits, dtype=torch.float64), dist_reduce_fx="sum")

    _size_name = "number of classes"

    @property
    def num_classes(self) -> int | None:
        """The number of classes, or ``None`` until the first update fixes it."""
        return self.split_sum_p.shape[1] or None

    @property
    def _lazy_size(self) -> int | None:
        return self.num_classes

    def _allocate(self, c: int) -> None:
        zeros = torch.zeros(self.splits, c, dtype=torch.float64, device=self.split_n.device)
        self._defaults["split_sum_p"] = zeros.clone()
        self.split_sum_p = zeros

    def update(self, images: Tensor, sample_ids: Tensor | None = None) -> None:
        """Add a batch of generated images.

        Args:
            images: uint8 ``[N, C, H, W]``, or float in ``input_range``.
            sample_ids: optional integer ``[N]`` ids that decide the splits instead of the pixels.

        Raises:
            TypeError: bad ``images`` or ``sample_ids`` type; float images without ``input_range``.
            ValueError: bad shapes, NaN/Inf, values out of range, or logits of another class count.
        """
        uint8 = self.extractor.prepare(images)
        keys = image_keys(uint8, sample_ids, self.seed)
        logits = self.extractor.extract(uint8)
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise ValueError(f"Expected logits with {self.num_classes} classes, got shape {tuple(logits.shape)}.")
        split_index = torch.remainder(keys, self.splits).to(logits.device)
        counts, sum_p, sum_plogp = logits_to_statistics(logits, split_index, self.splits)
        if self.num_classes is None:
            self._allocate(logits.shape[1])
        self.split_n = self.split_n + counts.to(self.split_n.device)
        self.split_sum_p = self.split_sum_p + sum_p.to(self.split_sum_p.device)
        self.split_sum_plogp = self.split_sum_plogp + sum_plogp.to(self.split_sum_plogp.device)

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the per-split scores (float64).

        Raises:
            RuntimeError: no images yet, or a split is empty.
        """
        if int(self.split_n.sum()) == 0:
            raise RuntimeError("InceptionScore has no images yet: call `update` before `compute`.")
        return statistics_to_inception_score((self.split_n, self.split_sum_p, self.split_sum_plogp))

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._adopt_size(other["split_sum_p"].shape[1])
        if self.num_classes is None:
            return
        for name in _STATES:
            setattr(self, name, getattr(self, name) + other[name].to(getattr(self, name).device))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if self._agree_size(group) == 0:
            return
        for name in _STATES:
            setattr(self, name, all_reduce_sum(getattr(self, name), group))
