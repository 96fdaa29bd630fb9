"""The callback draws the panels: read back from the PNG files a CSVLogger run wrote (and one TensorBoard event file),
pixel by pixel against what the stub networks saw and said; a drawing fault warns once; no second network pass."""

from __future__ import annotations

import csv
import gc
import io
import re
import weakref
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import roc_curve
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import CallableSampler, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback, panels
from lightning_genmetrics.callbacks.conditional import ClassFidelity
from lightning_genmetrics.features.preprocess import images_to_uint8
from tests.callbacks.support import (
    BrightnessClassifier,
    ConditionalGAN,
    ThresholdSegmenter,
    TinyDiffusion,
    TinyGAN,
    conditional_sampler,
    diffusion_sampler,
    gan_sampler,
    make_trainer,
    masks_to_images,
    read_events,
    train_loader,
)
from tests.ddp.harness import run_distributed

PAD = 2  # the white padding between the cells of a panel's grid
NUM_MASKS, MASK_BATCH, MASK_ROWS = 10, 4, 6  # six rows: the first mask batch and part of the second
NUM_SAMPLES, SAMPLE_BATCH = 24, 7


class CountingSegmenter(ThresholdSegmenter):
    """The threshold segmenter, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(images)


class RecordingClassifier(nn.Module):
    """The brightness classifier, keeping each call's logits."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = BrightnessClassifier()
        self.logits: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(images)
        self.logits.append(logits.clone())
        return logits


@pytest.fixture(autouse=True)
def no_open_figures() -> None:
    """Start with no pyplot figure open (other test modules may leave some): the tests assert the callback opens
    none."""
    plt.close("all")


def shrink(pl_module: Any, images: torch.Tensor) -> torch.Tensor:
    """A stand-in autoencoder whose reconstructions differ from the inputs by a known amount."""
    return images * 0.7 + 0.1


def _csv_trainer(tmp_path: Path, callback: GenerativeMetricsCallback, model: Any, epochs: int = 2, **kwargs: Any):
    logger = kwargs.pop("logger", CSVLogger(tmp_path, name="csv", version=0))
    trainer = make_trainer(tmp_path, [callback], max_epochs=epochs, logger=logger, **kwargs)
    trainer.fit(model, train_loader())
    return trainer


def _logged_steps(log_dir: Path, key: str) -> list[int]:
    """The steps at which the CSV logger wrote ``key``."""
    with open(log_dir / "metrics.csv", newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file) if row.get(key)]


def _pictures(log_dir: Path, tag: str) -> dict[int, np.ndarray]:
    """The RGB pixels of the PNGs written for ``tag``, by step."""
    found = {}
    for path in (log_dir / "images").glob(f"{tag}_step*.png"):
        step = int(re.fullmatch(rf"{Path(tag).name}_step(\d+)\.png", path.name).group(1))
        with Image.open(path) as png:
            found[step] = np.asarray(png.convert("RGB"))
    return found


