"""``GenerativeMetricsCallback``: every N epochs (or steps), sample on all ranks, evaluate, log to TensorBoard."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_genmetrics.callbacks import figures
from lightning_genmetrics.callbacks._config import (
    check_bool,
    check_fixed_order_loader,
    check_guidance,
    check_int,
    check_names,
    check_optional_int,
    misconfigured,
)
from lightning_genmetrics.callbacks.conditional import ClassFidelity, MaskFidelity
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
from lightning_genmetrics.callbacks.reconstruction import RECONSTRUCTION_METRICS, ReconstructionQuality
from lightning_genmetrics.callbacks.sharding import RankShare, known_sample_count
from lightning_genmetrics.callbacks.weights import evaluation_weights, match_ema_target
from lightning_genmetrics.features.preprocess import InputRange, batch_to_images, check_input_range, images_to_uint8
from lightning_genmetrics.features.shared import shared_extraction
from lightning_genmetrics.metrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.samplers.base import (
    MAX_SAMPLES,
    NonFiniteSamplesError,
    eval_mode,
    nonfinite_rows,
    sample_range,
    sampler_output_range,
)
from lightning_genmetrics.stats import ReferenceStatistics, load_statistics, save_statistics

_GUIDED_SAMPLER_ATTRIBUTES = ("guidance", "null_label", "num_classes")
_METRICS: dict[str, type[nn.Module]] = {
    "fid": FrechetInceptionDistance,
    "is": InceptionScore,
    "kid": KernelInceptionDistance,
}
_KID_DEFAULT_SUBSET_SIZE: int = inspect.signature(KernelInceptionDistance).parameters["subset_size"].default
# The direction of every value the callback can report, for `best` and for picking the best guidance strength.
_HIGHER_IS_BETTER = {
    "fid": False,
    "kid": False,
    "is": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "auroc": True,
    "miou": True,
    "pixel_accuracy": True,
    "mdice": True,
    "recon/ssim": True,
    "recon/ms_ssim": True,
    "recon/psnr": True,
    "recon/lpips": False,
}
_BEST_GUIDANCE_BY = ("fid", "kid", "is", "accuracy", "miou")
# The values that come as (mean, std) pairs, logged as `name` and `name_std`.
_WITH_STD = ("is", "kid")
# Trainer entry points the callback can evaluate in, by their `TrainerFn` value.
_STAGES = (TrainerFn.FITTING.value, TrainerFn.VALIDATING.value, TrainerFn.TESTING.value)
EMASource = Literal["auto"] | nn.Module | None
_Hook = Literal["validation", "train_epoch_end", "train_batch_end", "test"]


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


class PhaseTimer:
    """Wall-clock seconds per phase of an evaluation; on a GPU each phase ends with a synchronisation.

    Example:
        >>> timer = PhaseTimer(torch.device("cpu"))
        >>> with timer("sampling"):
        ...     _ = sum(range(1000))
        >>> list(timer.seconds)
        ['sampling']
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            self.seconds[phase] += time.perf_counter() - started

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def count_nonfinite(images: Tensor) -> int:
    """The number of samples (rows of dim 0) of a floating point batch holding a NaN or an infinity.

    Example:
        >>> count_nonfinite(torch.tensor([[0.0, 1.0], [float("nan"), 0.0], [0.0, float("inf")]]))
        2
    """
    if not images.is_floating_point() or images.ndim == 0:
        return 0
    return len(nonfinite_rows(images))


def batch_to_masks(batch: Any) -> Tensor:
    """The masks of a batch: the batch itself, or the first integer tensor of a tuple/list batch.

    Raises:
        TypeError: no integer tensor in the batch.
    """
    entries = list(batch) if isinstance(batch, (tuple, list)) else [batch]
    for entry in entries:
        if isinstance(entry, Tensor) and not entry.is_floating_point() and entry.dtype != torch.bool:
            return entry
    raise TypeError(
        f"Expected a mask batch to be an integer tensor or a tuple holding one, got {type(batch).__name__}."
    )


