"""What the callback tests share: tiny seeded Lightning modules, samplers, real images, a Trainer factory.

Imported by the test modules of ``tests/callbacks``, ``tests/samplers`` and ``tests/features`` (no test module
imports another test module).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_genmetrics import DiffusionSampler, GANSampler
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from tests.helpers import TinyFeatureNet

LATENT = 6
NUM_SAMPLES = 24


class TinyGAN(LightningModule):
    """A generator trained to regress fixed latents onto images: deterministic, so a resumed run matches."""

    def __init__(self, lr: float = 0.5) -> None:
        super().__init__()
        self.lr = lr
        generator = torch.Generator().manual_seed(0)
        self.generator = nn.Sequential(nn.Linear(LATENT, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)))
        with torch.no_grad():
            for parameter in self.generator.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        self.register_buffer("z", torch.randn(8, LATENT, generator=generator))
        self.draws: list[float] = []
        self.training_flags: list[bool] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        # Records the global RNG stream training sees; the callback must not shift it.
        self.draws.append(float(torch.rand(())))
        self.training_flags.append(self.training and self.generator.training)
        images = batch[0]
        return ((self.generator(self.z[: images.shape[0]]) - images) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class TinyGANWithValidation(TinyGAN):
    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", batch[0].mean())


class CountingImages(Dataset):
    """Real images in [-1, 1] that count how often they are read."""

    def __init__(self, n: int = 16) -> None:
        self.images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
        self.reads = 0

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.reads += 1
        return self.images[index], index % 2


def gan_sampler(pl_module: TinyGAN) -> GANSampler:
    return GANSampler(pl_module.generator, latent_shape=(LATENT,))


def train_loader() -> DataLoader:
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 1.6 - 0.8
    return DataLoader(TensorDataset(images), batch_size=8)


def make_trainer(tmp_path: Path, callbacks: list, max_epochs: int, **kwargs: object) -> Trainer:
    options = {
        "max_epochs": max_epochs,
        "accelerator": "cpu",
        "devices": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": TensorBoardLogger(tmp_path, name="tb", version=0),
        "num_sanity_val_steps": 0,
    }
    options.update(kwargs)
    return Trainer(callbacks=callbacks, default_root_dir=tmp_path, **options)


def read_events(log_dir: str) -> EventAccumulator:
    events = EventAccumulator(log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


class TinyDenoiser(nn.Module):
    """A class-conditional ε-model for two classes; label 2 is the null label of classifier-free guidance."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.embed = nn.Embedding(3, 3)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.embed(labels)[:, :, None, None]


class TinyDiffusion(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.denoiser = TinyDenoiser()

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch[0]
        labels = torch.zeros(images.shape[0], dtype=torch.int64)
        return self.denoiser(images, labels, labels).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def diffusion_sampler(pl_module: TinyDiffusion) -> DiffusionSampler:
    return DiffusionSampler(pl_module.denoiser, (3, 8, 8), num_train_steps=10, num_steps=2, null_label=2, num_classes=2)


def guidance_sweep_callback() -> GenerativeMetricsCallback:
    """FID and IS of a tiny class-conditional diffusion model at guidance strengths 0 and 3."""
    return GenerativeMetricsCallback(
        diffusion_sampler,
        DataLoader(CountingImages(), batch_size=8),
        metrics=("fid", "is"),
        feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
        num_samples=NUM_SAMPLES,
        batch_size=12,
        num_images=4,
        metric_kwargs={"is": {"splits": 2}},
        guidance=[0.0, 3.0],
    )


def check_fid_guidance_sweep(tmp_path: Path, sampler: Callable[[Any], Any], module: LightningModule) -> None:
    """One epoch of ``module`` with FID swept over guidance 0 and 2 of ``sampler(module)``: both strengths are
    evaluated and differ, and ``best_w`` and ``fid`` are the lower FID's."""
    callback = GenerativeMetricsCallback(
        sampler,
        DataLoader(CountingImages(), batch_size=8),
        metrics=("fid",),
        feature_extractor=TinyFeatureNet(16, seed=5, declare=True),
        num_samples=NUM_SAMPLES,
        batch_size=12,
        num_images=4,
        guidance=[0.0, 2.0],
    )
    make_trainer(tmp_path, [callback], max_epochs=1).fit(module, train_loader())
    (record,) = callback.history
    assert np.isfinite(record["fid/w=0"])
    assert np.isfinite(record["fid/w=2"])
    assert record["fid/w=0"] != record["fid/w=2"]
    assert record["best_w"] == min((0.0, 2.0), key=lambda w: record[f"fid/w={w:g}"])
    assert record["fid"] == record[f"fid/w={record['best_w']:g}"]


class ConditionalGenerator(nn.Module):
    """``(z, labels) -> images``: the label shifts the image brightness, so a classifier can read it."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(4)
        self.linear = nn.Linear(LATENT, 3 * 8 * 8)
        with torch.no_grad():
            for parameter in self.linear.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        base = self.linear(z).view(-1, 3, 8, 8)
        shift = labels.float()[:, None, None, None] / (self.num_classes - 1) * 0.3 - 0.15
        return torch.tanh(base + shift)


class ConditionalGAN(TinyGAN):
    def __init__(self, lr: float = 0.5) -> None:
        super().__init__(lr)
        self.conditional = ConditionalGenerator()

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        labels = torch.arange(batch[0].shape[0]) % 3
        out = self.conditional(self.z[: batch[0].shape[0]], labels)
        return super().training_step(batch, batch_idx) + (out - batch[0]).pow(2).mean()


class BrightnessClassifier(nn.Module):
    """Logits of three brightness classes from the mean pixel value (images in [0, 1])."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3))
        centres = torch.tensor([0.43, 0.495, 0.56], device=images.device)
        return -((mean[:, None] - centres) ** 2) * 2000


def conditional_sampler(pl_module: ConditionalGAN) -> GANSampler:
    return GANSampler(pl_module.conditional, latent_shape=(LATENT,), num_classes=3)


def masks_to_images(num_samples: int, *, generator: object, device: object, labels: torch.Tensor) -> torch.Tensor:
    """A mask-conditioned "generator": class k paints grey level k/2, plus noise."""
    noise = torch.randn(num_samples, 1, 8, 8, generator=generator) * 0.3
    return (labels[:, None].float() / 2 + noise).clamp(0, 1).expand(-1, 3, -1, -1)


class ThresholdSegmenter(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grey = images[:, 0]
        return (grey > 0.25).long() + (grey > 0.75).long()


class RecordingCallback(GenerativeMetricsCallback):
    """Saves each rank's history and cache key, which ``ddp_spawn`` does not bring back to the parent."""

    out_dir: Path

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        record = {"history": self.history, "cache_key": self.cache_key}
        name = self.prefix.strip("/")
        torch.save(record, self.out_dir / f"{name}-rank{trainer.global_rank}-of-{trainer.world_size}.pt")


def stub_trainer(rank: int = 0, world_size: int = 1, **fields: object) -> SimpleNamespace:
    """What the callback's pieces read of a Trainer, for one rank without a process group: collectives return
    this rank's own value."""
    strategy = SimpleNamespace(broadcast=lambda value, src=0: value, reduce=lambda value, reduce_op=None: value)
    options = {
        "global_rank": rank,
        "world_size": world_size,
        "is_global_zero": rank == 0,
        "strategy": strategy,
        "current_epoch": 0,
        "global_step": 0,
        "progress_bar_callback": None,
        "loggers": [],
        "callbacks": [],
    }
    options.update(fields)
    return SimpleNamespace(**options)
