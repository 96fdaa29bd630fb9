"""CMMD over bounded, shard-invariant embedding reservoirs."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_bool, check_positive_int, check_positive_number
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import FeatureInput, InputRange, torchmetrics_input_range
from lightning_genmetrics.functional.cmmd import CMMD_SCALE, CMMD_SIGMA, cmmd, gaussian_kernel_sum
from lightning_genmetrics.metrics._reservoir import FeatureReservoirMetric


class CLIPMaximumMeanDiscrepancy(FeatureReservoirMetric):
    """CMMD (Jayasumana et al. 2024): Gaussian-kernel MMD of image embeddings, scaled by 1000, as the reference
    code computes it (biased estimator, σ = 10; see :mod:`lightning_genmetrics.functional.cmmd`).

    The reference embeds images with CLIP ViT-L/14@336 and normalises each embedding to unit length; pass that
    encoder (or any other) as ``feature``: the metric normalises what it returns when ``normalize_embeddings``
    (a no-op for embeddings already of unit length).

    Each side keeps a seeded bottom-k reservoir of at most ``max_samples`` embeddings (exact while a side
    fits; beyond, the value of a uniform subsample that any batching or DDP sharding keeps the same). Kernel
    sums are float64, ``block_size`` rows at a time; the real side's kernel mean is computed once while it does
    not change.

    Args:
        feature: the image encoder (an ``nn.Module`` returning ``[N, D]`` embeddings).
        max_samples: reservoir size per side (``None``: keep every embedding).
        reset_real_features: keep the real side across ``reset()`` when ``False``.
        normalize: ``True`` for float images in ``[0, 1]`` (the same as ``input_range=(0, 1)``).
        normalize_embeddings: divide each embedding by its Euclidean norm, as the reference does.
        sigma: the kernel bandwidth (10, as the reference).
        scale: the factor in front (1000, as the reference).
        block_size: rows of kernel values computed at once.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        feature_input: what the encoder receives: ``"as_given"`` or ``"float"`` (RGB in ``[0, 1]``).
        seed: selects the reservoir hash.
        kwargs: passed to ``torchmetrics.Metric``.

    Example:
        >>> import torch
        >>> metric = CLIPMaximumMeanDiscrepancy(torch.nn.Flatten(), input_range=(0, 1), feature_input="float")
        >>> _ = torch.manual_seed(0)
        >>> metric.update(torch.rand(16, 3, 4, 4), real=True)
        >>> metric.update(torch.rand(16, 3, 4, 4) ** 2, real=False)
        >>> bool(metric.compute() > 0)
        True
    """

    higher_is_better = False
    plot_lower_bound = 0.0
    _forward_accumulates_only = True  # a value needs both sides

    def __init__(
        self,
        feature: nn.Module,
        max_samples: int | None = 10_000,
        reset_real_features: bool = True,
        normalize: bool = False,
        *,
        normalize_embeddings: bool = True,
        sigma: float = CMMD_SIGMA,
        scale: float = CMMD_SCALE,
        block_size: int = 1024,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(feature, nn.Module):
            raise TypeError(
                f"Expected `feature` to be an image encoder (an nn.Module; CMMD's reference is CLIP ViT-L/14@336), "
                f"got {type(feature).__name__}."
            )
        super().__init__(
            feature=feature,
            max_samples=max_samples,
            reset_real_features=reset_real_features,
            seed=seed,
            input_range=torchmetrics_input_range(normalize, input_range),
            antialias=False,
            feature_input=feature_input,
            weights_path=None,
            layers=(),
            **kwargs,
        )
        self.normalize_embeddings = check_bool(normalize_embeddings, "normalize_embeddings")
        self.sigma = check_positive_number(sigma, "sigma")
        self.scale = check_positive_number(scale, "scale")
        self.block_size = check_positive_int(block_size, "block_size")
        # (sorted real keys, mean real kernel value) of the real side it was computed for.
        self._real_kernel: tuple[Tensor, Tensor] | None = None

    def update(self, imgs: Tensor | ImageBatch, real: bool, sample_ids: Tensor | None = None) -> None:
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch;
                or an :class:`~lightning_genmetrics.features.ImageBatch` (shared with the other metrics fed it).
            real: which side.
            sample_ids: optional integer ``[N]`` ids that decide the reservoir instead of the pixels.

        Raises:
            TypeError: bad ``imgs``/``sample_ids`` type, float images without ``input_range``, ``real`` not a bool.
            ValueError: bad shapes, NaN/Inf, values out of range, or embeddings of another size.
        """
        self._add(imgs, real, sample_ids)

    def _embeddings(self, side: str) -> Tensor:
        return self._normalized(self._sorted(side).to(torch.float64))

    def _normalized(self, features: Tensor) -> Tensor:
        if self.normalize_embeddings:
            features = features / features.norm(dim=1, keepdim=True)
        return features

    def compute(self) -> Tensor:
        """CMMD (a float64 scalar) over the two reservoirs.

        Raises:
            RuntimeError: a side without samples, or a zero embedding with ``normalize_embeddings``.
        """
        for side, name in (("real", "real"), ("fake", "generated")):
            if getattr(self, f"{side}_keys").shape[0] == 0:
                raise RuntimeError(f"{type(self).__name__} needs at least 1 {name} sample, got 0.")
        real, fake = self._embeddings("real"), self._embeddings("fake")
        if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
            raise RuntimeError("CMMD cannot normalise a zero embedding (normalize_embeddings=True).")
        keys = torch.sort(self.real_keys, stable=True).values
        return cmmd(
            real,
            fake,
            sigma=self.sigma,
            scale=self.scale,
            block_size=self.block_size,
            real_kernel_mean=self._real_kernel_mean(real, keys),
        )

    def _real_kernel_mean(self, real: Tensor, keys: Tensor) -> Tensor:
        """The mean real-real kernel value of the embeddings ``real`` (rows in the order of the sorted ``keys``),
        computed once per real side."""
        cached = self._real_kernel
        # Compared where the cache lives: a loaded cache stays where it was made if the metric moves.
        if cached is None or not torch.equal(cached[0], keys.to(cached[0].device)):
            n = real.shape[0]
            mean = gaussian_kernel_sum(real, real, self.sigma, block_size=self.block_size) / (n * n)
            cached = self._real_kernel = (keys.clone(), mean)
        return cached[1]

    def real_reservoir(self) -> dict[str, Tensor]:
        """The real side over all ranks (every rank must call it) with its mean kernel value: ``real_kernel_mean``
        (float64) and the settings it holds for, ``real_kernel_sigma`` (float64) and ``real_kernel_normalized``
        (bool), none of them when the side is empty or holds a zero embedding that cannot be normalised.
        ``load_real_reservoir`` puts it back, so that a loaded side's kernel is not summed again."""
        state = super().real_reservoir()
        if state["keys"].shape[0] > 0:
            real = self._normalized(state["features"].to(self.real_n.device, torch.float64))
            if bool(torch.isfinite(real).all()):
                mean = self._real_kernel_mean(real, state["keys"])
                state["real_kernel_mean"] = mean.detach().cpu().to(torch.float64).clone()
                state["real_kernel_sigma"] = torch.tensor(float(self.sigma), dtype=torch.float64)
                state["real_kernel_normalized"] = torch.tensor(self.normalize_embeddings)
        return state

    def load_real_reservoir(self, state: dict[str, Tensor]) -> None:
        """Replace the real side with a ``real_reservoir()``, using its kernel mean when present and made with this
        metric's ``sigma`` and ``normalize_embeddings`` (otherwise it is computed again at the next ``compute``).
        A reservoir without one (an older file) loads the same way. Its value is checked for dtype, shape and range
        and otherwise trusted, as it comes from a checksummed artifact.

        Raises:
            TypeError, ValueError: a malformed reservoir or kernel mean (the real side is then left as it was).
        """
        names = ("real_kernel_mean", "real_kernel_sigma", "real_kernel_normalized")
        given = [name for name in names if name in state]
        if given and len(given) != len(names):
            raise ValueError(f"Expected all or none of {names} in the reservoir, got {given}.")
        if given:
            mean, sigma, normalized = (state[name] for name in names)
            dtypes = (torch.float64, torch.float64, torch.bool)
            if not all(
                isinstance(value, Tensor) and value.dtype == dtype
                for value, dtype in zip((mean, sigma, normalized), dtypes, strict=True)
            ):
                raise TypeError(
                    "Expected float64 `real_kernel_mean` and `real_kernel_sigma` and a bool `real_kernel_normalized`."
                )
            if any(value.ndim != 0 for value in (mean, sigma, normalized)):
                raise ValueError(
                    "Expected scalar `real_kernel_mean`, `real_kernel_sigma` and `real_kernel_normalized`."
                )
            # A Gaussian kernel's values lie in (0, 1].
            if not bool((mean > 0) & (mean <= 1)):
                raise ValueError(f"Expected `real_kernel_mean` in (0, 1], got {float(mean)}.")
        super().load_real_reservoir(state)
        self._real_kernel = None
        if given and float(sigma) == float(self.sigma) and bool(normalized) == self.normalize_embeddings:
            self._real_kernel = (state["keys"].clone(), mean.clone())

    def reset(self) -> None:
        """Clear the state (keeping the real side and its kernel mean when ``reset_real_features`` is False)."""
        super().reset()
        if self.reset_real_features:
            self._real_kernel = None
