"""Image features kept in two bounded, shard-invariant reservoirs (real and generated), for the metrics that need
the feature vectors themselves rather than their moments (KID's kernels, the k-NN radii of precision/recall).

Each side keeps at most ``max_samples`` feature vectors (float32, the precision the extractors produce): those
of the samples with the smallest keys, a key being a seeded hash of the image's uint8 pixels or of its
``sample_ids`` entry (:func:`~lightning_genmetrics.functional.sample_keys`). This bottom-k sample is a uniform
random subset that depends only on *which* images were seen, so any batching or DDP sharding keeps the same
one, and merging ranks is exact: gather the ranks' bounded reservoirs and keep the smallest keys. While a side
has at most ``max_samples`` images nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics._checks import check_bool, check_finite, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import FeatureInput, ImageFeatures, InputRange
from lightning_genmetrics.functional.sampling import bottom_k
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum
from lightning_genmetrics.metrics._keys import image_keys

SIDES = ("real", "fake")


class FeatureReservoirMetric(SufficientStatisticMetric):
    """Two seeded bottom-k reservoirs of image features; subclasses compute from ``_sorted("real")`` and
    ``_sorted("fake")`` (each side's reservoir in ascending key order, a canonical order).

    Args:
        feature: an Inception layer or a feature-extractor module (see :class:`ImageFeatures`).
        max_samples: reservoir size per side, or ``None`` for no bound (memory then grows with N).
        reset_real_features: keep the real side across ``reset()`` when ``False``.
        seed: selects the hash that decides the reservoir.
        input_range, antialias, feature_input, weights_path, layers: for the extractor
            (:meth:`ImageFeatures.resolve`).
        kwargs: passed to ``torchmetrics.Metric``.
    """

    _kept_on_reset = ("real_n", "real_features", "real_keys")
    accepts_image_batch = True

    def __init__(
        self,
        *,
        feature: int | str | nn.Module,
        max_samples: int | None,
        reset_real_features: bool,
        seed: int,
        input_range: InputRange | None,
        antialias: bool,
        feature_input: FeatureInput,
        weights_path: str | None,
        layers: tuple[str, ...],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_samples is not None:
            check_positive_int(max_samples, "max_samples")
        self.max_samples = max_samples
        self.reset_real_features = check_bool(reset_real_features, "reset_real_features")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.extractor = ImageFeatures.resolve(
            feature,
            input_range=input_range,
            weights_path=weights_path,
            antialias=antialias,
            feature_input=feature_input,
            layers=layers,
        )
        d = self.extractor.num_features or 0
        for side in SIDES:
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state(f"{side}_features", torch.zeros(0, d, dtype=torch.float32), dist_reduce_fx="cat")
            self.add_state(f"{side}_keys", torch.zeros(0, dtype=torch.int64), dist_reduce_fx="cat")

    @property
    def num_features(self) -> int | None:
        """The feature dimension, or ``None`` until the first update fixes it."""
        return self.real_features.shape[1] or None

    @property
    def _lazy_size(self) -> int | None:
        return self.num_features

    def _allocate(self, d: int) -> None:
        for side in SIDES:
            empty = torch.zeros(0, d, dtype=torch.float32, device=self.real_n.device)
            tm_compat.set_state_default(self, f"{side}_features", empty)
            if getattr(self, f"{side}_features").shape[0] == 0:
                setattr(self, f"{side}_features", empty)

    def _keep(self, side: str, features: Tensor, keys: Tensor) -> None:
        """Merge rows into a side's reservoir, which keeps the ``max_samples`` smallest keys (in no order).

        Once the reservoir is full, incoming rows overwrite the evicted rows in place, so an update costs
        O(batch) copies and a sort of keys, not a copy of the whole reservoir.
        """
        held_features, held_keys = getattr(self, f"{side}_features"), getattr(self, f"{side}_keys")
        held, capacity = held_keys.shape[0], self.max_samples
        if capacity is None or held + keys.shape[0] <= capacity or held < capacity:
            all_features, all_keys = torch.cat([held_features, features]), torch.cat([held_keys, keys])
            kept = bottom_k(all_keys, capacity)
            setattr(self, f"{side}_features", all_features[kept])
            setattr(self, f"{side}_keys", all_keys[kept])
            return
        survivors = keys < held_keys.max()
        if not bool(survivors.any()):
            return
        features, keys = features[survivors], keys[survivors]
        kept = torch.zeros(held + keys.shape[0], dtype=torch.bool, device=keys.device)
        kept[bottom_k(torch.cat([held_keys, keys]), capacity)] = True
        evicted = (~kept[:held]).nonzero().squeeze(1)
        incoming = kept[held:].nonzero().squeeze(1)
        held_features[evicted] = features[incoming]
        held_keys[evicted] = keys[incoming]

    def _sorted(self, side: str) -> Tensor:
        """A side's reservoir in ascending key order: the canonical order, the same on any sharding."""
        keys = getattr(self, f"{side}_keys")
        return getattr(self, f"{side}_features")[torch.sort(keys, stable=True).indices]

    def _batch_keys(self, side: str, uint8: Tensor, sample_ids: Tensor | None) -> Tensor:
        """The keys of a batch's samples (subclasses may order by arrival instead)."""
        return image_keys(uint8, sample_ids, self.seed)

    def _add(self, imgs: Tensor | ImageBatch, real: bool, sample_ids: Tensor | None) -> None:
        """Extract a batch's features and merge them into a side's reservoir (all checks before any change)."""
        check_bool(real, "real")
        side = "real" if real else "fake"
        batch = self.extractor.image_batch(imgs)
        keys = self._batch_keys(side, batch.uint8, sample_ids)
        features = self.extractor.extract(batch).to(torch.float32)
        if self.num_features is not None and features.shape[1] != self.num_features:
            raise ValueError(f"Expected {self.num_features} features per image, got shape {tuple(features.shape)}.")
        if self.num_features is None:
            self._allocate(features.shape[1])
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + features.shape[0])
        self._keep(side, features.to(self.real_n.device), keys.to(self.real_n.device))

    def real_reservoir(self) -> dict[str, Tensor]:
        """The real side over all ranks (every rank must call it): ``n`` images seen, the reservoir's ``features``
        ``[K, D]`` and their ``keys`` ``[K]`` in ascending key order, on the CPU. ``load_real_reservoir`` puts it
        back."""
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            order = torch.sort(self.real_keys, stable=True).indices
            return {
                "n": self.real_n.detach().cpu().clone(),
                "features": self.real_features[order].detach().cpu().clone(),
                "keys": self.real_keys[order].detach().cpu().clone(),
            }

    def load_real_reservoir(self, state: dict[str, Tensor]) -> None:
        """Replace the real side with a ``real_reservoir()``. Under DDP load it on one rank and leave the others
        empty (``reset_real_features=False`` keeps them so): synchronisation merges the ranks' reservoirs.

        Raises:
            TypeError: entries that are not tensors of the expected dtypes.
            ValueError: entries of inconsistent shapes, more rows than ``max_samples`` or ``n``, another feature
                size than the metric's, or NaN/Inf features.
        """
        n, features, keys = state.get("n"), state.get("features"), state.get("keys")
        if not all(isinstance(value, Tensor) for value in (n, features, keys)):
            raise TypeError("Expected a reservoir with tensors `n`, `features` and `keys`.")
        if not features.is_floating_point() or keys.dtype != torch.int64 or n.dtype != torch.int64:
            raise TypeError(
                f"Expected float `features`, int64 `keys` and `n`, got {features.dtype}, {keys.dtype}, {n.dtype}."
            )
        k = keys.shape[0]
        bad_shape = features.ndim != 2 or keys.ndim != 1 or features.shape[0] != k or n.ndim != 0 or int(n) < k
        if bad_shape or (self.max_samples is not None and k > self.max_samples):
            raise ValueError(
                f"Expected a reservoir of at most max_samples={self.max_samples} rows and n >= rows, got features "
                f"{tuple(features.shape)}, keys {tuple(keys.shape)}, n {n.tolist()}."
            )
        if self.num_features is not None and features.shape[1] != self.num_features:
            raise ValueError(f"Expected {self.num_features} features per image, got {tuple(features.shape)}.")
        check_finite(features, "features")
        if self.num_features is None:
            self._allocate(features.shape[1])
        device = self.real_n.device
        self.real_n = n.to(device).clone()
        self.real_features = features.to(device, torch.float32).clone()
        self.real_keys = keys.to(device).clone()

    def _offset_keys(self, side: str, keys: Tensor, held: Tensor) -> Tensor:
        """Keys of another state's rows merged after this one's (arrival-ordered subclasses shift them)."""
        return keys

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._adopt_size(other["real_features"].shape[1])
        if self.num_features is None or other["real_features"].shape[1] == 0:
            return  # the other has seen no images: nothing to add
        device = self.real_n.device
        for side in SIDES:
            held = getattr(self, f"{side}_n")
            keys = self._offset_keys(side, other[f"{side}_keys"].to(device), held)
            setattr(self, f"{side}_n", held + other[f"{side}_n"].to(device))
            self._keep(side, other[f"{side}_features"].to(device), keys)

    def _gathered_keys(self, side: str, keys_per_rank: list[Tensor], gather: Callable, group: Any) -> list[Tensor]:
        """The ranks' keys as gathered (arrival-ordered subclasses shift them by rank)."""
        return keys_per_rank

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if self._agree_size(group) == 0:
            return
        gather = dist_sync_fn or gather_all_tensors
        for side in SIDES:
            keys_per_rank = self._gathered_keys(side, gather(getattr(self, f"{side}_keys"), group=group), gather, group)
            setattr(self, f"{side}_n", all_reduce_sum(getattr(self, f"{side}_n"), group))
            # A reservoir is a sample, not a sum: gather the ranks' (bounded) reservoirs and keep the smallest keys.
            features = torch.cat(gather(getattr(self, f"{side}_features"), group=group))
            keys = torch.cat(keys_per_rank)
            setattr(self, f"{side}_features", features[:0])
            setattr(self, f"{side}_keys", keys[:0])
            self._keep(side, features, keys)
