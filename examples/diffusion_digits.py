"""Demo: a class-conditional diffusion model with classifier-free guidance on scikit-learn digits, judged as it trains.

Everything runs offline on CPU. The data are scikit-learn's bundled handwritten digits (1,797 8×8 images,
upsampled to 16×16 and scaled to [-1, 1]). First a small digits classifier is trained (seconds; cached on disk);
wrapped in ``ClassifierFeatures`` it is the feature extractor of the metrics (its penultimate layer for FID and KID,
its logits for the Inception Score) and the judge of class fidelity: are the samples of the digit they were
conditioned on (accuracy, and one-vs-rest AUROC of its logits against the conditioning labels)?

Then a small UNet-style ε-prediction network learns the digits with label dropout (``p_uncond``), and after every
epoch ``GenerativeMetricsCallback`` samples with DDIM for each guidance strength ``w`` of the sweep (the same noise
and a balanced set of conditioning labels each time) and logs FID, KID, the Inception Score, and the classifier's
accuracy and AUROC against the conditioning labels, all from one pass over the samples. A table is printed per
evaluation; TensorBoard gets the scalars, a sample grid per strength, the FID–IS trade-off curve and a PCA of real
vs generated features; at the end the sample grid (one row per digit) and the trade-off curve are saved as PNGs.

    python examples/diffusion_digits.py                              # about 1.5 minutes on 2 idle CPU cores
    python examples/diffusion_digits.py --devices 2 --strategy ddp   # two CPU processes
    tensorboard --logdir runs
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
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image

from lightning_genmetrics import ClassifierFeatures, DiffusionSampler, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback, figures
from lightning_genmetrics.samplers import NoiseSchedule, diffusion_loss
from lightning_genmetrics.samplers.base import eval_mode

from digits_data import (
    IMAGE_SIZE,
    NUM_CLASSES,
    DigitClassifier,
    load_digits_images,
    to_classifier_input,
    train_classifier,
)

NULL_LABEL = NUM_CLASSES  # the extra label embedding row that means "no class"
NUM_TRAIN_STEPS = 1000


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


# The printed table -----------------------------------------------------------------------------------------------


class PrintTable(Callback):
    """Prints each evaluation of ``metrics`` as a table (rank 0). Place it after ``metrics`` in the callbacks."""

    def __init__(self, metrics: GenerativeMetricsCallback) -> None:
        super().__init__()
        self.metrics = metrics
        self._seen = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        history = self.metrics.history
        if len(history) > self._seen and trainer.is_global_zero:
            print(format_table(history[-1], self.metrics.guidance or (0.0,)), flush=True)
        self._seen = len(history)


def format_table(record: dict[str, Any], guidance: tuple[float, ...]) -> str:
    """One evaluation as a table: a row per guidance strength."""
    seconds = ", ".join(
        f"{name.split('/')[1]} {value:.1f} s" for name, value in record.items() if name.startswith("seconds/")
    )
    lines = [
        f"\nepoch {record['epoch']} (step {record['global_step']}): {record['eval_seconds']:.1f} s of evaluation "
        f"({seconds})",
        f"{'w':>5} {'FID':>9} {'KID':>9} {'IS':>7} {'accuracy':>9} {'AUROC':>7}",
    ]
    for w in guidance:
        fid, kid, inception, accuracy, auroc = (
            record[f"{name}/w={w:g}"] for name in ("fid", "kid", "is", "accuracy", "auroc")
        )
        lines.append(f"{w:>5g} {fid:>9.3f} {kid:>9.4f} {inception:>7.3f} {accuracy:>9.3f} {auroc:>7.4f}")
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


def save_tradeoff_curve(record: dict[str, Any], guidance: tuple[float, ...], path: Path) -> bool:
    """A PNG of FID (x, lower is better) against Inception Score (y, higher is better), one point per ``w``: the
    figure the callback logs to TensorBoard. Returns False when matplotlib (the ``plots`` extra) is missing."""
    if not figures.matplotlib_available():
        return False
    points = [(w, record[f"fid/w={w:g}"], record[f"is/w={w:g}"]) for w in guidance]
    figures.tradeoff_figure(points, title=f"guidance trade-off, epoch {record['epoch']}").savefig(path, dpi=120)
    return True


# Main ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the digits per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=24, help="width of the UNet")
    parser.add_argument("--sampling-steps", type=int, default=8, help="DDIM steps")
    parser.add_argument("--num-samples", type=int, default=200, help="samples per evaluation and strength")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="e.g. ddp (CPU processes)")
    parser.add_argument("--out", type=Path, default=Path("runs/diffusion_digits"))
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/lightning_genmetrics/demo").expanduser())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.repeats, args.channels, args.sampling_steps = 2, 1, 8, 3
        args.num_samples, args.guidance = 40, [0.0, 2.0]
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
        metrics=("fid", "kid", "is"),
        feature_extractor={"fid": features, "kid": features, "is": logits},
        classifier=logits,  # accuracy and AUROC against the labels each sample was conditioned on
        num_samples=args.num_samples,
        batch_size=250,
        num_images=100,
        guidance=args.guidance,
        metric_kwargs={"kid": {"subsets": 20, "subset_size": min(200, args.num_samples)}, "is": {"splits": 1}},
        cache_dir=args.out / "real-statistics",
    )
    train = TensorDataset(images.repeat(args.repeats, 1, 1, 1), labels.repeat(args.repeats))
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        logger=TensorBoardLogger(args.out, name="tensorboard"),
        callbacks=[metrics, PrintTable(metrics)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    module = DigitsDiffusion(channels=args.channels, sampling_steps=args.sampling_steps)
    trainer.fit(module, DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True))
    if not trainer.is_global_zero:
        return

    last = metrics.history[-1]
    best_w = float(last.get("best_w", args.guidance[0]))
    args.out.mkdir(parents=True, exist_ok=True)
    save_sample_grid(module, args.out / "samples.png", best_w)
    drawn = save_tradeoff_curve(last, tuple(args.guidance), args.out / "fid_is_tradeoff.png")
    (args.out / "metrics.json").write_text(json.dumps(metrics.history, indent=2))
    print(f"\nsample grid (a row per digit, w = {best_w:g}): {args.out / 'samples.png'}")
    if drawn:
        print(f"FID–IS trade-off over w: {args.out / 'fid_is_tradeoff.png'}")
    else:
        print("no trade-off plot: matplotlib is missing (pip install 'lightning-genmetrics[plots]')")
    print(f"metrics per evaluation: {args.out / 'metrics.json'}")
    print(
        f"finished in {time.perf_counter() - started:.0f} s; open the logs with:\n    tensorboard --logdir {args.out}"
    )


if __name__ == "__main__":
    main()
