"""Fréchet distance over feature vectors (``FrechetDistance``) and over images (``FrechetInceptionDistance``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_bool, check_features, check_finite, check_positive_int, check_tensor
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import (
    FeatureInput,
    ImageFeatures,
    InputRange,
    check_input_img_size,
    torchmetrics_input_range,
    torchmetrics_weights_path,
)
from lightning_genmetrics.functional.frechet import _distance_from_root, _sqrt_rank, psd_sqrt
from lightning_genmetrics.functional.moments import (
    Moments,
    features_to_moments,
    merge_moments,
    moments_to_covariance,
)
from lightning_genmetrics.metrics._base import SufficientStatisticMetric
from lightning_genmetrics.metrics._distributed import all_reduce_sum
from lightning_genmetrics.stats import (
    Provenance,
    ReferenceStatistics,
    check_compatible,
    load_statistics,
    save_statistics,
)

StatisticsSource = ReferenceStatistics | str | os.PathLike

_SIDES = ("real", "fake")


def _all_reduce_moments(moments: Moments, group: Any) -> Moments:
    """Global ``(n, mean, m2)`` over the ranks, by two all-reduces of sums (no gather).

    Each rank re-centres its summary on a common shift ``c`` (the global mean, from a first
    all-reduce): ``s1 = n·(mean - c)`` and ``s2 = m2 + n·(mean - c)(mean - c)ᵀ`` are plain sums over
    ranks, and ``mean = c + Σs1/N``, ``m2 = Σs2 - (Σs1)(Σs1)ᵀ/N``. Because ``c`` is already the mean,
    ``Σs1`` is rounding-sized and the correction cancels nothing.
    """
    n, mean, m2 = moments
    n_float = n.to(torch.float64)
    first = all_reduce_sum(torch.cat([n_float.reshape(1), mean * n_float]), group)
    total = first[0]
    if int(total) == 0:
        return torch.zeros_like(n), torch.zeros_like(mean), torch.zeros_like(m2)
    shift = first[1:] / total
    delta = mean - shift
    local = torch.cat([n_float * delta, (m2 + n_float * torch.outer(delta, delta)).flatten()])
    summed = all_reduce_sum(local, group)
    s1, s2 = summed[: mean.numel()], summed[mean.numel() :].view_as(m2)
    n_total = torch.round(total).to(torch.int64)
    return n_total, shift + s1 / total, s2 - torch.outer(s1, s1) / total


class FrechetDistance(SufficientStatisticMetric):
    r"""Fréchet distance between Gaussians fitted to two streams of feature vectors (the math of FID).

    .. math:: d^2 = \lVert\mu_r - \mu_f\rVert^2 + \operatorname{tr}\Sigma_r + \operatorname{tr}\Sigma_f
              - 2\operatorname{tr}\sqrt{\Sigma_r\Sigma_f}

    State, per side: the count (int64), the float64 mean and the float64 *centred* second moment
    ``Σ (x - μ)(x - μ)ᵀ``, merged exactly between batches, objects (``merge_state``) and DDP ranks
    (two all-reduces of sums, no gather). Memory is ``2·(D² + D)`` float64 whatever the number of
    samples. Covariances use the unbiased ``n - 1`` normalisation (as torch-fidelity, pytorch-fid
    and torchmetrics). The trace-sqrt term comes from one graded symmetric eigendecomposition, and
    the real side's matrix root (and its rank) is cached while the real statistics do not change, so
    repeated evaluations against fixed real statistics cost one Cholesky factorisation, two
    triangular products and one ``eigvalsh`` (see :func:`~lightning_genmetrics.functional.frechet_distance`).

    Reference statistics: ``real_statistics()`` returns the real side's mean and covariance with
    their provenance and ``save_real_statistics(path)`` writes them (see
    :mod:`lightning_genmetrics.stats`); ``real_statistics=`` (a file or a
    :class:`~lightning_genmetrics.stats.ReferenceStatistics`) makes a metric start from them. Loaded
    statistics are fixed: they survive ``reset()``, and ``update(..., real=True)`` is refused.

    Args:
        num_features: the feature dimension ``D``; ``None`` fixes it at the first ``update``.
        reset_real_features: if ``False``, ``reset()`` keeps the real side (reference statistics
            computed once, generated side refreshed each evaluation).
        real_statistics: reference statistics to use as the real side.
        allow_provenance_mismatch: accept ``real_statistics`` whose provenance differs from this
            metric's features (extractor, weights, layer, resize); refused otherwise.
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: ``num_features`` is not an int, ``reset_real_features`` not a bool.
        ValueError: ``num_features`` < 1; ``real_statistics`` of another dimension or provenance.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> metric = FrechetDistance(num_features=8)
        >>> metric.update(torch.randn(100, 8), real=True)
        >>> metric.update(torch.randn(100, 8) + 1.0, real=False)
        >>> round(metric.compute().item(), 2)
        7.75
    """

    higher_is_better = False
    plot_lower_bound = 0.0
    # A one-batch distance means nothing and needs both sides: forward accumulates (see the base class).
    _forward_accumulates_only = True

    def __init__(
        self,
        num_features: int | None = None,
        *,
        reset_real_features: bool = True,
        real_statistics: StatisticsSource | None = None,
        allow_provenance_mismatch: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_features is not None:
            check_positive_int(num_features, "num_features")
        self.reset_real_features = check_bool(reset_real_features, "reset_real_features")
        d = num_features or 0
        for side in _SIDES:
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state(f"{side}_mean", torch.zeros(d, dtype=torch.float64), dist_reduce_fx=None)
            self.add_state(f"{side}_m2", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx=None)
        # (n_real, Σ_r, Σ_r^½, rank of Σ_r^½) for the real side the root was computed or loaded for.
        self._real_root: tuple[int | None, Tensor, Tensor, int] | None = None
        self._reference: ReferenceStatistics | None = None
        # (mu_r, sigma_r, mu_g, sigma_g) of the last `compute`, over all ranks; dropped when the state changes.
        self._computed_gaussians: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        if real_statistics is not None:
            self.load_real_statistics(real_statistics, allow_provenance_mismatch=allow_provenance_mismatch)

    _kept_on_reset = ("real_n", "real_mean", "real_m2")

    @property
    def num_features(self) -> int | None:
        """The feature dimension, or ``None`` until the first update fixes it."""
        d = self.real_mean.shape[0]
        return d or None

    @property
    def _lazy_size(self) -> int | None:
        return self.num_features

    def _moments(self, side: str) -> Moments:
        return getattr(self, f"{side}_n"), getattr(self, f"{side}_mean"), getattr(self, f"{side}_m2")

    def _set_moments(self, side: str, moments: Moments) -> None:
        for suffix, value in zip(("n", "mean", "m2"), moments, strict=True):
            setattr(self, f"{side}_{suffix}", value)

    def _allocate(self, d: int) -> None:
        """Give the states their size once ``D`` is known; ``reset()`` keeps it from then on."""
        for side in _SIDES:
            for name, shape in ((f"{side}_mean", (d,)), (f"{side}_m2", (d, d))):
                zeros = torch.zeros(shape, dtype=torch.float64, device=self.real_n.device)
                tm_compat.set_state_default(self, name, zeros)
                setattr(self, name, zeros)

    def update(self, features: Tensor, real: bool) -> None:
        """Add a batch of feature vectors ``[N, D]`` to the real or the generated side.

        Raises:
            TypeError: ``features`` not a floating tensor, or ``real`` not a bool.
            ValueError: ``features`` not ``[N, D]`` with the metric's ``D`` (``D >= 1``), or holding NaN/Inf.
        """
        check_bool(real, "real")
        self._check_real_side_open(real)
        x = check_features(features, "features", self.num_features)
        if x.shape[1] == 0:
            # N vectors of no features would be counted as N samples and change the distance.
            raise ValueError(f"Expected `features` to have shape [N, D] with D >= 1, got shape {tuple(x.shape)}.")
        self._computed_gaussians = None
        if self.num_features is None:
            self._allocate(x.shape[1])
        side = "real" if real else "fake"
        self._set_moments(side, merge_moments(self._moments(side), features_to_moments(x)))

    def _check_real_side_open(self, real: bool) -> None:
        if real and self._reference is not None:
            raise ValueError(
                "The real side of this metric comes from loaded reference statistics and cannot take more "
                "real samples; create the metric without `real_statistics` to accumulate real data."
            )

    def compute(self) -> Tensor:
        """The Fréchet distance (float64 scalar).

        Raises:
            RuntimeError: fewer than two real or two generated samples.
        """
        # Loaded statistics may not know their sample count (pytorch-fid files): then no rank bound.
        n_real = int(self.real_n) if self._reference is None else self._reference.provenance.num_samples
        n_fake = int(self.fake_n)
        if n_fake < 2 or (n_real is not None and n_real < 2):
            raise RuntimeError(
                f"{type(self).__name__} needs at least 2 real and 2 generated samples, got "
                f"{n_real} real and {n_fake} generated."
            )
        mu_r, sigma_r = self._real_gaussian()
        mu_f, sigma_f = moments_to_covariance(self._moments("fake"))
        root, root_rank = self._real_sqrt(sigma_r, n_real)
        distance = _distance_from_root(mu_r, sigma_r, mu_f, sigma_f, root, root_rank, (n_real, n_fake))
        self._computed_gaussians = (mu_r, sigma_r, mu_f, sigma_f)
        return distance

    def computed_gaussians(self) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """The Gaussians the last ``compute()`` measured, ``(mu_r, sigma_r, mu_g, sigma_g)`` (over all ranks), without
        synchronising again; ``None`` before a ``compute()`` or once the state changed (an update, a merge, a reset,
        loaded statistics). What ``gaussians()`` would return then, without its collective: a rank may call it alone.

        Example:
            >>> import torch
            >>> metric = FrechetDistance(num_features=2)
            >>> metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), real=True)
            >>> metric.update(torch.tensor([[1.0, 1.0], [1.0, 3.0]]), real=False)
            >>> metric.computed_gaussians() is None
            True
            >>> _ = metric.compute()
            >>> [t.tolist() for t in metric.computed_gaussians()]
            [[1.0, 0.0], [[2.0, 0.0], [0.0, 0.0]], [1.0, 2.0], [[0.0, 0.0], [0.0, 2.0]]]
        """
        if self._computed_gaussians is None:
            return None
        mu_r, sigma_r, mu_f, sigma_f = (value.clone() for value in self._computed_gaussians)
        return mu_r, sigma_r, mu_f, sigma_f

    def reset(self) -> None:
        """Clear the state (keeping the real side when ``reset_real_features`` is False)."""
        self._computed_gaussians = None
        super().reset()

    def _real_gaussian(self) -> tuple[Tensor, Tensor]:
        if self._reference is not None:
            device = self.real_n.device
            return self._reference.mu.to(device), self._reference.sigma.to(device)
        return moments_to_covariance(self._moments("real"))

    def feature_provenance(self) -> Provenance:
        """What produces this metric's features; unknown for plain feature vectors."""
        from lightning_genmetrics import __version__

        return Provenance(package_version=__version__)

    def gaussians(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The real and generated means and covariances (float64, over all ranks): ``(mu_r, sigma_r, mu_g, sigma_g)``.

        Under DDP every rank must call it (the states are all-reduced, as in ``compute``).

        Raises:
            RuntimeError: fewer than two generated or (accumulated) real samples.

        Example:
            >>> import torch
            >>> metric = FrechetDistance(num_features=2)
            >>> metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), real=True)
            >>> metric.update(torch.tensor([[1.0, 1.0], [1.0, 3.0]]), real=False)
            >>> [t.tolist() for t in metric.gaussians()]
            [[1.0, 0.0], [[2.0, 0.0], [0.0, 0.0]], [1.0, 2.0], [[0.0, 0.0], [0.0, 2.0]]]
        """
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            n_fake, n_real = int(self.fake_n), int(self.real_n)
            if n_fake < 2 or (self._reference is None and n_real < 2):
                raise RuntimeError(
                    f"{type(self).__name__} needs at least 2 real and 2 generated samples, got {n_real} real and "
                    f"{n_fake} generated."
                )
            mu_r, sigma_r = self._real_gaussian()
            mu_f, sigma_f = moments_to_covariance(self._moments("fake"))
            return mu_r.clone(), sigma_r.clone(), mu_f.clone(), sigma_f.clone()

    def real_statistics(self, *, with_root: bool = False) -> ReferenceStatistics:
        """The real side's mean and covariance (over all ranks) with their provenance.

        Args:
            with_root: also hold ``real_sqrt()`` as ``sigma_root`` (computed once per real side), so that
                whoever loads the statistics skips the eigendecomposition.

        Raises:
            RuntimeError: fewer than two real samples.
        """
        if self._reference is not None:
            statistics = self._reference
        else:
            with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
                n = int(self.real_n)
                if n < 2:
                    raise RuntimeError(f"Reference statistics need at least 2 real samples, got {n}.")
                mu, sigma = moments_to_covariance(self._moments("real"))
                provenance = dataclasses.replace(self.feature_provenance(), num_samples=n)
                statistics = ReferenceStatistics(mu.detach().cpu().clone(), sigma.detach().cpu().clone(), provenance)
        if with_root and statistics.sigma_root is None:
            statistics = dataclasses.replace(statistics, sigma_root=self.real_sqrt().detach().cpu().clone())
        return statistics

    def save_real_statistics(self, path: str | os.PathLike, *, with_root: bool = False) -> Path:
        """Write ``real_statistics(with_root=...)`` to ``path`` (``.npz``); every rank may call it, it is
        synchronised."""
        return save_statistics(path, self.real_statistics(with_root=with_root))

    def load_real_statistics(self, statistics: StatisticsSource, *, allow_provenance_mismatch: bool = False) -> None:
        """Fix the real side to ``statistics`` (a file or a ``ReferenceStatistics``).

        With a ``sigma_root`` in the statistics (``save_real_statistics(path, with_root=True)``), that root is
        used instead of an eigendecomposition, once checked against ``sigma``.

        Raises:
            ValueError: a dimension other than the metric's, a provenance that differs from the metric's
                features (unless ``allow_provenance_mismatch``), or a ``sigma_root`` that is not a square root
                of ``sigma`` (the real side is then left as it was).
        """
        stats = statistics if isinstance(statistics, ReferenceStatistics) else load_statistics(statistics)
        if self.num_features is not None and stats.num_features != self.num_features:
            raise ValueError(
                f"Expected reference statistics with {self.num_features} features, got {stats.num_features}."
            )
        check_compatible(
            self.feature_provenance(),
            stats.provenance,
            what="reference statistics",
            allow_mismatch=allow_provenance_mismatch,
        )
        if self.num_features is None:
            self._allocate(stats.num_features)
        previous = self._reference
        self._reference = stats
        self._computed_gaussians = None
        if stats.sigma_root is not None:
            try:
                self.load_real_sqrt(stats.sigma_root)  # checked against sigma, not trusted
            except (TypeError, ValueError):
                self._reference = previous
                raise

    def real_sqrt(self) -> Tensor:
        """``Σ_r^½`` (float64 ``[D, D]``) as ``compute`` uses it, computed once while the real covariance is unchanged.

        Save it beside reference statistics and give it back with ``load_real_sqrt`` to spare a later run the
        eigendecomposition (seconds at D = 2048 on a CPU). With loaded reference statistics every rank may call
        it alone; with an accumulated real side every rank must call it (the states are all-reduced).

        Raises:
            RuntimeError: fewer than two real samples.

        Example:
            >>> import torch
            >>> metric = FrechetDistance(num_features=2)
            >>> metric.update(torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 2.0]]), real=True)
            >>> root = metric.real_sqrt()
            >>> torch.allclose(root @ root, metric.real_statistics().sigma)
            True
        """
        if self._reference is not None:
            sigma_r = self._reference.sigma.to(self.real_n.device)
            return self._real_sqrt(sigma_r, self._reference.provenance.num_samples)[0]
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            n_real = int(self.real_n)
            if n_real < 2:
                raise RuntimeError(f"{type(self).__name__} needs at least 2 real samples, got {n_real}.")
            _, sigma_r = self._real_gaussian()
            return self._real_sqrt(sigma_r, n_real)[0].clone()

    def load_real_sqrt(self, root: Tensor) -> None:
        """Use ``root`` (a ``real_sqrt()`` of the same real side) as ``Σ_r^½`` from now on; checked, not trusted:
        ``root @ root`` must equal ``Σ_r`` to 1e-6 of its Frobenius norm.

        Raises:
            TypeError: ``root`` not a floating point tensor.
            ValueError: not ``[D, D]``, NaN/Inf, or not a square root of the real covariance.
            RuntimeError: no real side yet.
        """
        check_tensor(root, "root")
        if not root.is_floating_point():
            raise TypeError(f"Expected `root` to be a floating point tensor, got dtype {root.dtype}.")
        if self._reference is not None:
            sigma_r, n_real = self._reference.sigma.to(self.real_n.device), self._reference.provenance.num_samples
        else:
            with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
                n_real = int(self.real_n)
                if n_real < 2:
                    raise RuntimeError(f"{type(self).__name__} needs at least 2 real samples, got {n_real}.")
                sigma_r = self._real_gaussian()[1].clone()
        if tuple(root.shape) != tuple(sigma_r.shape):
            raise ValueError(f"Expected `root` of shape {tuple(sigma_r.shape)}, got {tuple(root.shape)}.")
        check_finite(root, "root")
        root = root.to(sigma_r)
        error = float(torch.linalg.matrix_norm(root @ root - sigma_r)) / max(
            float(torch.linalg.matrix_norm(sigma_r)), 1e-300
        )
        if error > 1e-6:
            raise ValueError(
                f"Expected `root` to be a square root of the real covariance, got ‖R² − Σ‖/‖Σ‖ = {error:.3g}."
            )
        self._real_root = (n_real, sigma_r.clone(), root.clone(), _sqrt_rank(root, n_real))

    def _real_sqrt(self, sigma_r: Tensor, n_real: int | None) -> tuple[Tensor, int]:
        """``(Σ_r^½, its rank)``, recomputed only when the real covariance or count differs from the cached ones."""
        cached = self._real_root
        if cached is None or cached[0] != n_real or not torch.equal(cached[1], sigma_r):
            root = psd_sqrt(sigma_r, rank=None if n_real is None else n_real - 1)
            self._real_root = cached = (n_real, sigma_r.clone(), root, _sqrt_rank(root, n_real))
        return cached[2], cached[3]

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._computed_gaussians = None
        self._adopt_size(other["real_mean"].shape[0])
        if self.num_features is None:
            return
        for side in _SIDES:
            incoming = (other[f"{side}_n"], other[f"{side}_mean"], other[f"{side}_m2"])
            self._set_moments(side, merge_moments(self._moments(side), incoming))

    def _configuration(self) -> dict[str, Any]:
        # Loaded reference statistics replace the real side: ranks holding different ones (or one holding none)
        # would each report another distance from the same merged generated state.
        configuration = super()._configuration()
        reference = self._reference
        configuration["reference"] = (
            None
            if reference is None
            else f"{dataclasses.astuple(reference.provenance)!r} {float(reference.mu.sum())!r}"
        )
        return configuration

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        if self._agree_size(group) == 0:
            return
        # Loaded reference statistics replace the real side (every rank holds the same ones: `_configuration`), so
        # its state, unused, is not sent again at every compute (D² + D float64 per rank less at each evaluation).
        for side in _SIDES if self._reference is None else ("fake",):
            self._set_moments(side, _all_reduce_moments(self._moments(side), group))


class FrechetInceptionDistance(FrechetDistance):
    """FID: the Fréchet distance between the features of real and generated images.

    Takes torchmetrics 1.9's arguments in its order, with their meaning; the differences that remain
    on purpose are the resize default (below) and what is noted under ``normalize``.

    Images are uint8 ``[N, C, H, W]`` (C = 1 or 3; grayscale is repeated to RGB), or floats in the
    declared range (``normalize=True``: ``[0, 1]``; or ``input_range``). For the standard network,
    floats are mapped to uint8 by rounding and clamping (the FID protocol quantises, so float and
    uint8 inputs of the same picture give the same value). The features come from ``feature``: a
    layer of the standard FID InceptionV3 (``64``, ``192``, ``768`` or ``2048``), or any
    ``nn.Module``, which by default receives the images as they were passed to ``update``, as in
    torchmetrics (``feature_input``; see :class:`~lightning_genmetrics.features.ImageFeatures`). A
    module's feature size is read from its ``num_features`` attribute when it has one, else fixed
    at the first update: no dummy forward pass is needed.

    **Resize.** The standard network resizes to 299×299 by TensorFlow 1's bilinear resize, the
    protocol of published FID numbers, torch-fidelity and pytorch-fid (``antialias=False``, the
    default here); torchmetrics' default ``antialias=True`` resizes with PyTorch's antialiased
    bilinear interpolation and gives its numbers.

    ``forward`` accumulates the batch and returns ``None``: a one-batch FID means nothing, and needs
    both sides (torchmetrics' ``forward`` raises on a one-sided batch).

    Args:
        feature: an Inception layer (int: ``64``, ``192``, ``768``, ``2048``, or ``2023``, the sFID features; see
            :class:`~lightning_genmetrics.features.FIDInceptionV3`) or a feature-extractor module.
        reset_real_features: keep the real side across ``reset()`` when ``False``.
        normalize: torchmetrics' switch: ``True`` for float images in ``[0, 1]`` (the same as
            ``input_range=(0, 1)``), ``False`` for uint8. torchmetrics turns ``[0, 1]`` floats into
            uint8 by truncating (``(x * 255).byte()``); here they are rounded: pass
            ``(x * 255).byte()`` yourself to reproduce its number exactly.
        input_img_size: torchmetrics' size of the dummy image it feeds a custom network without
            ``num_features``; accepted and checked, with no effect here (the first update fixes the size).
        feature_extractor_weights_path: torchmetrics' name for ``weights_path``.
        antialias: resize for the standard network: ``False`` (default) the TF1 protocol, ``True``
            torchmetrics' antialiased bilinear resize. No effect with a custom module, as in torchmetrics.
        input_range: the value range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts
            only uint8 images (unless ``normalize``).
        feature_input: what a custom module receives: ``"as_given"`` (default, as torchmetrics: the
            images passed to ``update``, uint8 or float) or ``"float"`` (float RGB in ``[0, 1]``).
        real_statistics: reference statistics (file or object) to use as the real side; their
            provenance must match this metric's extractor, weights, layer and resize protocol.
        allow_provenance_mismatch: accept ``real_statistics`` of another provenance anyway.
        weights_path: a local copy of the Inception weights (``feature`` int only).
        kwargs: passed to ``torchmetrics.Metric``.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an unknown layer, ``normalize=True`` with another ``input_range``, two different
            weights files, a bad ``input_img_size`` or ``feature_input``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> fid = FrechetInceptionDistance(feature=net, normalize=True)
        >>> fid.update(torch.rand(16, 3, 8, 8), real=True)
        >>> fid.update(torch.rand(16, 3, 8, 8) ** 2, real=False)
        >>> fid.compute() > 0
        tensor(True)
    """

    accepts_image_batch = True

    def __init__(
        self,
        feature: int | nn.Module = 2048,
        reset_real_features: bool = True,
        normalize: bool = False,
        input_img_size: tuple[int, int, int] = (3, 299, 299),
        feature_extractor_weights_path: str | None = None,
        antialias: bool = False,
        *,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        real_statistics: StatisticsSource | None = None,
        allow_provenance_mismatch: bool = False,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_input_img_size(input_img_size)
        extractor = ImageFeatures.resolve(
            feature,
            input_range=torchmetrics_input_range(normalize, input_range),
            weights_path=torchmetrics_weights_path(weights_path, feature_extractor_weights_path),
            antialias=antialias,
            feature_input=feature_input,
            layers=("64", "192", "768", "2048", "2023"),
        )
        super().__init__(extractor.num_features, reset_real_features=reset_real_features, **kwargs)
        self.extractor = extractor
        if real_statistics is not None:
            self.load_real_statistics(real_statistics, allow_provenance_mismatch=allow_provenance_mismatch)

    def feature_provenance(self) -> Provenance:
        """The extractor's name, weights hash, layer and resize protocol."""
        return dataclasses.replace(super().feature_provenance(), **self.extractor.provenance_fields())

    def update(self, imgs: Tensor | ImageBatch, real: bool) -> None:  # type: ignore[override]
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch
                (a ``DataLoader`` over a ``TensorDataset``), whose first tensor is taken; or an
                :class:`~lightning_genmetrics.features.ImageBatch`, whose conversion and network passes the metrics
                fed it share.
            real: which side.

        Raises:
            TypeError: ``imgs`` not a tensor, of an unsupported dtype, or float without
                ``input_range``; ``real`` not a bool.
            ValueError: bad shape or channel count, NaN/Inf, values outside ``input_range`` (an ``ImageBatch`` of
                float images in another range), or features from the extractor that are not ``[N, D]`` or not finite.
        """
        check_bool(real, "real")
        self._check_real_side_open(real)
        super().update(self.extractor(imgs), real)


class SpatialFrechetInceptionDistance(FrechetInceptionDistance):
    """sFID (Nash et al. 2021) as the ADM evaluator computes it: FID over the first 7 channels of the 17×17 map of
    the Inception graph's ``mixed_6/conv`` (2023 features), which keep spatial information the pooled features
    lose. The same as ``FrechetInceptionDistance(feature=2023)``; statistics files of the ADM evaluator hold them as
    ``mu_s``/``sigma_s`` (in the same coordinates: TF's channel-last order).

    Takes :class:`FrechetInceptionDistance`'s arguments except ``feature``.

    Example:
        >>> SpatialFrechetInceptionDistance(feature=64)
        Traceback (most recent call last):
            ...
        TypeError: SpatialFrechetInceptionDistance fixes `feature` to 2023; use FrechetInceptionDistance.
    """

    def __init__(self, reset_real_features: bool = True, normalize: bool = False, **kwargs: Any) -> None:
        if "feature" in kwargs:
            raise TypeError("SpatialFrechetInceptionDistance fixes `feature` to 2023; use FrechetInceptionDistance.")
        super().__init__(2023, reset_real_features, normalize, **kwargs)
