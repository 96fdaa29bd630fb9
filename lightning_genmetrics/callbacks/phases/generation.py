"""The generation phase: draw this rank's share of the seeded samples and feed every metric and the classifier.

Each batch is converted to uint8 ``[N, 3, H, W]`` once, as one
:class:`~lightning_genmetrics.features.ImageBatch` handed to every metric (through the protocol of
:mod:`~lightning_genmetrics.callbacks.plug`) and the classifier, so metrics reading the same network share its pass
over the batch. With a classifier, sample ``i`` is conditioned on label ``i mod C``.
Rank 0 keeps the first ``num_images`` samples for the grid; a metric with ``gaussians()`` (our FID) gives the
PCA projection of the real and generated features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_genmetrics.callbacks import figures, panels
from lightning_genmetrics.callbacks.conditional import ClassFidelity
from lightning_genmetrics.callbacks.phases.scope import EvaluationContext, PhaseResult
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.preprocess import InputRange, images_to_uint8


class Generation:
    """Sample, score, compute: the metrics of the generated samples (and a classifier's accuracy and AUROC).

    Args:
        plugs: the metrics.
        classifier: the classifier's scores of class-conditional samples, or ``None``.
        output_range: the sampler's output range.
        num_images: the size of rank 0's grid, 0 for none.
        figures_wanted: ``trainer -> bool``, the same on every rank: whether to project the features for the figure
            and to gather the classifier's ROC curves and confusion matrix for its panels.
    """

    def __init__(
        self,
        plugs: Sequence[MetricPlug],
        classifier: ClassFidelity | None,
        output_range: InputRange,
        num_images: int,
        figures_wanted: Callable[[Any], bool],
    ) -> None:
        self.plugs = list(plugs)
        self.classifier = classifier
        self.output_range = output_range
        self.num_images = num_images
        self.figures_wanted = figures_wanted
        self._real_axes: tuple[Tensor, tuple[Tensor, Tensor]] | None = None

    def run(self, context: EvaluationContext, sampler: Any, label: str) -> PhaseResult:
        """Evaluate ``sampler`` (``label`` names a guidance strength in messages)."""
        images, nonfinite = self._update(context, sampler, label)
        what = f"of the {context.sampling.num_samples} generated samples{label} are"
        values = context.any_nonfinite(nonfinite, self.value_names, what)
        if values is not None:
            return PhaseResult(values)
        with context.timer("compute"):
            values = {}
            for plug in self.plugs:
                values.update(self._compute(context, plug, label))
            if self.classifier is not None:
                values.update(self.classifier.compute())
            projection = self._projection(context)
            drawings = self._classifier_panels(context)
        return PhaseResult(values, {} if images is None else {"": images}, projection, drawings)

    @staticmethod
    def _compute(context: EvaluationContext, plug: MetricPlug, label: str) -> dict[str, float]:
        """The plug's values, or NaN for each with a warning when its ``compute()`` raises (too few samples for a
        fit, a user metric's bug): a metric never ends the training run. Every rank computes from the same
        synchronised state, so every rank takes the same branch."""
        try:
            return plug.compute()
        except Exception as error:  # any metric-side fault is reported, never fatal
            names = plug.value_names() or [plug.name]
            trainer = context.trainer
            rank_zero_warn(
                f"GenerativeMetricsCallback: metric {plug.name!r} could not be computed{label} at epoch "
                f"{trainer.current_epoch}, step {trainer.global_step} ({type(error).__name__}: {error}); logging "
                f"NaN for {[context.sampling.prefix + name for name in names]}. Training goes on."
            )
            return dict.fromkeys(names, math.nan)

    def _classifier_panels(self, context: EvaluationContext) -> dict[str, Callable[[str], Any]]:
        """Rank 0's ROC curves and confusion matrix of the classifier, from its state (every rank takes part: the
        state is synchronised); ``{}`` without a classifier or figures."""
        if self.classifier is None or not self.figures_wanted(context.trainer):
            return {}
        roc, confusion = self.classifier.curves()
        if not context.trainer.is_global_zero:
            return {}
        return {
            "classifier_roc": lambda title: panels.roc_figure(roc, title=title),
            "classifier_confusion": lambda title: panels.confusion_figure(confusion, title=title),
        }

    def value_names(self) -> list[str]:
        """The keys ``run`` returns: what is logged as NaN when the samples are not finite."""
        names = [name for plug in self.plugs for name in plug.value_names()]
        return names + ([] if self.classifier is None else self.classifier.value_names())

    def conditioning(self, begin: int, end: int) -> Tensor | None:
        """Balanced class labels of samples ``[begin, end)`` when a classifier judges them, else the sampler's own."""
        return None if self.classifier is None else torch.arange(begin, end) % self.classifier.num_classes

    def _update(self, context: EvaluationContext, sampler: Any, label: str) -> tuple[Tensor | None, int]:
        """Sample this rank's shard into the metrics; rank 0's grid images and this rank's non-finite count."""
        for plug in self.plugs:
            plug.reset_generated()
        if self.classifier is not None:
            self.classifier.reset()
        start, stop = context.sample_bounds()
        want_grid = self.num_images > 0 and context.trainer.is_global_zero
        shown: list[Tensor] = []
        nonfinite = 0
        batch_size = context.sampling.batch_size
        bounds = [(begin, min(begin + batch_size, stop)) for begin in range(start, stop, batch_size)]
        with context.progress(len(bounds), label) as bar:
            for begin, end in bounds:
                labels = self.conditioning(begin, end)
                with context.timer("sampling"):
                    images, bad = context.draw(sampler, begin, end, labels)
                bar.update(1)
                if images is None:
                    nonfinite += bad
                    continue
                with context.timer("features"):
                    self._update_batch(images, torch.arange(begin, end, device=images.device), labels)
                if want_grid and begin < self.num_images:
                    shown.append(images[: self.num_images - begin].cpu())
        if not want_grid or nonfinite:
            return None, nonfinite
        # Rank 0's shard starts at sample 0; when it is shorter than the grid, rank 0 draws the rest itself.
        have = sum(chunk.shape[0] for chunk in shown)
        if have < self.num_images:
            rest, _ = context.draw(sampler, have, self.num_images, self.conditioning(have, self.num_images))
            if rest is None:
                return None, nonfinite
            shown.append(rest.cpu())
        return torch.cat(shown), nonfinite

    def _update_batch(self, images: Tensor, ids: Tensor, labels: Tensor | None) -> None:
        # One batch of uint8 images for every metric (converted here, once): metrics sharing a network then share
        # its pass over the batch. uint8, whatever the sampler's range: every metric takes it as it is.
        batch = ImageBatch(images_to_uint8(images, self.output_range, name="samples"), name="samples")
        for plug in self.plugs:
            plug.update_generated(batch, ids)
        if self.classifier is not None and labels is not None:
            self.classifier.update(batch, labels.to(images.device))

    def _projection(self, context: EvaluationContext) -> figures.PCAProjection | None:
        """The real and generated Gaussians on the real covariance's top axes (rank 0), from the first metric that
        has them: those its ``compute()`` just measured (``computed_gaussians()``: no second synchronisation of its
        state), else ``gaussians()``, in which every rank takes part (the statistics are synchronised)."""
        gaussian = next((plug.metric for plug in self.plugs if callable(getattr(plug.metric, "gaussians", None))), None)
        if gaussian is None or not self.figures_wanted(context.trainer):
            return None
        computed = getattr(gaussian, "computed_gaussians", None)
        # Every rank computed just before, with no update since: all hold them, or none (then all synchronise).
        found = computed() if callable(computed) else None
        mu_r, sigma_r, mu_g, sigma_g = gaussian.gaussians() if found is None else found
        if not context.trainer.is_global_zero:
            return None
        if self._real_axes is None or not torch.equal(self._real_axes[0], sigma_r):
            # The real covariance is fixed once computed: its principal axes are found once per run.
            self._real_axes = (sigma_r, figures.principal_axes(sigma_r))
        return figures.pca_projection(mu_r, sigma_r, mu_g, sigma_g, axes=self._real_axes[1])
