"""The evaluation plan: the phases an evaluation runs, built once at ``setup``, and the guidance sweep over them.

An evaluation makes the real side ready, runs the generation and conditional-masks phases on the sampler (or, with
``guidance``, on a copy of it per strength, each logged with a ``/w=<w>`` suffix; the best strength's values are
also logged unsuffixed, with ``best_w``), then the reconstruction phase. What "best" means for every value comes
from its metric's ``higher_is_better``. The phases' panels (a classifier's ROC curves and confusion matrix, the
segmentation and reconstruction panels) are handed on by tag, with the same ``/w=<w>`` suffix in a sweep.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from lightning_genmetrics.callbacks import panels
from lightning_genmetrics.callbacks.conditional import ClassFidelity, MaskFidelity
from lightning_genmetrics.callbacks.config import CallbackConfig
from lightning_genmetrics.callbacks.phases.generation import Generation
from lightning_genmetrics.callbacks.phases.masks import MaskConditioning
from lightning_genmetrics.callbacks.phases.reconstruction import Reconstruction
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseResult
from lightning_genmetrics.callbacks.plug import MetricPlug, directions
from lightning_genmetrics.callbacks.real_side import RealSide
from lightning_genmetrics.callbacks.reconstruction import ReconstructionQuality
from lightning_genmetrics.callbacks.registry import build_builtin_metrics
from lightning_genmetrics.features.preprocess import InputRange


class EvaluationPlan:
    """The phases of an evaluation and the sweep over guidance strengths.

    Args:
        sampler: the resolved sampler.
        real: the real side.
        generation: the generation phase, or ``None`` (no metric of the samples, no classifier).
        masks: the conditional-masks phase, or ``None``.
        reconstruction: the reconstruction phase, or ``None``.
        guidance: the strengths of a sweep, or ``None``.
        best_guidance_by: the value picking the best strength, or ``None`` for the first with a direction.
        warn_once: ``(topic, message)`` -> warns once per topic.
    """

    def __init__(
        self,
        sampler: Any,
        real: RealSide,
        generation: Generation | None,
        masks: MaskConditioning | None,
        reconstruction: Reconstruction | None,
        guidance: tuple[float, ...] | None,
        best_guidance_by: str | None,
        warn_once: Callable[[str, str], None],
    ) -> None:
        self.sampler = sampler
        self.real = real
        self.generation = generation
        self.masks = masks
        self.reconstruction = reconstruction
        self.guidance = guidance
        self.best_guidance_by = best_guidance_by
        self._warn_once = warn_once

    @property
    def plugs(self) -> list[MetricPlug]:
        return [] if self.generation is None else self.generation.plugs

    def modules(self) -> list[nn.Module]:
        """Every module the evaluation moves to the model's device."""
        modules: list[Any] = [plug.metric for plug in self.plugs]
        if self.generation is not None:
            modules.append(self.generation.classifier)
        modules.append(None if self.masks is None else self.masks.fidelity)
        modules.append(None if self.reconstruction is None else self.reconstruction.quality)
        return [module for module in modules if module is not None]

    def directions(self) -> dict[str, bool]:
        """``higher_is_better`` of each reported value that has one, in the order of the phases."""
        ranked: dict[str, bool] = {}
        for plug in self.plugs:
            ranked.update(plug.directions())
        judges = [
            (None if self.generation is None else self.generation.classifier, ""),
            (None if self.masks is None else self.masks.fidelity, ""),
            (None if self.reconstruction is None else self.reconstruction.quality, "recon/"),
        ]
        for judge, prefix in judges:
            if judge is not None:
                keys = [prefix + name for name in judge.value_names()]
                ranked.update(directions(judge, keys, strip=prefix))
        return ranked

    def tradeoff_pair(self) -> tuple[tuple[str, bool], tuple[str, bool]] | None:
        """The first two single-valued metrics with a direction, drawn against each other over a guidance sweep."""
        if self.guidance is None:
            return None
        chosen = [(plug.name, ranks[plug.name]) for plug in self.plugs if plug.name in (ranks := plug.directions())]
        return (chosen[0], chosen[1]) if len(chosen) >= 2 else None

    def run(self, context: EvaluationContext) -> PhaseResult:
        """Run every phase; the values, rank 0's grids and the PCA projection (of the best strength)."""
        with context.timer("real"):
            self.real.prepare(context.trainer, context.device, self.plugs)
        result = self._run_sampler(context, self.sampler, "") if self.guidance is None else self._sweep(context)
        self.real.cache_root(context.trainer, self.plugs)
        if self.reconstruction is not None:
            reconstruction = self.reconstruction.run(context)
            result.values.update(reconstruction.values)
            result.panels.update(reconstruction.panels)
        return result

    def _run_sampler(self, context: EvaluationContext, sampler: Any, label: str) -> PhaseResult:
        result = PhaseResult()
        if self.generation is not None:
            result = self.generation.run(context, sampler, label)
        if self.masks is not None:
            masks = self.masks.run(context, sampler, label)
            result.values.update(masks.values)
            result.panels.update(masks.panels)
        return result

    def _sweep(self, context: EvaluationContext) -> PhaseResult:
        swept = PhaseResult()
        per_w: dict[float, PhaseResult] = {}
        for w in self.guidance:
            # A shallow copy shares the model; the strengths were checked against the sampler at setup.
            sampler = copy.copy(self.sampler)
            sampler.guidance = w
            per_w[w] = self._run_sampler(context, sampler, f" w={w:g}")
            suffix = f"/w={w:g}"
            swept.values.update({f"{name}{suffix}": value for name, value in per_w[w].values.items()})
            swept.grids.update({f"{suffix}": images for images in per_w[w].grids.values()})
            swept.panels.update({f"{tag}{suffix}": _titled(draw, w) for tag, draw in per_w[w].panels.items()})
        best_w = self.best_guidance({w: result.values for w, result in per_w.items()})
        swept.values.update(per_w[best_w].values)
        swept.values["best_w"] = best_w
        swept.projection = per_w[best_w].projection
        return swept

    def best_guidance(self, per_w: dict[float, dict[str, float]]) -> float:
        """The strength with the best value of ``best_guidance_by``, by that value's ``higher_is_better``; by
        default of the first value that has a direction (the first metric's, else the classifier's accuracy, else
        the segmenter's mIoU).

        A strength whose value is NaN (non-finite samples) ranks last; when all are NaN the first is reported.
        """
        ranked = self.directions()
        name = self.best_guidance_by
        if name not in ranked:
            if name is not None:
                self._warn_once(
                    "best_guidance_by",
                    f"GenerativeMetricsCallback: `best_guidance_by`={name!r} is not a logged value with a direction "
                    f"({sorted(ranked)}); the best guidance strength is picked by the first one instead.",
                )
            name = next(iter(ranked), None)
        if name is None:
            return next(iter(per_w))
        sign = 1.0 if ranked[name] else -1.0

        def score(w: float) -> float:
            value = per_w[w].get(name, math.nan)
            return sign * value if math.isfinite(value) else -math.inf

        return max(per_w, key=score)


