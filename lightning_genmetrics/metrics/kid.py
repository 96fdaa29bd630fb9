"""Kernel Inception Distance over a bounded, shard-invariant reservoir of features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_option, check_positive_int
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import (
    FeatureInput,
    InputRange,
    torchmetrics_input_range,
)
from lightning_genmetrics.functional.kid import check_kernel_parameters, kernel_inception_distance
from lightning_genmetrics.metrics._reservoir import FeatureReservoirMetric


class _DefaultCoef(float):
    """``1.0`` that tells "not passed" apart from an explicit ``coef=1.0``: ``coef`` and its alias ``coef0`` given
    together must agree, and the signature still shows torchmetrics' default."""


_COEF_DEFAULT = _DefaultCoef(1.0)
Sampling = Literal["seeded", "torchmetrics"]


class KernelInceptionDistance(FeatureReservoirMetric):
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
        subsets = check_positive_int(subsets, "subsets")
        subset_size = check_positive_int(subset_size, "subset_size", minimum=2)
        kernel = check_kernel_parameters(
            degree, gamma, _kernel_offset(coef, coef0), offset_name="coef" if coef0 is None else "coef0"
        )
        checked_sampling: Sampling = check_option(sampling, "sampling", ("seeded", "torchmetrics"))  # type: ignore[assignment]
        if checked_sampling == "torchmetrics":
            if max_samples not in (None, 10_000):
                raise ValueError(
                    f"Got max_samples={max_samples!r} with sampling='torchmetrics', which keeps every feature as "
                    "torchmetrics does: drop `max_samples`, or use sampling='seeded' for a bounded reservoir."
                )
            max_samples = None
        if max_samples is not None:
            check_positive_int(max_samples, "max_samples", minimum=subset_size)
        # sampling="seeded": the keys are hashes; "torchmetrics": arrival positions (the key order is arrival order).
        super().__init__(
            feature=feature,
            max_samples=max_samples,
            reset_real_features=reset_real_features,
            seed=seed,
            input_range=torchmetrics_input_range(normalize, input_range),
            antialias=antialias,
            feature_input=feature_input,
            weights_path=weights_path,
            layers=("64", "192", "768", "2048", "logits_unbiased", "logits"),
            **kwargs,
        )
        self.subsets, self.subset_size = subsets, subset_size
        self.degree, self.gamma, self.coef = kernel
        self.sampling = checked_sampling

    @property
    def coef0(self) -> float:
        """The kernel offset under its former name (``coef``)."""
        return self.coef

    def update(self, imgs: Tensor | ImageBatch, real: bool, sample_ids: Tensor | None = None) -> None:
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch
                (a ``DataLoader`` over a ``TensorDataset``), whose first tensor is taken; or an
                :class:`~lightning_genmetrics.features.ImageBatch` (shared with the other metrics fed it).
            real: which side.
            sample_ids: optional integer ``[N]`` ids that decide the reservoir instead of the pixels.

        Raises:
            TypeError: bad ``imgs``/``sample_ids`` type, float images without ``input_range``,
                ``real`` not a bool.
            ValueError: bad shapes, NaN/Inf, values out of range, or features of another size.
        """
        self._add(imgs, real, sample_ids)

    def _batch_keys(self, side: str, uint8: Tensor, sample_ids: Tensor | None) -> Tensor:
        if self.sampling != "torchmetrics":
            return super()._batch_keys(side, uint8, sample_ids)
        if sample_ids is not None:
            raise ValueError(
                "Got `sample_ids` with sampling='torchmetrics', which orders samples by arrival as torchmetrics "
                "does: drop `sample_ids`, or use sampling='seeded'."
            )
        return getattr(self, f"{side}_n") + torch.arange(uint8.shape[0], device=self.real_n.device)

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

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Draw the mean KID (``compute()[0]`` when ``val`` is None, or given values), as torchmetrics does.

        Returns:
            ``(figure, axes)``.
        """
        return super().plot(self.compute()[0] if val is None else val, ax)

    def _offset_keys(self, side: str, keys: Tensor, held: Tensor) -> Tensor:
        # Arrival positions: the other's samples arrive after this one's.
        return keys + held if self.sampling == "torchmetrics" else keys

    def _gathered_keys(self, side: str, keys_per_rank: list[Tensor], gather: Callable, group: Any) -> list[Tensor]:
        if self.sampling != "torchmetrics":
            return keys_per_rank
        # Arrival positions are per rank: rank r's samples come after those of ranks 0 .. r-1.
        counts = [int(n) for n in gather(getattr(self, f"{side}_n").reshape(1), group=group)]
        offsets = [sum(counts[:rank]) for rank in range(len(counts))]
        return [keys + offset for keys, offset in zip(keys_per_rank, offsets, strict=True)]


def _kernel_offset(coef: Any, coef0: Any) -> Any:
    """The kernel offset given as torchmetrics' ``coef`` or as ``coef0``; both given must agree."""
    if coef0 is None:
        return float(coef) if isinstance(coef, _DefaultCoef) else coef
    if not isinstance(coef, _DefaultCoef) and coef != coef0:
        raise ValueError(f"Got coef={coef!r} and coef0={coef0!r}: they are the same kernel offset; pass one of them.")
    return coef0
