"""``GenerativeMetricsCallback``: every N epochs (or steps), sample on all ranks, evaluate, log to the loggers."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_genmetrics.callbacks.config import STAGES, CallbackConfig, EMASource, MetricsArgument
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseTimer, Sampling, evaluation_scope
from lightning_genmetrics.callbacks.plan import EvaluationPlan, build_plan
from lightning_genmetrics.callbacks.real_side import RealSide
from lightning_genmetrics.callbacks.reporter import Reporter
from lightning_genmetrics.callbacks.weights import match_ema_target
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.samplers.base import sampler_output_range
from lightning_genmetrics.stats import ReferenceStatistics

_Hook = Literal["validation", "train_epoch_end", "train_batch_end", "test"]
_POSITIONAL = ("self", "__class__", "sampler", "real", "metrics", "feature_extractor")


class GenerativeMetricsCallback(Callback):
    """Evaluate a generative model every ``every_n_epochs`` epochs (or ``every_n_steps`` steps) and log the results.

    At an evaluation rank ``r`` of ``W`` draws samples ``[r·N/W, (r+1)·N/W)`` of the seeded stream
    (:func:`~lightning_genmetrics.samplers.sample_range`): ``num_samples`` in total, each the same whichever rank
    draws it and at every evaluation (only the model changes). Sampling runs in eval mode under
    ``torch.inference_mode()`` with the global RNG restored afterwards, so training draws the same random numbers
    with or without the callback; with ``ema="auto"`` it uses the average of a ``WeightAveraging`` callback once
    updated. Every rank computes every metric (states merged by all-reduce). The real data are read once, sharded
    by batch, fingerprinted and, with ``cache_dir``, cached (see :mod:`~lightning_genmetrics.callbacks.real_side`).
    Values whose samples hold NaN or Inf on any rank are logged as NaN with a warning (``on_nonfinite="nan"``).

    **Any metric** plugs in (see :mod:`~lightning_genmetrics.callbacks.plug`): a scalar result is logged as
    ``{prefix}{name}``, a ``(mean, std)`` pair as ``{prefix}{name}`` and ``{prefix}{name}_std``, a dict as
    ``{prefix}{name}/{key}``; ``best`` and the best guidance strength follow each metric's ``higher_is_better``.
    The built-in names log ``{prefix}fid``, ``{prefix}is`` (``_std``), ``{prefix}kid`` (``_std``), ``{prefix}sfid``,
    ``{prefix}fd_dinov2``, ``{prefix}precision_recall/{precision,recall,density,coverage}``, ``{prefix}cmmd``,
    ``{prefix}fd_infinity`` (see :mod:`~lightning_genmetrics.callbacks.registry`); a
    ``classifier`` adds ``accuracy``, ``balanced_accuracy``, ``auroc``; a ``segmenter`` ``miou``,
    ``pixel_accuracy``, ``mdice``; ``reconstruct`` ``recon/<metric>``; and ``eval_seconds`` with its split
    ``seconds/real``, ``seconds/sampling``, ``seconds/features``, ``seconds/compute`` (``seconds/reconstruction``).

    **Logged** through ``pl_module.log`` (the same global value on every rank), so ``ModelCheckpoint`` and
    ``EarlyStopping`` can monitor them. An epoch evaluation runs in ``on_validation_epoch_end`` when there is a
    validation loop (where ``ModelCheckpoint`` reads it), else in ``on_train_epoch_end``; a step evaluation in
    ``on_train_batch_end``, sent to the loggers at its step and put in ``trainer.callback_metrics``. With a
    validation loop and ``every_n_epochs > 1``, give ``ModelCheckpoint`` the same ``every_n_epochs``. Rank 0 sends
    a grid of the first ``num_images`` samples and the figures (a PCA of real vs generated features, over a
    guidance sweep the trade-off of the first two metrics, and the panels of
    :mod:`~lightning_genmetrics.callbacks.panels`: a classifier's ROC curves and confusion matrix, rows of mask |
    sample | predicted | disagreement with per-class IoU for a segmenter, rows of input | reconstruction | error;
    matplotlib, the ``plots`` extra) at the same step.

    Args:
        sampler: a sampler (anything with an ``output_range`` called as ``sampler(n, generator=..., device=...,
            labels=None)``), or a function ``pl_module -> sampler`` called at ``setup`` (useful under ``ddp_spawn``).
        real: a ``DataLoader`` of real images in a fixed order, a statistics file path, or ``ReferenceStatistics``;
            ``None`` when no metric takes real images.
        metrics: built-in names among ``"fid"``, ``"is"``, ``"kid"``, ``"sfid"``, ``"fd_dinov2"``,
            ``"precision_recall"``, ``"cmmd"``, ``"fd_infinity"``, a mapping ``{name: metric}`` of any
            ``torchmetrics.Metric`` instances, or a sequence mixing both in the order wanted, e.g.
            ``("fid", {"sharpness": Sharpness()})``; may be empty when another evaluation is configured.
        feature_extractor: for the built-in metrics: ``None`` for each one's standard encoder (one instance per
            encoder: one FID InceptionV3 for FID, IS, KID, sFID, FD∞ and precision/recall, one DINOv2, one CLIP),
            any ``nn.Module``, or a mapping from built-in names to modules (or ``None``) (see
            :class:`~lightning_genmetrics.ClassifierFeatures`).
        every_n_epochs: evaluate after epochs ``n - 1, 2n - 1, ...`` (0-based); ``None`` for no epoch cadence.
        every_n_steps: also evaluate after every ``n``-th optimizer step; ``None`` for no step cadence.
        evaluate_on_last_epoch: also evaluate after the last epoch (``max_epochs``) when it is off the cadence.
        num_samples: generated samples per evaluation, over all ranks.
        batch_size: samples per sampler call.
        seed: the seed of the sample stream.
        prefix: prefix of the logged keys.
        log_images: log an image grid of the first ``num_images`` samples.
        num_images: the number of images in the grid.
        log_figures: log the PCA, trade-off and panel figures (a panel shows up to 8 of the first ``num_images``).
        progress_bar: show a progress bar over sampling batches (rank 0, when the trainer shows one).
        real_input_range: the range of float real images (and reconstruction inputs), ``(0, 1)`` or ``(-1, 1)``;
            ``None`` means the sampler's ``output_range``. uint8 real images are always accepted.
        cache_dir: a folder for the real statistics cache (written by global rank 0 only), or ``None``.
        metric_kwargs: extra constructor arguments per built-in or reconstruction metric name, e.g.
            ``{"is": {"splits": 10}, "lpips": {"net_type": "vgg"}}``; for a built-in metric also its encoder's
            ``weights_path`` and ``verify_weights`` (shared by every metric on that encoder), ``antialias``, and
            where it may read another encoder ``feature`` (e.g. ``{"precision_recall": {"feature":
            "dinov2-vitl14"}}``).
        guidance: a sweep of a guided sampler's strengths (a sampler with ``guidance``, ``null_label`` and
            ``num_classes``): each ``w`` is evaluated on the same noise and logged as ``{prefix}<key>/w=<w>``, with
            one grid each; ``{prefix}best_w`` is the best strength, whose values are also logged unsuffixed.
        ema: ``"auto"`` (a ``WeightAveraging`` callback's average when there is one), ``None`` (the training
            weights), or a user's EMA module (an ``AveragedModel`` or a copy of the module or of a submodule).
        classifier: a classifier of class-conditional samples: images ``[N, 3, H, W]`` in ``[0, 1]`` -> logits
            ``[N, num_classes]``; sample ``i`` is conditioned on label ``i mod num_classes``.
        num_classes: the number of classes for ``classifier``; ``None`` reads the sampler's ``num_classes``.
        segmenter: a segmentation network of mask-conditioned samples: images ``[N, 3, H, W]`` in ``[0, 1]`` ->
            class scores ``[N, C, H, W]`` or labels ``[N, H, W]``. Needs ``masks`` and ``num_mask_classes``.
        masks: a fixed-order ``DataLoader`` of conditioning masks; one sample per mask, the mask as ``labels``.
        num_mask_classes: the number of mask classes.
        reconstruct: ``(pl_module, images) -> reconstructions`` for an autoencoder, both in ``real_input_range``.
        reconstruction_data: a fixed-order ``DataLoader`` of validation images; ``None`` uses ``real``.
        reconstruction_metrics: names among ``"ssim"``, ``"ms_ssim"``, ``"psnr"``, ``"lpips"``.
        on_nonfinite: ``"nan"`` to log NaN for values of non-finite samples and go on, ``"raise"`` to end the run.
        stages: the trainer entry points that evaluate, among ``"fit"``, ``"validate"``, ``"test"``; in
            ``trainer.validate``/``trainer.test`` the loaded weights are evaluated once, at the end of the loop.
        refingerprint_on_resume: on resume, fingerprint the real data again rather than trust the checkpoint's.
        best_guidance_by: with ``guidance``, the logged value (unprefixed, e.g. ``"kid"``) whose best, by its
            metric's ``higher_is_better``, picks ``best_w``; ``None`` for the first metric's value (else the
            classifier's accuracy, else the segmenter's mIoU).

    Raises:
        MisconfigurationException: an argument of the wrong type or value (the message names it and the value);
            at ``setup``, before the first training step: an empty or too small real loader, a ``subset_size``
            above the real set's size, a first real batch outside ``real_input_range``, a ``cache_dir`` that is a
            file, a guidance sweep without a guided sampler, a classifier without a known class count, a built-in
            metric or encoder that cannot be built (``metric_kwargs`` it does not take, weights that are not
            available offline: the encoder's message says which file is needed and where to put it).

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
        metrics: MetricsArgument = ("fid", "is"),
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
        best_guidance_by: str | None = None,
    ) -> None:
        super().__init__()
        # Every keyword argument goes to the configuration, checked once.
        arguments = {name: value for name, value in locals().items() if name not in _POSITIONAL}
        self.config = CallbackConfig.build(sampler, real, metrics, feature_extractor, **arguments)
        self._reporter = Reporter(self.config.prefix, log_figures=self.config.log_figures)
        warn_once = self._reporter.warn_once
        self._real = RealSide(
            self.config.real_loader,
            self.config.real_statistics,
            self.config.real_input_range,
            self.config.cache_dir,
            warn_once,
        )
        self.sampler: Any = None
        self._plan: EvaluationPlan | None = None
        self._last_evaluated_epoch = -1
        self._last_evaluated_step = -1

    def __getattr__(self, name: str) -> Any:
        # The checked arguments read as the callback's attributes (`callback.guidance`, `callback.prefix`, ...).
        config = self.__dict__.get("config")
        if config is not None and name in CallbackConfig.__dataclass_fields__:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def metrics(self) -> dict[str, nn.Module]:
        """The metrics by name, once built (at ``setup``): the built-in ones and the user's."""
        return {} if self._plan is None else {plug.name: plug.metric for plug in self._plan.plugs}

    @property
    def history(self) -> list[dict[str, Any]]:
        """One record per evaluation: ``epoch``, ``global_step``, ``ema`` (whether averaged weights were used),
        ``stage`` (``"fit"``, ``"validate"`` or ``"test"``), the logged values (unprefixed) and ``eval_seconds``
        with its split ``seconds/<phase>``."""
        return [dict(record) for record in self._reporter.history]

    @property
    def best(self) -> dict[str, float]:
        """The best value so far of each logged value whose metric has a direction (``higher_is_better``)."""
        return dict(self._reporter.best)

    @property
    def cache_key(self) -> str | None:
        """The key of the real statistics, once the real data are fingerprinted (or restored from a checkpoint)."""
        return None if self._plan is None else self._real.cache_key(self._plan.plugs)

    # State ----------------------------------------------------------------------------------------------------------

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(prefix=self.prefix, metrics=self.metric_names, seed=self.config.seed)

    @override
    def state_dict(self) -> dict[str, Any]:
        data_key = self._real.known_data_key()
        return {
            **self._reporter.state_dict(),
            "data_key": None if data_key is None else list(data_key),
            "last_evaluated_epoch": self._last_evaluated_epoch,
            "last_evaluated_step": self._last_evaluated_step,
            "seed": self.config.seed,
            "num_samples": self.config.num_samples,
            "num_images": self.config.num_images,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._reporter.load_state_dict(state_dict)
        data_key = state_dict.get("data_key")
        # The data may have changed since the checkpoint (a preprocessing fix, another split): by default the
        # first evaluation fingerprints them again (reading and hashing, no extraction) instead of trusting it.
        key = None if data_key is None else (str(data_key[0]), int(data_key[1]))
        self._real.restore(key, trust=not self.config.refingerprint_on_resume)
        self._last_evaluated_epoch = state_dict.get("last_evaluated_epoch", -1)
        self._last_evaluated_step = state_dict.get("last_evaluated_step", -1)
        current = (self.config.seed, self.config.num_samples)
        saved = (state_dict.get("seed", current[0]), state_dict.get("num_samples", current[1]))
        if saved != current:
            rank_zero_warn(
                f"GenerativeMetricsCallback resumes with (seed, num_samples) = {current}, the checkpoint used "
                f"{saved}: values before and after the restart are not comparable."
            )

    # Hooks and cadence ----------------------------------------------------------------------------------------------

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        stage = getattr(stage, "value", stage)  # Lightning passes a TrainerFn, a str enum
        config = self.config
        if stage not in config.stages:
            if stage in STAGES:
                self._reporter.warn_once(
                    f"stage:{stage}",
                    f"GenerativeMetricsCallback does not evaluate in `trainer.{stage}()`: it runs in stages="
                    f"{config.stages}. Pass stages=(..., {stage!r}) to evaluate there.",
                )
            return
        if self.sampler is None:
            self.sampler = config.resolve_sampler(pl_module)
            config.check_sampler(self.sampler)
        if isinstance(config.ema, nn.Module):
            try:
                match_ema_target(pl_module, config.ema)
            except ValueError as error:
                raise MisconfigurationException(f"Invalid `ema`: {error}") from error
        output_range = sampler_output_range(self.sampler)
        if self._plan is None:
            reporter = self._reporter
            self._plan = build_plan(
                config, self.sampler, self._real, output_range, reporter.figures_wanted, reporter.warn_once
            )
        config.check_data(self._plan.plugs, config.real_input_range or output_range)
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
            if TrainerFn.VALIDATING.value in self.config.stages and not trainer.sanity_checking:
                self._evaluate(trainer, pl_module, hook="validation")
            return
        # The end-of-epoch validation, where ModelCheckpoint (on_validation_end) reads the logged values.
        if trainer.is_last_batch and self._epoch_due(trainer):
            self._evaluate(trainer, pl_module, hook="validation")

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == TrainerFn.TESTING and TrainerFn.TESTING.value in self.config.stages:
            self._evaluate(trainer, pl_module, hook="test")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._epoch_due(trainer):
            self._evaluate(trainer, pl_module, hook="train_epoch_end")

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step, every = trainer.global_step, self.config.every_n_steps
        if every is None or not self._may_evaluate(trainer) or step == self._last_evaluated_step:
            return
        if step > 0 and step % every == 0:
            self._evaluate(trainer, pl_module, hook="train_batch_end")

    @staticmethod
    def _may_evaluate(trainer: Trainer) -> bool:
        return not (trainer.sanity_checking or trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING)

    def _epoch_due(self, trainer: Trainer) -> bool:
        epoch, config = trainer.current_epoch, self.config
        if not self._may_evaluate(trainer) or epoch == self._last_evaluated_epoch:
            return False
        if trainer.global_step == self._last_evaluated_step:
            return False  # a step evaluation has just logged the values of this model
        on_cadence = config.every_n_epochs is not None and (epoch + 1) % config.every_n_epochs == 0
        last = config.evaluate_on_last_epoch and trainer.max_epochs is not None and epoch + 1 == trainer.max_epochs
        return on_cadence or last

    # Run the plan, report the result --------------------------------------------------------------------------------

    def _evaluate(self, trainer: Trainer, pl_module: LightningModule, *, hook: _Hook) -> None:
        stage = trainer.state.fn.value if trainer.state.fn is not None else TrainerFn.FITTING.value
        if stage == TrainerFn.FITTING.value:
            self._last_evaluated_epoch = trainer.current_epoch
            self._last_evaluated_step = trainer.global_step
        config, plan, reporter = self.config, self._plan, self._reporter
        sampling = Sampling(
            config.num_samples, config.batch_size, config.seed, config.on_nonfinite, config.prefix, config.progress_bar
        )
        context = EvaluationContext(trainer, pl_module, PhaseTimer(pl_module.device), sampling)
        started = time.perf_counter()
        in_validation = hook == "validation"
        with evaluation_scope(
            trainer, pl_module, self, config.ema, plan.modules(), in_validation=in_validation
        ) as weights:
            result = plan.run(context)
        seconds = {"eval_seconds": time.perf_counter() - started}
        seconds.update({f"seconds/{phase}": value for phase, value in context.timer.seconds.items()})
        # Rank 0's clock, so every rank logs the same value.
        values = {**result.values, **trainer.strategy.broadcast(seconds, src=0)}
        step = reporter.logging_step(trainer, hook)
        reporter.log_scalars(trainer, pl_module, values, step=step if hook == "train_batch_end" else None)
        reporter.record(trainer, values, plan.directions(), ema=weights == "ema", stage=stage)
        if trainer.is_global_zero:
            reporter.log_grids(trainer, result.grids, sampler_output_range(self.sampler), step)
        reporter.log_figures(
            trainer, values, result.projection, plan.tradeoff_pair(), config.guidance, step, result.panels
        )
