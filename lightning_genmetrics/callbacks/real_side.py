"""The callback's real side: the real images (or statistics) the generated ones are compared with.

One object owns what the comparison needs from the real data: one sharded pass over the dataloader (rank ``r`` of
``W`` reads batches ``r, r + W, ...``) that fingerprints it and feeds the metrics that take real images, each
metric's readiness, and the disk cache, where every file is read by global rank 0 and sent to the other ranks
(which need not share its file system) and written by global rank 0 alone.

What a metric can cache is read off the metric, not its name, and written in the one artifact format of
:mod:`lightning_genmetrics.stats` (checksummed, with the provenance of the metric's extractor):

- ``real_statistics()`` and ``load_real_statistics(statistics)`` (our FID, FD_DINOv2, sFID, FD∞): its real Gaussian,
  as a statistics file ``real-statistics-<key>.npz``; with ``real_sqrt()`` (``real_statistics(with_root=True)``)
  the file is written again with the covariance's square root ``sigma_root`` once the first evaluation computed
  it, so a new run skips the eigendecomposition (a file without it loads all the same);
- ``real_reservoir()`` and ``load_real_reservoir(state)`` (our KID, precision/recall with its k-NN radii, CMMD with its
  real kernel mean): its bounded reservoir of real features, an artifact ``real-<name>-<key>.npz`` of kind
  ``real_reservoir/<class>``, loaded on rank 0 alone (synchronisation merges it into every rank's value).

The key hashes the data fingerprint, the metric extractor's provenance (``metric.extractor.provenance_fields()``:
the encoder, a hash of its weights, its layer and resize) and the protocol version; a reservoir's key also the
metric's class and its ``max_samples``, ``seed`` and ``k``. Metrics with the same key share a file (FID and FD∞ on
one Inception). A cache file that cannot be read (or holds another extractor's features) is recomputed and
rewritten, one that cannot be written is skipped, each with a warning: the cache never ends the run. Other metrics
that take real images (torchmetrics' FID and KID) are fed them in the same pass, once per run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.callbacks.real_statistics import (
    load_reservoir,
    read_real_images,
    real_cache_key,
    real_cache_path,
    reservoir_cache_key,
    reservoir_kind,
    reservoir_provenance,
)
from lightning_genmetrics.callbacks.sharding import RankShare
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.stats import Provenance, ReferenceStatistics, load_statistics, save_artifact, save_statistics

DataKey = tuple[str, int]


def keeps_statistics(metric: Any) -> bool:
    """Whether the metric's real side is a Gaussian that can be saved and loaded (our FID)."""
    return callable(getattr(metric, "real_statistics", None)) and callable(
        getattr(metric, "load_real_statistics", None)
    )


def keeps_reservoir(metric: Any) -> bool:
    """Whether the metric's real side is a reservoir of features that can be saved and loaded (our KID, PRDC,
    CMMD)."""
    return callable(getattr(metric, "real_reservoir", None)) and callable(getattr(metric, "load_real_reservoir", None))


def keeps_root(metric: Any) -> bool:
    """Whether the metric computes a square root of the real covariance that its statistics can hold."""
    return callable(getattr(metric, "real_sqrt", None)) and callable(getattr(metric, "load_real_sqrt", None))


