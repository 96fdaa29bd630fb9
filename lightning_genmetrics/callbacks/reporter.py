"""The reporter: where an evaluation's results go, and what is remembered of them.

Scalars go through ``pl_module.log`` (every rank logs the same, already global, value), so ``ModelCheckpoint``
and ``EarlyStopping`` can monitor them; a step evaluation's scalars go to the loggers directly, at its step, and to
``trainer.callback_metrics``. Rank 0 sends the sample grids and the figures (the PCA of real and generated
features, the guidance trade-off, and the phases' panels: a classifier's ROC curves and confusion matrix, the
segmentation and reconstruction panels) at the step Lightning gives the scalars. A figure that cannot be drawn is
warned about once per kind and left out: the training run goes on. Every figure is cleared once sent (they are
made without pyplot, so none is left open). Every evaluation is appended to the history, and each value that has a
direction (its metric's ``higher_is_better``) updates its best.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_genmetrics._compat.lightning import batches_that_stepped
from lightning_genmetrics.callbacks import figures, loggers
from lightning_genmetrics.features.preprocess import InputRange, images_to_uint8


class Reporter:
    """Logs, draws and remembers the results of the evaluations.

    Args:
        prefix: the prefix of every logged key.
        log_figures: draw the figures.

    Example:
        >>> reporter = Reporter("gen/", log_figures=False)
        >>> reporter.best
        {}
    """

    def __init__(self, prefix: str, *, log_figures: bool) -> None:
        self.prefix = prefix
        self.draw_figures = log_figures
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, float] = {}
        self._warned: set[str] = set()

    def warn_once(self, topic: str, message: str) -> None:
        """Warn (on rank 0) once per ``topic``."""
        if topic not in self._warned:
            self._warned.add(topic)
            rank_zero_warn(message)

    # History and best ---------------------------------------------------------------------------------------------

    def record(self, trainer: Trainer, values: dict[str, float], directions: dict[str, bool], **fields: Any) -> None:
        """Append an evaluation to the history; a finite value with a direction may become its best."""
        self.history.append({"epoch": trainer.current_epoch, "global_step": trainer.global_step, **fields, **values})
        for name, higher in directions.items():
            value, best = values.get(name), self.best.get(name)
            if value is None or not math.isfinite(value):
                continue
            if best is None or (value > best if higher else value < best):
                self.best[name] = value

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(record) for record in self.history], "best": dict(self.best)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(record) for record in state_dict.get("history", [])]
        self.best = dict(state_dict.get("best", {}))

    # Scalars ------------------------------------------------------------------------------------------------------

    @staticmethod
    def logging_step(trainer: Trainer, hook: str) -> int:
        """The step Lightning gives the values logged in ``hook``, for the images, figures and step evaluations.

        Lightning logs at the count of batches that stepped the optimizers before the current one, not at
        ``global_step`` (which counts every optimizer's steps: twice a batch for a GAN with two optimizers); at the
        end of the training epoch that count already includes the epoch's last batch.
        """
        stepped = batches_that_stepped(trainer)
        if stepped is None:
            return max(trainer.global_step - 1, 0)  # exact with one optimizer
        return max(stepped - 1, 0) if hook == "train_epoch_end" else stepped

    def log_scalars(
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

    # Pictures -----------------------------------------------------------------------------------------------------

    def log_grids(self, trainer: Trainer, grids: dict[str, Tensor], output_range: InputRange, step: int) -> None:
        """A grid of rank 0's samples per tag suffix (one per guidance strength)."""
        from torchvision.utils import make_grid

        for suffix, images in grids.items():
            uint8 = images_to_uint8(images, output_range, name="samples")
            grid = make_grid(uint8, nrow=math.ceil(math.sqrt(uint8.shape[0])), padding=1)
            self._send_image(trainer, f"{self.prefix}samples{suffix}", grid, step)

    def figures_wanted(self, trainer: Trainer) -> bool:
        """The same answer on every rank: the PCA statistics are gathered by a collective."""
        if not self.draw_figures or not trainer.loggers:
            return False
        if not figures.matplotlib_available():
            self.warn_once(
                "matplotlib",
                "GenerativeMetricsCallback draws its figures with matplotlib, which is not installed: "
                "`pip install matplotlib` (the `plots` extra), or pass log_figures=False.",
            )
            return False
        return True

    def log_figures(
        self,
        trainer: Trainer,
        values: dict[str, float],
        projection: figures.PCAProjection | None,
        tradeoff: tuple[tuple[str, bool], tuple[str, bool]] | None,
        guidance: tuple[float, ...] | None,
        step: int,
        panels: Mapping[str, Callable[[str], Any]] | None = None,
    ) -> None:
        """The PCA figure (of the best guidance strength), over a sweep the trade-off of two metrics, and the
        phases' ``panels`` (``title -> Figure`` by unprefixed tag), titled with the epoch and step."""
        if not trainer.is_global_zero or not self.figures_wanted(trainer):
            return
        epoch = trainer.current_epoch
        if projection is not None:
            title = f"features of real and generated images, epoch {epoch}"
            if guidance is not None:
                title += f", w={values['best_w']:g}"
            self._draw_and_send(trainer, "pca", lambda: figures.pca_figure(projection, title=title), step)
        if tradeoff is not None and guidance is not None:
            (x, _), (y, _) = tradeoff
            points = [(w, values[f"{x}/w={w:g}"], values[f"{y}/w={w:g}"]) for w in guidance]
            labels = [f"{name} ({'higher' if higher else 'lower'} is better)" for name, higher in tradeoff]
            title = f"guidance trade-off, epoch {epoch}"
            self._draw_and_send(
                trainer, f"{x}_{y}_tradeoff", lambda: figures.tradeoff_figure(points, title=title, labels=labels), step
            )
        for tag, draw in (panels or {}).items():
            title = f"epoch {epoch}, step {step}"
            self._draw_and_send(trainer, tag, lambda draw=draw, title=title: draw(title), step)

    def _draw_and_send(self, trainer: Trainer, tag: str, draw: Callable[[], Any], step: int) -> None:
        """Draw a figure and send it to every logger under ``prefix + tag``; a drawing fault is warned about once
        per kind of figure (the tag without a ``/w=`` suffix) and the figure left out."""
        from matplotlib.figure import Figure

        figure = None
        try:
            figure = draw()
            self._send_figure(trainer, f"{self.prefix}{tag}", figure, step)
        # Any fault of the drawing code or of matplotlib (a logger's own faults are reported by `loggers`): the
        # training run comes first.
        except Exception as error:
            kind = tag.split("/w=")[0]
            self.warn_once(
                f"figure {kind}",
                f"GenerativeMetricsCallback could not draw its figure '{self.prefix}{tag}' ({type(error).__name__}: "
                f"{error}); it is left out, and later failures of this figure are not reported again.",
            )
        finally:
            if isinstance(figure, Figure):
                # Made without pyplot, nothing else holds it: cleared, its artists are freed now, not at a later GC.
                figure.clear()

    def _send_image(self, trainer: Trainer, tag: str, image: Tensor, step: int) -> None:
        """One uint8 ``[3, H, W]`` image to every logger (see :mod:`~lightning_genmetrics.callbacks.loggers`)."""
        loggers.log_image(trainer.loggers, tag, image, step, warn=self.warn_once)

    def _send_figure(self, trainer: Trainer, tag: str, figure: Any, step: int) -> None:
        """One matplotlib figure to every logger."""
        loggers.log_figure(trainer.loggers, tag, figure, step, warn=self.warn_once)
