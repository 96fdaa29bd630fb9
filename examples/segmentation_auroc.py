"""Example: segmentation and classifier metrics inside a LightningModule (no callback), on synthetic shapes.

Everything runs offline on CPU. The data are made on the fly from a seeded ``torch.Generator``: noisy grayscale
images with one to three discs and squares (squares of the same area as discs of the same radius, so only the
shape tells them apart); the label maps have the classes background, disc and square. A tiny UNet-style network
segments them, and an auxiliary head answers an image-level binary question: does the image contain a square?

The metrics are attributes of the module and are updated in ``validation_step``:

- ``MeanIoU`` and ``BinaryAUROC`` return a scalar from ``compute()``, so they are logged as metric objects,
  ``self.log("val/miou", self.val_miou)``: Lightning calls ``compute()`` at the end of the epoch and resets them.
- ``SegmentationMetrics.compute()`` returns a dict (per-class IoU, Dice, pixel accuracy, ...), and
  ``AUROC.at_threshold(0.5)`` gives sensitivity, specificity, precision and accuracy at one threshold: these are
  computed in ``on_validation_epoch_end``, logged as values, and the segmentation metric is reset there.

Under DDP every rank updates the metrics with its shard of the validation set and the metrics synchronise
themselves (all-reduces of the confusion matrices and of the AUROC histograms) when computed. A row per epoch is printed
on rank 0 and TensorBoard logs go under ``--out``.

    python examples/segmentation_auroc.py                              # about 1.5 minutes on 2 idle CPU cores
    python examples/segmentation_auroc.py --threads 1                  # faster on a machine other jobs keep busy
    python examples/segmentation_auroc.py --devices 2 --strategy ddp   # two CPU processes
    tensorboard --logdir runs/segmentation_auroc
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import BinaryAUROC, MeanIoU, SegmentationMetrics

CLASSES = ("background", "disc", "square")
DISC, SQUARE = 1, 2

# The data -----------------------------------------------------------------------------------------------------------


def make_shapes(
    num_images: int, size: int = 32, *, seed: int, max_shapes: int = 3, noise: float = 0.35
) -> tuple[Tensor, Tensor, Tensor]:
    """Noisy images of discs and squares: float32 ``[N, 1, size, size]``, label maps ``[N, size, size]`` (int64,
    0 background, 1 disc, 2 square) and int64 ``[N]``: 1 if a square is visible.

    Each image holds one to ``max_shapes`` shapes, each a disc or a square with probability ½, of a random radius,
    position and brightness; later shapes cover earlier ones. A square of radius ``r`` has half-side
    ``r·√π/2``, the area of the disc, so size is no clue. Gaussian noise of standard deviation ``noise`` on top.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float | Tensor, high: float | Tensor) -> Tensor:
        return low + (high - low) * torch.rand(num_images, 1, 1, generator=generator)

    grid = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = grid[None, :, None], grid[None, None, :]
    masks = torch.zeros(num_images, size, size, dtype=torch.int64)
    brightness = torch.zeros(num_images, size, size)
    count = torch.randint(1, max_shapes + 1, (num_images, 1, 1), generator=generator)
    for k in range(max_shapes):
        kind = torch.randint(DISC, SQUARE + 1, (num_images, 1, 1), generator=generator)
        radius = uniform(0.1 * size, 0.22 * size)
        cx, cy = uniform(radius, size - radius), uniform(radius, size - radius)
        level = uniform(0.6, 1.0)
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        half_side = radius * math.sqrt(math.pi) / 2
        square = torch.maximum((xs - cx).abs(), (ys - cy).abs()) <= half_side
        region = torch.where(kind == DISC, disc, square) & (k < count)
        masks = torch.where(region, kind, masks)
        brightness = torch.where(region, level, brightness)
    images = brightness + noise * torch.randn(num_images, size, size, generator=generator)
    has_square = (masks == SQUARE).flatten(1).any(dim=1).to(torch.int64)
    return images[:, None], masks, has_square


# The network ----------------------------------------------------------------------------------------------------------


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU())


