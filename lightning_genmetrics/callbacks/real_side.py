"""The callback's real side: the real images (or statistics) the generated ones are compared with.

One object owns what the comparison needs from the real data: one sharded pass over the dataloader (rank ``r`` of
``W`` reads batches ``r, r + W, ...``) that fingerprints it and feeds the metrics that take real images, each
metric's readiness, and the disk cache, where every file is read by global rank 0 and sent to the other ranks
(which need not share its file system) and written by global rank 0 alone.

What a metric can cache is read off the metric, not its name:

- ``real_statistics()`` and ``load_real_statistics(statistics)`` (our FID): its real Gaussian, as a statistics
  file ``real-statistics-<key>.npz``; with ``real_sqrt()`` and ``load_real_sqrt(root)`` also the covariance's
  square root, ``real-root-<key>.npz``, written after the first evaluation computed it;
- ``real_reservoir()`` and ``load_real_reservoir(state)`` (our KID): its bounded reservoir of real features,
  ``real-kid-<key>.npz``, loaded on rank 0 alone (synchronisation merges it into every rank's value).

The key hashes the data fingerprint, the metric extractor's provenance (``metric.extractor.provenance_fields()``)
and the protocol version; a reservoir's key also its ``max_samples`` and ``seed``. A cache file that cannot be read
is recomputed and rewritten, one that cannot be written is skipped, each with a warning: the cache never ends the
run. Other metrics that take real images (torchmetrics' FID and KID) are fed them in the same pass, once per run.
"""

from __future__ import annotations

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
    RESERVOIR,
    kid_cache_key,
    kid_cache_path,
    load_tensors,
    read_real_images,
    real_cache_key,
    real_cache_path,
    root_cache_path,
    save_tensors,
)
from lightning_genmetrics.callbacks.sharding import RankShare
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.features.shared import shared_extraction
from lightning_genmetrics.stats import ReferenceStatistics, load_statistics, save_statistics

DataKey = tuple[str, int]


def keeps_statistics(metric: Any) -> bool:
    """Whether the metric's real side is a Gaussian that can be saved and loaded (our FID)."""
    return callable(getattr(metric, "real_statistics", None)) and callable(
        getattr(metric, "load_real_statistics", None)
    )


def keeps_reservoir(metric: Any) -> bool:
    """Whether the metric's real side is a reservoir of features that can be saved and loaded (our KID)."""
    return callable(getattr(metric, "real_reservoir", None)) and callable(getattr(metric, "load_real_reservoir", None))


def keeps_root(metric: Any) -> bool:
    """Whether the metric computes a square root of the real covariance that can be saved and loaded."""
    return callable(getattr(metric, "real_sqrt", None)) and callable(getattr(metric, "load_real_sqrt", None))


