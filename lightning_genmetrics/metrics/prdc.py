"""Improved precision and recall with density and coverage, over bounded, shard-invariant feature reservoirs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_finite, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import FeatureInput, InputRange, torchmetrics_input_range
from lightning_genmetrics.functional.prdc import knn_radii, precision_recall_density_coverage
from lightning_genmetrics.metrics._reservoir import FeatureReservoirMetric


class PrecisionRecallDensityCoverage(FeatureReservoirMetric):
    """Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

    All four come from the same k-nearest-neighbour balls (see :mod:`lightning_genmetrics.functional.prdc`):
    precision is the fraction of generated samples inside the real manifold, recall the fraction of real
    samples inside the generated manifold, density counts the real balls around each generated sample (1
    on average when the two distributions are equal; above 1 when samples crowd dense regions), coverage is
    the fraction of real balls that hold a generated sample.

    Each side keeps a seeded bottom-k reservoir of at most ``max_samples`` feature vectors (the samples with
    the smallest hash keys, a uniform random subset that any batching or DDP sharding keeps the same, and that
    merges exactly across ranks): with at most ``max_samples`` samples per side the values are exact, beyond
    they are those of a uniform subsample (:meth:`samples_used` says how many took part). Distances are
    float64, computed ``block_size`` rows at a time, so ``compute`` needs ``O(block_size · max_samples)``
    memory, never ``O(N · M)``. The real side's radii are computed once while it does not change.

    The default features are InceptionV3's 2048-d pool features, as the ADM evaluator (and LlamaGen, VAR)
    report precision and recall; torch-fidelity's ``prc`` uses VGG16 fc2 features (pass such a network as
    ``feature``).

    Args:
        feature: an Inception layer (``64``, ``192``, ``768``, ``2048``) or a feature-extractor module.
        k: the neighbour that sets each ball's radius (3, as both papers).
        max_samples: reservoir size per side (``None``: keep every feature, memory grows with N).
        reset_real_features: keep the real side (and its radii) across ``reset()`` when ``False``.
        normalize: ``True`` for float images in ``[0, 1]`` (the same as ``input_range=(0, 1)``).
        block_size: rows of distances computed at once.
        antialias: resize of the standard network (``False``: the TF1 protocol of published numbers).
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        feature_input: what a custom module receives: ``"as_given"`` or ``"float"`` (RGB in ``[0, 1]``).
        seed: selects the reservoir hash.
        weights_path: a local copy of the Inception weights (standard network only).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError, ValueError: bad arguments (``k < 1``, ``max_samples <= k`` ...).

    Example:
        >>> import torch
        >>> metric = PrecisionRecallDensityCoverage(torch.nn.Flatten(), input_range=(0, 1))
        >>> _ = torch.manual_seed(0)
        >>> metric.update(torch.rand(64, 3, 4, 4), real=True)
        >>> metric.update(torch.rand(64, 3, 4, 4), real=False)
        >>> sorted(metric.compute())
        ['coverage', 'density', 'precision', 'recall']
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    # A one-batch value needs both sides and k + 1 samples each: forward accumulates, as FID and KID.
    _forward_accumulates_only = True

    def __init__(
        self,
        feature: int | str | nn.Module = 2048,
        k: int = 3,
        max_samples: int | None = 10_000,
        reset_real_features: bool = True,
        normalize: bool = False,
        *,
        block_size: int = 1024,
        antialias: bool = False,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        seed: int = 0,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        neighbours = check_positive_int(k, "k")
        if max_samples is not None:
            check_positive_int(max_samples, "max_samples", minimum=neighbours + 1)
        super().__init__(
            feature=feature,
            max_samples=max_samples,
            reset_real_features=reset_real_features,
            seed=seed,
            input_range=torchmetrics_input_range(normalize, input_range),
            antialias=antialias,
            feature_input=feature_input,
            weights_path=weights_path,
            layers=("64", "192", "768", "2048"),
            **kwargs,
        )
        self.k = neighbours
        self.block_size = check_positive_int(block_size, "block_size")
        # (sorted real keys, their radii) of the real side the radii were computed or loaded for.
        self._real_radii: tuple[Tensor, Tensor] | None = None

    def update(self, imgs: Tensor | ImageBatch, real: bool, sample_ids: Tensor | None = None) -> None:
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch;
                or an :class:`~lightning_genmetrics.features.ImageBatch` (shared with the other metrics fed it).
            real: which side.
            sample_ids: optional integer ``[N]`` ids that decide the reservoir instead of the pixels.

        Raises:
            TypeError: bad ``imgs``/``sample_ids`` type, float images without ``input_range``, ``real`` not a bool.
            ValueError: bad shapes, NaN/Inf, values out of range, or features of another size.
        """
        self._add(imgs, real, sample_ids)

    def _radii(self, real: Tensor, keys: Tensor) -> Tensor:
        cached = self._real_radii
        if cached is None or not torch.equal(cached[0], keys):
            cached = (keys.clone(), knn_radii(real, self.k, block_size=self.block_size))
            self._real_radii = cached
        return cached[1].to(real.device)

    def compute(self) -> dict[str, Tensor]:
        """``{"precision", "recall", "density", "coverage"}`` (float64 scalars) over the two reservoirs.

        Raises:
            RuntimeError: fewer than ``k + 1`` samples on a side (the message says how many are needed).
        """
        for side, name in (("real", "real"), ("fake", "generated")):
            held = int(getattr(self, f"{side}_keys").shape[0])
            if held < self.k + 1:
                raise RuntimeError(
                    f"{type(self).__name__} with k={self.k} needs at least {self.k + 1} {name} samples, got {held}."
                )
        real_keys = torch.sort(self.real_keys, stable=True).values
        real = self._sorted("real")
        return precision_recall_density_coverage(
            real, self._sorted("fake"), self.k, block_size=self.block_size, real_radii=self._radii(real, real_keys)
        )

    def samples_used(self) -> dict[str, int]:
        """How many samples each side has seen and how many its reservoir holds (all of them while
        ``seen <= max_samples``): ``{"real_seen", "real_used", "fake_seen", "fake_used"}``, over all ranks
        (every rank must call it)."""
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            return {
                "real_seen": int(self.real_n),
                "real_used": int(self.real_keys.shape[0]),
                "fake_seen": int(self.fake_n),
                "fake_used": int(self.fake_keys.shape[0]),
            }

    def real_reservoir(self) -> dict[str, Tensor]:
        """The real side over all ranks (every rank must call it) with its k-NN ``radii`` (float64, in the order
        of ``features``), for caching beside reference statistics; ``load_real_reservoir`` puts it back."""
        state = super().real_reservoir()
        if state["keys"].shape[0] >= self.k + 1:
            state["radii"] = self._radii(state["features"], state["keys"]).cpu().clone()
        return state

    def load_real_reservoir(self, state: dict[str, Tensor]) -> None:
        """Replace the real side with a ``real_reservoir()``, using its ``radii`` if present (checked for shape,
        dtype and finiteness; their values are trusted, as they come from a checksummed artifact).

        Raises:
            TypeError, ValueError: a malformed reservoir or radii (the real side is then left as it was).
        """
        radii = state.get("radii")
        if radii is not None:
            if not isinstance(radii, Tensor) or radii.dtype != torch.float64:
                raise TypeError(f"Expected float64 `radii`, got {getattr(radii, 'dtype', type(radii).__name__)}.")
            keys = state.get("keys")
            rows = keys.shape[0] if isinstance(keys, Tensor) else None
            if radii.shape != (rows,):
                raise ValueError(
                    f"Expected `radii` of shape [{rows}] (one per reservoir row), got {tuple(radii.shape)}."
                )
            check_finite(radii, "radii")
            if bool((radii < 0).any()):
                raise ValueError("Expected non-negative `radii`.")
        super().load_real_reservoir(state)
        self._real_radii = None if radii is None else (state["keys"].clone(), radii.clone())

    def reset(self) -> None:
        """Clear the state (keeping the real side and its radii when ``reset_real_features`` is False)."""
        super().reset()
        if self.reset_real_features:
            self._real_radii = None
