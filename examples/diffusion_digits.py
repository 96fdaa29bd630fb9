"""Demo: a class-conditional diffusion model with classifier-free guidance on scikit-learn digits, judged as it trains.

Everything runs offline on CPU. The data are scikit-learn's bundled handwritten digits (1,797 8×8 images,
upsampled to 16×16 and scaled to [-1, 1]). First a small digits classifier is trained (seconds; cached on disk);
wrapped in ``ClassifierFeatures`` it is the feature extractor of the metrics (its penultimate layer for FID and KID,
its logits for the Inception Score) and the judge of class fidelity: are the samples of the digit they were
conditioned on (accuracy, and one-vs-rest AUROC of its logits against the conditioning labels)?

Then a small UNet-style ε-prediction network learns the digits with label dropout (``p_uncond``), and after every
epoch ``GenerativeMetricsCallback`` samples with DDIM for each guidance strength ``w`` of the sweep and logs FID and
KID; this script's ``ClassFidelityCallback`` adds the Inception Score, accuracy and AUROC for the same strengths.
A table is printed per evaluation, TensorBoard logs go under ``--out``, and at the end the sample grid (one row per
digit) and the FID–IS trade-off curve over ``w`` are saved as PNG files.

    python examples/diffusion_digits.py                              # about 3 minutes on 2 CPU cores
    python examples/diffusion_digits.py --devices 2 --strategy ddp   # two CPU processes
    tensorboard --logdir runs
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image, ImageDraw
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image

from lightning_genmetrics import AUROC, DiffusionSampler, InceptionScore, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.callbacks.generative_metrics import isolated_rng, shard_bounds
from lightning_genmetrics.features.classifier import ClassifierFeatures
from lightning_genmetrics.features.extractor import ImageFeatures
from lightning_genmetrics.samplers import NoiseSchedule, diffusion_loss
from lightning_genmetrics.samplers.base import eval_mode

NUM_CLASSES = 10
NULL_LABEL = NUM_CLASSES  # the extra label embedding row that means "no class"
IMAGE_SIZE = 16
NUM_TRAIN_STEPS = 1000
CLASSIFIER_VERSION = 1  # bump when the classifier or its training changes: it names the cache file


def load_digits_images(size: int = IMAGE_SIZE) -> tuple[Tensor, Tensor]:
    """scikit-learn's digits as float32 ``[1797, 1, size, size]`` in [-1, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images * 2 - 1).clamp(-1, 1), torch.tensor(digits.target, dtype=torch.int64)


def to_classifier_input(images: Tensor) -> Tensor:
    """The metrics' feature protocol (RGB in [0, 1]) to the classifier's input (one channel in [-1, 1])."""
    return images[:, :1] * 2 - 1


# The judge ------------------------------------------------------------------------------------------------------


class DigitClassifier(nn.Module):
    """A small conv net on ``[N, 1, 16, 16]`` digits in [-1, 1]; ``features`` ends in the 64-d penultimate layer."""

    num_penultimate = 64

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, self.num_penultimate),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.num_penultimate, NUM_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def train_classifier(
    images: Tensor, labels: Tensor, cache_dir: Path, *, epochs: int = 15, seed: int = 0
) -> tuple[DigitClassifier, float]:
    """The digits classifier and its held-out accuracy: loaded from ``cache_dir``, or trained (seconds) and saved.

    Trained on a random 80% of the digits, with random shifts of up to one pixel so it also reads imperfect
    samples; the accuracy is measured on the other 20%.
    """
    path = cache_dir / f"digits-classifier-v{CLASSIFIER_VERSION}-e{epochs}-s{seed}.pt"
    classifier = DigitClassifier()
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        accuracy = float(state.pop("held_out_accuracy"))
        classifier.load_state_dict(state)
        return classifier.eval(), accuracy
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(images.shape[0], generator=generator)
    cut = int(0.8 * images.shape[0])
    train, test = order[:cut], order[cut:]
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=2e-3)
    classifier.train()
    for _ in range(epochs):
        for batch in train[torch.randperm(cut, generator=generator)].split(64):
            shift = torch.randint(-1, 2, (2,), generator=generator).tolist()
            x = torch.roll(images[batch], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(classifier(x), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    classifier.eval()
    with torch.no_grad():
        accuracy = (classifier(images[test]).argmax(1) == labels[test]).float().mean().item()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({**classifier.state_dict(), "held_out_accuracy": torch.tensor(accuracy)}, partial)
    partial.replace(path)  # atomic: a concurrent run never reads half a file
    return classifier, accuracy


# The diffusion model ---------------------------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embeddings ``[N, dim]`` of integer timesteps (Vaswani et al.; DDPM)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, with the time-and-class embedding added in between, plus a skip path."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels)
        self.norm2 = nn.GroupNorm(8, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class ConditionalUNet(nn.Module):
    """A two-level UNet ``(x_t, t, labels) -> ε̂`` for ``[N, 1, 16, 16]``; label ``NULL_LABEL`` means unconditional."""

    def __init__(self, channels: int = 32, emb_dim: int = 128) -> None:
        super().__init__()
        c = channels
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(NUM_CLASSES + 1, emb_dim)
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb_dim)  # 16×16
        self.pool1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.down2 = ResBlock(2 * c, 2 * c, emb_dim)  # 8×8
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * c, 2 * c, emb_dim)  # 4×4
        self.up2 = ResBlock(4 * c, 2 * c, emb_dim)  # 8×8, with the skip of down2
        self.up1 = ResBlock(3 * c, c, emb_dim)  # 16×16, with the skip of down1
        self.norm_out = nn.GroupNorm(8, c)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim)) + self.label_emb(labels)
        h1 = self.down1(self.conv_in(x), emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.mid(self.pool2(h2), emb)
        h = self.up2(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h2], dim=1), emb)
        h = self.up1(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h1], dim=1), emb)
        return self.conv_out(nn.functional.silu(self.norm_out(h)))