class RealSide:
    """The real data of an evaluation: fingerprinted, fed once to the metrics that take it, cached.

    Args:
        loader: a fixed-order ``DataLoader`` of real images, or ``None``.
        statistics: reference statistics given instead of images (for metrics that can load them).
        input_range: the range of float real images.
        cache_dir: the cache folder, or ``None``.
        warn_once: ``(topic, message)`` -> warns once per topic.

    Example:
        >>> side = RealSide(None, None, (0.0, 1.0), None, lambda topic, message: None)
        >>> side.cache_key([]) is None
        True
    """

    def __init__(
        self,
        loader: DataLoader | None,
        statistics: ReferenceStatistics | None,
        input_range: InputRange,
        cache_dir: Path | None,
        warn_once: Callable[[str, str], None],
    ) -> None:
        self.loader = loader
        self.statistics = statistics
        self.input_range = input_range
        self.cache_dir = cache_dir
        self._warn_once = warn_once
        self.data_key: DataKey | None = None
        self.checkpoint_data_key: DataKey | None = None
        self._ready: set[str] = set()
        self._keys: dict[tuple[str, DataKey], str] = {}
        self._fields: dict[str, dict[str, str] | None] = {}
        # Statistics files written or read without the covariance's root, and a metric that computes it.
        self._without_root: dict[Path, MetricPlug] = {}
        self._written: set[Path] = set()
        # What this preparation received of each statistics file: metrics sharing one read it once.
        self._received: dict[Path, Any] = {}

    # Readiness and keys -----------------------------------------------------------------------------------------

    def use_statistics(self, plugs: Sequence[MetricPlug]) -> None:
        """Load the given reference statistics into every metric that takes real images.

        Raises:
            ValueError: the statistics do not fit a metric's extractor.
        """
        if self.statistics is None:
            return
        for plug in plugs:
            if plug.takes_real:
                plug.metric.load_real_statistics(self.statistics)
                self._ready.add(plug.name)

    def known_data_key(self) -> DataKey | None:
        """This run's data fingerprint, or until one is taken, the checkpoint's."""
        return self.data_key if self.data_key is not None else self.checkpoint_data_key

    def restore(self, data_key: DataKey | None, *, trust: bool) -> None:
        """Take a checkpoint's fingerprint; with ``trust`` use it as this run's (no fingerprint pass)."""
        self.checkpoint_data_key = data_key
        self.data_key = data_key if trust else None

    def cache_key(self, plugs: Sequence[MetricPlug]) -> str | None:
        """The key of the real statistics: of the first metric keeping statistics (else a reservoir), once the data
        are fingerprinted."""
        if self.data_key is None:
            return None
        for keeps in (keeps_statistics, keeps_reservoir):
            for plug in plugs:
                if keeps(plug.metric) and self._provenance(plug) is not None:
                    return self._statistics_key(plug)
        return None

    def _provenance(self, plug: MetricPlug) -> dict[str, str] | None:
        """The extractor's provenance fields, remembered: hashing its weights takes time (seconds for ViT-L/14)."""
        if plug.name not in self._fields:
            fields = getattr(getattr(plug.metric, "extractor", None), "provenance_fields", None)
            self._fields[plug.name] = fields() if callable(fields) else None
        return self._fields[plug.name]

    def _statistics_key(self, plug: MetricPlug) -> str:
        """Remembered per data key."""
        memo = (plug.name, self.data_key)
        if memo not in self._keys:
            self._keys[memo] = real_cache_key(*self.data_key, self._provenance(plug), self.input_range)
        return self._keys[memo]

    def _statistics_path(self, plug: MetricPlug) -> Path:
        return real_cache_path(self.cache_dir, self._statistics_key(plug))

    def _reservoir_path(self, plug: MetricPlug) -> Path:
        return real_cache_path(self.cache_dir, reservoir_cache_key(self._statistics_key(plug), plug.metric), plug.name)

    def _cacheable(self, plug: MetricPlug) -> bool:
        return self.cache_dir is not None and self._provenance(plug) is not None

    # The pass over the real data ----------------------------------------------------------------------------------

    def prepare(self, trainer: Trainer, device: torch.device, plugs: Sequence[MetricPlug]) -> None:
        """Make every metric that takes real images ready: from the cache, else from one pass over the data."""
        waiting = [plug for plug in plugs if plug.takes_real and plug.name not in self._ready]
        if not waiting:
            return
        cacheable = [plug for plug in waiting if self._cacheable(plug)]
        self._received.clear()
        if cacheable:
            if self.data_key is None and self._cache_has_files(trainer):
                self._read(trainer, device, None)  # fingerprint only, to look the files up
            if self.data_key is not None:
                waiting = [plug for plug in waiting if not (plug in cacheable and self._load_cached(trainer, plug))]
        if not waiting:
            return

        def consume(uint8: Tensor) -> None:
            batch = ImageBatch(uint8, name="real images")  # one pass per batch of each network the metrics share
            for plug in waiting:
                plug.update_real(batch)

        self._read(trainer, device, consume)
        for plug in waiting:
            self._fed(trainer, plug)

    def _fed(self, trainer: Trainer, plug: MetricPlug) -> None:
        """Every real image is in ``plug``: cache what it keeps, fix it, and keep its real side."""
        metric = plug.metric
        if keeps_statistics(metric):
            statistics = metric.real_statistics()  # every rank: a collective
            if self._cacheable(plug):
                path = self._statistics_path(plug)
                # Metrics of one extractor (FID and FD∞ on one Inception) share the file: written once.
                if path not in self._written and self._write(trainer, path, save_statistics, statistics):
                    self._written.add(path)
                if keeps_root(metric):
                    self._without_root.setdefault(path, plug)
            metric.load_real_statistics(statistics)
        elif keeps_reservoir(metric) and self._cacheable(plug):
            reservoir = metric.real_reservoir()  # every rank: a collective
            kind = reservoir_kind(metric)
            provenance = reservoir_provenance(metric, self._provenance(plug), reservoir)

            def write(path: Path, content: dict[str, Tensor]) -> None:
                save_artifact(path, content, kind=kind, provenance=provenance)

            self._write(trainer, self._reservoir_path(plug), write, reservoir)
        plug.real_side_fed()
        self._ready.add(plug.name)

    def _read(self, trainer: Trainer, device: torch.device, consume: Callable[[Tensor], None] | None) -> None:
        """Read this rank's share of the real data (feeding ``consume``), and take the data's fingerprint."""
        self.data_key = read_real_images(
            RankShare(self.loader, rank=trainer.global_rank, world_size=trainer.world_size),
            input_range=self.input_range,
            device=device,
            consume=consume,
            reduce_sum=lambda table: trainer.strategy.reduce(table, reduce_op="sum"),
        )
        if self.checkpoint_data_key not in (None, self.data_key):
            self._warn_once(
                "data-changed",
                "GenerativeMetricsCallback: the real data differ from those of the checkpoint this run resumed from "
                "(another fingerprint); the real statistics are those of the current data, so values logged before "
                "and after the restart are not comparable.",
            )

    # The cache --------------------------------------------------------------------------------------------------

    def _cache_has_files(self, trainer: Trainer) -> bool:
        """Whether rank 0's cache folder holds any real statistics (else a fingerprint pass cannot hit)."""
        found = False
        if trainer.is_global_zero:
            try:
                found = self.cache_dir.is_dir() and any(self.cache_dir.glob("real-*.npz"))
            except OSError as error:
                self._warn_once(f"list:{self.cache_dir}", f"Cannot list the cache folder '{self.cache_dir}': {error}.")
        return bool(trainer.strategy.broadcast(found, src=0))

    def _load_cached(self, trainer: Trainer, plug: MetricPlug) -> bool:
        """Load ``plug``'s real side from the cache; whether it is ready (the same answer on every rank)."""
        metric = plug.metric
        if keeps_statistics(metric):
            path = self._statistics_path(plug)
            use = lambda statistics: self._use(plug, path, statistics)  # noqa: E731
            loaded = self._load(trainer, path, load_statistics, use, "real statistics")
        elif keeps_reservoir(metric):
            path = self._reservoir_path(plug)
            expected = Provenance(**self._provenance(plug))

            def read(file: Path) -> dict[str, Tensor]:
                return load_reservoir(file, kind=reservoir_kind(metric), expected=expected)

            # Rank 0 holds the whole reservoir, the others none: synchronisation merges them into the same set.
            what = f"real features of {plug.name!r}"
            loaded = self._load(trainer, path, read, metric.load_real_reservoir, what, send=False)
        else:
            return False
        if loaded:
            plug.real_side_fed()
            self._ready.add(plug.name)
        return loaded

    def _use(self, plug: MetricPlug, path: Path, statistics: ReferenceStatistics) -> None:
        """Load cached statistics into ``plug``'s metric. A square root that does not fit them is dropped with a
        warning (the statistics are used, the root recomputed and the file rewritten); one that fits spares the
        eigendecomposition.

        Raises:
            TypeError, ValueError: statistics that do not fit the metric.
        """
        metric = plug.metric
        try:
            metric.load_real_statistics(statistics)
        except (TypeError, ValueError) as error:
            if statistics.sigma_root is None:
                raise
            statistics = dataclasses.replace(statistics, sigma_root=None)
            metric.load_real_statistics(statistics)
            # Once per file, not per metric sharing it.
            self._warn_once(f"root:{path}", self._cache_fault(path, "square root of the covariance", error))
        if statistics.sigma_root is None and keeps_root(metric):
            self._without_root.setdefault(path, plug)

    def _load(
        self,
        trainer: Trainer,
        path: Path,
        read: Callable[[Path], Any],
        load: Callable[[Any], None],
        what: str,
        *,
        send: bool = True,
    ) -> bool:
        """Global rank 0 reads a cache file and (with ``send``) sends its content to every rank, which loads it;
        without ``send`` rank 0 alone loads it. Whether it was loaded, the same on every rank.

        A file that is absent is not loaded; one that cannot be read or loaded is warned about (it is then
        recomputed and written again). A file sent once is not read again in this preparation (metrics of one
        extractor share their statistics file).
        """
        if send and path in self._received:
            content = self._received[path]
        else:
            content = None
            if trainer.is_global_zero:
                try:
                    if path.is_file():
                        content = read(path)
                except (OSError, ValueError) as error:
                    self._warn_cache_fault(path, what, error)
            if send:
                content = self._received[path] = trainer.strategy.broadcast(content, src=0)
        loaded = False
        if content is not None:
            try:
                load(content)  # with `send`, the same content on every rank, so the same outcome
                loaded = True
            except (TypeError, ValueError) as error:
                self._warn_cache_fault(path, what, error)
        return loaded if send else bool(trainer.strategy.broadcast(loaded, src=0))

    def _warn_cache_fault(self, path: Path, what: str, error: Exception) -> None:
        rank_zero_warn(self._cache_fault(path, what, error))

    @staticmethod
    def _cache_fault(path: Path, what: str, error: Exception) -> str:
        return (
            f"GenerativeMetricsCallback ignores the cached {what} '{path}' ({type(error).__name__}: {error}); "
            "recomputing it and writing it again."
        )

    def cache_root(self, trainer: Trainer, plugs: Sequence[MetricPlug]) -> None:
        """Write the cached statistics again with ``Σ_r^½`` (rank 0), once per file: a new run then skips its
        eigendecomposition.

        Called after an evaluation computed the root; a file read with a root (that fitted) is left alone.
        """
        for path, plug in list(self._without_root.items()):
            del self._without_root[path]
            if trainer.is_global_zero and plug in plugs:
                # The statistics are loaded on every rank: the root (computed by this evaluation) needs no collective.
                self._write(trainer, path, save_statistics, plug.metric.real_statistics(with_root=True))

    def _write(self, trainer: Trainer, path: Path, write: Callable[[Path, Any], None], content: Any) -> bool:
        """Write a cache file on global rank 0; a failure is warned about (once per file), never raised.

        The cache only saves time: a read-only or full disk must not end the run, and this evaluation's values do
        not depend on it.
        """
        if not trainer.is_global_zero:
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, content)
        except OSError as error:
            self._warn_once(
                f"write:{path}",
                f"GenerativeMetricsCallback cannot write the cache file '{path}' ({type(error).__name__}: {error}); "
                "the values are logged all the same and the next run recomputes it. Training goes on.",
            )
            return False
        return True
