"""Example: a convolutional VAE on scikit-learn digits, judged by what it generates and by how well it reconstructs.

Everything runs offline on CPU. The digits (see ``digits_data.py``) are scaled to [0, 1] and split 90/10: the VAE
trains on the first part; after every epoch ``GenerativeMetricsCallback``

- samples from the prior through the decoder (``VAESampler``) and logs FID and KID against the digits, with the
  digits classifier's penultimate layer as features and its logits for the Inception Score;
- reconstructs the held-out digits through the posterior mean (``reconstruct=``) and logs SSIM and PSNR between
  inputs and reconstructions (``--lpips`` adds LPIPS, whose pretrained weights are downloaded on first use).

The generated-sample metrics use the decoder's EMA weights from Lightning's ``EMAWeightAveraging`` (the callback
finds it; ``ema=None`` would use the training weights). A table is printed per evaluation, TensorBoard logs go under
``--out``, and the final reconstructions and prior samples are saved as PNG grids.

    python examples/vae_digits.py          # under a minute on 2 CPU cores
    tensorboard --logdir runs
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image

from lightning_genmetrics import ClassifierFeatures, VAESampler, sample_range
from lightning_genmetrics.samplers.base import eval_mode
from lightning_genmetrics.samplers.latent import reconstruct_images

from digits_data import DigitClassifier, load_digits_images, to_classifier_input, train_classifier


class DigitsVAE(LightningModule):
    """A small conv VAE on ``[N, 1, 16, 16]`` images in [0, 1]: Gaussian encoder, Bernoulli (sigmoid) decoder."""

    def __init__(self, latent: int = 16, channels: int = 32, lr: float = 2e-3, beta: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),  # 8×8
            nn.SiLU(),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),  # 4×4
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * c * 16, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 2 * c * 16),
            nn.SiLU(),
            nn.Unflatten(1, (2 * c, 4, 4)),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),  # 8×8
            nn.SiLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),  # 16×16
            nn.Sigmoid(),
        )

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior ``(mean, logvar)``."""
        mean, logvar = self.encoder(images).chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        images = batch[0]
        mean, logvar = self.encode(images)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = nn.functional.binary_cross_entropy(self.decoder(z), images, reduction="sum") / images.shape[0]
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum() / images.shape[0]
        loss = recon + self.hparams.beta * kl
        self.log_dict({"train/loss": loss, "train/kl": kl}, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def vae_sampler(module: DigitsVAE) -> VAESampler:
    """Prior samples through the decoder (module-level, so DDP can pickle it)."""
    return VAESampler(module.decoder, latent_shape=(module.hparams.latent,))


def reconstruct(module: DigitsVAE, images: Tensor) -> Tensor:
    """Deterministic reconstructions: the decoder at the posterior mean."""
    return reconstruct_images(module.encode, module.decoder, images)


COLUMNS = ("fid", "kid", "is", "recon/ssim", "recon/psnr", "recon/lpips")


class PrintTable(Callback):
    """Prints each evaluation of ``metrics`` (rank 0). Place it after ``metrics`` in the callbacks."""

    def __init__(self, metrics: Any) -> None:
        super().__init__()
        self.metrics = metrics
        self._seen = 0

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        history = self.metrics.history
        if len(history) > self._seen and trainer.is_global_zero:
            record = history[-1]
            names = [name for name in COLUMNS if name in record]
            if self._seen == 0:
                print(f"{'epoch':>5} " + " ".join(f"{name:>11}" for name in names) + "  weights   seconds", flush=True)
            values = " ".join(f"{record[name]:>11.4f}" for name in names)
            weights = "EMA" if record["ema"] else "training"
            print(f"{record['epoch']:>5} {values}  {weights:<8} {record['eval_seconds']:>8.1f}", flush=True)
        self._seen = len(history)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=500, help="prior samples per evaluation")
    parser.add_argument("--ema-decay", type=float, default=0.95)
    parser.add_argument("--lpips", action="store_true", help="also LPIPS (downloads its weights on first use)")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="e.g. ddp (CPU processes)")
    parser.add_argument("--out", type=Path, default=Path("runs/vae_digits"))
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/lightning_genmetrics/demo").expanduser())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.channels, args.num_samples = 2, 8, 60
    return args


def main(argv: list[str] | None = None) -> None:
    from lightning_genmetrics.callbacks import GenerativeMetricsCallback

    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.devices))
    is_main = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    images, labels = load_digits_images()
    classifier, held_out = train_classifier(images, labels, args.cache_dir, epochs=2 if args.tiny else 15)
    if is_main:
        print(f"digits classifier (the judge of FID/KID/IS): held-out accuracy {held_out:.3f}")
    seed_everything(args.seed, verbose=False)
    unit = (images + 1) / 2  # the VAE's range: [0, 1]
    cut = int(0.9 * unit.shape[0])
    train, held = unit[:cut], unit[cut:]

    features = ClassifierFeatures(
        classifier, "features", num_features=DigitClassifier.num_penultimate, input_transform=to_classifier_input
    )
    logits = ClassifierFeatures(classifier, output="logits", input_transform=to_classifier_input)
    metrics = GenerativeMetricsCallback(
        vae_sampler,
        DataLoader(TensorDataset(unit), batch_size=512, shuffle=False),
        metrics=("fid", "kid", "is"),
        feature_extractor={"fid": features, "kid": features, "is": logits},
        num_samples=args.num_samples,
        batch_size=250,
        num_images=64,
        metric_kwargs={"kid": {"subsets": 20, "subset_size": min(200, args.num_samples)}, "is": {"splits": 1}},
        reconstruct=reconstruct,
        reconstruction_data=DataLoader(TensorDataset(held), batch_size=100, shuffle=False),
        reconstruction_metrics=("ssim", "psnr", "lpips") if args.lpips else ("ssim", "psnr"),
        cache_dir=args.out / "real-statistics",
    )
    trainer = Trainer(
        accelerator="cpu",
        devices=args.devices,
        strategy=args.strategy,
        max_epochs=args.epochs,
        logger=TensorBoardLogger(args.out, name="tensorboard"),
        callbacks=[EMAWeightAveraging(decay=args.ema_decay), metrics, PrintTable(metrics)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    module = DigitsVAE(latent=args.latent, channels=args.channels)
    trainer.fit(module, DataLoader(TensorDataset(train), batch_size=args.batch_size, shuffle=True, drop_last=True))
    if not trainer.is_global_zero:
        return

    args.out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode(), eval_mode(module):
        pairs = torch.stack([held[:32], reconstruct(module, held[:32])], dim=1).flatten(0, 1)
        samples = sample_range(vae_sampler(module), 0, 64, seed=1, batch_size=64, device="cpu")
    save_image(pairs, args.out / "reconstructions.png", nrow=16, padding=2, pad_value=1.0)
    save_image(samples, args.out / "samples.png", nrow=8, padding=2, pad_value=1.0)
    (args.out / "metrics.json").write_text(json.dumps(metrics.history, indent=2))
    print(f"\nreconstructions (input, reconstruction pairs): {args.out / 'reconstructions.png'}")
    print(f"prior samples: {args.out / 'samples.png'}")
    print(f"metrics per evaluation: {args.out / 'metrics.json'}")
    print(
        f"finished in {time.perf_counter() - started:.0f} s; open the logs with:\n    tensorboard --logdir {args.out}"
    )


if __name__ == "__main__":
    main()