def _titled(draw: Callable[[str], Any], w: float) -> Callable[[str], Any]:
    """``draw`` with the guidance strength added to its title."""
    return lambda title: draw(f"{title}, w={w:g}")


def build_plan(
    config: CallbackConfig,
    sampler: Any,
    real: RealSide,
    output_range: InputRange,
    figures_wanted: Callable[[Any], bool],
    warn_once: Callable[[str, str], None],
) -> EvaluationPlan:
    """The plan of ``config``: the metrics built (the built-in ones by the registry), the real side set up.

    Raises:
        MisconfigurationException: the real statistics do not fit a metric's extractor.
    """
    builtin = build_builtin_metrics(config.builtin_names, config.feature_extractor, config.metric_kwargs, output_range)
    metrics = {**builtin, **config.user_metrics}
    plugs = [MetricPlug(name, metrics[name]) for name in config.metric_names]
    real.input_range = config.real_input_range or output_range
    try:
        real.use_statistics(plugs)
    except ValueError as error:
        raise MisconfigurationException(f"The real statistics do not fit the metrics' extractor: {error}") from error
    classifier = None
    if config.classifier is not None:
        classifier = ClassFidelity(config.classifier, config.num_classes, output_range)
    generation = None
    if plugs or classifier is not None:
        num_images = config.num_images if config.log_images else 0
        generation = Generation(plugs, classifier, output_range, num_images, figures_wanted)
    # The panels show rank 0's first samples, at most PANEL_ROWS of them, when figures are drawn.
    rows = min(config.num_images, panels.PANEL_ROWS)
    masks = None
    if config.segmenter is not None:
        fidelity = MaskFidelity(config.segmenter, config.num_mask_classes, output_range)
        masks = MaskConditioning(fidelity, config.masks, panel_rows=rows, figures_wanted=figures_wanted)
    reconstruction = None
    if config.reconstruct is not None:
        kwargs = {name: config.metric_kwargs.get(name, {}) for name in config.reconstruction_metrics}
        quality = ReconstructionQuality(config.reconstruction_metrics, real.input_range, kwargs)
        reconstruction = Reconstruction(
            quality, config.reconstruction_data, config.reconstruct, panel_rows=rows, figures_wanted=figures_wanted
        )
    return EvaluationPlan(
        sampler, real, generation, masks, reconstruction, config.guidance, config.best_guidance_by, warn_once
    )
