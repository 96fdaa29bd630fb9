r"""FID∞ (Chong & Forsyth 2020): FID extrapolated to infinitely many generated samples.

FID is biased upwards by a term close to ``c / N`` for ``N`` generated samples, so two models evaluated with
different ``N`` (or one model with few samples) are not comparable. Chong & Forsyth compute FID on random
subsets of several sizes ``N_j``, fit the line ``FID_N = FID∞ + c / N`` by least squares, and report the
intercept.

Here the subsets are nested and drawn without a second pass: each generated sample falls, by its seeded key
(a hash of its pixels or of its ``sample_ids`` entry, as KID's reservoir), into one of ``points`` bands, and
the metric keeps the mean and centred second moment of every band. Subset ``j`` is the union of bands
``0..j``: the samples whose key lies below a fraction ``f_j`` of the key range, ``f_j`` evenly spaced from
``min_fraction`` to 1 (Chong & Forsyth use 15 sizes from 5,000 to 50,000: ``min_fraction = 0.1``). The
assignment depends only on the samples, never on batching or ranks, and band moments merge exactly (two
all-reduces per band), so the value is shard-invariant. Memory is ``points · (D² + D)`` float64 for the bands
(``15 · 32 MiB`` at ``D = 2048``) on top of FID's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_bool, check_features, check_positive_int
from lightning_genmetrics._compat import torchmetrics as tm_compat
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.extractor import FeatureInput, InputRange
from lightning_genmetrics.functional.frechet import _distance_from_root
from lightning_genmetrics.functional.moments import features_to_moments, merge_moments, moments_to_covariance
from lightning_genmetrics.metrics._keys import image_keys
from lightning_genmetrics.metrics.frechet import (
    FrechetDistance,
    FrechetInceptionDistance,
    StatisticsSource,
    _all_reduce_moments,
)

_KEY_RANGE = 2**62  # keys are uniform on [0, 2**62) (see functional.sample_keys)


class FrechetInceptionDistanceInfinity(FrechetInceptionDistance):
    """FID∞: the intercept of FID against ``1 / N`` over nested subsets of the generated samples (see the module).

    Takes FID's arguments (:class:`FrechetInceptionDistance`) plus:

    Args:
        points: how many subset sizes the line is fitted to (15, as Chong & Forsyth), at least 2.
        min_fraction: the smallest subset's share of the generated samples, in ``(0, 1)`` (0.1: 5,000 of 50,000).
        seed: selects the hash that assigns samples to subsets.

    ``compute()`` returns FID∞; :meth:`fid_curve` the subset sizes and their FIDs; ``fid()`` the plain FID of
    all generated samples. The real side is FID's (accumulated or loaded reference statistics).

    Raises:
        TypeError, ValueError: FID's argument errors, ``points < 2``, ``min_fraction`` outside ``(0, 1)``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> metric = FrechetInceptionDistanceInfinity(net, normalize=True, points=4, min_fraction=0.5)
        >>> metric.update(torch.rand(64, 3, 8, 8), real=True)
        >>> metric.update(torch.rand(64, 3, 8, 8) ** 2, real=False)
        >>> sizes, fids = metric.fid_curve()
        >>> int(sizes[-1])
        64
    """

    def __init__(
        self,
        feature: int | nn.Module = 2048,
        reset_real_features: bool = True,
        normalize: bool = False,
        *,
        points: int = 15,
        min_fraction: float = 0.1,
        seed: int = 0,
        antialias: bool = False,
        input_range: InputRange | None = None,
        feature_input: FeatureInput = "as_given",
        real_statistics: StatisticsSource | None = None,
        allow_provenance_mismatch: bool = False,
        weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        points = check_positive_int(points, "points", minimum=2)
        if isinstance(min_fraction, bool) or not isinstance(min_fraction, (int, float)) or not 0 < min_fraction < 1:
            raise ValueError(f"Expected `min_fraction` to be a number in (0, 1), got {min_fraction!r}.")
        self.points = points
        self.min_fraction = float(min_fraction)
        self.seed = check_positive_int(seed, "seed", minimum=0)
        super().__init__(
            feature,
            reset_real_features,
            normalize,
            antialias=antialias,
            input_range=input_range,
            feature_input=feature_input,
            real_statistics=real_statistics,
            allow_provenance_mismatch=allow_provenance_mismatch,
            weights_path=weights_path,
            **kwargs,
        )
        d = self.num_features or 0
        self.add_state("band_n", torch.zeros(points, dtype=torch.int64), dist_reduce_fx=None)
        self.add_state("band_mean", torch.zeros(points, d, dtype=torch.float64), dist_reduce_fx=None)
        self.add_state("band_m2", torch.zeros(points, d, d, dtype=torch.float64), dist_reduce_fx=None)

    def fractions(self) -> list[float]:
        """The share of the generated samples in each nested subset (ascending; the last is 1)."""
        step = (1.0 - self.min_fraction) / (self.points - 1)
        return [self.min_fraction + step * j for j in range(self.points)]

    def _boundaries(self, device: torch.device) -> Tensor:
        # Subset j holds the keys below fractions()[j] of the key range; the last subset holds every key.
        return torch.tensor(
            [round(fraction * _KEY_RANGE) for fraction in self.fractions()[:-1]], dtype=torch.int64, device=device
        )

    def _allocate(self, d: int) -> None:
        super()._allocate(d)
        if not hasattr(self, "band_mean"):
            return  # FrechetDistance.__init__ may allocate before the bands exist
        for name, shape in (("band_mean", (self.points, d)), ("band_m2", (self.points, d, d))):
            zeros = torch.zeros(shape, dtype=torch.float64, device=self.real_n.device)
            tm_compat.set_state_default(self, name, zeros)
            setattr(self, name, zeros)

    def _band(self, j: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.band_n[j], self.band_mean[j], self.band_m2[j]

    def _set_band(self, j: int, moments: tuple[Tensor, Tensor, Tensor]) -> None:
        # In place: a band is one slice of D² of points · D² (reset and sync replace the tensors, never share them).
        self.band_n[j], self.band_mean[j], self.band_m2[j] = moments

    def update(self, imgs: Tensor | ImageBatch, real: bool, sample_ids: Tensor | None = None) -> None:  # type: ignore[override]
        """Add a batch of images to the real or the generated side.

        Args:
            imgs: uint8 ``[N, C, H, W]``, or float in ``input_range``; or an ``(images, labels, ...)`` batch;
                or an :class:`~lightning_genmetrics.features.ImageBatch` (shared with the other metrics fed it).
            real: which side.
            sample_ids: optional integer ``[N]`` ids that assign generated samples to subsets instead of their
                pixels (ignored for real images).

        Raises:
            TypeError, ValueError: as :meth:`FrechetInceptionDistance.update`, and bad ``sample_ids``.
        """
        check_bool(real, "real")
        self._check_real_side_open(real)
        batch = self.extractor.image_batch(imgs)
        keys = None if real else image_keys(batch.uint8, sample_ids, self.seed)
        x = check_features(self.extractor.extract(batch), "features", self.num_features)
        FrechetDistance.update(self, x, real)  # checks every row, allocates, then merges the side's moments
        if keys is None:
            return
        bands = torch.bucketize(keys.to(x.device), self._boundaries(x.device), right=True)
        for j in torch.unique(bands).tolist():
            self._set_band(j, merge_moments(self._band(j), features_to_moments(x[bands == j])))

    def fid_curve(self) -> tuple[Tensor, Tensor]:
        """The nested subsets' sizes (int64 ``[points]``) and their FIDs (float64 ``[points]``), over all ranks.

        Raises:
            RuntimeError: a subset with fewer than 2 samples, or fewer than 2 real samples (the message says how
                many generated samples are needed).
        """
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            counts, distances, _ = self._curve()
            return counts, distances

    def _curve(self) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """The subsets' sizes and FIDs, and the real Gaussian they were measured against."""
        counts = torch.cumsum(self.band_n, 0)
        if int(counts[0]) < 2:
            needed = int(2 / self.min_fraction) + 1
            raise RuntimeError(
                f"{type(self).__name__} needs at least 2 generated samples in its smallest subset (a share of "
                f"{self.min_fraction:g} of them), got {int(counts[0])} of {int(counts[-1])}: give it some {needed} "
                "or more generated samples (thousands for a meaningful fit)."
            )
        n_real = int(self.real_n) if self._reference is None else self._reference.provenance.num_samples
        if n_real is not None and n_real < 2:
            raise RuntimeError(f"{type(self).__name__} needs at least 2 real samples, got {n_real}.")
        mu_r, sigma_r = self._real_gaussian()
        root, root_rank = self._real_sqrt(sigma_r, n_real)
        prefix = self._band(0)
        distances = []
        for j in range(self.points):
            if j:
                prefix = merge_moments(prefix, self._band(j))
            mu_f, sigma_f = moments_to_covariance(prefix)
            n_fake = int(prefix[0])
            distances.append(_distance_from_root(mu_r, sigma_r, mu_f, sigma_f, root, root_rank, (n_real, n_fake)))
        return counts, torch.stack(distances), (mu_r, sigma_r)

    def compute(self) -> Tensor:
        """FID∞ (float64 scalar): the least-squares intercept of FID against ``1 / N`` over the nested subsets.

        Like FID's, it keeps the real and generated Gaussians of all the samples (the largest subset), which
        ``computed_gaussians()`` then returns without synchronising the state again.

        Raises:
            RuntimeError: too few samples (see :meth:`fid_curve`), or subsets that all have one size.
        """
        counts, distances, (mu_r, sigma_r) = self._curve()
        inverse = 1.0 / counts.to(torch.float64)
        if bool((inverse == inverse[0]).all()):
            raise RuntimeError(
                f"{type(self).__name__} cannot fit a line: every subset has {int(counts[0])} samples; give it more "
                "generated samples."
            )
        design = torch.stack([torch.ones_like(inverse), inverse], dim=1)
        solution = torch.linalg.lstsq(design.cpu(), distances.cpu().unsqueeze(1), driver="gelsd").solution
        # The generated side's own moments, not the last subset's merged bands: exactly what `gaussians()` gives.
        self._computed_gaussians = (mu_r, sigma_r, *moments_to_covariance(self._moments("fake")))
        return solution[0, 0].to(distances.device)

    def fid(self) -> Tensor:
        """The plain FID of all generated samples (every rank must call it under DDP)."""
        with self.sync_context(should_sync=tm_compat.should_sync_now(self)):
            return FrechetInceptionDistance.compute(self)

    def _merge_state(self, other: dict[str, Any]) -> None:
        super()._merge_state(other)
        if self.num_features is None:
            return
        for j in range(self.points):
            incoming = (other["band_n"][j], other["band_mean"][j], other["band_m2"][j])
            self._set_band(j, merge_moments(self._band(j), incoming))

    def _sync_states(self, group: Any, dist_sync_fn: Callable | None) -> None:
        super()._sync_states(group, dist_sync_fn)
        if self.num_features is None:
            return
        for j in range(self.points):
            self._set_band(j, _all_reduce_moments(self._band(j), group))

    def _configuration(self) -> dict[str, Any]:
        configuration = super()._configuration()
        configuration["fractions"] = repr(self.fractions())
        return configuration