class ShapesNet(nn.Module):
    """A two-level UNet: ``[N, 1, H, W]`` -> segmentation logits ``[N, 3, H, W]`` and "has a square" logits ``[N]``.

    The image-level head reads the bottleneck through a global max pool: one square anywhere is enough.
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.enc1 = conv_block(1, c)  # H
        self.enc2 = conv_block(c, 2 * c)  # H/2
        self.mid = conv_block(2 * c, 2 * c)  # H/4
        self.dec2 = conv_block(4 * c, c)  # H/2, with the skip of enc2
        self.dec1 = conv_block(2 * c, c)  # H, with the skip of enc1
        self.segment = nn.Conv2d(c, len(CLASSES), 1)
        self.classify = nn.Linear(2 * c, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = self.enc1(x)
        h2 = self.enc2(nn.functional.max_pool2d(h1, 2))
        h = self.mid(nn.functional.max_pool2d(h2, 2))
        has_square = self.classify(h.amax(dim=(2, 3))).squeeze(1)
        h = self.dec2(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h2], dim=1))
        h = self.dec1(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h1], dim=1))
        return self.segment(h), has_square


# The module and its metrics -------------------------------------------------------------------------------------------

TABLE_HEADER = (
    f"{'epoch':>5} {'mIoU':>7} {'pix acc':>7} {'IoU sq':>7} {'AUROC':>7} {'spec':>6} {'prec':>6} {'recall':>6} "
    f"{'acc':>6}"
)


class ShapesSegmenter(LightningModule):
    """Trains ``ShapesNet`` with cross-entropy per pixel plus binary cross-entropy per image; validates with
    ``MeanIoU`` and ``BinaryAUROC`` (logged as metric objects) and ``SegmentationMetrics`` (logged as values).
    """

    def __init__(self, channels: int = 16, lr: float = 3e-3, aux_weight: float = 0.5) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = ShapesNet(channels)
        num_classes = len(CLASSES)
        self.val_miou = MeanIoU(num_classes=num_classes, input_format="mixed")  # logits and label maps
        self.val_segmentation = SegmentationMetrics(num_classes=num_classes)
        # The default thresholds hold 0.5 exactly (at_threshold uses the nearest); logits are binned on the
        # log-odds axis.
        self.val_auroc = BinaryAUROC(input="logits")
        self.history: list[dict[str, float]] = []

    def _losses(self, batch: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, masks, has_square = batch
        segment_logits, square_logits = self.net(images)
        loss = nn.functional.cross_entropy(segment_logits, masks) + self.hparams.aux_weight * (
            nn.functional.binary_cross_entropy_with_logits(square_logits, has_square.float())
        )
        return loss, segment_logits, square_logits

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self._losses(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> None:
        loss, segment_logits, square_logits = self._losses(batch)
        _, masks, has_square = batch
        self.val_miou.update(segment_logits, masks)  # per image: argmax of the scores [N, C, H, W] vs masks
        self.val_segmentation.update(segment_logits, masks)
        self.val_auroc.update(square_logits, has_square)
        # Metric objects: Lightning computes them (synchronised over the ranks) at the end of the epoch, then resets.
        self.log("val/miou", self.val_miou)
        self.log("val/auroc", self.val_auroc)
        self.log("val/loss", loss, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        # Every rank computes (each call is a collective); the values are then the same on every rank.
        scores = self.val_segmentation.compute()
        at_half = self.val_auroc.at_threshold(0.5)
        values = {
            "val/pixel_accuracy": scores["pixel_accuracy"],
            "val/mean_class_accuracy": scores["mean_class_accuracy"],
            "val/mdice": scores["mdice"],
            "val/miou_dataset": scores["miou"],
            **{f"val/iou_{name}": scores["iou"][k] for k, name in enumerate(CLASSES)},
            "val/specificity": at_half["specificity"],
            "val/precision": at_half["precision"],
            "val/recall": at_half["sensitivity"],
            "val/accuracy": at_half["accuracy"],
        }
        # Already global values: the mean over ranks of equal values is the value (and Lightning asks for sync_dist).
        self.log_dict(values, sync_dist=True)
        self.val_segmentation.reset()
        if self.trainer.sanity_checking:
            return
        # compute() caches its result until the next update: Lightning logs these same values.
        record = {"epoch": self.current_epoch, "val/miou": float(self.val_miou.compute())}
        record["val/auroc"] = float(self.val_auroc.compute())
        record.update({name: float(value) for name, value in values.items()})
        self.history.append(record)
        if self.trainer.is_global_zero:
            if len(self.history) == 1:
                print(f"\n{TABLE_HEADER}", flush=True)
            print(format_row(record), flush=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def format_row(record: dict[str, float]) -> str:
    """One epoch's validation values as a row under ``TABLE_HEADER``."""
    return (
        f"{int(record['epoch']):>5d} {record['val/miou']:>7.4f} {record['val/pixel_accuracy']:>7.4f} "
        f"{record['val/iou_square']:>7.4f} {record['val/auroc']:>7.4f} {record['val/specificity']:>6.3f} "
        f"{record['val/precision']:>6.3f} {record['val/recall']:>6.3f} {record['val/accuracy']:>6.3f}"
    )


# Main -----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=4096, help="training images")
    parser.add_argument("--val-size", type=int, default=512, help="validation images (a multiple of --devices)")
    parser.add_argument("--image-size", type=int, default=32, help="a multiple of 4")
    parser.add_argument("--channels", type=int, default=16, help="width of the network")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="e.g. ddp (CPU processes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores/devices)")
    parser.add_argument("--out", type=Path, default=Path("runs/segmentation_auroc"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.train_size, args.val_size, args.image_size, args.channels = 2, 256, 128, 16, 8
    if args.image_size % 4:
        parser.error(f"--image-size must be a multiple of 4, got {args.image_size}")
    if args.val_size % args.devices:
        # Lightning's DistributedSampler would pad the shards with repeated images, counting them twice.
        parser.error(f"--val-size must be a multiple of --devices, got {args.val_size} and {args.devices}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    # On a machine other jobs keep busy, --threads 1 is faster: waiting threads spin on the cores they lack.
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // args.devices))
    seed_everything(args.seed, verbose=False)
    # Different seeds: the validation images are not the training images.
    train = TensorDataset(*make_shapes(args.train_size, args.image_size, seed=args.seed))
    val = TensorDataset(*make_shapes(args.val_size, args.image_size, seed=args.seed + 1))
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        logger=TensorBoardLogger(args.out, name="tensorboard"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    module = ShapesSegmenter(channels=args.channels, lr=args.lr)
    trainer.fit(
        module,
        DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True),
        DataLoader(val, batch_size=128, shuffle=False),
    )
    if not trainer.is_global_zero:
        return

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(module.history, indent=2))
    first, last = module.history[0], module.history[-1]
    print(
        f"\nmIoU {first['val/miou']:.3f} -> {last['val/miou']:.3f}, AUROC {first['val/auroc']:.3f} -> "
        f"{last['val/auroc']:.3f} (epochs {first['epoch']} -> {last['epoch']})"
    )
    print(f"metrics per epoch: {args.out / 'metrics.json'}")
    print(
        f"finished in {time.perf_counter() - started:.0f} s; open the logs with:\n    tensorboard --logdir {args.out}"
    )


if __name__ == "__main__":
    main()