def _render(figure: Figure) -> np.ndarray:
    """The figure as the CSV logger saves it (a PNG at the figure's dpi), decoded."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as png:
        return np.asarray(png.convert("RGB"))


def _image_pixels(picture: np.ndarray, axes: Any, shape: tuple[int, int], at: float = 0.5) -> np.ndarray:
    """The ``[H, W, 3]`` image ``axes`` shows, read back from ``picture`` (a rendering of a figure of the same layout
    as the axes' figure, drawn) at fraction ``at`` across each image pixel: ``imshow`` fills the axes box."""
    x0, y0, x1, y1 = axes.get_window_extent().extents
    height, width = shape
    rows = picture.shape[0] - (y1 - (np.arange(height) + at) * (y1 - y0) / height)
    columns = x0 + (np.arange(width) + at) * (x1 - x0) / width
    return picture[np.floor(rows).astype(int)[:, None], np.floor(columns).astype(int)[None, :]]


def _grid_cell(grid: np.ndarray, row: int, column: int, size: int) -> np.ndarray:
    top, left = PAD + row * (size + PAD), PAD + column * (size + PAD)
    return grid[top : top + size, left : left + size]


def _expected_rgb(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Label maps ``[N, H, W]`` coloured by their classes' colours: ``[N, H, W, 3]``."""
    return panels.class_colors(num_classes).numpy()[labels.numpy()]


def _mask_run(tmp_path: Path, **kwargs: Any) -> tuple[GenerativeMetricsCallback, CountingSegmenter, Any, dict]:
    masks = torch.randint(0, 3, (NUM_MASKS, 8, 8), generator=torch.Generator().manual_seed(6))
    sampler = CallableSampler(masks_to_images, output_range=(0, 1))
    segmenter = CountingSegmenter()
    callback = GenerativeMetricsCallback(
        sampler,
        None,
        metrics=(),
        segmenter=segmenter,
        masks=DataLoader(TensorDataset(masks), batch_size=MASK_BATCH),
        num_mask_classes=3,
        num_samples=NUM_MASKS,  # num_images is at most num_samples
        num_images=MASK_ROWS,
    )
    trainer = _csv_trainer(tmp_path, callback, TinyGAN(), **kwargs)
    samples = sample_range(sampler, 0, NUM_MASKS, seed=0, batch_size=3, device="cpu", labels=masks)
    uint8 = images_to_uint8(samples, (0, 1))
    predicted = ThresholdSegmenter()(uint8.float() / 255)
    return callback, segmenter, trainer, {"masks": masks, "samples": uint8, "predicted": predicted}


def test_segmentation_panel_per_evaluation_shows_masks_samples_predictions_and_disagreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[weakref.ref] = []
    original = panels.segmentation_panel

    def recorded(*args: Any, **kwargs: Any) -> Figure:
        figure = original(*args, **kwargs)
        drawn.append(weakref.ref(figure))
        return figure

    monkeypatch.setattr(panels, "segmentation_panel", recorded)
    callback, segmenter, trainer, seen = _mask_run(tmp_path)
    log_dir = Path(trainer.logger.log_dir)

    # One pass of the segmenter per mask batch and evaluation: the panel reuses what it said.
    assert len(callback.history) == 2
    assert segmenter.calls == 2 * -(-NUM_MASKS // MASK_BATCH)
    steps = _logged_steps(log_dir, "gen/miou")
    pictures = _pictures(log_dir, "gen/segmentation")
    assert len(steps) == 2
    assert sorted(pictures) == steps

    masks, samples, predicted = seen["masks"], seen["samples"], seen["predicted"]
    rows = slice(0, MASK_ROWS)
    confusion = np.zeros((3, 3), dtype=np.int64)
    np.add.at(confusion, (masks.numpy().ravel(), predicted.numpy().ravel()), 1)
    iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    disagree = (predicted != masks).numpy()
    assert 0.05 < disagree.mean() < 0.95  # a segmenter that is sometimes right, sometimes wrong
    for record, step in zip(callback.history, steps, strict=True):
        picture = pictures[step]
        reference = original(
            masks[rows],
            samples[rows],
            predicted[rows],
            num_classes=3,
            per_class_iou=torch.from_numpy(iou),
            max_rows=MASK_ROWS,
            title=f"epoch {record['epoch']}, step {step}",
        )
        np.testing.assert_array_equal(picture, _render(reference))  # title, IoU bars and grid: all as expected
        image_axes, bars_axes = reference.axes
        assert [bar.get_height() for bar in bars_axes.patches] == pytest.approx(iou.tolist(), abs=1e-12)
        size = 8
        grid_shape = (MASK_ROWS * (size + PAD) + PAD, 4 * (size + PAD) + PAD)
        grid = _image_pixels(picture, image_axes, grid_shape)
        for row in range(MASK_ROWS):
            np.testing.assert_array_equal(_grid_cell(grid, row, 0, size), _expected_rgb(masks[row : row + 1], 3)[0])
            np.testing.assert_array_equal(_grid_cell(grid, row, 1, size), samples[row].permute(1, 2, 0).numpy())
            np.testing.assert_array_equal(_grid_cell(grid, row, 2, size), _expected_rgb(predicted[row : row + 1], 3)[0])
            disagreement = _grid_cell(grid, row, 3, size)
            # Dark exactly where the stub segmenter disagrees with the mask, light grey elsewhere.
            np.testing.assert_array_equal(disagreement[..., 0] == panels.DISAGREE, disagree[row])
            np.testing.assert_array_equal(disagreement[..., 0] == panels.AGREE, ~disagree[row])
        assert (grid[:PAD] == 255).all()
        assert (grid[:, :PAD] == 255).all()

    # Made without pyplot and cleared once logged: no open figure, and nothing holds the ones drawn.
    assert plt.get_fignums() == []
    del reference, image_axes, bars_axes
    gc.collect()
    assert len(drawn) == 2
    assert all(ref() is None for ref in drawn)


def test_a_panel_that_cannot_be_drawn_is_warned_about_once_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Figure:
        raise RuntimeError("no ink")

    monkeypatch.setattr(panels, "segmentation_panel", broken)
    with pytest.warns(UserWarning, match=r"could not draw its figure 'gen/segmentation' \(RuntimeError: no ink\)") as w:
        callback, _, trainer, _ = _mask_run(tmp_path)
    assert sum("could not draw" in str(warning.message) for warning in w) == 1
    log_dir = Path(trainer.logger.log_dir)
    assert len(callback.history) == 2
    assert len(_logged_steps(log_dir, "gen/miou")) == 2  # the scalars of both evaluations are logged
    assert _pictures(log_dir, "gen/segmentation") == {}


def test_no_panels_without_log_figures(tmp_path: Path) -> None:
    masks = torch.randint(0, 3, (4, 8, 8), generator=torch.Generator().manual_seed(6))
    callback = GenerativeMetricsCallback(
        CallableSampler(masks_to_images, output_range=(0, 1)),
        None,
        metrics=(),
        segmenter=ThresholdSegmenter(),
        masks=DataLoader(TensorDataset(masks), batch_size=4),
        num_mask_classes=3,
        num_samples=4,
        log_figures=False,
    )
    trainer = _csv_trainer(tmp_path, callback, TinyGAN(), epochs=1)
    assert len(_logged_steps(Path(trainer.logger.log_dir), "gen/miou")) == 1
    assert not (Path(trainer.logger.log_dir) / "images").exists()
    assert callback._plan.masks.fidelity.preview() is None  # nothing kept when nothing is drawn


def test_classifier_roc_and_confusion_per_evaluation_to_files_and_tensorboard(tmp_path: Path) -> None:
    classifier = RecordingClassifier()
    callback = GenerativeMetricsCallback(
        conditional_sampler,
        None,
        metrics=(),
        classifier=classifier,
        num_samples=NUM_SAMPLES,
        batch_size=SAMPLE_BATCH,
        num_images=4,
    )
    csv_logger = CSVLogger(tmp_path, name="csv", version=0)
    tensorboard = TensorBoardLogger(tmp_path, name="tb", version=0)
    _csv_trainer(tmp_path, callback, ConditionalGAN(), logger=[csv_logger, tensorboard])
    log_dir = Path(csv_logger.log_dir)

    # One pass of the classifier per sampling batch and evaluation: the figures come from the metrics' state.
    batches = -(-NUM_SAMPLES // SAMPLE_BATCH)
    assert len(classifier.logits) == 2 * batches
    steps = _logged_steps(log_dir, "gen/auroc")
    assert len(steps) == 2
    labels = (torch.arange(NUM_SAMPLES) % 3).numpy()
    for name in ("classifier_roc", "classifier_confusion"):
        assert sorted(_pictures(log_dir, f"gen/{name}")) == steps, name
    for evaluation, (record, step) in enumerate(zip(callback.history, steps, strict=True)):
        logits = torch.cat(classifier.logits[evaluation * batches : (evaluation + 1) * batches]).double()
        predicted = logits.argmax(1).numpy()
        confusion = np.zeros((3, 3), dtype=np.int64)
        np.add.at(confusion, (labels, predicted), 1)
        assert 0 < np.trace(confusion) < NUM_SAMPLES  # some right, some wrong
        assert record["accuracy"] == pytest.approx(np.trace(confusion) / NUM_SAMPLES, abs=1e-12)
        probabilities = torch.softmax(logits, 1).numpy()
        curves = [roc_curve(labels == k, probabilities[:, k], drop_intermediate=False) for k in range(3)]
        fpr = [torch.from_numpy(c[0]) for c in curves]
        tpr = [torch.from_numpy(c[1]) for c in curves]
        title = f"epoch {record['epoch']}, step {step}"
        expected = {
            "classifier_roc": panels.roc_figure((fpr, tpr, None), title=title),
            "classifier_confusion": panels.confusion_figure(torch.from_numpy(confusion), title=title),
        }
        for name, figure in expected.items():
            np.testing.assert_array_equal(_pictures(log_dir, f"gen/{name}")[step], _render(figure), err_msg=name)
        # The confusion matrix's cells (read beside their count): each label's row shows the fraction of its
        # samples predicted as each class, in the Blues colour map.
        axes = expected["classifier_confusion"].axes[0]
        cells = _image_pixels(_pictures(log_dir, "gen/classifier_confusion")[step], axes, (3, 3), at=0.15)
        colours = plt.get_cmap("Blues")(confusion / confusion.sum(1, keepdims=True))[..., :3] * 255
        np.testing.assert_allclose(cells, colours, atol=1.0)

    events = read_events(tensorboard.log_dir)
    for name in ("classifier_roc", "classifier_confusion"):
        logged = events.Images(f"gen/{name}")
        assert [event.step for event in logged] == steps
        assert (logged[0].width, logged[0].height) == (550, 450)  # 5.5 x 4.5 inches at 100 dpi
    assert plt.get_fignums() == []


def test_reconstruction_panel_per_evaluation_shows_inputs_and_reconstructions(tmp_path: Path) -> None:
    data = torch.rand(9, 3, 8, 8, generator=torch.Generator().manual_seed(8)) * 2 - 1
    callback = GenerativeMetricsCallback(
        gan_sampler,
        None,
        metrics=(),
        reconstruct=shrink,
        reconstruction_data=DataLoader(TensorDataset(data), batch_size=4),
        reconstruction_metrics=("psnr",),
        num_images=5,  # the first batch and part of the second
    )
    trainer = _csv_trainer(tmp_path, callback, TinyGAN())
    log_dir = Path(trainer.logger.log_dir)
    steps = _logged_steps(log_dir, "gen/recon/psnr")
    pictures = _pictures(log_dir, "gen/reconstruction")
    assert len(steps) == 2
    assert sorted(pictures) == steps
    inputs, reconstructions = data[:5], shrink(None, data[:5])
    for record, step in zip(callback.history, steps, strict=True):
        reference = panels.reconstruction_panel(
            inputs, reconstructions, input_range=(-1, 1), max_rows=5, title=f"epoch {record['epoch']}, step {step}"
        )
        np.testing.assert_array_equal(pictures[step], _render(reference))
        grid = _image_pixels(pictures[step], reference.axes[0], (5 * (8 + PAD) + PAD, 2 * (8 + PAD) + PAD))
        for row in range(5):
            for column, images in enumerate((inputs, reconstructions)):
                expected = np.clip(np.round((images[row].numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
                np.testing.assert_array_equal(_grid_cell(grid, row, column, 8), expected.transpose(1, 2, 0))
        # The error map: mean |input - reconstruction| / 2 per pixel, the panel's colour scale up to the largest.
        errors = ((inputs - reconstructions).abs().mean(1) / 2).numpy()
        assert reference.axes[1].images[0].get_clim() == pytest.approx((0.0, float(errors.max())))
        shown = reference.axes[1].images[0].get_array()
        np.testing.assert_allclose(np.ma.filled(shown, np.nan)[PAD : PAD + 8, PAD : PAD + 8], errors[0], rtol=1e-6)
    assert plt.get_fignums() == []


def _curves_on_ranks(rank: int, world_size: int, logits: torch.Tensor, labels: torch.Tensor) -> list[dict[str, Any]]:
    """``curves()`` of two splits over the ranks: uneven shards (17 and 8 samples), and all on rank 0 (rank 1
    empty)."""
    results = []
    for shards in (((0, 17), (17, 25)), ((0, 25), (25, 25))):
        fidelity = ClassFidelity(nn.Identity(), 3, (0.0, 1.0))
        begin, end = shards[rank]
        if end > begin:
            # The states a classifier's logits feed (update() itself runs the network on images).
            fidelity.confusion.update(logits[begin:end], labels[begin:end])
            fidelity.auroc.update(logits[begin:end], labels[begin:end])
        (fpr, tpr, _), confusion = fidelity.curves()
        results.append({"fpr": fpr, "tpr": tpr, "confusion": confusion, "local": int(fidelity.confusion.confmat.sum())})
    return results


@pytest.mark.ddp
def test_classifier_curves_are_global_under_ddp_with_uneven_shards_and_an_empty_rank() -> None:
    generator = torch.Generator().manual_seed(11)
    logits, labels = torch.randn(25, 3, generator=generator), torch.randint(0, 3, (25,), generator=generator)
    one = ClassFidelity(nn.Identity(), 3, (0.0, 1.0))
    one.confusion.update(logits, labels)
    one.auroc.update(logits, labels)
    (fpr, tpr, _), confusion = one.curves()
    assert int(confusion.sum()) == 25
    assert 0 < int(confusion.trace()) < 25
    per_rank = run_distributed(_curves_on_ranks, world_size=2, timeout=240, logits=logits, labels=labels)
    for rank, results in enumerate(per_rank):
        for split, result in enumerate(results):
            assert torch.equal(result["confusion"].cpu(), confusion), (rank, split)
            for got, want in zip(result["fpr"] + result["tpr"], fpr + tpr, strict=True):
                torch.testing.assert_close(got.cpu(), want, rtol=0, atol=1e-15)
    # Each rank's own state is back after the read.
    assert [[result["local"] for result in results] for results in per_rank] == [[17, 25], [8, 0]]


class TwoBrightnessClassifier(nn.Module):
    """Logits of two brightness classes (images in [0, 1])."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3), keepdim=True).flatten(1)
        return torch.cat([0.5 - mean, mean - 0.5], dim=1) * 40


def test_a_guidance_sweep_draws_the_classifier_panels_per_strength(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles: list[str] = []
    original = panels.roc_figure

    def recorded(roc: Any, *, title: str | None = None) -> Figure:
        titles.append(title)
        return original(roc, title=title)

    monkeypatch.setattr(panels, "roc_figure", recorded)
    callback = GenerativeMetricsCallback(
        diffusion_sampler,
        None,
        metrics=(),
        classifier=TwoBrightnessClassifier(),
        num_samples=12,
        batch_size=6,
        num_images=4,
        guidance=[0.0, 3.0],
    )
    trainer = _csv_trainer(tmp_path, callback, TinyDiffusion(), epochs=1)
    log_dir = Path(trainer.logger.log_dir)
    (step,) = _logged_steps(log_dir, "gen/auroc/w=3")
    for w in ("0", "3"):
        for name in ("classifier_roc", "classifier_confusion"):
            assert sorted(_pictures(log_dir, f"gen/{name}/w={w}")) == [step], (name, w)
    assert titles == [f"epoch 0, step {step}, w=0", f"epoch 0, step {step}, w=3"]
