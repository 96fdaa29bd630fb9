"""What every phase of an evaluation shares: one scope and one context.

The scope (``evaluation_scope``) isolates the evaluation from training: the global torch RNG (CPU and the current
GPU) is restored afterwards, the module runs in eval mode under ``torch.inference_mode()`` (each submodule's train
flag restored), and it holds the weights to evaluate (the EMA average when asked, see
:mod:`~lightning_genmetrics.callbacks.weights`). The context hands every phase the same trainer, device, phase
timer, sharding rule (:mod:`~lightning_genmetrics.callbacks.sharding`), sampling and non-finite rule.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightning_genmetrics.callbacks.sharding import RankShare, shard_bounds
from lightning_genmetrics.callbacks.weights import evaluation_weights
from lightning_genmetrics.samplers.base import NonFiniteSamplesError, eval_mode, nonfinite_rows, sample_range


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


@dataclass
class PhaseResult:
    """What a phase hands the reporter: values by logged key (unprefixed), rank 0's sample grids by tag suffix,
    the features' PCA projection for the figure (or ``None``), and rank 0's panels: ``title -> Figure`` by tag
    (unprefixed), drawn by the reporter from state the phase already holds."""

    values: dict[str, float] = field(default_factory=dict)
    grids: dict[str, Tensor] = field(default_factory=dict)
    projection: Any = None
    panels: dict[str, Callable[[str], Any]] = field(default_factory=dict)


@dataclass
class Sampling:
    """How the samples are drawn: the seeded stream and what a non-finite sample does."""

    num_samples: int
    batch_size: int
    seed: int
    on_nonfinite: Literal["nan", "raise"]
    prefix: str
    progress_bar: bool


@dataclass
class EvaluationContext:
    """One evaluation as every phase sees it."""

    trainer: Trainer
    pl_module: LightningModule
    timer: PhaseTimer
    sampling: Sampling

    @property
    def device(self) -> torch.device:
        return self.pl_module.device

    def sample_bounds(self) -> tuple[int, int]:
        """This rank's share ``[start, stop)`` of the generated samples."""
        return shard_bounds(self.sampling.num_samples, self.trainer.global_rank, self.trainer.world_size)

    def share(self, loader: DataLoader) -> RankShare:
        """This rank's batches of a fixed-order loader."""
        return RankShare(loader, rank=self.trainer.global_rank, world_size=self.trainer.world_size)

    def draw(self, sampler: Any, begin: int, end: int, labels: Tensor | None) -> tuple[Tensor | None, int]:
        """Samples ``[begin, end)``, or ``None`` and the number of non-finite ones among them.

        With ``on_nonfinite="raise"`` the samplers' (or the image checks') error propagates instead.
        """
        sampling = self.sampling
        try:
            images = sample_range(
                sampler,
                begin,
                end,
                seed=sampling.seed,
                batch_size=sampling.batch_size,
                device=self.device,
                labels=labels,
            )
        except NonFiniteSamplesError as error:
            if sampling.on_nonfinite == "raise":
                raise
            return None, error.count
        if sampling.on_nonfinite == "raise":
            return images, 0
        nonfinite = count_nonfinite(images)  # a sampler of the user's own may not check its output
        return (None, nonfinite) if nonfinite else (images, 0)

    def progress(self, total: int, label: str) -> Any:
        """A progress bar over ``total`` sampling batches, shown on rank 0 when the trainer shows one."""
        from tqdm import tqdm

        trainer = self.trainer
        show = self.sampling.progress_bar and trainer.is_global_zero and trainer.progress_bar_callback is not None
        desc = f"{self.sampling.prefix}sampling{label}"
        return tqdm(total=total, desc=desc, leave=False, disable=not show, unit="batch")

    def any_nonfinite(self, nonfinite: int, names: Callable[[], Sequence[str]], what: str) -> dict[str, float] | None:
        """Whether any rank found non-finite samples: if so NaN for ``names()`` (with a warning), else ``None``.

        Every rank calls this (the counts are summed over the ranks), so every rank makes the same decision: the
        metrics' states are then neither synchronised nor computed, and no collective is left waiting.
        """
        trainer = self.trainer
        count = int(trainer.strategy.reduce(torch.tensor(nonfinite, dtype=torch.int64), reduce_op="sum"))
        if count == 0:
            return None
        logged = [self.sampling.prefix + name for name in names()]
        rank_zero_warn(
            f"GenerativeMetricsCallback: {count} {what} not finite (NaN or Inf) at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}: logging NaN for {logged}. Training goes on; pass on_nonfinite='raise' to "
            "stop instead."
        )
        return dict.fromkeys(names(), math.nan)


@contextlib.contextmanager
def evaluation_scope(
    trainer: Trainer,
    pl_module: LightningModule,
    caller: Callback,
    ema: nn.Module | str | None,
    modules: Sequence[nn.Module],
    *,
    in_validation: bool,
) -> Iterator[str]:
    """Run an evaluation: ``modules`` on the module's device, RNG isolated, eval and inference mode, the weights
    to evaluate in place; yields ``"ema"`` or ``"training"`` (which weights)."""
    device = pl_module.device
    for module in modules:
        module.to(device)
    with (
        isolated_rng(device),
        torch.inference_mode(),
        eval_mode(pl_module),
        evaluation_weights(trainer, pl_module, caller, ema, in_validation=in_validation) as weights,
    ):
        yield weights