class DigitsDiffusion(LightningModule):
    """Trains ``ConditionalUNet`` with the simple ε loss and label dropout for classifier-free guidance."""

    def __init__(self, channels: int = 24, lr: float = 2e-3, p_uncond: float = 0.15, sampling_steps: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = ConditionalUNet(channels)
        self.schedule = NoiseSchedule.linear(NUM_TRAIN_STEPS)

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        loss = diffusion_loss(
            self.model, images, self.schedule, labels=labels, p_uncond=self.hparams.p_uncond, null_label=NULL_LABEL
        )
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        # A short warm-up, then cosine decay: a few epochs must get far.
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=int(total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def digits_sampler(module: DigitsDiffusion) -> DiffusionSampler:
    """The callbacks' sampler: DDIM over the module's network, labels drawn per sample (module-level for DDP)."""
    return DiffusionSampler(
        module.model,
        (1, IMAGE_SIZE, IMAGE_SIZE),
        schedule=module.schedule,
        num_train_steps=NUM_TRAIN_STEPS,
        num_steps=module.hparams.sampling_steps,
        null_label=NULL_LABEL,
        num_classes=NUM_CLASSES,
    )


# Class fidelity and the printed table ----------------------------------------------------------------------------


class ClassFidelityCallback(Callback):
    """After each evaluation of ``metrics``: per guidance strength, the Inception Score of the classifier's logits
    and the accuracy and AUROC of the classifier against the conditioning labels, on ``per_class`` samples of every
    digit (sharded over the ranks); logs them as ``gen/is/w=…``, ``gen/accuracy/w=…``, ``gen/auroc/w=…`` and prints
    one table per evaluation with ``metrics``' FID and KID. Place it after ``metrics`` in the Trainer's callbacks.
    """

    def __init__(
        self,
        metrics: GenerativeMetricsCallback,
        logits: ClassifierFeatures,
        per_class: int,
        *,
        batch_size: int = 250,
        seed: int = 1,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.logits = ImageFeatures(logits, input_range=(-1, 1))
        self.inception = InceptionScore(logits, splits=1, input_range=(-1, 1))
        self.auroc = AUROC("multiclass", num_classes=NUM_CLASSES, input="logits")
        self.per_class = per_class
        self.batch_size = batch_size
        self.seed = seed
        self.history: list[dict[str, Any]] = []
        self._seen = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if len(self.metrics.history) == self._seen:
            return  # the metrics callback did not evaluate this epoch
        self._seen = len(self.metrics.history)
        started = time.perf_counter()
        record = dict(self.metrics.history[-1])
        for metric in (self.logits, self.inception, self.auroc):
            metric.to(pl_module.device)
        values: dict[str, float] = {}
        with isolated_rng(pl_module.device), torch.inference_mode(), eval_mode(pl_module):
            for w in self.metrics.guidance or (0.0,):
                for name, value in self._evaluate(trainer, pl_module.device, w).items():
                    values[f"{name}/w={w:g}"] = value
        for name, value in values.items():
            # Already global values, the same on every rank.
            pl_module.log(f"gen/{name}", value, sync_dist=False, rank_zero_only=False)
        record.update(values)
        record["fidelity_seconds"] = time.perf_counter() - started
        self.history.append(record)
        if trainer.is_global_zero:
            print(format_table(record, self.metrics.guidance or (0.0,)), flush=True)

    def _evaluate(self, trainer: Trainer, device: torch.device, w: float) -> dict[str, float]:
        sampler = copy.copy(self.metrics.sampler)
        sampler.guidance = w
        total = self.per_class * NUM_CLASSES
        labels = torch.arange(total) % NUM_CLASSES
        start, stop = shard_bounds(total, trainer.global_rank, trainer.world_size)
        self.inception.reset()
        self.auroc.reset()
        correct = torch.zeros((), dtype=torch.int64, device=device)
        images = sample_range(
            sampler, start, stop, seed=self.seed, batch_size=self.batch_size, device=device, labels=labels[start:stop]
        )
        targets = labels[start:stop].to(device)
        logits = self.logits(images)
        correct += (logits.argmax(1) == targets).sum()
        self.inception.update(images, sample_ids=torch.arange(start, stop, device=device))
        self.auroc.update(logits, targets)
        correct = trainer.strategy.reduce(correct, reduce_op="sum")
        return {
            "is": float(self.inception.compute()[0]),
            "accuracy": float(correct) / total,
            "auroc": float(self.auroc.compute()),
        }


def format_table(record: dict[str, Any], guidance: tuple[float, ...]) -> str:
    """One evaluation as a table: a row per guidance strength."""
    lines = [
        f"\nepoch {record['epoch']} (step {record['global_step']}), "
        f"{record['eval_seconds'] + record['fidelity_seconds']:.1f} s of evaluation",
        f"{'w':>5} {'FID':>9} {'KID':>9} {'IS':>7} {'accuracy':>9} {'AUROC':>7}",
    ]
    for w in guidance:
        row = [record[f"fid/w={w:g}"], record[f"kid/w={w:g}"]]
        fidelity = [record[f"{name}/w={w:g}"] for name in ("is", "accuracy", "auroc")]
        lines.append(
            f"{w:>5g} {row[0]:>9.3f} {row[1]:>9.4f} {fidelity[0]:>7.3f} {fidelity[1]:>9.3f} {fidelity[2]:>7.4f}"
        )
    if "best_w" in record:
        lines.append(f"best w (lowest FID): {record['best_w']:g}")
    return "\n".join(lines)


# Pictures ---------------------------------------------------------------------------------------------------------


def save_sample_grid(module: DigitsDiffusion, path: Path, w: float, per_class: int = 10, seed: int = 2) -> None:
    """A PNG grid of samples at guidance ``w``: row ``k`` holds ``per_class`` samples of digit ``k``."""
    sampler = digits_sampler(module)
    sampler.guidance = w
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    with torch.inference_mode(), eval_mode(module):
        images = sample_range(sampler, 0, labels.shape[0], seed=seed, batch_size=250, device="cpu", labels=labels)
    big = nn.functional.interpolate((images + 1) / 2, scale_factor=2.0, mode="nearest")
    save_image(big, path, nrow=per_class, padding=2, pad_value=1.0)


def save_tradeoff_curve(record: dict[str, Any], guidance: tuple[float, ...], path: Path) -> None:
    """A PNG of FID (x, lower is better) against Inception Score (y, higher is better), one point per ``w``.

    Drawn with Pillow (a torchvision dependency), so the demo needs no plotting library.
    """
    points = [(record[f"fid/w={w:g}"], record[f"is/w={w:g}"], w) for w in guidance]
    width, height, margin = 640, 480, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs) + 1e-9
    y_lo, y_hi = min(ys), max(ys) + 1e-9
    x_pad, y_pad = 0.1 * (x_hi - x_lo) + 1e-6, 0.1 * (y_hi - y_lo) + 1e-6

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = margin + (x - x_lo + x_pad) / (x_hi - x_lo + 2 * x_pad) * (width - 2 * margin)
        py = height - margin - (y - y_lo + y_pad) / (y_hi - y_lo + 2 * y_pad) * (height - 2 * margin)
        return px, py

    draw.rectangle([margin, margin, width - margin, height - margin], outline="black")
    for fraction in (0.0, 0.5, 1.0):
        x = x_lo - x_pad + fraction * (x_hi - x_lo + 2 * x_pad)
        y = y_lo - y_pad + fraction * (y_hi - y_lo + 2 * y_pad)
        px, _ = to_pixel(x, y_lo)
        _, py = to_pixel(x_lo, y)
        draw.text((px - 15, height - margin + 8), f"{x:.4g}", fill="black")
        draw.text((8, py - 6), f"{y:.4g}", fill="black")
    pixels = [to_pixel(x, y) for x, y, _ in points]
    if len(pixels) > 1:
        draw.line(pixels, fill=(31, 119, 180), width=2)
    for (px, py), (_, _, w) in zip(pixels, points, strict=True):
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=(31, 119, 180))
        draw.text((px + 7, py - 14), f"w={w:g}", fill="black")
    draw.text((width // 2 - 90, height - 30), "FID (lower is better)", fill="black")
    draw.text((8, 20), "Inception Score (higher is better)", fill="black")
    draw.text((width // 2 - 120, 8), f"guidance trade-off, epoch {record['epoch']}", fill="black")
    image.save(path)


# Main ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the digits per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=24, help="width of the UNet")
    parser.add_argument("--sampling-steps", type=int, default=8, help="DDIM steps")
    parser.add_argument("--num-samples", type=int, default=200, help="samples per FID/KID evaluation and strength")
    parser.add_argument("--per-class", type=int, default=10, help="samples per digit for IS, accuracy and AUROC")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="e.g. ddp (CPU processes)")
    parser.add_argument("--out", type=Path, default=Path("runs/diffusion_digits"))
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/lightning_genmetrics/demo").expanduser())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.repeats, args.channels, args.sampling_steps = 2, 1, 8, 3
        args.num_samples, args.per_class, args.guidance = 40, 4, [0.0, 2.0]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.devices))
    is_main = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    images, labels = load_digits_images()
    classifier, held_out = train_classifier(images, labels, args.cache_dir, epochs=2 if args.tiny else 15)
    if is_main:
        print(f"digits classifier (the judge): held-out accuracy {held_out:.3f}")

    seed_everything(args.seed, verbose=False)  # after the classifier: a cached one must not change the run
    features = ClassifierFeatures(
        classifier, "features", num_features=DigitClassifier.num_penultimate, input_transform=to_classifier_input
    )
    logits = ClassifierFeatures(classifier, output="logits", input_transform=to_classifier_input)
    metrics = GenerativeMetricsCallback(
        digits_sampler,
        DataLoader(TensorDataset(images, labels), batch_size=512, shuffle=False),
        metrics=("fid", "kid"),
        feature_extractor=features,
        num_samples=args.num_samples,
        batch_size=250,
        num_images=100,
        guidance=args.guidance,
        metric_kwargs={"kid": {"subsets": 20, "subset_size": min(200, args.num_samples)}},
        cache_dir=args.out / "real-statistics",
    )
    fidelity = ClassFidelityCallback(metrics, logits, args.per_class)
    train = TensorDataset(images.repeat(args.repeats, 1, 1, 1), labels.repeat(args.repeats))
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        logger=TensorBoardLogger(args.out, name="tensorboard"),
        callbacks=[metrics, fidelity],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    module = DigitsDiffusion(channels=args.channels, sampling_steps=args.sampling_steps)
    trainer.fit(module, DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True))
    if not trainer.is_global_zero:
        return

    last = fidelity.history[-1]
    best_w = float(last.get("best_w", args.guidance[0]))
    args.out.mkdir(parents=True, exist_ok=True)
    save_sample_grid(module, args.out / "samples.png", best_w)
    save_tradeoff_curve(last, tuple(args.guidance), args.out / "fid_is_tradeoff.png")
    (args.out / "metrics.json").write_text(json.dumps(fidelity.history, indent=2))
    print(f"\nsample grid (a row per digit, w = {best_w:g}): {args.out / 'samples.png'}")
    print(f"FID–IS trade-off over w: {args.out / 'fid_is_tradeoff.png'}")
    print(f"metrics per evaluation: {args.out / 'metrics.json'}")
    print(
        f"finished in {time.perf_counter() - started:.0f} s; open the logs with:\n    tensorboard --logdir {args.out}"
    )


if __name__ == "__main__":
    main()
