"""``GenerativeMetricsCallback``: every N epochs, sample on all ranks, evaluate FID/IS/KID, log to TensorBoard."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler
from typing_extensions import override

from lightning_genmetrics.callbacks.real_statistics import read_real_images, real_cache_key, real_cache_path
from lightning_genmetrics.features.preprocess import InputRange, check_input_range, images_to_uint8
from lightning_genmetrics.metrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.samplers.base import MAX_SAMPLES, eval_mode, sample_range, sampler_output_range
from lightning_genmetrics.samplers.diffusion import DiffusionSampler
from lightning_genmetrics.stats import ReferenceStatistics, load_statistics, save_statistics

_METRICS: dict[str, type[nn.Module]] = {
    "fid": FrechetInceptionDistance,
    "is": InceptionScore,
    "kid": KernelInceptionDistance,
}
_KID_DEFAULT_SUBSET_SIZE: int = inspect.signature(KernelInceptionDistance).parameters["subset_size"].default


def shard_bounds(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """The global sample indices ``[start, stop)`` rank ``rank`` of ``world_size`` evaluates.

    The shards are contiguous, differ in size by at most one, and cover ``range(num_samples)`` exactly once.

    Example:
        >>> [shard_bounds(10, r, 3) for r in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    return rank * num_samples // world_size, (rank + 1) * num_samples // world_size


@contextlib.contextmanager
def isolated_rng(device: torch.device) -> Iterator[None]:
    """Run a block with the global torch RNG (CPU, and ``device``'s when it is a GPU) restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def _misconfigured(name: str, value: Any, expected: str) -> MisconfigurationException:
    return MisconfigurationException(f"Expected `{name}` to be {expected}, got {value!r}.")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _misconfigured(name, value, f"an int >= {minimum}")
    return value


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _misconfigured(name, value, "a bool")
    return value


class GenerativeMetricsCallback(Callback):
    """Evaluate a generative model every ``every_n_epochs`` epochs and log FID, IS and KID.

    At an evaluation, rank ``r`` of ``W`` draws the samples ``[r·N/W, (r+1)·N/W)`` of the seeded stream
    (:func:`~lightning_genmetrics.samplers.sample_range`), so exactly ``num_samples`` samples are
    evaluated in total, each the same whichever rank draws it, and the same at every evaluation (the
    same noise: only the model changes). Sampling runs in eval mode under ``torch.inference_mode()``;
    each submodule's train flag and the global torch RNG state (CPU and the current GPU) are restored
    afterwards, so training draws the same random numbers with or without the callback. Every rank
    computes the metrics (their states are synchronised by all-reduce), so no rank waits on another.

    Real side: ``real`` is a dataloader of real images (or ``(images, labels)`` batches) in a fixed
    order (no shuffling), or a statistics file (see :mod:`lightning_genmetrics.stats`). A dataloader is
    read once, at the first evaluation: rank ``r`` extracts features from batches ``r, r + W, ...``
    (no duplicates). The FID statistics are then kept, and with ``cache_dir`` written to
    ``real-statistics-<key>.npz``, the key a SHA-256 over the pixels read, their count, the
    extractor's provenance (name, weights hash, layer, resize) and the callback's protocol version.
    The key is saved in the callback's state, so a run resumed from a checkpoint loads the file and
    does not read the real data again for FID (KID keeps real *features*, in memory only, and reads the
    data again after a restart).

    Logged through ``pl_module.log`` (every rank logs the same, already global, value), so
    ``ModelCheckpoint(monitor="gen/fid", mode="min")`` and ``EarlyStopping`` can monitor them:
    ``{prefix}fid``, ``{prefix}is``, ``{prefix}is_std``, ``{prefix}kid``, ``{prefix}kid_std`` and
    ``{prefix}eval_seconds``. The evaluation runs in ``on_validation_epoch_end`` after the end-of-epoch
    validation (where ``ModelCheckpoint`` reads it when there is a validation loop), else in
    ``on_train_epoch_end``. With a validation loop and ``every_n_epochs > 1``, give ``ModelCheckpoint``
    the same ``every_n_epochs``: it refuses a monitored key that is missing after validation. An image
    grid of the first ``num_images`` samples (fixed noise) goes to every ``TensorBoardLogger``
    (``add_image``); other loggers get the scalars and one warning.

    Args:
        sampler: a sampler (anything with an ``output_range`` called as
            ``sampler(n, generator=..., device=..., labels=None)``, see :mod:`lightning_genmetrics.samplers`),
            or a function ``pl_module -> sampler`` called at ``setup`` (useful under ``ddp_spawn``).
        real: a ``DataLoader`` of real images, a statistics file path, or ``ReferenceStatistics``.
        metrics: names among ``"fid"``, ``"is"``, ``"kid"``.
        feature_extractor: ``None`` for the standard FID InceptionV3 (pool features for FID/KID, logits for IS),
            or any ``nn.Module`` used by every requested metric (for IS its output is read as logits).
        every_n_epochs: evaluate after epochs ``n - 1, 2n - 1, ...`` (0-based).
        evaluate_on_last_epoch: also evaluate after the last epoch (``max_epochs``) when it is off the cadence.
        num_samples: generated samples per evaluation, over all ranks.
        batch_size: samples per sampler call.
        seed: the seed of the sample stream.
        prefix: prefix of the logged keys.
        log_images: log an image grid of the first ``num_images`` samples.
        num_images: the number of images in the grid.
        real_input_range: the range of float real images, ``(0, 1)`` or ``(-1, 1)``; ``None`` means the
            sampler's ``output_range``. uint8 real images are always accepted.
        cache_dir: a folder for the real statistics cache, or ``None`` for no disk cache.
        metric_kwargs: extra constructor arguments per metric name, e.g. ``{"is": {"splits": 10}}``.
        guidance: a guidance sweep for a class-conditional ``DiffusionSampler`` (with ``null_label`` and
            ``num_classes``): each strength ``w`` is evaluated on the same noise and labels and logged as
            ``{prefix}fid/w=<w>``, ``{prefix}is/w=<w>``, ...; ``{prefix}best_w`` is the strength with the best
            FID (else KID, else IS), and the unsuffixed keys hold its values. One grid per strength.

    Raises:
        MisconfigurationException: an argument of the wrong type or value (the message names it and the
            value), ``"kid"`` with real statistics instead of real images, a shuffling real dataloader, a
            KID ``subset_size`` above ``num_samples``, or an unreadable statistics file.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from lightning_genmetrics import GANSampler
        >>> net = nn.Sequential(nn.Linear(4, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4)))
        >>> real = torch.utils.data.DataLoader(torch.rand(8, 3, 4, 4) * 2 - 1, batch_size=4)
        >>> callback = GenerativeMetricsCallback(
        ...     GANSampler(net, latent_shape=(4,)), real, feature_extractor=nn.Flatten(), num_samples=8
        ... )
        >>> callback.metric_names, callback.state_key
        (('fid', 'is'), "GenerativeMetricsCallback{'prefix': 'gen/', 'metrics': ('fid', 'is'), 'seed': 0}")
    """

    def __init__(
        self,
        sampler: Any,
        real: DataLoader | str | os.PathLike[str] | ReferenceStatistics,
        metrics: Sequence[str] = ("fid", "is"),
        feature_extractor: nn.Module | None = None,
        *,
        every_n_epochs: int = 1,
        evaluate_on_last_epoch: bool = False,
        num_samples: int = 10_000,
        batch_size: int = 100,
        seed: int = 0,
        prefix: str = "gen/",
        log_images: bool = True,
        num_images: int = 64,
        real_input_range: InputRange | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        guidance: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.metric_names = self._check_metrics(metrics)
        self.every_n_epochs = _check_int(every_n_epochs, "every_n_epochs", 1)
        self.evaluate_on_last_epoch = _check_bool(evaluate_on_last_epoch, "evaluate_on_last_epoch")
        self.num_samples = _check_int(num_samples, "num_samples", 2)
        if self.num_samples > MAX_SAMPLES:
            raise _misconfigured("num_samples", num_samples, "at most 2**32")
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.seed = _check_int(seed, "seed", 0)
        if self.seed >= 2**64:
            raise _misconfigured("seed", seed, "below 2**64")
        if not isinstance(prefix, str):
            raise _misconfigured("prefix", prefix, "a str")
        self.prefix = prefix
        self.log_images = _check_bool(log_images, "log_images")
        self.num_images = min(_check_int(num_images, "num_images", 1), self.num_samples)
        if feature_extractor is not None and not isinstance(feature_extractor, nn.Module):
            raise _misconfigured("feature_extractor", feature_extractor, "None or an nn.Module")
        self.feature_extractor = feature_extractor
        self.metric_kwargs = self._check_metric_kwargs(metric_kwargs)
        self._sampler_source = self._check_sampler(sampler)
        self.guidance = self._check_guidance(guidance)
        self.real_input_range = self._check_real_input_range(real_input_range)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self._real_loader, self._real_statistics = self._check_real(real)

        self.sampler: Any = None
        self.metrics: dict[str, nn.Module] = {}
        self._history: list[dict[str, float]] = []
        self._best: dict[str, float] = {}
        self._cache_key: str | None = None
        self._fid_real_ready = False
        self._kid_real_ready = False
        self._last_evaluated_epoch = -1
        self._warned_images = False

    # Configuration checks -----------------------------------------------------------------------------------

    @staticmethod
    def _check_metrics(metrics: Any) -> tuple[str, ...]:
        if isinstance(metrics, str) or not isinstance(metrics, Sequence):
            raise _misconfigured("metrics", metrics, f"a sequence of names among {sorted(_METRICS)}")
        names = tuple(metrics)
        unknown = [name for name in names if name not in _METRICS]
        if not names or unknown or len(set(names)) != len(names):
            raise _misconfigured("metrics", metrics, f"distinct names among {sorted(_METRICS)}")
        return names

    def _check_metric_kwargs(self, metric_kwargs: Any) -> dict[str, dict[str, Any]]:
        if metric_kwargs is None:
            return {}
        if not isinstance(metric_kwargs, Mapping) or any(
            name not in self.metric_names or not isinstance(kwargs, Mapping) for name, kwargs in metric_kwargs.items()
        ):
            raise _misconfigured("metric_kwargs", metric_kwargs, f"a mapping from {self.metric_names} to dicts")
        reserved = {"feature", "input_range", "reset_real_features", "real_statistics"}
        if any(reserved & set(kwargs) for kwargs in metric_kwargs.values()):
            raise _misconfigured("metric_kwargs", metric_kwargs, f"free of the callback-managed {sorted(reserved)}")
        out = {name: dict(kwargs) for name, kwargs in metric_kwargs.items()}
        subset_size = out.get("kid", {}).get("subset_size", _KID_DEFAULT_SUBSET_SIZE)
        if "kid" in self.metric_names and subset_size > self.num_samples:
            raise MisconfigurationException(
                f"KID's `subset_size` ({subset_size}) exceeds `num_samples` ({self.num_samples}); pass "
                f"metric_kwargs={{'kid': {{'subset_size': ...}}}} with at most num_samples."
            )
        return out

    @staticmethod
    def _check_sampler(sampler: Any) -> Any:
        if not callable(sampler):
            raise _misconfigured(
                "sampler", sampler, "a sampler with `output_range`, or a function of the LightningModule"
            )
        if hasattr(sampler, "output_range"):
            try:
                sampler_output_range(sampler)
            except (TypeError, ValueError) as error:
                raise MisconfigurationException(f"Invalid `sampler` {sampler!r}: {error}") from error
        return sampler

    @staticmethod
    def _check_guidance(guidance: Any) -> tuple[float, ...] | None:
        if guidance is None:
            return None
        values = tuple(guidance) if isinstance(guidance, Sequence) and not isinstance(guidance, str) else ()
        if (
            not values
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) for w in values)
            or any(w < -1 for w in values)
            or len(set(values)) != len(values)
        ):
            raise _misconfigured("guidance", guidance, "None or a non-empty sequence of distinct numbers >= -1")
        return tuple(float(w) for w in values)

    def _check_sampler_guidance(self) -> None:
        if self.guidance is None:
            return
        sampler = self.sampler
        if not isinstance(sampler, DiffusionSampler):
            raise MisconfigurationException(
                f"A guidance sweep (`guidance`={list(self.guidance)}) needs a DiffusionSampler, got {sampler!r}."
            )
        if any(w != 0 for w in self.guidance) and (sampler.null_label is None or sampler.num_classes is None):
            raise MisconfigurationException(
                f"Guidance strengths {list(self.guidance)} need a DiffusionSampler with `null_label` and `num_classes` "
                f"(labels drawn per sample), got null_label={sampler.null_label}, num_classes={sampler.num_classes}."
            )

    @staticmethod
    def _check_real_input_range(value: Any) -> InputRange | None:
        try:
            return check_input_range(value)
        except (TypeError, ValueError) as error:
            raise _misconfigured("real_input_range", value, "None, (0, 1) or (-1, 1)") from error

    def _check_real(self, real: Any) -> tuple[DataLoader | None, ReferenceStatistics | None]:
        if isinstance(real, DataLoader):
            if isinstance(real.sampler, RandomSampler):
                raise MisconfigurationException(
                    f"Expected `real` to iterate in a fixed order (every rank reads its share of the batches), "
                    f"got a shuffling DataLoader ({real!r}); create it with shuffle=False."
                )
            return real, None
        if isinstance(real, ReferenceStatistics):
            statistics = real
        elif isinstance(real, (str, os.PathLike)):
            try:
                statistics = load_statistics(real)
            except (OSError, ValueError) as error:
                raise MisconfigurationException(f"Cannot use `real`={str(real)!r} as statistics: {error}") from error
        else:
            raise _misconfigured("real", real, "a DataLoader, a statistics file path or ReferenceStatistics")
        if "kid" in self.metric_names:
            raise MisconfigurationException(
                f"KID needs real features, not statistics; got `real`={real!r} with metrics={self.metric_names}. "
                "Pass a DataLoader of real images, or drop 'kid'."
            )
        return None, statistics

    # State ---------------------------------------------------------------------------------------------------

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(prefix=self.prefix, metrics=self.metric_names, seed=self.seed)

    @property
    def history(self) -> list[dict[str, float]]:
        """One record per evaluation: ``epoch``, ``global_step``, the logged values (unprefixed), ``eval_seconds``."""
        return [dict(record) for record in self._history]

    @property
    def best(self) -> dict[str, float]:
        """The best value so far of each metric (``fid``, ``is``, ``kid``), by its ``higher_is_better``."""
        return dict(self._best)

    @property
    def cache_key(self) -> str | None:
        """The key of the real statistics, once computed (or restored from a checkpoint)."""
        return self._cache_key

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best": self.best,
            "cache_key": self._cache_key,
            "last_evaluated_epoch": self._last_evaluated_epoch,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "num_images": self.num_images,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._history = [dict(record) for record in state_dict.get("history", [])]
        self._best = dict(state_dict.get("best", {}))
        self._cache_key = state_dict.get("cache_key")
        self._last_evaluated_epoch = state_dict.get("last_evaluated_epoch", -1)
        saved = (state_dict.get("seed", self.seed), state_dict.get("num_samples", self.num_samples))
        if saved != (self.seed, self.num_samples):
            rank_zero_warn(
                f"GenerativeMetricsCallback resumes with (seed, num_samples) = {(self.seed, self.num_samples)}, "
                f"the checkpoint used {saved}: values before and after the restart are not comparable."
            )

    # Hooks ---------------------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != TrainerFn.FITTING:
            return
        if self.sampler is None:
            self.sampler = self._resolve_sampler(pl_module)
            self._check_sampler_guidance()
        if not self.metrics:
            self.metrics = self._build_metrics(sampler_output_range(self.sampler))
        if trainer.world_size > 1:
            # Lightning recommends sync_dist=True for epoch-level values under DDP; ours are already global.
            warnings.filterwarnings(
                "ignore",
                message=rf"It is recommended to use `self\.log\({re.escape(repr(self.prefix)[:-1])}",
                category=PossibleUserWarning,
            )

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The end-of-epoch validation, where ModelCheckpoint (on_validation_end) reads the logged values.
        if trainer.is_last_batch and self._due(trainer):
            self._evaluate(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._due(trainer):
            self._evaluate(trainer, pl_module)

    def _due(self, trainer: Trainer) -> bool:
        if trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING:
            return False
        epoch = trainer.current_epoch
        if epoch == self._last_evaluated_epoch:
            return False
        on_cadence = (epoch + 1) % self.every_n_epochs == 0
        last = self.evaluate_on_last_epoch and trainer.max_epochs is not None and epoch + 1 == trainer.max_epochs
        return on_cadence or last

    # Building ------------------------------------------------------------------------------------------------

    def _resolve_sampler(self, pl_module: LightningModule) -> Any:
        if hasattr(self._sampler_source, "output_range"):
            return self._sampler_source
        sampler = self._sampler_source(pl_module)
        try:
            sampler_output_range(sampler)
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(f"The `sampler` function returned {sampler!r}: {error}") from error
        return sampler

    def _build_metrics(self, input_range: InputRange) -> dict[str, nn.Module]:
        pool, logits = self.feature_extractor, self.feature_extractor
        if self.feature_extractor is None:
            from lightning_genmetrics.features.inception import FIDInceptionV3

            # One network for FID and KID: the same features, extracted by the same weights.
            pool = FIDInceptionV3("2048") if {"fid", "kid"} & set(self.metric_names) else None
            logits = "logits_unbiased"
        metrics: dict[str, nn.Module] = {}
        for name in self.metric_names:
            kwargs = dict(self.metric_kwargs.get(name, {}))
            if name == "is":
                metrics[name] = InceptionScore(logits, input_range=input_range, **kwargs)
            elif name == "kid":
                metrics[name] = KernelInceptionDistance(
                    pool, input_range=input_range, reset_real_features=False, **kwargs
                )
            else:
                metrics[name] = FrechetInceptionDistance(pool, input_range=input_range, **kwargs)
        if self._real_statistics is not None and "fid" in metrics:
            self._use_real_statistics(metrics["fid"], self._real_statistics)
        return metrics

    def _use_real_statistics(self, fid: nn.Module, statistics: ReferenceStatistics) -> None:
        try:
            fid.load_real_statistics(statistics)
        except ValueError as error:
            raise MisconfigurationException(f"The real statistics do not fit the FID extractor: {error}") from error
        self._fid_real_ready = True

    # Evaluation ----------------------------------------------------------------------------------------------

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_evaluated_epoch = trainer.current_epoch
        device = pl_module.device
        started = time.perf_counter()
        for metric in self.metrics.values():
            metric.to(device)
        with isolated_rng(device), torch.inference_mode(), eval_mode(pl_module):
            self._prepare_real(trainer, device)
            values, grids = self._evaluate_samplers(trainer, device)
        seconds = float(trainer.strategy.broadcast(time.perf_counter() - started))
        values["eval_seconds"] = seconds
        for name, value in values.items():
            pl_module.log(f"{self.prefix}{name}", value, sync_dist=False, rank_zero_only=False)
        self._record(trainer, values)
        for suffix, images in grids.items():
            self._log_grid(trainer, images, suffix)

    def _evaluate_samplers(self, trainer: Trainer, device: torch.device) -> tuple[dict[str, float], dict[str, Tensor]]:
        """The values (and rank 0's grid images) of the sampler, or of each guidance strength of the sweep."""
        if self.guidance is None:
            images = self._update_generated(trainer, device, self.sampler)
            return self._compute(), {} if images is None else {"": images}
        values: dict[str, float] = {}
        grids: dict[str, Tensor] = {}
        per_w: dict[float, dict[str, float]] = {}
        for w in self.guidance:
            suffix = f"/w={w:g}"
            images = self._update_generated(trainer, device, self._guided_sampler(w))
            per_w[w] = self._compute()
            values.update({f"{name}{suffix}": value for name, value in per_w[w].items()})
            if images is not None:
                grids[suffix] = images
        best_w = self._best_guidance(per_w)
        values.update(per_w[best_w])
        values["best_w"] = best_w
        return values, grids

    def _guided_sampler(self, w: float) -> DiffusionSampler:
        # A shallow copy shares the model; the strengths were checked against the sampler in `setup`.
        sampler = copy.copy(self.sampler)
        sampler.guidance = w
        return sampler

    def _best_guidance(self, per_w: dict[float, dict[str, float]]) -> float:
        """The strength with the best value of the first of FID, KID, IS that is evaluated."""
        name = next(name for name in ("fid", "kid", "is") if name in self.metrics)
        sign = 1.0 if self.metrics[name].higher_is_better else -1.0
        return max(per_w, key=lambda w: sign * per_w[w][name])

    def _prepare_real(self, trainer: Trainer, device: torch.device) -> None:
        fid = self.metrics.get("fid")
        need_fid = fid is not None and not self._fid_real_ready
        if need_fid and self._cache_key is not None and self.cache_dir is not None:
            statistics = self._load_cached(trainer, real_cache_path(self.cache_dir, self._cache_key))
            if statistics is not None:
                self._use_real_statistics(fid, statistics)
                need_fid = False
        need_kid = "kid" in self.metrics and not self._kid_real_ready
        if not (need_fid or need_kid):
            return
        temporary = None
        if need_fid:
            temporary = FrechetInceptionDistance(fid.extractor.module, input_range=fid.extractor.input_range).to(device)

        def consume(uint8: Tensor) -> None:
            if temporary is not None:
                temporary.update(uint8, real=True)
            if need_kid:
                self.metrics["kid"].update(uint8, real=True)

        input_range = self.real_input_range or sampler_output_range(self.sampler)
        fingerprint, count = read_real_images(
            self._real_loader,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            input_range=input_range,
            device=device,
            consume=consume,
            reduce_sum=lambda table: trainer.strategy.reduce(table, reduce_op="sum"),
        )
        extractor = (fid or self.metrics["kid"]).extractor
        self._cache_key = real_cache_key(fingerprint, count, extractor.provenance_fields(), input_range)
        self._kid_real_ready = self._kid_real_ready or need_kid
        if temporary is not None:
            statistics = temporary.real_statistics()
            if trainer.is_global_zero and self.cache_dir is not None:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                save_statistics(real_cache_path(self.cache_dir, self._cache_key), statistics)
            self._use_real_statistics(fid, statistics)

    @staticmethod
    def _load_cached(trainer: Trainer, path: Path) -> ReferenceStatistics | None:
        # Rank 0 reads the file and sends it: the other ranks need not share its filesystem.
        statistics = None
        if trainer.is_global_zero and path.is_file():
            try:
                statistics = load_statistics(path)
            except ValueError as error:
                rank_zero_warn(f"Ignoring the real statistics cache '{path}' ({error}); recomputing them.")
        return trainer.strategy.broadcast(statistics, src=0)

    def _update_generated(self, trainer: Trainer, device: torch.device, sampler: Any) -> Tensor | None:
        for metric in self.metrics.values():
            metric.reset()
        start, stop = shard_bounds(self.num_samples, trainer.global_rank, trainer.world_size)
        want_grid = self.log_images and trainer.is_global_zero
        shown: list[Tensor] = []
        for begin in range(start, stop, self.batch_size):
            end = min(begin + self.batch_size, stop)
            images = sample_range(sampler, begin, end, seed=self.seed, batch_size=self.batch_size, device=device)
            ids = torch.arange(begin, end, device=device)
            for name, metric in self.metrics.items():
                if name == "is":
                    metric.update(images, sample_ids=ids)
                elif name == "kid":
                    metric.update(images, real=False, sample_ids=ids)
                else:
                    metric.update(images, real=False)
            if want_grid and begin < self.num_images:
                shown.append(images[: self.num_images - begin].cpu())
        if not want_grid:
            return None
        # Rank 0's shard starts at sample 0; when it is shorter than the grid, rank 0 draws the rest itself.
        have = sum(chunk.shape[0] for chunk in shown)
        if have < self.num_images:
            rest = sample_range(
                sampler, have, self.num_images, seed=self.seed, batch_size=self.batch_size, device=device
            )
            shown.append(rest.cpu())
        return torch.cat(shown)

    def _compute(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, metric in self.metrics.items():
            result = metric.compute()
            if isinstance(result, tuple):
                values[name], values[f"{name}_std"] = float(result[0]), float(result[1])
            else:
                values[name] = float(result)
        return values

    def _record(self, trainer: Trainer, values: dict[str, float]) -> None:
        self._history.append({"epoch": trainer.current_epoch, "global_step": trainer.global_step, **values})
        for name, metric in self.metrics.items():
            value, best = values[name], self._best.get(name)
            better = best is None or (value > best if metric.higher_is_better else value < best)
            if better and math.isfinite(value):
                self._best[name] = value

    def _log_grid(self, trainer: Trainer, images: Tensor, suffix: str) -> None:
        from torchvision.utils import make_grid

        uint8 = images_to_uint8(images, sampler_output_range(self.sampler), name="samples")
        grid = make_grid(uint8, nrow=math.ceil(math.sqrt(uint8.shape[0])), padding=1)
        boards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        # Lightning logs epoch-end values at the step of the epoch's last optimizer step; the grid goes beside them.
        step = max(trainer.global_step - 1, 0)
        for logger in boards:
            logger.experiment.add_image(f"{self.prefix}samples{suffix}", grid, global_step=step)
        if trainer.loggers and not boards and not self._warned_images:
            self._warned_images = True
            rank_zero_warn(
                "GenerativeMetricsCallback logs its sample grid to TensorBoardLogger only; the loggers "
                f"{[type(logger).__name__ for logger in trainer.loggers]} get the scalars. Pass log_images=False "
                "to silence this."
            )
