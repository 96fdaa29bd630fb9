"""Inception Score with bounded memory: per-split sums of class posteriors and their entropies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lightning_genmetrics._checks import check_option, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import FeatureInput, ImageFeatures, InputRange, torchmetrics_input_range
from lightning_genmetrics.functional.inception_score import (
    chunk_split_index,
    ids_to_balanced_splits,
    keys_to_balanced_splits,
    logits_to_posteriors,
    posteriors_to_statistics,
    statistics_to_inception_score,
)
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum
from lightning_genmetrics.metrics._keys import image_keys

_SUMS = ("split_n", "split_sum_p", "split_sum_plogp")
_PENDING = ("pending_p", "pending_plogp", "pending_keys")
# Content-keyed images stay per-sample (balanced splits) until there are this many per split; beyond, a split is
# empty with probability at most splits·(1 - 1/splits)^(32·splits) < splits·e^-32 ≈ 1.3e-14·splits.
BALANCED_IMAGES_PER_SPLIT = 32
Sampling = Literal["seeded", "torchmetrics"]


class InceptionScore(SufficientStatisticMetric):
    r"""Inception Score ``(mean, std)`` over splits, keeping per-split sums (and a bounded buffer for small sets).

    Per split, float64 state: the count, ``Σ_x p(y|x)`` (``[C]``) and ``Σ_x Σ_y p log p``; the score
    of a split is ``exp(mean_x Σ_y p log p - Σ_y p̄ log p̄)``
    (:func:`~lightning_genmetrics.functional.statistics_to_inception_score`). The std over splits has
    ddof = 0, as torch-fidelity and the original code (torchmetrics uses ddof = 1).

    **Splits.** The split of each image depends only on the image (or its id), never on the order,
    batching or DDP sharding of the data, so the value is a function of the set of images seen:

    - With ``sample_ids``: split = :func:`~lightning_genmetrics.functional.inception_score.ids_to_balanced_splits`:
      every block of ``splits`` consecutive ids (``b·splits … b·splits + splits - 1``) is spread over
      all the splits by a seeded random permutation. The callback passes the global sample indices
      ``0 … N-1``, so the split sizes differ by at most one, and no split is empty once ``N >= splits``
      (any run of ``N >= 2·splits`` consecutive ids holds a whole block). Nothing per image is kept.
    - Without ids, by a seeded hash ``key`` of the uint8 pixels
      (:func:`~lightning_genmetrics.functional.sample_keys`). While fewer than
      ``balanced_limit = 32·splits`` such images have been seen (over all ranks), their posteriors
      are kept per image and :meth:`compute` cuts the ascending key order into equal contiguous
      chunks (:func:`~lightning_genmetrics.functional.inception_score.keys_to_balanced_splits`): the
      split sizes differ by at most one, so no split is empty once ``N >= splits``. From
      ``balanced_limit`` images on, every image goes to split ``key mod splits`` and only the sums are
      kept: the sizes are then multinomial, and a split is empty with probability at most
      ``splits·(1 - 1/splits)^(32·splits) < 1.3e-14·splits``. Bit-identical images share a key.

    torch-fidelity shuffles the images and cuts equal chunks; with ``splits=1`` the two agree exactly.

    **Memory** is ``splits·(C + 2) + 1`` numbers, plus up to ``balanced_limit - 1`` buffered rows of
    ``C + 2`` numbers while fewer than ``balanced_limit`` images without ids have been seen. DDP sync is
    all-reduces only: of the sums, and, while the ranks together hold fewer than ``balanced_limit``
    buffered rows, of those rows (each rank writes its own rows into a shared zero buffer).

    **torchmetrics.** It keeps every image's logits, permutes them with ``torch.randperm`` from
    torch's global generator, cuts them with ``torch.chunk`` (chunks of ``ceil(N / splits)``, so
    possibly fewer than ``splits``) and reports the std with ddof = 1. ``sampling="torchmetrics"``
    does exactly that (every image's posteriors kept in arrival order, over ranks rank 0's first), so
    after the same ``torch.manual_seed`` the value is torchmetrics' to float rounding. The default's
    mean estimates the same quantity; the splits differ, and so does the std's ddof (0 here).

    ``forward`` accumulates the batch and returns ``None``, as the score of one batch is not the
    metric's value.

    Args:
        feature: ``"logits_unbiased"`` or ``"logits"`` of the standard FID InceptionV3 (or, as
            torchmetrics allows, a pool layer ``64``, ``192``, ``768``, ``2048``), or a classifier
            module whose output is taken as logits.
        splits: number of splits.
        normalize: torchmetrics' switch: ``True`` for float images in ``[0, 1]`` (the same as
            ``input_range=(0, 1)``), ``False`` for uint8. A custom module taking the images as given
            receives ``(x * 255).byte()``, as torchmetrics' InceptionScore hands it; for the standard
            network floats are rounded to uint8 (torchmetrics truncates: pass ``(x * 255).byte()`` to match).
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only
            (unless ``normalize``).
        feature_input: what a custom module receives: ``"as_given"`` (default: the images passed to
            ``update``) or ``"float"`` (float RGB in ``[0, 1]``).
        sampling: ``"seeded"`` (the default, above) or ``"torchmetrics"``.
        antialias: resize of the standard network: ``False`` (default) the TF1 protocol of the original
            Inception Score code and torch-fidelity, ``True`` torchmetrics' antialiased bilinear resize.
        seed: selects the split-assignment hash.
        weights_path: a local copy of the Inception weights (standard network only).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``splits < 1``, an unknown layer, ``sampling`` or ``feature_input``, ``normalize=True``
            with another ``input_range``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
        >>> metric = InceptionScore(classifier, 2, input_range=(0, 1))  # the classifier gets the floats as given
        >>> metric.update(torch.rand(32, 3, 8, 8))
        >>> mean, std = metric.compute()
        >>> bool(1.0 <= mean <= 10.0)
        True
    """

    higher_is_better = True
    plot_lower_bound = 1.0
    accepts_image_batch = True
    # The score of one batch is not the metric's value: forward accumulates (see the base class).
    _forward_accumulates_only = True

    def __init__(
        self,
        feature: str | int | nn.Module = "logits_unbiased",
        splits: int = 10,
        normalize: bool = False,
        *,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        sampling: Sampling = "seeded",
        antialias: bool = False,
        seed: int = 0,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.splits = check_positive_int(splits, "splits")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.sampling: Sampling = check_option(sampling, "sampling", ("seeded", "torchmetrics"))  # type: ignore[assignment]
        # torchmetrics' InceptionScore (unlike its FID and KID) hands its network (x * 255).byte() under
        # normalize=True, a custom network included: do the same for a network that takes the images as given.
        self._truncate_floats = normalize is True
        self.extractor = ImageFeatures.resolve(
            feature,
            input_range=torchmetrics_input_range(normalize, input_range),
            weights_path=weights_path,
            antialias=antialias,
            feature_input=feature_input,
            layers=("logits_unbiased", "logits", "64", "192", "768", "2048"),
        )
        # torchmetrics' sampling keeps every image (pending rows keyed by arrival position, never folded).
        self.balanced_limit = BALANCED_IMAGES_PER_SPLIT * splits if self.sampling == "seeded" else None
        c = self.extractor.num_features or 0
        self.add_state("split_n", torch.zeros(splits, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("split_sum_p", torch.zeros(splits, c, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("split_sum_plogp", torch.zeros(splits, dtype=torch.float64), dist_reduce_fx="sum")
        # Images split by their pixels' key; while fewer than balanced_limit, the pending_* rows hold exactly them.
        self.add_state("hashed_n", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("pending_p", torch.zeros(0, c, dtype=torch.float64), dist_reduce_fx="cat")
        self.add_state("pending_plogp", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="cat")
        self.add_state("pending_keys", torch.zeros(0, dtype=torch.int64), dist_reduce_fx="cat")

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
        tm_compat.set_state_default(self, "split_sum_p", zeros)
        self.split_sum_p = zeros
        empty = zeros.new_zeros(0, c)
        tm_compat.set_state_default(self, "pending_p", empty)
        self.pending_p = empty

    def update(self, imgs: Tensor | ImageBatch, sample_ids: Tensor | None = None) -> None:
        """Add a batch of generated images.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch
                (a ``DataLoader`` over a ``TensorDataset``), whose first tensor is taken; or an
                :class:`~lightning_genmetrics.features.ImageBatch`, whose conversion and network passes the metrics
                fed it share.
            sample_ids: optional integer ``[N]`` ids that decide the splits instead of the pixels.

        Raises:
            TypeError: bad ``imgs`` or ``sample_ids`` type; float images without ``input_range``.
            ValueError: bad shapes, NaN/Inf, values out of range, or logits of another class count.
        """
        batch = self.extractor.image_batch(imgs)
        uint8, images = batch.uint8, batch.images
        if self.sampling == "torchmetrics":
            if sample_ids is not None:
                raise ValueError(
                    "Got `sample_ids` with sampling='torchmetrics', which orders images by arrival as torchmetrics "
                    "does: drop `sample_ids`, or use sampling='seeded'."
                )
            keys = self.hashed_n + torch.arange(uint8.shape[0], device=self.hashed_n.device)
        else:
            keys = image_keys(uint8, sample_ids, self.seed)  # also validates sample_ids
        given = (images * 255).byte() if self._truncate_floats and images.is_floating_point() else None
        logits = self.extractor.extract(batch, given=given)
        if self.num_classes is not None and logits.shape[1] != self.num_classes:
            raise ValueError(f"Expected logits with {self.num_classes} classes, got shape {tuple(logits.shape)}.")
        device = self.split_n.device
        p, plogp = (value.to(device) for value in logits_to_posteriors(logits))
        if self.num_classes is None:
            self._allocate(logits.shape[1])
        if sample_ids is not None:
            self._add_to_splits(p, plogp, ids_to_balanced_splits(sample_ids.to(device), self.splits, self.seed))
            return
        self.hashed_n = self.hashed_n + keys.shape[0]
        self.pending_p = torch.cat([self.pending_p, p])
        self.pending_plogp = torch.cat([self.pending_plogp, plogp])
        self.pending_keys = torch.cat([self.pending_keys, keys.to(device)])
        self._fold_pending_if_due()

    def compute(self) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of the per-split scores (float64).

        Raises:
            RuntimeError: no images yet, or a split is empty.
        """
        if int(self.split_n.sum()) + self.pending_keys.shape[0] == 0:
            raise RuntimeError("InceptionScore has no images yet: call `update` before `compute`.")
        if self.sampling == "torchmetrics":
            return self._torchmetrics_score()
        split_index = keys_to_balanced_splits(self.pending_keys, self.splits)
        pending = posteriors_to_statistics(self.pending_p, self.pending_plogp, split_index, self.splits)
        folded = (self.split_n, self.split_sum_p, self.split_sum_plogp)
        return statistics_to_inception_score(tuple(a + b for a, b in zip(folded, pending, strict=True)))

    def _torchmetrics_score(self) -> tuple[Tensor, Tensor]:
        """torchmetrics' splits: a global-RNG permutation of the images in arrival order, cut by ``torch.chunk``."""
        arrival = torch.sort(self.pending_keys, stable=True).indices
        permutation = arrival[torch.randperm(arrival.shape[0]).to(arrival.device)]
        split_index, splits = chunk_split_index(arrival.shape[0], self.splits, arrival.device)
        statistics = posteriors_to_statistics(
            self.pending_p[permutation], self.pending_plogp[permutation], split_index, splits
        )
        return statistics_to_inception_score(statistics, correction=1)

    def _add_to_splits(self, p: Tensor, plogp: Tensor, split_index: Tensor) -> None:
        counts, sum_p, sum_plogp = posteriors_to_statistics(p, plogp, split_index, self.splits)
        self.split_n = self.split_n + counts
        self.split_sum_p = self.split_sum_p + sum_p
        self.split_sum_plogp = self.split_sum_plogp + sum_plogp

    def _fold_pending_if_due(self) -> None:
        """From ``balanced_limit`` content-keyed images on, move the buffered rows to split ``key mod splits``."""
        if self.balanced_limit is None or self.pending_keys.shape[0] == 0 or int(self.hashed_n) < self.balanced_limit:
            return
        self._add_to_splits(self.pending_p, self.pending_plogp, torch.remainder(self.pending_keys, self.splits))
        for name in _PENDING:
            setattr(self, name, getattr(self, name)[:0])

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Draw the mean Inception Score (``compute()[0]`` when ``val`` is None, or given values), as torchmetrics does.

        Returns:
            ``(figure, axes)``.
        """
        return super().plot(self.compute()[0] if val is None else val, ax)

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._adopt_size(other["split_sum_p"].shape[1])
        if self.num_classes is None or other["split_sum_p"].shape[1] == 0:
            return  # the other has seen no images: nothing to add
        if self.sampling == "torchmetrics":
            # The other's images arrive after this one's.
            other = {**other, "pending_keys": other["pending_keys"] + self.hashed_n.to(other["pending_keys"].device)}
        for name in (*_SUMS, "hashed_n"):
            setattr(self, name, getattr(self, name) + other[name].to(getattr(self, name).device))
        for name in _PENDING:
            setattr(self, name, torch.cat([getattr(self, name), other[name].to(getattr(self, name).device)]))
        self._fold_pending_if_due()

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if self._agree_size(group) == 0:
            return
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        # One all-reduce tells every rank the global content-keyed count and where its buffered rows go.
        counts = torch.zeros(world + 1, dtype=torch.int64, device=self.split_n.device)
        counts[rank], counts[world] = self.pending_keys.shape[0], self.hashed_n
        counts = all_reduce_sum(counts, group)
        self.hashed_n = counts[world]
        if self.sampling == "torchmetrics":
            # Arrival positions are per rank: rank r's images come after those of ranks 0 .. r-1.
            self.pending_keys = self.pending_keys + int(counts[:rank].sum())
        if self.balanced_limit is not None and int(self.hashed_n) >= self.balanced_limit:
            self._fold_pending_if_due()
        else:
            self._share_pending_rows(counts[:world].tolist(), rank, group)
        self.split_n = all_reduce_sum(self.split_n, group)
        c = self.num_classes
        sums = all_reduce_sum(torch.cat([self.split_sum_p, self.split_sum_plogp[:, None]], dim=1), group)
        self.split_sum_p, self.split_sum_plogp = sums[:, :c], sums[:, c]

    def _share_pending_rows(self, rows_per_rank: list[int], rank: int, group: Any) -> None:
        """Give every rank all ranks' buffered rows (fewer than ``balanced_limit`` in all), by all-reduce.

        Each rank writes its rows at its offset in a zero buffer; the sum of one value and zeros is that
        value exactly, so this is a gather done with the all-reduce the sum states use.
        """
        begin = sum(rows_per_rank[:rank])
        total, mine = sum(rows_per_rank), slice(begin, begin + rows_per_rank[rank])
        c = self.num_classes
        rows = self.pending_p.new_zeros(total, c + 1)
        rows[mine, :c], rows[mine, c] = self.pending_p, self.pending_plogp
        keys = self.pending_keys.new_zeros(total)
        keys[mine] = self.pending_keys
        rows, self.pending_keys = all_reduce_sum(rows, group), all_reduce_sum(keys, group)
        self.pending_p, self.pending_plogp = rows[:, :c].contiguous(), rows[:, c].contiguous()
