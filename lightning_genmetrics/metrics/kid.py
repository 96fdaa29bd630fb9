"""Kernel Inception Distance over a bounded, shard-invariant reservoir of features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_genmetrics._checks import check_bool, check_finite, check_option, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.extractor import (
    FeatureInput,
    ImageFeatures,
    InputRange,
    torchmetrics_input_range,
)
from lightning_genmetrics.features.preprocess import batch_to_images
from lightning_genmetrics.functional.kid import check_kernel_parameters, kernel_inception_distance
from lightning_genmetrics.functional.sampling import bottom_k
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum
from lightning_genmetrics.metrics._keys import image_keys

_SIDES = ("real", "fake")


class _DefaultCoef(float):
    """``1.0`` that tells "not passed" apart from an explicit ``coef=1.0``: ``coef`` and its alias ``coef0`` given
    together must agree, and the signature still shows torchmetrics' default."""


_COEF_DEFAULT = _DefaultCoef(1.0)
Sampling = Literal["seeded", "torchmetrics"]


class KernelInceptionDistance(SufficientStatisticMetric):
    """KID ``(mean, std)``: unbiased polynomial-kernel MMD² over random subsets, with bounded memory.

    Takes torchmetrics 1.9's arguments in its order, with their meaning (``coef`` is also accepted
    as ``coef0``, ``normalize=True`` is ``input_range=(0, 1)``).

    **Sampling** (``sampling="seeded"``, the default). Each side keeps a reservoir of at most
    ``max_samples`` feature vectors (float32, the precision the extractors produce): the samples
    with the smallest keys, a key being a seeded hash of the image's uint8 pixels or of its
    ``sample_ids`` entry (:func:`~lightning_genmetrics.functional.sample_keys`). This bottom-k
    sample is a uniform random subset that depends only on *which* images were seen, so any
    batching or DDP sharding keeps the same one, and merging ranks is exact (gather the reservoirs,
    keep the smallest keys). While a side has at most ``max_samples`` images nothing is dropped;
    ``max_samples=None`` keeps everything (memory grows with N, as torchmetrics). Subsets are then
    drawn from the reservoir by a generator seeded with ``seed`` as in
    :func:`~lightning_genmetrics.functional.kernel_inception_distance`. Bit-identical images share
    a key and are kept or dropped together once a reservoir is full; pass ``sample_ids`` if exact
    duplicates are frequent.

    With N ≤ ``max_samples`` the features are torchmetrics' and only the random subsets differ:
    the two means are estimates of one quantity, each with a standard error of about
    ``std / sqrt(subsets)``; with ``subset_size`` equal to both sides' counts every subset is the
    whole set and the values agree to float rounding.

    ``sampling="torchmetrics"`` reproduces torchmetrics' number: every feature is kept in the order
    it arrived (over ranks: rank 0's, then rank 1's ...), and the subsets come from torch's global
    generator exactly as torchmetrics draws them, so after the same ``torch.manual_seed`` both give
    the same value (to float rounding: the kernels are float64 here).

    ``forward`` accumulates the batch and returns ``None`` (a one-batch KID means nothing).

    Args:
        feature: an Inception layer (``64``, ``192``, ``768``, ``2048``, ``"logits_unbiased"``) or a
            feature-extractor module (see ``feature_input`` for what it receives).
        subsets: number of random subsets.
        subset_size: samples per subset and side.
        degree: polynomial kernel degree, an int >= 1.
        gamma: kernel scale, a finite number > 0, or ``None`` for ``1/D``.
        coef: kernel offset, a finite number (torchmetrics' name; ``coef0`` is the same).
        reset_real_features: keep the real side across ``reset()`` when ``False``.
        normalize: torchmetrics' switch: ``True`` for float images in ``[0, 1]`` (the same as
            ``input_range=(0, 1)``), ``False`` for uint8. torchmetrics truncates ``[0, 1]`` floats to
            uint8 for its Inception network; here they are rounded (pass ``(x * 255).byte()`` to match).
        coef0: the kernel offset under its former (scikit-learn) name; ``None`` to use ``coef``.
        max_samples: reservoir size per side (at least ``subset_size``), or ``None`` for no bound.
        sampling: ``"seeded"`` or ``"torchmetrics"`` (see above).
        antialias: resize of the standard network: ``False`` (default) the TF1 protocol of published
            numbers and torch-fidelity, ``True`` torchmetrics' antialiased bilinear resize.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only
            (unless ``normalize``).
        feature_input: what a custom module receives: ``"as_given"`` (default, as torchmetrics: the
            images passed to ``update``) or ``"float"`` (float RGB in ``[0, 1]``).
        seed: selects the reservoir hash and the subsets (``sampling="seeded"``).
        weights_path: a local copy of the Inception weights (standard network only).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type (bools are refused as numbers).
        ValueError: ``subsets < 1``, ``subset_size < 2``, ``max_samples < subset_size``, ``degree < 1``,
            ``gamma`` not a finite number > 0, ``coef`` NaN or infinite, ``coef`` and ``coef0`` that
            differ, ``normalize=True`` with another ``input_range``, ``max_samples`` with
            ``sampling="torchmetrics"``, or an unknown Inception layer.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> kid = KernelInceptionDistance(net, subsets=5, subset_size=16, normalize=True)
        >>> kid.update(torch.rand(32, 3, 8, 8), real=True)
        >>> kid.update(torch.rand(32, 3, 8, 8) ** 3, real=False)
        >>> mean, std = kid.compute()
        >>> bool(mean > 0)
        True
    """

    higher_is_better = False
    plot_lower_bound = 0.0
    # A one-batch KID means nothing and needs both sides: forward accumulates (see the base class).
    _forward_accumulates_only = True

    def __init__(
        self,
        feature: int | str | nn.Module = 2048,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: float | None = None,
        coef: float = _COEF_DEFAULT,
        reset_real_features: bool = True,
        normalize: bool = False,
        *,
        coef0: float | None = None,
        max_samples: int | None = 10_000,
        sampling: Sampling = "seeded",
        antialias: bool = False,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        seed: int = 0,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subsets = check_positive_int(subsets, "subsets")
        self.subset_size = check_positive_int(subset_size, "subset_size", minimum=2)
        self.degree, self.gamma, self.coef = check_kernel_parameters(
            degree, gamma, _kernel_offset(coef, coef0), offset_name="coef" if coef0 is None else "coef0"
        )
        self.sampling: Sampling = check_option(sampling, "sampling", ("seeded", "torchmetrics"))  # type: ignore[assignment]
        if self.sampling == "torchmetrics":
            if max_samples not in (None, 10_000):
                raise ValueError(
                    f"Got max_samples={max_samples!r} with sampling='torchmetrics', which keeps every feature as "
                    "torchmetrics does: drop `max_samples`, or use sampling='seeded' for a bounded reservoir."
                )
            max_samples = None
        if max_samples is not None:
            check_positive_int(max_samples, "max_samples", minimum=subset_size)
        self.max_samples = max_samples
        self.reset_real_features = check_bool(reset_real_features, "reset_real_features")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.extractor = ImageFeatures.resolve(
            feature,
            input_range=torchmetrics_input_range(normalize, input_range),
            weights_path=weights_path,
            antialias=antialias,
            feature_input=feature_input,
            layers=("64", "192", "768", "2048", "logits_unbiased", "logits"),
        )
        d = self.extractor.num_features or 0
        for side in _SIDES:
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state(f"{side}_features", torch.zeros(0, d, dtype=torch.float32), dist_reduce_fx="cat")
            # sampling="seeded": hashes; "torchmetrics": arrival positions (so the key order is the arrival order).
            self.add_state(f"{side}_keys", torch.zeros(0, dtype=torch.int64), dist_reduce_fx="cat")

    @property
    def coef0(self) -> float:
        """The kernel offset under its former name (``coef``)."""
        return self.coef

    _kept_on_reset = ("real_n", "real_features", "real_keys")

    @property
    def num_features(self) -> int | None:
        """The feature dimension, or ``None`` until the first update fixes it."""
        return self.real_features.shape[1] or None

    @property
    def _lazy_size(self) -> int | None:
        return self.num_features

    def _allocate(self, d: int) -> None:
        for side in _SIDES:
            empty = torch.zeros(0, d, dtype=torch.float32, device=self.real_n.device)
            tm_compat.set_state_default(self, f"{side}_features", empty)
            if getattr(self, f"{side}_features").shape[0] == 0:
                setattr(self, f"{side}_features", empty)

    def _keep(self, side: str, features: Tensor, keys: Tensor) -> None:
        """Merge rows into a side's reservoir, which keeps the ``max_samples`` smallest keys (in no order).

        Once the reservoir is full, incoming rows overwrite the evicted rows in place, so an update
        costs O(batch) copies and a sort of keys, not a copy of the whole reservoir.
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
        """A side's reservoir in ascending key order: the canonical order the subsets are drawn from."""
        keys = getattr(self, f"{side}_keys")
        return getattr(self, f"{side}_features")[torch.sort(keys, stable=True).indices]

    def update(self, imgs: Tensor, real: bool, sample_ids: Tensor | None = None) -> None:
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch
                (a ``DataLoader`` over a ``TensorDataset``), whose first tensor is taken.
            real: which side.
            sample_ids: optional integer ``[N]`` ids that decide the reservoir instead of the pixels.

        Raises:
            TypeError: bad ``imgs``/``sample_ids`` type, float images without ``input_range``,
                ``real`` not a bool.
            ValueError: bad shapes, NaN/Inf, values out of range, or features of another size.
        """
        check_bool(real, "real")
        side = "real" if real else "fake"
        images = batch_to_images(imgs)
        uint8 = self.extractor.prepare(images)
        if self.sampling == "torchmetrics":
            if sample_ids is not None:
                raise ValueError(
                    "Got `sample_ids` with sampling='torchmetrics', which orders samples by arrival as torchmetrics "
                    "does: drop `sample_ids`, or use sampling='seeded'."
                )
            keys = getattr(self, f"{side}_n") + torch.arange(uint8.shape[0], device=self.real_n.device)
        else:
            keys = image_keys(uint8, sample_ids, self.seed)
        features = self.extractor.extract(uint8, images).to(torch.float32)
        if self.num_features is not None and features.shape[1] != self.num_features:
            raise ValueError(f"Expected {self.num_features} features per image, got shape {tuple(features.shape)}.")
        if self.num_features is None:
            self._allocate(features.shape[1])
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + features.shape[0])
        self._keep(side, features.to(self.real_n.device), keys.to(self.real_n.device))

    def compute(self) -> tuple[Tensor, Tensor]:
        """KID ``(mean, std)`` (float64) over ``subsets`` subsets of the reservoirs.

        Raises:
            RuntimeError: fewer than ``subset_size`` images on a side.
        """
        if self.sampling == "torchmetrics" and self.num_features is None:
            raise RuntimeError("KernelInceptionDistance has no images yet: call `update` before `compute`.")
        return kernel_inception_distance(
            self._sorted("real"),
            self._sorted("fake"),
            subsets=self.subsets,
            subset_size=self.subset_size,
            degree=self.degree,
            gamma=self.gamma,
            coef0=self.coef,
            seed=None if self.sampling == "torchmetrics" else self.seed,
        )

    def real_reservoir(self) -> dict[str, Tensor]:
        """The real side over all ranks (every rank must call it): ``n`` images seen, the reservoir's ``features``
        ``[K, D]`` and their ``keys`` ``[K]``, on the CPU. ``load_real_reservoir`` puts it back.

        Example:
            >>> import torch
            >>> kid = KernelInceptionDistance(torch.nn.Flatten(), subset_size=2, input_range=(0, 1), max_samples=3)
            >>> kid.update(torch.rand(5, 3, 2, 2), real=True)
            >>> state = kid.real_reservoir()
            >>> int(state["n"]), tuple(state["features"].shape)
            (5, (3, 12))
            >>> other = KernelInceptionDistance(torch.nn.Flatten(), subset_size=2, input_range=(0, 1), max_samples=3)
            >>> other.load_real_reservoir(state)
            >>> torch.equal(other.real_reservoir()["keys"], state["keys"])
            True
        """
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

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Draw the mean KID (``compute()[0]`` when ``val`` is None, or given values), as torchmetrics does.

        Returns:
            ``(figure, axes)``.
        """
        return super().plot(self.compute()[0] if val is None else val, ax)

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._adopt_size(other["real_features"].shape[1])
        if self.num_features is None or other["real_features"].shape[1] == 0:
            return  # the other has seen no images: nothing to add
        device = self.real_n.device
        for side in _SIDES:
            held = getattr(self, f"{side}_n")
            keys = other[f"{side}_keys"].to(device)
            if self.sampling == "torchmetrics":
                keys = keys + held  # the other's samples arrive after this one's
            setattr(self, f"{side}_n", held + other[f"{side}_n"].to(device))
            self._keep(side, other[f"{side}_features"].to(device), keys)

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if self._agree_size(group) == 0:
            return
        gather = dist_sync_fn or gather_all_tensors
        for side in _SIDES:
            keys_per_rank = gather(getattr(self, f"{side}_keys"), group=group)
            if self.sampling == "torchmetrics":
                # Arrival positions are per rank: rank r's samples come after those of ranks 0 .. r-1.
                counts = [int(n) for n in gather(getattr(self, f"{side}_n").reshape(1), group=group)]
                offsets = [sum(counts[:rank]) for rank in range(len(counts))]
                keys_per_rank = [keys + offset for keys, offset in zip(keys_per_rank, offsets, strict=True)]
            setattr(self, f"{side}_n", all_reduce_sum(getattr(self, f"{side}_n"), group))
            # A reservoir is a sample, not a sum: gather the ranks' (bounded) reservoirs and keep the smallest keys.
            features = torch.cat(gather(getattr(self, f"{side}_features"), group=group))
            keys = torch.cat(keys_per_rank)
            setattr(self, f"{side}_features", features[:0])
            setattr(self, f"{side}_keys", keys[:0])
            self._keep(side, features, keys)


def _kernel_offset(coef: Any, coef0: Any) -> Any:
    """The kernel offset given as torchmetrics' ``coef`` or as ``coef0``; both given must agree."""
    if coef0 is None:
        return float(coef) if isinstance(coef, _DefaultCoef) else coef
    if not isinstance(coef, _DefaultCoef) and coef != coef0:
        raise ValueError(f"Got coef={coef!r} and coef0={coef0!r}: they are the same kernel offset; pass one of them.")
    return coef0
