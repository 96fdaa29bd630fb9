"""Pictures to every logger, read back from what each one wrote: TensorBoard, CSV, W&B offline, MLflow file store."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_genmetrics.callbacks.loggers import log_figure, log_image, picture_path

FIGSIZE, DPI = (2.0, 1.5), 50


class WarnOnce:
    """The callback's warn-once function: the first message of each topic is kept."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.messages: dict[str, str] = {}

    def __call__(self, topic: str, message: str) -> None:
        self.calls.append((topic, message))
        self.messages.setdefault(topic, message)


class BareLogger(Logger):
    """A custom logger with neither ``log_dir`` nor ``save_dir`` (the base class's ``None``)."""

    name = "bare"
    version = 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


class SaveDirLogger(BareLogger):
    """A custom logger with a ``save_dir`` only."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__()
        self._save_dir = save_dir

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)


def _image(rng: np.random.Generator, channels: int = 3, height: int = 5, width: int = 7) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, (channels, height, width), dtype=np.uint8))


def _figure() -> Figure:
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    figure.add_subplot().plot([0, 1, 2], [2, 0, 1])
    return figure


def _figure_pixels() -> tuple[int, int]:
    return round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI)


def _decode(data: bytes | Path) -> np.ndarray:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as png:
        png.load()
        return np.asarray(png)


def _as_hwc(image: torch.Tensor) -> np.ndarray:
    pixels = image.permute(1, 2, 0).numpy()
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def test_tensorboard_event_file_holds_the_pixels_tag_and_step(tmp_path: Path, rng: np.random.Generator) -> None:
    logger = TensorBoardLogger(tmp_path, name="tb", version=0)
    rgb, grey, warn = _image(rng), _image(rng, channels=1), WarnOnce()
    log_image([logger], "gen/samples", rgb, 12, warn=warn)
    log_image([logger], "gen/samples", grey, 30, warn=warn)
    log_figure([logger], "gen/pca", _figure(), 30, warn=warn)
    logger.experiment.flush()

    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    samples = events.Images("gen/samples")
    assert [event.step for event in samples] == [12, 30]
    np.testing.assert_array_equal(_decode(samples[0].encoded_image_string), _as_hwc(rgb))
    decoded_grey = _decode(samples[1].encoded_image_string)
    # TensorBoard stores a one-channel image as RGB with three equal channels.
    np.testing.assert_array_equal(decoded_grey, np.repeat(_as_hwc(grey)[..., None], 3, axis=-1))
    (figure_event,) = events.Images("gen/pca")
    assert figure_event.step == 30
    assert (figure_event.width, figure_event.height) == _figure_pixels()
    assert warn.calls == []


def test_csv_logger_gets_png_files_named_by_tag_and_step(tmp_path: Path, rng: np.random.Generator) -> None:
    logger = CSVLogger(tmp_path, name="csv", version=0)
    rgb, grey, warn = _image(rng), _image(rng, channels=1, height=3, width=4), WarnOnce()
    log_image([logger], "gen/samples/w=1.5", rgb, 40, warn=warn)
    log_image([logger], "recon", grey, 41, warn=warn)
    log_figure([logger], "gen/pca", _figure(), 40, warn=warn)

    folder = Path(logger.log_dir)
    np.testing.assert_array_equal(_decode(folder / "images/gen/samples/w=1.5_step40.png"), _as_hwc(rgb))
    np.testing.assert_array_equal(_decode(folder / "images/recon_step41.png"), _as_hwc(grey))
    figure_pixels = _decode(folder / "images/gen/pca_step40.png")
    assert figure_pixels.shape[:2] == _figure_pixels()[::-1]
    assert figure_pixels.std() > 0  # a drawn line, not a blank page
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    # Nothing else: no temporary file is left behind by the atomic write.
    assert [name for name in written if name.startswith("images/")] == [
        "images/gen/pca_step40.png",
        "images/gen/samples/w=1.5_step40.png",
        "images/recon_step41.png",
    ]
    assert warn.calls == []


def test_picture_paths_stay_inside_the_images_folder() -> None:
    assert picture_path("a/../../b", 3) == "images/a/_/_/b_step3.png"
    assert picture_path("/x//y z", 0) == "images/_/x/_/y_z_step0.png"
    assert picture_path("pca", 7) == "images/pca_step7.png"


def _wandb_records(run_file: Path) -> list[bytes]:
    """The records of an offline run's ``.wandb`` file (a LevelDB log after a 7-byte W&B header)."""
    raw, block, position, records, pending = run_file.read_bytes(), 32768, 7, [], b""
    assert raw[:4] == b":W&B"
    while position + 7 <= len(raw):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        if left < 7 or (length == 0 and kind == 0):  # a block's zero-padded trailer
            position += left
            continue
        pending += raw[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            records.append(pending)
            pending = b""
    return records


def _wandb_history(run_file: Path) -> list[dict[str, Any]]:
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in _wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return rows


def test_wandb_offline_run_holds_the_pictures_at_the_scalars_step(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb.finish()  # a run left by another test would be reused by the logger
    logger = WandbLogger(offline=True, save_dir=str(tmp_path))
    try:
        rgb, warn = _image(rng), WarnOnce()
        # Scalars first, at a step, as Lightning logs them; then the pictures of that evaluation at the same step.
        logger.log_metrics({"gen/fid": 3.5}, step=20)
        log_image([logger], "gen/samples/w=1.5", rgb, 20, warn=warn)
        log_figure([logger], "gen/pca", _figure(), 20, warn=warn)
        run_dir = Path(logger.experiment.dir).parent
    finally:
        logger.experiment.finish()
        wandb.teardown()
    assert warn.calls == []

    (run_file,) = run_dir.glob("*.wandb")
    rows = _wandb_history(run_file)
    scalars = next(row for row in rows if "gen/fid" in row)
    image_row = next(row for row in rows if "gen/samples/w=1.5/filenames" in row)
    figure_row = next(row for row in rows if "gen/pca/filenames" in row)
    assert scalars["trainer/global_step"] == image_row["trainer/global_step"] == figure_row["trainer/global_step"] == 20
    (image_file,) = image_row["gen/samples/w=1.5/filenames"]
    np.testing.assert_array_equal(_decode(run_dir / "files" / image_file), _as_hwc(rgb))
    (figure_file,) = figure_row["gen/pca/filenames"]
    figure_pixels = _decode(run_dir / "files" / figure_file)
    assert figure_pixels.shape[:2] == _figure_pixels()[::-1]
    assert figure_pixels.std() > 0


def test_mlflow_file_store_holds_artifacts_named_by_tag_and_step(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    # MLflow 3 refuses its file store unless asked: it is the only store that needs no database or server.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file:{tmp_path}/mlruns"
    logger = MLFlowLogger(experiment_name="pictures", tracking_uri=uri)
    rgb, warn = _image(rng), WarnOnce()
    log_image([logger], "gen/samples/w=2", rgb, 8, warn=warn)
    log_figure([logger], "gen/pca", _figure(), 8, warn=warn)
    assert warn.calls == []

    client = MlflowClient(uri)
    assert [a.path for a in client.list_artifacts(logger.run_id, "images/gen/samples")] == [
        "images/gen/samples/w=2_step8.png"
    ]
    local = Path(client.download_artifacts(logger.run_id, "images", str(tmp_path / "download")))
    np.testing.assert_array_equal(_decode(local / "gen/samples/w=2_step8.png"), _as_hwc(rgb))
    figure_pixels = _decode(local / "gen/pca_step8.png")
    assert figure_pixels.shape[:2] == _figure_pixels()[::-1]
    assert figure_pixels.std() > 0


def test_a_logger_without_a_folder_is_warned_once_and_skipped(tmp_path: Path, rng: np.random.Generator) -> None:
    bare, with_save_dir, warn = BareLogger(), SaveDirLogger(tmp_path / "custom"), WarnOnce()
    image = _image(rng)
    for step in (1, 2):
        log_image([bare, with_save_dir], "samples", image, step, warn=warn)
        log_figure([bare, with_save_dir], "pca", _figure(), step, warn=warn)
    assert {topic for topic, _ in warn.calls} == {"picture logger BareLogger"}
    assert "neither `log_dir` nor `save_dir`" in warn.messages["picture logger BareLogger"]
    np.testing.assert_array_equal(_decode(tmp_path / "custom/images/samples_step2.png"), _as_hwc(image))
    assert (tmp_path / "custom/images/pca_step2.png").is_file()


def test_a_failing_logger_is_warned_once_per_type_and_the_others_still_log(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    board = TensorBoardLogger(tmp_path, name="tb", version=0)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    board.experiment.add_image = broken
    board.experiment.add_figure = broken
    # A folder that cannot be created: its parent is a file.
    (tmp_path / "not_a_folder").write_text("")
    unwritable = CSVLogger(tmp_path / "not_a_folder", name="csv", version=0)
    healthy = CSVLogger(tmp_path, name="csv", version=0)
    image, warn = _image(rng), WarnOnce()
    for step in (5, 6):
        log_image([board, unwritable, healthy], "samples", image, step, warn=warn)
        log_figure([board, unwritable, healthy], "pca", _figure(), step, warn=warn)

    assert set(warn.messages) == {"picture logger TensorBoardLogger", "picture logger CSVLogger"}
    assert "OSError: disk full" in warn.messages["picture logger TensorBoardLogger"]
    assert "samples" in warn.messages["picture logger CSVLogger"]
    for step in (5, 6):
        np.testing.assert_array_equal(_decode(Path(healthy.log_dir, f"images/samples_step{step}.png")), _as_hwc(image))
        assert Path(healthy.log_dir, f"images/pca_step{step}.png").is_file()


def test_only_global_rank_zero_writes(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, warn = CSVLogger(tmp_path, name="csv", version=0), WarnOnce()
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    log_image([logger], "samples", _image(rng), 1, warn=warn)
    log_figure([logger], "pca", _figure(), 1, warn=warn)
    assert not Path(logger.log_dir, "images").exists()
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    log_image([logger], "samples", _image(rng), 1, warn=warn)
    assert Path(logger.log_dir, "images/samples_step1.png").is_file()


@pytest.mark.parametrize(
    ("image", "tag", "step", "error", "match"),
    [
        (torch.zeros(3, 2, 2), "t", 0, TypeError, "uint8"),
        (np.zeros((3, 2, 2), dtype=np.uint8), "t", 0, TypeError, "tensor"),
        (torch.zeros(4, 2, 2, dtype=torch.uint8), "t", 0, ValueError, r"\[3, H, W\]"),
        (torch.zeros(2, 2, dtype=torch.uint8), "t", 0, ValueError, r"\[3, H, W\]"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), "", 0, ValueError, "tag"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), 3, 0, TypeError, "tag"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), "t", -1, ValueError, "step"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), "t", 1.0, TypeError, "step"),
    ],
)
def test_bad_arguments_raise_and_write_nothing(
    tmp_path: Path, image: Any, tag: Any, step: Any, error: type[Exception], match: str
) -> None:
    logger, warn = CSVLogger(tmp_path, name="csv", version=0), WarnOnce()
    with pytest.raises(error, match=match):
        log_image([logger], tag, image, step, warn=warn)
    with pytest.raises(TypeError, match="Figure"):
        log_figure([logger], "t", image, 0, warn=warn)
    assert not Path(logger.log_dir, "images").exists()
    assert warn.calls == []