class GenerativeMetricsCallback(Callback):
    """Evaluate a generative model every ``every_n_epochs`` epochs (or ``every_n_steps`` steps) and log the results.

    **Sampling.** At an evaluation, rank ``r`` of ``W`` draws the samples ``[r·N/W, (r+1)·N/W)`` of the seeded
    stream (:func:`~lightning_genmetrics.samplers.sample_range`), so exactly ``num_samples`` samples are evaluated
    in total, each the same whichever rank draws it, and the same noise at every evaluation (only the model
    changes). Sampling runs in eval mode under ``torch.inference_mode()``; each submodule's train flag and the
    global torch RNG state (CPU and the current GPU) are restored afterwards, so training draws the same random
    numbers with or without the callback. Every rank computes the metrics (their states are synchronised by
    all-reduce), so no rank waits on another. With ``ema="auto"`` the evaluation uses the average of a Lightning
    ``WeightAveraging`` callback (e.g. ``EMAWeightAveraging``) once it has been updated; a user's EMA module
    (an ``AveragedModel`` or a copy mirroring the LightningModule or one of its submodules) may be given instead.

    **Real side.** ``real`` is a dataloader of real images (or ``(images, labels)`` batches) in a fixed order (no
    shuffling), or a statistics file (see :mod:`lightning_genmetrics.stats`). A dataloader is read at the first
    evaluation: rank ``r`` reads and extracts features from batches ``r, r + W, ...`` only (no duplicates; an
    iterable dataset is iterated in full by every rank, see :mod:`~lightning_genmetrics.callbacks.sharding`). Its
    first batch, its size and ``cache_dir`` are checked at ``setup``, before the first training step. The FID statistics
    (and KID's real reservoir) are then kept, and with ``cache_dir`` written to ``real-statistics-<key>.npz``
    (``real-kid-<key>.npz``), the key a SHA-256 over the pixels read, their count, the extractor's provenance
    (name, weights hash, layer, resize) and the callback's protocol version. A run whose cache folder holds
    statistics first fingerprints the data (reading and hashing, no feature extraction) to look them up; a resumed
    run does so too (the data may have changed since the checkpoint) unless ``refingerprint_on_resume=False``.
    A cache file that cannot be read is recomputed and rewritten, one that cannot be written is skipped, each
    with a warning: the cache never ends the run.

    **Non-finite samples** (``on_nonfinite="nan"``): the values of an evaluation phase whose samples hold NaN or
    Inf, on any rank, are logged as NaN on every rank with a warning giving the count, and training goes on.

    **Logged** through ``pl_module.log`` (every rank logs the same, already global, value), so
    ``ModelCheckpoint(monitor="gen/fid", mode="min")`` and ``EarlyStopping`` can monitor them: ``{prefix}fid``,
    ``{prefix}is``, ``{prefix}is_std``, ``{prefix}kid``, ``{prefix}kid_std``; with a ``classifier``
    ``{prefix}accuracy``, ``{prefix}balanced_accuracy``, ``{prefix}auroc`` (exact); with a ``segmenter``
    ``{prefix}miou``, ``{prefix}pixel_accuracy``, ``{prefix}mdice``; with ``reconstruct`` ``{prefix}recon/ssim``,
    ``{prefix}recon/psnr``, ...; and ``{prefix}eval_seconds`` with its split ``{prefix}seconds/real``,
    ``.../sampling``, ``.../features`` (extraction and metric updates), ``.../compute`` (and
    ``.../reconstruction``). An epoch evaluation runs in ``on_validation_epoch_end`` after the end-of-epoch
    validation (where ``ModelCheckpoint`` reads it) when there is a validation loop, else in
    ``on_train_epoch_end``; a step evaluation in ``on_train_batch_end``, logged once to the loggers at its
    step and put in ``trainer.callback_metrics`` for ``ModelCheckpoint(every_n_train_steps=...)``. With a
    validation loop and ``every_n_epochs > 1``, give ``ModelCheckpoint`` the same ``every_n_epochs``: it refuses a
    monitored key that is missing after validation. To every ``TensorBoardLogger`` go an image grid of the first
    ``num_images`` samples (fixed noise and labels) via ``add_image``, and via ``add_figure`` (needs matplotlib:
    ``pip install matplotlib``, the ``plots`` extra) a 2-D PCA of real vs generated features (from the FID state's
    Gaussians) and, for a guidance sweep with FID and IS, the FID–IS trade-off curve; other loggers get the
    scalars and one warning. A progress bar over the sampling batches is shown on rank 0 when the trainer has
    one.

    Args:
        sampler: a sampler (anything with an ``output_range`` called as
            ``sampler(n, generator=..., device=..., labels=None)``, see :mod:`lightning_genmetrics.samplers`),
            or a function ``pl_module -> sampler`` called at ``setup`` (useful under ``ddp_spawn``).
        real: a ``DataLoader`` of real images, a statistics file path, or ``ReferenceStatistics``; ``None`` when
            no metric needs real data (IS, conditional or reconstruction evaluation only).
        metrics: names among ``"fid"``, ``"is"``, ``"kid"``; may be empty when another evaluation is configured.
        feature_extractor: ``None`` for the standard FID InceptionV3 (pool features for FID/KID, logits for IS),
            any ``nn.Module`` used by every requested metric (for IS its output is read as logits), or a mapping
            from metric names to modules (or ``None``), e.g. ``{"fid": penultimate, "kid": penultimate,
            "is": logits}`` (see :class:`~lightning_genmetrics.ClassifierFeatures`); names left out get the default.
        every_n_epochs: evaluate after epochs ``n - 1, 2n - 1, ...`` (0-based); ``None`` for no epoch cadence.
        every_n_steps: also evaluate after every ``n``-th optimizer step; ``None`` (default) for no step cadence.
        evaluate_on_last_epoch: also evaluate after the last epoch (``max_epochs``) when it is off the cadence.
        num_samples: generated samples per evaluation, over all ranks.
        batch_size: samples per sampler call.
        seed: the seed of the sample stream.
        prefix: prefix of the logged keys.
        log_images: log an image grid of the first ``num_images`` samples.
        num_images: the number of images in the grid.
        log_figures: log the PCA and trade-off figures.
        progress_bar: show a progress bar over sampling batches (rank 0, when the trainer shows one).
        real_input_range: the range of float real images (and reconstruction inputs), ``(0, 1)`` or ``(-1, 1)``;
            ``None`` means the sampler's ``output_range``. uint8 real images are always accepted.
        cache_dir: a folder for the real statistics cache, or ``None`` for no disk cache.
        metric_kwargs: extra constructor arguments per metric name (also the reconstruction metrics),
            e.g. ``{"is": {"splits": 10}, "lpips": {"net_type": "vgg"}}``.
        guidance: a guidance sweep for a class-conditional guided sampler (``DiffusionSampler``,
            ``LogSNRDiffusionSampler``, ``FlowMatchingSampler``, or any sampler with ``guidance``, ``null_label`` and
            ``num_classes`` attributes): each strength ``w`` is evaluated on the same noise and labels and logged as
            ``{prefix}fid/w=<w>``, ``{prefix}is/w=<w>``, ...; ``{prefix}best_w`` is the strength with the best
            FID (else KID, IS, accuracy, mIoU), and the unsuffixed keys hold its values. One grid per strength.
        ema: ``"auto"`` (a ``WeightAveraging`` callback's average when there is one), ``None`` (the training
            weights), or a user's EMA module.
        classifier: a classifier scoring class-conditional samples: images ``[N, 3, H, W]`` in ``[0, 1]`` ->
            logits ``[N, num_classes]`` (wrap a trained one with ``ClassifierFeatures(output="logits")``). Sample
            ``i`` is then conditioned on label ``i mod num_classes`` (a balanced set, the same at every evaluation).
        num_classes: the number of classes for ``classifier``; ``None`` reads the sampler's ``num_classes``.
        segmenter: a segmentation network scoring mask-conditioned samples: images ``[N, 3, H, W]`` in ``[0, 1]``
            -> class scores ``[N, C, H, W]`` or labels ``[N, H, W]``. Needs ``masks`` and ``num_mask_classes``.
        masks: a fixed-order ``DataLoader`` of conditioning masks (integer ``[N, H, W]``, or batches holding
            them); one sample is drawn per mask, with the mask as the sampler's ``labels``.
        num_mask_classes: the number of mask classes.
        reconstruct: ``(pl_module, images) -> reconstructions`` for an autoencoder, both in ``real_input_range``;
            evaluated on ``reconstruction_data`` with ``reconstruction_metrics``.
        reconstruction_data: a fixed-order ``DataLoader`` of validation images; ``None`` uses ``real``.
        reconstruction_metrics: names among ``"ssim"``, ``"ms_ssim"``, ``"psnr"``, ``"lpips"``.
        on_nonfinite: ``"nan"`` to log NaN for values whose samples (or reconstructions) are not finite and go on
            training, ``"raise"`` to let the error end the run.
        stages: the trainer entry points that evaluate, among ``"fit"``, ``"validate"``, ``"test"``; with
            ``"validate"`` (``"test"``), ``trainer.validate(model, ckpt_path=...)`` (``trainer.test``) evaluates the
            loaded weights once, at the end of its loop, and returns the values with its results.
        refingerprint_on_resume: on resume, fingerprint the real data again (read and hash) rather than trust the
            checkpoint's fingerprint.

    Raises:
        MisconfigurationException: an argument of the wrong type or value (the message names it and the value);
            at ``setup``: an empty real loader or one of fewer than 2 images, a KID ``subset_size`` above the real
            set's size, real images outside ``real_input_range`` or not finite, a ``cache_dir`` that is a file;
            ``"kid"`` with real statistics instead of real images, a shuffling dataloader, a KID ``subset_size``
            above ``num_samples``, an unreadable statistics file, a classifier without a known class count, or
            a segmenter without its masks.

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
        real: DataLoader | str | os.PathLike[str] | ReferenceStatistics | None,
        metrics: Sequence[str] = ("fid", "is"),
        feature_extractor: nn.Module | Mapping[str, nn.Module | None] | None = None,
        *,
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        evaluate_on_last_epoch: bool = False,
        num_samples: int = 10_000,
        batch_size: int = 100,
        seed: int = 0,
        prefix: str = "gen/",
        log_images: bool = True,
        num_images: int = 64,
        log_figures: bool = True,
        progress_bar: bool = True,
        real_input_range: InputRange | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        guidance: Sequence[float] | None = None,
        ema: EMASource = "auto",
        classifier: nn.Module | None = None,
        num_classes: int | None = None,
        segmenter: nn.Module | None = None,
        masks: DataLoader | None = None,
        num_mask_classes: int | None = None,
        reconstruct: Callable[[LightningModule, Tensor], Tensor] | None = None,
        reconstruction_data: DataLoader | None = None,
        reconstruction_metrics: Sequence[str] = ("ssim", "psnr"),
        on_nonfinite: Literal["nan", "raise"] = "nan",
        stages: Sequence[str] = ("fit",),
        refingerprint_on_resume: bool = True,
    ) -> None:
        super().__init__()
        self.classifier = self._check_module(classifier, "classifier")
        self.num_classes = check_optional_int(num_classes, "num_classes", 2)
        self._check_segmenter(segmenter, masks, num_mask_classes)
        if reconstruct is not None and not callable(reconstruct):
            raise misconfigured("reconstruct", reconstruct, "None or a function (pl_module, images) -> images")
        self.reconstruct = reconstruct
        self.reconstruction_metrics = check_names(
            reconstruction_metrics, "reconstruction_metrics", RECONSTRUCTION_METRICS, allow_empty=False
        )
        others = classifier is not None or segmenter is not None or reconstruct is not None
        self.metric_names = check_names(metrics, "metrics", tuple(_METRICS), allow_empty=others)
        self.every_n_epochs = check_optional_int(every_n_epochs, "every_n_epochs", 1)
        self.every_n_steps = check_optional_int(every_n_steps, "every_n_steps", 1)
        if self.every_n_epochs is None and self.every_n_steps is None:
            raise MisconfigurationException("Expected `every_n_epochs` or `every_n_steps` to be set, got both None.")
        self.evaluate_on_last_epoch = check_bool(evaluate_on_last_epoch, "evaluate_on_last_epoch")
        self.num_samples = check_int(num_samples, "num_samples", 2)
        if self.num_samples > MAX_SAMPLES:
            raise misconfigured("num_samples", num_samples, "at most 2**32")
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.seed = check_int(seed, "seed", 0)
        if self.seed >= 2**64:
            raise misconfigured("seed", seed, "below 2**64")
        if not isinstance(prefix, str):
            raise misconfigured("prefix", prefix, "a str")
        self.prefix = prefix
        self.log_images = check_bool(log_images, "log_images")
        self.num_images = min(check_int(num_images, "num_images", 1), self.num_samples)
        self.log_figures = check_bool(log_figures, "log_figures")
        self.progress_bar = check_bool(progress_bar, "progress_bar")
        self.feature_extractor = self._check_feature_extractor(feature_extractor)
        self.metric_kwargs = self._check_metric_kwargs(metric_kwargs)
        self._sampler_source = self._check_sampler(sampler)
        self.guidance = check_guidance(guidance)
        self.real_input_range = self._check_real_input_range(real_input_range)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self._real_loader, self._real_statistics = self._check_real(real)
        self.reconstruction_data = self._check_reconstruction_data(reconstruction_data)
        if not (ema is None or ema == "auto" or isinstance(ema, nn.Module)):
            raise misconfigured("ema", ema, "'auto', None or an EMA nn.Module")
        self.ema = ema
        if on_nonfinite not in ("nan", "raise"):
            raise misconfigured("on_nonfinite", on_nonfinite, "'nan' or 'raise'")
        self.on_nonfinite = on_nonfinite
        self.stages = check_names(stages, "stages", _STAGES, allow_empty=False)
        self.refingerprint_on_resume = check_bool(refingerprint_on_resume, "refingerprint_on_resume")

        self.sampler: Any = None
        self.metrics: dict[str, nn.Module] = {}
        self._class_fidelity: ClassFidelity | None = None
        self._mask_fidelity: MaskFidelity | None = None
        self._reconstruction: ReconstructionQuality | None = None
        self._history: list[dict[str, Any]] = []
        self._best: dict[str, float] = {}
        self._data_key: tuple[str, int] | None = None
        self._checkpoint_data_key: tuple[str, int] | None = None
        self._fid_real_ready = False
        self._kid_real_ready = False
        self._last_evaluated_epoch = -1
        self._last_evaluated_step = -1
        self._warned: set[str] = set()
        self._real_axes: tuple[Tensor, tuple[Tensor, Tensor]] | None = None
        self._keys: dict[tuple[str, Any], str] = {}
        self._root_cached = False

    # Configuration checks -----------------------------------------------------------------------------------

    @staticmethod
    def _check_module(value: Any, name: str) -> nn.Module | None:
        if value is not None and not isinstance(value, nn.Module):
            raise misconfigured(name, value, "None or an nn.Module")
        return value

    def _check_segmenter(self, segmenter: Any, masks: Any, num_mask_classes: Any) -> None:
        self.segmenter = self._check_module(segmenter, "segmenter")
        self.num_mask_classes = check_optional_int(num_mask_classes, "num_mask_classes", 1)
        self.masks = None if masks is None else check_fixed_order_loader(masks, "masks")
        given = [segmenter is not None, masks is not None, num_mask_classes is not None]
        if any(given) and not all(given):
            raise MisconfigurationException(
                "A segmenter evaluation needs `segmenter`, `masks` and `num_mask_classes` together, got "
                f"segmenter={segmenter!r}, masks={masks!r}, num_mask_classes={num_mask_classes!r}."
            )

    def _check_feature_extractor(self, value: Any) -> dict[str, nn.Module | None]:
        """One extractor (or ``None``, the standard Inception) per metric name."""
        if value is None or isinstance(value, nn.Module):
            return dict.fromkeys(self.metric_names, value)
        if not isinstance(value, Mapping) or any(
            name not in self.metric_names or not (module is None or isinstance(module, nn.Module))
            for name, module in value.items()
        ):
            raise misconfigured(
                "feature_extractor", value, f"None, an nn.Module, or a mapping from {self.metric_names} to them"
            )
        return {name: value.get(name) for name in self.metric_names}

    def _check_metric_kwargs(self, metric_kwargs: Any) -> dict[str, dict[str, Any]]:
        if metric_kwargs is None:
            return {}
        names = self.metric_names + (self.reconstruction_metrics if self.reconstruct is not None else ())
        if not isinstance(metric_kwargs, Mapping) or any(
            name not in names or not isinstance(kwargs, Mapping) for name, kwargs in metric_kwargs.items()
        ):
            raise misconfigured("metric_kwargs", metric_kwargs, f"a mapping from {names} to dicts")
        reserved = {"feature", "input_range", "feature_input", "reset_real_features", "real_statistics"}
        reserved |= {"data_range", "normalize"}
        if any(reserved & set(kwargs) for kwargs in metric_kwargs.values()):
            raise misconfigured("metric_kwargs", metric_kwargs, f"free of the callback-managed {sorted(reserved)}")
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
            raise misconfigured(
                "sampler", sampler, "a sampler with `output_range`, or a function of the LightningModule"
            )
        if hasattr(sampler, "output_range"):
            try:
                sampler_output_range(sampler)
            except (TypeError, ValueError) as error:
                raise MisconfigurationException(f"Invalid `sampler` {sampler!r}: {error}") from error
        return sampler

    def _check_sampler_setup(self) -> None:
        """The checks that need the resolved sampler: guidance sweep and the classifier's class count."""
        sampler = self.sampler
        if self.classifier is not None and self.num_classes is None:
            count = getattr(sampler, "num_classes", None)
            if not isinstance(count, int) or count < 2:
                raise MisconfigurationException(
                    f"A `classifier` needs `num_classes`, or a sampler with `num_classes`; got {sampler!r}."
                )
            self.num_classes = count
        if self.guidance is None:
            return
        # The sweep asks the sampler, not a list of classes: a guided sampler has these attributes.
        if not all(hasattr(sampler, name) for name in _GUIDED_SAMPLER_ATTRIBUTES):
            raise MisconfigurationException(
                f"A guidance sweep (`guidance`={list(self.guidance)}) needs a guided sampler (DiffusionSampler, "
                f"LogSNRDiffusionSampler, FlowMatchingSampler, or one with attributes "
                f"{list(_GUIDED_SAMPLER_ATTRIBUTES)}), got {sampler!r}."
            )
        if any(w != 0 for w in self.guidance) and (sampler.null_label is None or sampler.num_classes is None):
            raise MisconfigurationException(
                f"Guidance strengths {list(self.guidance)} need a guided sampler with `null_label` and `num_classes` "
                f"(labels drawn per sample), got null_label={sampler.null_label}, num_classes={sampler.num_classes}."
            )

    def _check_data_before_training(self) -> None:
        """What can be checked cheaply at ``setup``, so that it fails before the first training step, not after N
        epochs: the cache folder, the real loader's size and its first batch, and the other loaders' sizes."""
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise MisconfigurationException(
                f"Expected `cache_dir` to be a directory, got '{self.cache_dir}', which exists and is not one."
            )
        for name, loader in (("masks", self.masks), ("reconstruction_data", self.reconstruction_data)):
            if loader is not None and known_sample_count(loader) == 0:
                raise MisconfigurationException(f"Expected `{name}` to hold samples, got an empty DataLoader.")
        if self._real_loader is not None and {"fid", "kid"} & set(self.metrics):
            self._check_real_loader(self._real_loader)

    def _check_real_loader(self, loader: DataLoader) -> None:
        count = known_sample_count(loader)
        if count == 0:
            raise MisconfigurationException(
                "Expected `real` to hold real images, got an empty DataLoader (no batches): FID and KID compare the "
                "samples with real images."
            )
        if count is not None and count < 2:
            raise MisconfigurationException(f"Expected `real` to hold at least 2 images, got a DataLoader of {count}.")
        kid = self.metrics.get("kid")
        if kid is not None and count is not None and kid.subset_size > count:
            raise MisconfigurationException(
                f"KID's `subset_size` ({kid.subset_size}) exceeds the {count} real images of `real`; pass "
                f"metric_kwargs={{'kid': {{'subset_size': ...}}}} with at most {count}."
            )
        try:
            # Iterating a DataLoader draws its base seed from the global RNG, which training must not see.
            with torch.random.fork_rng(devices=[]):
                first = next(iter(loader))
        except StopIteration:
            raise MisconfigurationException(
                "Expected `real` to hold real images, got a DataLoader that yields no batch."
            ) from None
        try:
            images_to_uint8(batch_to_images(first, "real batch"), self._real_range(), name="real images")
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(
                f"The first batch of `real` cannot be used (`real_input_range` is {self._real_range()}): {error}"
            ) from error

    @staticmethod
    def _check_real_input_range(value: Any) -> InputRange | None:
        try:
            return check_input_range(value)
        except (TypeError, ValueError) as error:
            raise misconfigured("real_input_range", value, "None, (0, 1) or (-1, 1)") from error

    def _check_real(self, real: Any) -> tuple[DataLoader | None, ReferenceStatistics | None]:
        needs_real = bool({"fid", "kid"} & set(self.metric_names))
        if real is None:
            if needs_real:
                raise misconfigured("real", real, f"real images or statistics for {self.metric_names}")
            return None, None
        if isinstance(real, DataLoader):
            return check_fixed_order_loader(real, "real"), None
        if isinstance(real, ReferenceStatistics):
            statistics = real
        elif isinstance(real, (str, os.PathLike)):
            try:
                statistics = load_statistics(real)
            except (OSError, ValueError) as error:
                raise MisconfigurationException(f"Cannot use `real`={str(real)!r} as statistics: {error}") from error
        else:
            raise misconfigured("real", real, "a DataLoader, a statistics file path or ReferenceStatistics")
        if "kid" in self.metric_names:
            raise MisconfigurationException(
                f"KID needs real features, not statistics; got `real`={real!r} with metrics={self.metric_names}. "
                "Pass a DataLoader of real images, or drop 'kid'."
            )
        return None, statistics

    def _check_reconstruction_data(self, data: Any) -> DataLoader | None:
        if data is not None:
            return check_fixed_order_loader(data, "reconstruction_data")
        if self.reconstruct is not None and self._real_loader is None:
            raise MisconfigurationException(
                "`reconstruct` needs images to reconstruct: pass `reconstruction_data` (or `real` as a DataLoader)."
            )
        return self._real_loader if self.reconstruct is not None else None

    # State ---------------------------------------------------------------------------------------------------

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(prefix=self.prefix, metrics=self.metric_names, seed=self.seed)

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per evaluation: ``epoch``, ``global_step``, ``ema`` (whether averaged weights were used),
        ``stage`` (``"fit"``, ``"validate"`` or ``"test"``),
        the logged values (unprefixed) and ``eval_seconds`` with its split ``seconds/<phase>``."""
        return [dict(record) for record in self._history]

    @property
    def best(self) -> dict[str, float]:
        """The best value so far of each reported metric (``fid``, ``is``, ``accuracy``, ...), by its direction."""
        return dict(self._best)

    @property
    def cache_key(self) -> str | None:
        """The key of the real statistics, once the real data are fingerprinted (or restored from a checkpoint)."""
        if self._data_key is None or not self.metrics:
            return None
        return self._statistics_key(next(name for name in ("fid", "kid", *self.metrics) if name in self.metrics))

    @property
    def _known_data_key(self) -> tuple[str, int] | None:
        """The data fingerprint of this run, or until one is taken, the checkpoint's."""
        return self._data_key if self._data_key is not None else self._checkpoint_data_key

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "best": self.best,
            "data_key": None if self._known_data_key is None else list(self._known_data_key),
            "last_evaluated_epoch": self._last_evaluated_epoch,
            "last_evaluated_step": self._last_evaluated_step,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "num_images": self.num_images,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._history = [dict(record) for record in state_dict.get("history", [])]
        self._best = dict(state_dict.get("best", {}))
        data_key = state_dict.get("data_key")
        self._checkpoint_data_key = None if data_key is None else (str(data_key[0]), int(data_key[1]))
        # The data may have changed since the checkpoint (a preprocessing fix, another split): by default the
        # first evaluation fingerprints them again (reading and hashing, no extraction) instead of trusting it.
        self._data_key = None if self.refingerprint_on_resume else self._checkpoint_data_key
        self._last_evaluated_epoch = state_dict.get("last_evaluated_epoch", -1)
        self._last_evaluated_step = state_dict.get("last_evaluated_step", -1)
        saved = (state_dict.get("seed", self.seed), state_dict.get("num_samples", self.num_samples))
        if saved != (self.seed, self.num_samples):
            rank_zero_warn(
                f"GenerativeMetricsCallback resumes with (seed, num_samples) = {(self.seed, self.num_samples)}, "
                f"the checkpoint used {saved}: values before and after the restart are not comparable."
            )

    # Hooks ---------------------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # Lightning passes a TrainerFn, a str enum
        if stage not in self.stages:
            if stage in _STAGES:
                self._warn_once(
                    f"stage:{stage}",
                    f"GenerativeMetricsCallback does not evaluate in `trainer.{stage}()`: it runs in stages="
                    f"{self.stages}. Pass stages=(..., {stage!r}) to evaluate there.",
                )
            return
        if self.sampler is None:
            self.sampler = self._resolve_sampler(pl_module)
            self._check_sampler_setup()
        if isinstance(self.ema, nn.Module):
            try:
                match_ema_target(pl_module, self.ema)
            except ValueError as error:
                raise MisconfigurationException(f"Invalid `ema`: {error}") from error
        if not (self.metrics or self._class_fidelity or self._mask_fidelity or self._reconstruction):
            self._build(sampler_output_range(self.sampler))
        self._check_data_before_training()
        if trainer.world_size > 1:
            # Lightning recommends sync_dist=True for epoch-level values under DDP; ours are already global.
            warnings.filterwarnings(
                "ignore",
                message=rf"It is recommended to use `self\.log\({re.escape(repr(self.prefix)[:-1])}",
                category=PossibleUserWarning,
            )

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # `trainer.validate()`: one evaluation of the loaded weights
            if TrainerFn.VALIDATING.value in self.stages and not trainer.sanity_checking:
                self._evaluate(trainer, pl_module, hook="validation")
            return
        # The end-of-epoch validation, where ModelCheckpoint (on_validation_end) reads the logged values.
        if trainer.is_last_batch and self._epoch_due(trainer):
            self._evaluate(trainer, pl_module, hook="validation")

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.TESTING and TrainerFn.TESTING.value in self.stages:
            self._evaluate(trainer, pl_module, hook="test")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._epoch_due(trainer):
            self._evaluate(trainer, pl_module, hook="train_epoch_end")

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps is None or not self._may_evaluate(trainer) or step == self._last_evaluated_step:
            return
        if step > 0 and step % self.every_n_steps == 0:
            self._evaluate(trainer, pl_module, hook="train_batch_end")

    @staticmethod
    def _may_evaluate(trainer: Trainer) -> bool:
        return not (trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING)

    def _epoch_due(self, trainer: Trainer) -> bool:
        epoch = trainer.current_epoch
        if not self._may_evaluate(trainer) or epoch == self._last_evaluated_epoch:
            return False
        if trainer.global_step == self._last_evaluated_step:
            return False  # a step evaluation has just logged the values of this model
        on_cadence = self.every_n_epochs is not None and (epoch + 1) % self.every_n_epochs == 0
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

    def _real_range(self) -> InputRange:
        return self.real_input_range or sampler_output_range(self.sampler)

    def _build(self, input_range: InputRange) -> None:
        self.metrics = self._build_metrics(input_range)
        if self.classifier is not None:
            self._class_fidelity = ClassFidelity(self.classifier, self.num_classes, input_range)
        if self.segmenter is not None:
            self._mask_fidelity = MaskFidelity(self.segmenter, self.num_mask_classes, input_range)
        if self.reconstruct is not None:
            kwargs = {name: self.metric_kwargs.get(name, {}) for name in self.reconstruction_metrics}
            self._reconstruction = ReconstructionQuality(self.reconstruction_metrics, self._real_range(), kwargs)

    def _build_metrics(self, input_range: InputRange) -> dict[str, nn.Module]:
        extractors: dict[str, Any] = dict(self.feature_extractor)
        pool_users = [name for name in ("fid", "kid") if name in extractors and extractors[name] is None]
        if pool_users:
            from lightning_genmetrics.features.inception import FIDInceptionV3

            # One network for FID, KID and IS: one pass of it per batch gives the pool features and the logits.
            pool = FIDInceptionV3("2048")
            extractors.update(dict.fromkeys(pool_users, pool))
            if extractors.get("is", "") is None:
                extractors["is"] = pool.layer_view("logits_unbiased")
        if extractors.get("is", "") is None:
            extractors["is"] = "logits_unbiased"
        metrics: dict[str, nn.Module] = {}
        for name in self.metric_names:
            kwargs = dict(self.metric_kwargs.get(name, {}))
            if name == "is":
                metrics[name] = InceptionScore(
                    extractors[name], input_range=input_range, feature_input="float", **kwargs
                )
            elif name == "kid":
                metrics[name] = KernelInceptionDistance(
                    extractors[name],
                    input_range=input_range,
                    feature_input="float",
                    reset_real_features=False,
                    **kwargs,
                )
            else:
                metrics[name] = FrechetInceptionDistance(
                    extractors[name], input_range=input_range, feature_input="float", **kwargs
                )
        if self._real_statistics is not None and "fid" in metrics:
            self._use_real_statistics(metrics["fid"], self._real_statistics)
        return metrics

    def _modules(self) -> list[nn.Module]:
        extra = (self._class_fidelity, self._mask_fidelity, self._reconstruction)
        return [*self.metrics.values(), *(module for module in extra if module is not None)]

    def _use_real_statistics(self, fid: nn.Module, statistics: ReferenceStatistics) -> None:
        try:
            fid.load_real_statistics(statistics)
        except ValueError as error:
            raise MisconfigurationException(f"The real statistics do not fit the FID extractor: {error}") from error
        self._fid_real_ready = True

    # Evaluation ----------------------------------------------------------------------------------------------

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, *, hook: _Hook) -> None:
        stage = trainer.state.fn.value if trainer.state.fn is not None else TrainerFn.FITTING.value
        if stage == TrainerFn.FITTING.value:
            self._last_evaluated_epoch = trainer.current_epoch
            self._last_evaluated_step = trainer.global_step
        device = pl_module.device
        timer = PhaseTimer(device)
        started = time.perf_counter()
        for module in self._modules():
            module.to(device)
        with (
            isolated_rng(device),
            torch.inference_mode(),
            eval_mode(pl_module),
            evaluation_weights(trainer, pl_module, self, self.ema, in_validation=hook == "validation") as weights,
        ):
            with timer("real"):
                self._prepare_real(trainer, device)
            values, grids, projection = self._evaluate_samplers(trainer, device, timer)
            self._cache_real_root(trainer)
            if self._reconstruction is not None:
                values.update(self._evaluate_reconstruction(trainer, pl_module, device, timer))
        seconds = {"eval_seconds": time.perf_counter() - started}
        seconds.update({f"seconds/{phase}": value for phase, value in timer.seconds.items()})
        # Rank 0's clock, so every rank logs the same value.
        values.update(trainer.strategy.broadcast(seconds, src=0))
        step = self._logging_step(trainer, hook)
        self._log_scalars(trainer, pl_module, values, step=step if hook == "train_batch_end" else None)
        self._record(trainer, values, ema=weights == "ema", stage=stage)
        for suffix, images in grids.items():
            self._log_grid(trainer, images, suffix, step)
        self._log_figures(trainer, values, projection, step)

    def _evaluate_samplers(
        self, trainer: Trainer, device: torch.device, timer: PhaseTimer
    ) -> tuple[dict[str, float], dict[str, Tensor], figures.PCAProjection | None]:
        """The values, rank 0's grid images and the PCA projection of the sampler, or of the best strength."""
        if self.guidance is None:
            values, images, projection = self._evaluate_sampler(trainer, device, self.sampler, timer, "")
            return values, {} if images is None else {"": images}, projection
        values: dict[str, float] = {}
        grids: dict[str, Tensor] = {}
        per_w: dict[float, dict[str, float]] = {}
        projections: dict[float, figures.PCAProjection | None] = {}
        for w in self.guidance:
            suffix = f"/w={w:g}"
            per_w[w], images, projections[w] = self._evaluate_sampler(
                trainer, device, self._guided_sampler(w), timer, f" w={w:g}"
            )
            values.update({f"{name}{suffix}": value for name, value in per_w[w].items()})
            if images is not None:
                grids[suffix] = images
        best_w = self._best_guidance(per_w)
        values.update(per_w[best_w])
        values["best_w"] = best_w
        return values, grids, projections[best_w]

    def _evaluate_sampler(
        self, trainer: Trainer, device: torch.device, sampler: Any, timer: PhaseTimer, label: str
    ) -> tuple[dict[str, float], Tensor | None, figures.PCAProjection | None]:
        values: dict[str, float] = {}
        images = projection = None
        if self.metrics or self._class_fidelity is not None:
            images, nonfinite = self._update_generated(trainer, device, sampler, timer, label)
            what = f"of the {self.num_samples} generated samples{label} are"
            if self._nonfinite_values(trainer, nonfinite, self._generated_value_names, what, values):
                images = None
            else:
                with timer("compute"):
                    values = self._compute()
                    projection = self._projection(trainer)
        if self._mask_fidelity is not None:
            values.update(self._evaluate_masks(trainer, device, sampler, timer, label))
        return values, images, projection

    def _guided_sampler(self, w: float) -> Any:
        # A shallow copy shares the model; the strengths were checked against the sampler in `setup`.
        sampler = copy.copy(self.sampler)
        sampler.guidance = w
        return sampler

    def _best_guidance(self, per_w: dict[float, dict[str, float]]) -> float:
        """The strength with the best value of the first of FID, KID, IS, accuracy, mIoU that is evaluated.

        A strength whose value is NaN (non-finite samples) ranks last; when all are NaN the first is reported.
        """
        name = next(name for name in _BEST_GUIDANCE_BY if name in next(iter(per_w.values())))
        sign = 1.0 if _HIGHER_IS_BETTER[name] else -1.0
        return max(per_w, key=lambda w: sign * per_w[w][name] if math.isfinite(per_w[w][name]) else -math.inf)

    def _conditioning(self, begin: int, end: int) -> Tensor | None:
        """Balanced class labels of samples ``[begin, end)`` when a classifier judges them, else the sampler's own."""
        if self._class_fidelity is None:
            return None
        return torch.arange(begin, end) % self._class_fidelity.num_classes

    def _progress(self, trainer: Trainer, total: int, label: str) -> Any:
        from tqdm import tqdm

        show = self.progress_bar and trainer.is_global_zero and trainer.progress_bar_callback is not None
        return tqdm(total=total, desc=f"{self.prefix}sampling{label}", leave=False, disable=not show, unit="batch")

    def _draw(
        self, sampler: Any, begin: int, end: int, device: torch.device, labels: Tensor | None
    ) -> tuple[Tensor | None, int]:
        """Samples ``[begin, end)``, or ``None`` and the number of non-finite ones among them.

        With ``on_nonfinite="raise"`` the samplers' (or the image checks') error propagates instead.
        """
        try:
            images = sample_range(
                sampler, begin, end, seed=self.seed, batch_size=self.batch_size, device=device, labels=labels
            )
        except NonFiniteSamplesError as error:
            if self.on_nonfinite == "raise":
                raise
            return None, error.count
        if self.on_nonfinite == "raise":
            return images, 0
        nonfinite = count_nonfinite(images)  # a sampler of the user's own may not check its output
        return (None, nonfinite) if nonfinite else (images, 0)

    def _update_generated(
        self, trainer: Trainer, device: torch.device, sampler: Any, timer: PhaseTimer, label: str
    ) -> tuple[Tensor | None, int]:
        """Sample this rank's shard into the metrics; rank 0's grid images and this rank's non-finite count."""
        for metric in self.metrics.values():
            metric.reset()
        if self._class_fidelity is not None:
            self._class_fidelity.reset()
        start, stop = shard_bounds(self.num_samples, trainer.global_rank, trainer.world_size)
        want_grid = self.log_images and trainer.is_global_zero
        shown: list[Tensor] = []
        nonfinite = 0
        bounds = [(begin, min(begin + self.batch_size, stop)) for begin in range(start, stop, self.batch_size)]
        with self._progress(trainer, len(bounds), label) as bar:
            for begin, end in bounds:
                labels = self._conditioning(begin, end)
                with timer("sampling"):
                    images, bad = self._draw(sampler, begin, end, device, labels)
                bar.update(1)
                if images is None:
                    nonfinite += bad
                    continue
                with timer("features"):
                    self._update_batch(images, torch.arange(begin, end, device=device), labels)
                if want_grid and begin < self.num_images:
                    shown.append(images[: self.num_images - begin].cpu())
        if not want_grid or nonfinite:
            return None, nonfinite
        # Rank 0's shard starts at sample 0; when it is shorter than the grid, rank 0 draws the rest itself.
        have = sum(chunk.shape[0] for chunk in shown)
        if have < self.num_images:
            rest, _ = self._draw(sampler, have, self.num_images, device, self._conditioning(have, self.num_images))
            if rest is None:
                return None, nonfinite
            shown.append(rest.cpu())
        return torch.cat(shown), nonfinite

    def _update_batch(self, images: Tensor, ids: Tensor, labels: Tensor | None) -> None:
        # One uint8 tensor for every metric: metrics sharing a network then share its pass over the batch.
        uint8 = images_to_uint8(images, sampler_output_range(self.sampler), name="samples")
        with shared_extraction():
            for name, metric in self.metrics.items():
                if name == "is":
                    metric.update(uint8, sample_ids=ids)
                elif name == "kid":
                    metric.update(uint8, real=False, sample_ids=ids)
                else:
                    metric.update(uint8, real=False)
            if self._class_fidelity is not None and labels is not None:
                self._class_fidelity.update(uint8, labels.to(images.device))

    def _compute(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for name, metric in self.metrics.items():
            result = metric.compute()
            if isinstance(result, tuple):
                values[name], values[f"{name}_std"] = float(result[0]), float(result[1])
            else:
                values[name] = float(result)
        if self._class_fidelity is not None:
            values.update(self._class_fidelity.compute())
        return values

    def _generated_value_names(self) -> list[str]:
        """The names ``_compute`` returns: what is logged as NaN when the samples are not finite."""
        names = [f"{name}{suffix}" for name in self.metrics for suffix in ("", "_std")[: 2 if name in _WITH_STD else 1]]
        if self._class_fidelity is not None:
            names.extend(self._class_fidelity.value_names())
        return names

    def _nonfinite_values(
        self, trainer: Trainer, nonfinite: int, names: Callable[[], Sequence[str]], what: str, values: dict[str, float]
    ) -> bool:
        """Whether any rank drew non-finite samples; if so, put NaN for ``names()`` in ``values`` and warn.

        Every rank calls this (the counts are summed over the ranks), so every rank makes the same decision: the
        metrics' states are then neither synchronised nor computed, and no collective is left waiting.
        """
        count = int(trainer.strategy.reduce(torch.tensor(nonfinite, dtype=torch.int64), reduce_op="sum"))
        if count == 0:
            return False
        values.update(dict.fromkeys(names(), math.nan))
        rank_zero_warn(
            f"GenerativeMetricsCallback: {count} {what} not finite (NaN or Inf) "
            f"at epoch {trainer.current_epoch}, step {trainer.global_step}: logging NaN for "
            f"{[self.prefix + name for name in names()]}. Training goes on; pass on_nonfinite='raise' to stop instead."
        )
        return True

    def _evaluate_masks(
        self, trainer: Trainer, device: torch.device, sampler: Any, timer: PhaseTimer, label: str
    ) -> dict[str, float]:
        """One sample per conditioning mask (batches sharded over the ranks); the segmenter's scores of them."""
        fidelity = self._mask_fidelity
        fidelity.reset()
        nonfinite = 0
        for item in RankShare(self.masks, rank=trainer.global_rank, world_size=trainer.world_size):
            masks = batch_to_masks(item.batch).to(device)
            count = masks.shape[0]
            with timer("sampling"):
                images, bad = self._draw(sampler, item.offset, item.offset + count, device, masks)
            if images is None:
                nonfinite += bad
                continue
            with timer("features"):
                fidelity.update(images, masks)
        values: dict[str, float] = {}
        what = f"mask-conditioned samples{label} are"
        if self._nonfinite_values(trainer, nonfinite, fidelity.value_names, what, values):
            return values
        with timer("compute"):
            return fidelity.compute()

    def _evaluate_reconstruction(
        self, trainer: Trainer, pl_module: LightningModule, device: torch.device, timer: PhaseTimer
    ) -> dict[str, float]:
        quality = self._reconstruction
        quality.reset()
        nonfinite = 0
        for item in RankShare(self.reconstruction_data, rank=trainer.global_rank, world_size=trainer.world_size):
            images = batch_to_images(item.batch, "real batch").to(device)
            with timer("reconstruction"):
                reconstructions = self.reconstruct(pl_module, images)
            if not isinstance(reconstructions, Tensor):
                raise TypeError(f"Expected `reconstruct` to return a tensor, got {type(reconstructions).__name__}.")
            bad = count_nonfinite(reconstructions) if self.on_nonfinite == "nan" else 0
            if bad:
                nonfinite += bad
                continue
            with timer("features"):
                quality.update(images, reconstructions)
        names = [f"recon/{name}" for name in quality.metrics]
        values: dict[str, float] = {}
        if self._nonfinite_values(trainer, nonfinite, lambda: names, "reconstructions are", values):
            return values
        with timer("compute"):
            return {f"recon/{name}": value for name, value in quality.compute().items()}

    # Real side -----------------------------------------------------------------------------------------------

    def _statistics_key(self, name: str) -> str:
        """The cache key of metric ``name``'s real side; remembered per data key (hashing the weights takes time)."""
        memo = (name, self._data_key)
        if memo not in self._keys:
            extractor = self.metrics[name].extractor
            self._keys[memo] = real_cache_key(*self._data_key, extractor.provenance_fields(), self._real_range())
        return self._keys[memo]

    def _fid_key(self) -> str:
        return self._statistics_key("fid")

    def _kid_key(self) -> str:
        kid = self.metrics["kid"]
        return kid_cache_key(self._statistics_key("kid"), kid.max_samples, kid.seed)

    def _prepare_real(self, trainer: Trainer, device: torch.device) -> None:
        fid, kid = self.metrics.get("fid"), self.metrics.get("kid")
        need_fid = fid is not None and not self._fid_real_ready
        need_kid = kid is not None and not self._kid_real_ready
        if not (need_fid or need_kid):
            return
        if self.cache_dir is not None:
            if self._data_key is None and self._cache_has_files(trainer):
                self._read_real(trainer, device, None)  # fingerprint only, to look the files up
            if self._data_key is not None:
                if need_fid and self._load_cached_fid(trainer, fid):
                    need_fid = False
                if need_kid and self._load_cached_kid(trainer, kid):
                    need_kid = False
        if not (need_fid or need_kid):
            return
        temporary = None
        if need_fid:
            temporary = FrechetInceptionDistance(
                fid.extractor.module, input_range=fid.extractor.input_range, feature_input=fid.extractor.feature_input
            ).to(device)

        def consume(uint8: Tensor) -> None:
            with shared_extraction():
                if temporary is not None:
                    temporary.update(uint8, real=True)
                if need_kid:
                    kid.update(uint8, real=True)

        self._read_real(trainer, device, consume)
        if need_kid:
            self._kid_real_ready = True
            if self.cache_dir is not None:
                reservoir = kid.real_reservoir()  # every rank: a collective
                self._write_cache(trainer, kid_cache_path(self.cache_dir, self._kid_key()), save_tensors, reservoir)
        if temporary is not None:
            statistics = temporary.real_statistics()
            if self.cache_dir is not None:
                path = real_cache_path(self.cache_dir, self._fid_key())
                self._write_cache(trainer, path, save_statistics, statistics)
            self._use_real_statistics(fid, statistics)

    def _read_real(self, trainer: Trainer, device: torch.device, consume: Callable[[Tensor], None] | None) -> None:
        """Read this rank's share of the real data (feeding ``consume``), and take the data's fingerprint."""
        self._data_key = read_real_images(
            RankShare(self._real_loader, rank=trainer.global_rank, world_size=trainer.world_size),
            input_range=self._real_range(),
            device=device,
            consume=consume,
            reduce_sum=lambda table: trainer.strategy.reduce(table, reduce_op="sum"),
        )
        if self._checkpoint_data_key not in (None, self._data_key):
            self._warn_once(
                "data-changed",
                "GenerativeMetricsCallback: the real data differ from those of the checkpoint this run resumed from "
                "(another fingerprint); the real statistics are those of the current data, so values logged before "
                "and after the restart are not comparable.",
            )

    def _cache_has_files(self, trainer: Trainer) -> bool:
        """Whether rank 0's cache folder holds any real statistics (else a fingerprint pass cannot hit)."""
        found = False
        if trainer.is_global_zero:
            try:
                found = self.cache_dir.is_dir() and any(self.cache_dir.glob("real-*.npz"))
            except OSError as error:
                self._warn_once(f"list:{self.cache_dir}", f"Cannot list the cache folder '{self.cache_dir}': {error}.")
        return bool(trainer.strategy.broadcast(found, src=0))

    def _write_cache(self, trainer: Trainer, path: Path, write: Callable[[Path, Any], None], content: Any) -> bool:
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

    def _read_cache(
        self, trainer: Trainer, path: Path, read: Callable[[Path], Any], what: str, *, send: bool = True
    ) -> Any:
        """Global rank 0 reads a cache file and (with ``send``) sends its content to every rank, which need not
        share rank 0's filesystem; ``None`` when the file is absent or cannot be read (warned about: it is then
        recomputed)."""
        content = None
        if trainer.is_global_zero:
            try:
                if path.is_file():
                    content = read(path)
            except (OSError, ValueError) as error:
                self._warn_cache_fault(path, what, error)
        return trainer.strategy.broadcast(content, src=0) if send else content

    def _warn_cache_fault(self, path: Path, what: str, error: Exception) -> None:
        rank_zero_warn(
            f"GenerativeMetricsCallback ignores the cached {what} '{path}' ({type(error).__name__}: {error}); "
            "recomputing it and writing it again."
        )

    def _load_cached_fid(self, trainer: Trainer, fid: nn.Module) -> bool:
        path = real_cache_path(self.cache_dir, self._fid_key())
        statistics = self._read_cache(trainer, path, load_statistics, "real statistics")
        if statistics is None:
            return False
        try:
            fid.load_real_statistics(statistics)  # the same data on every rank, so the same outcome
        except ValueError as error:
            self._warn_cache_fault(path, "real statistics", error)
            return False
        self._fid_real_ready = True
        self._load_cached_root(trainer, fid)
        return True

    def _cache_real_root(self, trainer: Trainer) -> None:
        """Write ``Σ_r^½`` beside the cached statistics once (rank 0): a new run then skips its eigendecomposition.

        Written unless this run loaded it, so a file that could not be read is replaced.
        """
        fid = self.metrics.get("fid")
        if self._root_cached or fid is None or self.cache_dir is None or self._data_key is None:
            return
        self._root_cached = True
        if trainer.is_global_zero:
            root = {"root": fid.real_sqrt()}  # computed by this evaluation: no extra work
            self._write_cache(trainer, root_cache_path(self.cache_dir, self._fid_key()), save_tensors, root)

    def _load_cached_root(self, trainer: Trainer, fid: nn.Module) -> None:
        path = root_cache_path(self.cache_dir, self._fid_key())
        root = self._read_cache(trainer, path, lambda file: load_tensors(file, ("root",))["root"], "square root")
        if root is None:
            return
        try:
            fid.load_real_sqrt(root)
            self._root_cached = True
        except (TypeError, ValueError) as error:
            self._warn_cache_fault(path, "square root", error)

    def _load_cached_kid(self, trainer: Trainer, kid: nn.Module) -> bool:
        path = kid_cache_path(self.cache_dir, self._kid_key())
        read = lambda file: load_tensors(file, RESERVOIR)  # noqa: E731
        reservoir = self._read_cache(trainer, path, read, "KID real features", send=False)
        loaded = False
        if reservoir is not None:
            # Rank 0 holds the whole reservoir, the others none: synchronisation merges them into the same set.
            try:
                kid.load_real_reservoir(reservoir)
                loaded = True
            except (TypeError, ValueError) as error:
                self._warn_cache_fault(path, "KID real features", error)
        loaded = bool(trainer.strategy.broadcast(loaded, src=0))
        self._kid_real_ready = loaded
        return loaded

    # Recording and logging -----------------------------------------------------------------------------------

    def _record(self, trainer: Trainer, values: dict[str, float], *, ema: bool, stage: str) -> None:
        record = {"epoch": trainer.current_epoch, "global_step": trainer.global_step, "ema": ema, "stage": stage}
        self._history.append({**record, **values})
        for name, higher in _HIGHER_IS_BETTER.items():
            value, best = values.get(name), self._best.get(name)
            if value is None or not math.isfinite(value):
                continue
            if best is None or (value > best if higher else value < best):
                self._best[name] = value

    def _log_scalars(
        self, trainer: Trainer, pl_module: LightningModule, values: dict[str, float], *, step: int | None
    ) -> None:
        """Through ``pl_module.log``; or, with ``step`` (a step evaluation), to the loggers directly."""
        names = {f"{self.prefix}{name}": value for name, value in values.items()}
        if step is None:
            for name, value in names.items():
                # Every rank logs the same, already global, value.
                pl_module.log(name, value, sync_dist=False, rank_zero_only=False)
            return
        # Lightning logs a value logged in on_train_batch_end again at the following steps until the hook logs
        # again; a step evaluation is one point, so it goes to the loggers directly, at the step Lightning gives
        # the values logged during this batch, and to `callback_metrics`, where ModelCheckpoint and EarlyStopping
        # read monitored keys.
        for logger in trainer.loggers:
            logger.log_metrics(names, step=step)
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in names.items()})

    def _boards(self, trainer: Trainer, what: str) -> list[TensorBoardLogger]:
        boards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if trainer.loggers and not boards:
            self._warn_once(
                "loggers",
                f"GenerativeMetricsCallback logs its {what} to TensorBoardLogger only; the loggers "
                f"{[type(logger).__name__ for logger in trainer.loggers]} get the scalars. Pass log_images=False "
                "and log_figures=False to silence this.",
            )
        return boards

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            rank_zero_warn(message)

    @staticmethod
    def _logging_step(trainer: Trainer, hook: _Hook) -> int:
        """The step Lightning gives the values logged in ``hook``, for the images, figures and step evaluations.

        Lightning logs at the count of batches that stepped the optimizers before the current one, not at
        ``global_step`` (which counts every optimizer's steps: twice a batch for a GAN with two optimizers); at the
        end of the training epoch that count already includes the epoch's last batch. It has no public accessor.
        """
        stepped = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", None)
        if not isinstance(stepped, int):
            return max(trainer.global_step - 1, 0)  # exact with one optimizer
        return max(stepped - 1, 0) if hook == "train_epoch_end" else stepped

    def _log_grid(self, trainer: Trainer, images: Tensor, suffix: str, step: int) -> None:
        from torchvision.utils import make_grid

        uint8 = images_to_uint8(images, sampler_output_range(self.sampler), name="samples")
        grid = make_grid(uint8, nrow=math.ceil(math.sqrt(uint8.shape[0])), padding=1)
        for logger in self._boards(trainer, "sample grid"):
            logger.experiment.add_image(f"{self.prefix}samples{suffix}", grid, global_step=step)

    def _figures_wanted(self, trainer: Trainer) -> bool:
        """The same answer on every rank: the PCA statistics are gathered by a collective."""
        if not self.log_figures or not any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers):
            return False
        if not figures.matplotlib_available():
            self._warn_once(
                "matplotlib",
                "GenerativeMetricsCallback draws its figures with matplotlib, which is not installed: "
                "`pip install matplotlib` (the `plots` extra), or pass log_figures=False.",
            )
            return False
        return True

    def _projection(self, trainer: Trainer) -> figures.PCAProjection | None:
        fid = self.metrics.get("fid")
        if fid is None or not self._figures_wanted(trainer):
            return None
        mu_r, sigma_r, mu_g, sigma_g = fid.gaussians()
        if not trainer.is_global_zero:
            return None
        if self._real_axes is None or not torch.equal(self._real_axes[0], sigma_r):
            # The real covariance is fixed once computed: its principal axes are found once per run.
            self._real_axes = (sigma_r, figures.principal_axes(sigma_r))
        return figures.pca_projection(mu_r, sigma_r, mu_g, sigma_g, axes=self._real_axes[1])

    def _log_figures(self, trainer: Trainer, values: dict[str, float], projection: Any, step: int) -> None:
        if not trainer.is_global_zero or not self._figures_wanted(trainer):
            return
        drawn: dict[str, Any] = {}
        epoch = trainer.current_epoch
        if projection is not None:
            title = f"features of real and generated images, epoch {epoch}"
            if self.guidance is not None:
                title += f", w={values['best_w']:g}"
            drawn["pca"] = figures.pca_figure(projection, title=title)
        if self.guidance is not None and {"fid", "is"} <= set(self.metric_names):
            points = [(w, values[f"fid/w={w:g}"], values[f"is/w={w:g}"]) for w in self.guidance]
            drawn["fid_is_tradeoff"] = figures.tradeoff_figure(points, title=f"guidance trade-off, epoch {epoch}")
        for logger in self._boards(trainer, "figures"):
            for name, figure in drawn.items():
                logger.experiment.add_figure(f"{self.prefix}{name}", figure, global_step=step, close=False)
