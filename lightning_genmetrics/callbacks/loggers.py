"""Images and figures to every Lightning logger: the one place the callback's pictures reach a logger.

Where a picture with tag ``t`` logged at step ``s`` lands:

- ``TensorBoardLogger``: ``experiment.add_image(t, image, global_step=s)`` and
  ``experiment.add_figure(t, figure, global_step=s, close=False)``, in the logger's event file.
- ``WandbLogger``: ``log_image(key=t, images=[...], step=s)``, which Lightning sends as one ``wandb.log`` call
  holding ``trainer/global_step = s``, exactly as its ``log_metrics`` sends the scalars. W&B's own step counter
  is left alone (W&B drops a row whose explicit step is below its last one), so a picture lines up with the
  scalars of the same step on the ``trainer/global_step`` axis. The file is the run's
  ``files/media/images/<t>_<W&B step>_<hash>.png``. A figure is rendered to a PNG first.
- ``MLFlowLogger``: the artifact ``images/<path of t>_step<s>.png`` of the logger's run (``log_image`` with
  ``artifact_file``, ``log_figure``), named like the files below so both can be found by tag and step.
- Any other logger (``CSVLogger``, a custom ``Logger``): the file ``<log_dir>/images/<path of t>_step<s>.png``,
  or under ``save_dir`` for a logger without ``log_dir``; a logger with neither is skipped with a warning. Files
  are written to a temporary name in the same folder and renamed, so a reader never sees half a PNG.

The path of a tag keeps its ``/`` as subfolders (TensorBoard groups tags by the same prefix); in each part a
character other than letters, digits and ``. _ = + -`` becomes ``_``, and a part that is empty, ``.`` or
``..`` becomes ``_``, so a tag can never leave the ``images`` folder: ``gen/samples/w=1.5`` at step 40 is
``images/gen/samples/w=1.5_step40.png``.

The training run comes first: a logger that fails (its backend raises, its folder cannot be written) is
reported through ``warn(topic, message)``, with one topic per logger type so the callback's warn-once function
says it once, and the other loggers still get the picture. A malformed argument (not a uint8 image, a negative
step) is the caller's bug and raises.

The callback calls these functions on global rank zero only, where Lightning's loggers write. They are also
guarded by Lightning's ``rank_zero_only`` (a no-op on any other global rank, as Lightning's own ``log_*``
methods are), so a call from every rank writes each picture once.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL.Image import Image

Warn = Callable[[str, str], None]
_Backend = Literal["tensorboard", "wandb", "mlflow", "files"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")


def picture_path(tag: str, step: int) -> str:
    """The relative POSIX path of a picture's PNG: ``images/<tag, made safe>_step<step>.png``.

    Raises:
        TypeError: ``tag`` is not a string or ``step`` not an int.
        ValueError: ``tag`` is empty or ``step`` negative.

    Example:
        >>> picture_path("gen/samples/w=1.5", 40)
        'images/gen/samples/w=1.5_step40.png'
        >>> picture_path("../a b:c", 0)
        'images/_/a_b_c_step0.png'
    """
    tag, step = _check_tag_and_step(tag, step)
    parts = [_UNSAFE.sub("_", part) for part in tag.split("/")]
    parts = ["_" if part in ("", ".", "..") else part for part in parts]
    return "/".join(["images", *parts[:-1], f"{parts[-1]}_step{step}.png"])


def _check_tag_and_step(tag: Any, step: Any) -> tuple[str, int]:
    if not isinstance(tag, str):
        raise TypeError(f"Expected `tag` to be a string, got {type(tag).__name__}.")
    if not tag:
        raise ValueError("Expected `tag` to be a non-empty string, got ''.")
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"Expected `step` to be an int, got {step!r}.")
    if step < 0:
        raise ValueError(f"Expected `step` to be non-negative, got {step}.")
    return tag, step


def _check_image(image: Any) -> Tensor:
    if not isinstance(image, Tensor):
        raise TypeError(f"Expected `image` to be a tensor, got {type(image).__name__}.")
    if image.dtype != torch.uint8:
        raise TypeError(f"Expected `image` to be a uint8 tensor, got dtype {image.dtype}.")
    if image.ndim != 3 or image.shape[0] not in (1, 3) or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"Expected `image` to have shape [3, H, W] or [1, H, W], got shape {tuple(image.shape)}.")
    return image.detach().cpu()


def _check_figure(figure: Any) -> Figure:
    from lightning_genmetrics.callbacks.figures import _require_matplotlib

    _require_matplotlib()
    from matplotlib.figure import Figure

    if not isinstance(figure, Figure):
        raise TypeError(f"Expected `figure` to be a matplotlib Figure, got {type(figure).__name__}.")
    return figure


def _backend(logger: Logger) -> _Backend:
    if isinstance(logger, TensorBoardLogger):
        return "tensorboard"
    if isinstance(logger, WandbLogger):
        return "wandb"
    if isinstance(logger, MLFlowLogger):
        return "mlflow"
    return "files"


def _to_pil(image: Tensor) -> Image:
    from PIL import Image

    pixels = image.permute(1, 2, 0).numpy()
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)


def _figure_to_pil(figure: Figure) -> Image:
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as png:
        return png.convert("RGBA")


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Write through ``write(file)`` to a temporary file next to ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class _NoFolderError(Exception):
    """A file-writing logger without ``log_dir`` or ``save_dir``."""


def _folder_of(logger: Logger) -> Path:
    for name in ("log_dir", "save_dir"):
        folder = getattr(logger, name, None)
        if folder is not None:
            return Path(folder)
    raise _NoFolderError


def _send(
    loggers: Sequence[Logger],
    what: str,
    tag: str,
    write: dict[_Backend, Callable[[Logger], None]],
    warn: Warn,
) -> None:
    for logger in loggers:
        name = type(logger).__name__
        try:
            write[_backend(logger)](logger)
        except _NoFolderError:
            warn(
                f"picture logger {name}",
                f"GenerativeMetricsCallback cannot save its {what} for the logger {name}: it has neither `log_dir` "
                "nor `save_dir`.",
            )
        # Any backend error (network, disk, a library's own exception types): the training run comes first.
        except Exception as error:
            warn(
                f"picture logger {name}",
                f"GenerativeMetricsCallback could not log its {what} '{tag}' to the logger {name} "
                f"({type(error).__name__}: {error}); later failures of this logger type are not reported again.",
            )


@rank_zero_only
def log_image(loggers: Sequence[Logger], tag: str, image: Tensor, step: int, *, warn: Warn) -> None:
    """Log a uint8 image (a sample grid, a panel) to every logger, at ``step`` under ``tag``.

    See the module notes for where each logger's image lands. Global rank zero only (a no-op elsewhere).

    Args:
        loggers: the Lightning loggers, e.g. ``trainer.loggers``.
        tag: the name, ``/`` separating groups, e.g. ``"gen/samples"``.
        image: uint8 ``[3, H, W]`` (RGB) or ``[1, H, W]`` (grey), e.g. ``torchvision.utils.make_grid``'s output.
        step: the training step the picture belongs to (the step of the scalars logged with it).
        warn: ``warn(topic, message)``, told once per failing logger type; nothing is raised for a logger.

    Raises:
        TypeError: ``image`` not a uint8 tensor, ``tag`` not a string, ``step`` not an int.
        ValueError: ``image`` not ``[3, H, W]`` or ``[1, H, W]``, ``tag`` empty, ``step`` negative.

    Example:
        >>> import tempfile, torch
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     logger = CSVLogger(folder, name="run", version=0)
        ...     log_image([logger], "gen/samples", torch.zeros(3, 4, 4, dtype=torch.uint8), 10, warn=print)
        ...     sorted(p.name for p in Path(logger.log_dir, "images", "gen").iterdir())
        ['samples_step10.png']
    """
    tag, step = _check_tag_and_step(tag, step)
    image = _check_image(image)
    relative = picture_path(tag, step)

    def tensorboard(logger: Logger) -> None:
        logger.experiment.add_image(tag, image, global_step=step)

    def wandb(logger: Logger) -> None:
        logger.log_image(key=tag, images=[_to_pil(image)], step=step)

    def mlflow(logger: Logger) -> None:
        logger.experiment.log_image(logger.run_id, _to_pil(image), artifact_file=relative)

    def files(logger: Logger) -> None:
        _write_atomically(_folder_of(logger) / relative, lambda file: _to_pil(image).save(file, format="PNG"))

    writers: dict[_Backend, Callable[[Logger], None]] = {
        "tensorboard": tensorboard,
        "wandb": wandb,
        "mlflow": mlflow,
        "files": files,
    }
    _send(loggers, "images", tag, writers, warn)


@rank_zero_only
def log_figure(loggers: Sequence[Logger], tag: str, figure: Figure, step: int, *, warn: Warn) -> None:
    """Log a matplotlib figure to every logger, at ``step`` under ``tag``; the figure is left open.

    See the module notes for where each logger's figure lands. Global rank zero only (a no-op elsewhere). The
    figure is drawn at its own size and dpi; the caller closes it (or lets it be collected: a
    ``matplotlib.figure.Figure`` made without pyplot is not kept by matplotlib).

    Args:
        loggers: the Lightning loggers, e.g. ``trainer.loggers``.
        tag: the name, ``/`` separating groups, e.g. ``"gen/pca"``.
        figure: a ``matplotlib.figure.Figure``.
        step: the training step the figure belongs to.
        warn: ``warn(topic, message)``, told once per failing logger type; nothing is raised for a logger.

    Raises:
        TypeError: ``figure`` not a matplotlib Figure, ``tag`` not a string, ``step`` not an int.
        ValueError: ``tag`` empty, ``step`` negative.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> import tempfile
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> from matplotlib.figure import Figure
        >>> figure = Figure(figsize=(2, 2))
        >>> _ = figure.add_subplot().plot([0, 1], [1, 0])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     logger = CSVLogger(folder, name="run", version=0)
        ...     log_figure([logger], "gen/curve", figure, 3, warn=print)
        ...     sorted(p.name for p in Path(logger.log_dir, "images", "gen").iterdir())
        ['curve_step3.png']
    """
    tag, step = _check_tag_and_step(tag, step)
    figure = _check_figure(figure)
    relative = picture_path(tag, step)

    def tensorboard(logger: Logger) -> None:
        logger.experiment.add_figure(tag, figure, global_step=step, close=False)

    def wandb(logger: Logger) -> None:
        logger.log_image(key=tag, images=[_figure_to_pil(figure)], step=step)

    def mlflow(logger: Logger) -> None:
        logger.experiment.log_figure(logger.run_id, figure, relative)

    def files(logger: Logger) -> None:
        _write_atomically(_folder_of(logger) / relative, lambda file: figure.savefig(file, format="png"))

    writers: dict[_Backend, Callable[[Logger], None]] = {
        "tensorboard": tensorboard,
        "wandb": wandb,
        "mlflow": mlflow,
        "files": files,
    }
    _send(loggers, "figures", tag, writers, warn)