def _provenance(metric: Any) -> dict[str, str] | None:
    fields = getattr(getattr(metric, "extractor", None), "provenance_fields", None)
    return fields() if callable(fields) else None


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
        self._root_cached = False

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
                if keeps(plug.metric) and _provenance(plug.metric) is not None:
                    return self._statistics_key(plug)
        return None

    def _statistics_key(self, plug: MetricPlug) -> str:
        """Remembered per data key: hashing the extractor's weights takes time."""
        memo = (plug.name, self.data_key)
        if memo not in self._keys:
            provenance = _provenance(plug.metric)
            self._keys[memo] = real_cache_key(*self.data_key, provenance, self.input_range)
        return self._keys[memo]

    def _reservoir_key(self, plug: MetricPlug) -> str:
        metric = plug.metric
        return kid_cache_key(self._statistics_key(plug), getattr(metric, "max_samples", None), metric.seed)

    def _cacheable(self, plug: MetricPlug) -> bool:
        return self.cache_dir is not None and _provenance(plug.metric) is not None

    # The pass over the real data ----------------------------------------------------------------------------------

    def prepare(self, trainer: Trainer, device: torch.device, plugs: Sequence[MetricPlug]) -> None:
        """Make every metric that takes real images ready: from the cache, else from one pass over the data."""
        waiting = [plug for plug in plugs if plug.takes_real and plug.name not in self._ready]
        if not waiting:
            return
        cacheable = [plug for plug in waiting if self._cacheable(plug)]
        if cacheable:
            if self.data_key is None and self._cache_has_files(trainer):
                self._read(trainer, device, None)  # fingerprint only, to look the files up
            if self.data_key is not None:
                waiting = [plug for plug in waiting if not (plug in cacheable and self._load_cached(trainer, plug))]
        if not waiting:
            return

        def consume(uint8: Tensor) -> None:
            with shared_extraction():
                for plug in waiting:
                    plug.update_real(uint8)

        self._read(trainer, device, consume)
        for plug in waiting:
            self._fed(trainer, plug)

    def _fed(self, trainer: Trainer, plug: MetricPlug) -> None:
        """Every real image is in ``plug``: cache what it keeps, fix it, and keep its real side."""
        metric = plug.metric
        if keeps_statistics(metric):
            statistics = metric.real_statistics()  # every rank: a collective
            if self._cacheable(plug):
                path = real_cache_path(self.cache_dir, self._statistics_key(plug))
                self._write(trainer, path, save_statistics, statistics)
            metric.load_real_statistics(statistics)
        elif keeps_reservoir(metric) and self._cacheable(plug):
            reservoir = metric.real_reservoir()  # every rank: a collective
            self._write(trainer, kid_cache_path(self.cache_dir, self._reservoir_key(plug)), save_tensors, reservoir)
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
            path = real_cache_path(self.cache_dir, self._statistics_key(plug))
            loaded = self._load(trainer, path, load_statistics, metric.load_real_statistics, "real statistics")
            if loaded and keeps_root(metric):
                read_root = lambda file: load_tensors(file, ("root",))["root"]  # noqa: E731
                path = root_cache_path(self.cache_dir, self._statistics_key(plug))
                self._root_cached = self._load(trainer, path, read_root, metric.load_real_sqrt, "square root")
        elif keeps_reservoir(metric):
            path = kid_cache_path(self.cache_dir, self._reservoir_key(plug))
            read = lambda file: load_tensors(file, RESERVOIR)  # noqa: E731
            # Rank 0 holds the whole reservoir, the others none: synchronisation merges them into the same set.
            loaded = self._load(trainer, path, read, metric.load_real_reservoir, "KID real features", send=False)
        else:
            return False
        if loaded:
            plug.real_side_fed()
            self._ready.add(plug.name)
        return loaded

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
        recomputed and written again).
        """
        content = None
        if trainer.is_global_zero:
            try:
                if path.is_file():
                    content = read(path)
            except (OSError, ValueError) as error:
                self._warn_cache_fault(path, what, error)
        if send:
            content = trainer.strategy.broadcast(content, src=0)
        loaded = False
        if content is not None:
            try:
                load(content)  # with `send`, the same content on every rank, so the same outcome
                loaded = True
            except (TypeError, ValueError) as error:
                self._warn_cache_fault(path, what, error)
        return loaded if send else bool(trainer.strategy.broadcast(loaded, src=0))

    def _warn_cache_fault(self, path: Path, what: str, error: Exception) -> None:
        rank_zero_warn(
            f"GenerativeMetricsCallback ignores the cached {what} '{path}' ({type(error).__name__}: {error}); "
            "recomputing it and writing it again."
        )

    def cache_root(self, trainer: Trainer, plugs: Sequence[MetricPlug]) -> None:
        """Write ``Σ_r^½`` beside the cached statistics once (rank 0): a new run then skips its eigendecomposition.

        Written after an evaluation computed it, unless this run loaded it, so a file that could not be read is
        replaced.
        """
        if self._root_cached or self.cache_dir is None or self.data_key is None:
            return
        for plug in plugs:
            if keeps_statistics(plug.metric) and keeps_root(plug.metric) and self._cacheable(plug):
                self._root_cached = True
                if trainer.is_global_zero:
                    root = {"root": plug.metric.real_sqrt()}  # computed by this evaluation: no extra work
                    path = root_cache_path(self.cache_dir, self._statistics_key(plug))
                    self._write(trainer, path, save_tensors, root)
                return

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
