"""Demo: a class-conditional autoregressive pixel model with classifier-free guidance on digits, judged as it trains.

Everything runs offline on CPU. The data are scikit-learn's bundled handwritten digits (1,797 8×8 images), each pixel
quantised to one of ``--levels`` intensities: a digit is a sequence of 64 tokens in raster order. A small causal
transformer (a class token, then the pixels) learns the next pixel given the ones before it and the digit's class,
with label dropout (``p_uncond``) so that the same network also gives the unconditional logits. It implements the
sampler's KV-cache protocol (``model(tokens, labels, cache=...) -> (logits, cache)``), so sampling costs one token
per step, not the whole prefix.

After every epoch ``GenerativeMetricsCallback`` samples with ``AutoregressiveSampler`` for each guidance strength
``w`` of the sweep (the guided logits are ``(1 + w)·ℓ(c) − w·ℓ(∅)``; the same random numbers and a balanced set of
conditioning labels each time), decodes the tokens to 16×16 images (the intensities, upsampled as the real digits
are), and logs FID, KID and the Inception Score (the features and logits of the small digits classifier shared by the
examples, see ``digits_data.py``), and the classifier's accuracy and AUROC against the conditioning labels. A table
is printed per evaluation; TensorBoard gets the scalars, a sample grid per strength and the FID–IS trade-off curve; at
the end the sample grid (one row per digit) and the trade-off curve are saved as PNGs.

    python examples/autoregressive_digits.py                 # about 70 s of CPU time: 1-3 min on 2 CPU cores
    python examples/autoregressive_digits.py --threads 1     # faster on a machine other jobs keep busy
    python examples/autoregressive_digits.py --devices 2 --strategy ddp   # two CPU processes
    tensorboard --logdir runs/autoregressive_digits
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
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image

from lightning_genmetrics import AutoregressiveSampler, ClassifierFeatures, sample_range
from lightning_genmetrics.callbacks import GenerativeMetricsCallback, figures
from lightning_genmetrics.samplers import drop_labels
from lightning_genmetrics.samplers.base import eval_mode

from digits_data import (
    IMAGE_SIZE,
    NUM_CLASSES,
    DigitClassifier,
    load_digits_images,
    to_classifier_input,
    train_classifier,
)

NULL_LABEL = NUM_CLASSES  # the extra class-token row that means "no class"
SIDE = 8  # the digits' own resolution: one token per pixel
SEQUENCE_LENGTH = SIDE * SIDE


# Pixels as tokens ---------------------------------------------------------------------------------------------------


def images_to_tokens(images: Tensor, levels: int) -> Tensor:
    """``[N, 1, 8, 8]`` digits in [-1, 1] to ``[N, 64]`` int64 intensity levels in ``[0, levels)``, raster order."""
    return torch.round((images.flatten(1) + 1) / 2 * (levels - 1)).long()


def tokens_to_images(tokens: Tensor, levels: int) -> Tensor:
    """``[N, 64]`` levels to ``[N, 1, 16, 16]`` images in [-1, 1], upsampled as ``load_digits_images`` does."""
    pixels = (tokens.float() / (levels - 1) * 2 - 1).reshape(-1, 1, SIDE, SIDE)
    size = (IMAGE_SIZE, IMAGE_SIZE)
    return nn.functional.interpolate(pixels, size=size, mode="bilinear", align_corners=False).clamp(-1, 1)


# The model ------------------------------------------------------------------------------------------------------------


class CausalBlock(nn.Module):
    """Pre-norm self-attention and MLP; attends to the cached keys and values of earlier positions when given."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        n, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # Query i (at position offset + i) sees the keys at positions up to its own.
        offset = k.shape[2] - s
        mask = torch.arange(k.shape[2], device=x.device) <= torch.arange(offset, k.shape[2], device=x.device)[:, None]
        h = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(h.transpose(1, 2).reshape(n, s, d))
        return x + self.mlp(self.norm2(x)), (k, v)


_NO_CACHE = object()


class PixelTransformer(nn.Module):
    """``(tokens [N, t], labels [N]) -> logits [N, t + 1, levels]``: position 0 is the class token, and the logits at
    position ``i`` are those of pixel ``i``. Called with ``cache=`` (``None`` at first) it takes only the new tokens and
    returns ``(logits of the new positions, cache)``: the sampler's KV-cache protocol."""

    def __init__(self, levels: int, dim: int = 64, heads: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.token_emb = nn.Embedding(levels, dim)
        self.class_emb = nn.Embedding(NUM_CLASSES + 1, dim)
        self.pos_emb = nn.Parameter(torch.randn(SEQUENCE_LENGTH + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(CausalBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, levels)

    def forward(self, tokens: Tensor, labels: Tensor, cache: Any = _NO_CACHE) -> Any:
        cached = cache is not _NO_CACHE and cache is not None
        x = self.token_emb(tokens)
        if not cached:
            x = torch.cat([self.class_emb(labels)[:, None], x], dim=1)
        offset = cache[0][0].shape[2] if cached else 0
        x = x + self.pos_emb[offset : offset + x.shape[1]]
        pasts = cache if cached else [None] * len(self.blocks)
        new_cache = []
        for block, past in zip(self.blocks, pasts, strict=True):
            x, kv = block(x, past)
            new_cache.append(kv)
        logits = self.head(self.norm(x))
        return logits if cache is _NO_CACHE else (logits, new_cache)


class DigitsAutoregressive(LightningModule):
    """Trains ``PixelTransformer`` by next-pixel cross-entropy, with label dropout for classifier-free guidance."""

    def __init__(
        self, levels: int = 4, dim: int = 64, depth: int = 2, lr: float = 3e-3, p_uncond: float = 0.15
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = PixelTransformer(levels, dim=dim, depth=depth)

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        tokens, labels = batch
        labels = drop_labels(labels, self.hparams.p_uncond, NULL_LABEL)
        logits = self.model(tokens[:, :-1], labels)  # [N, 64, levels]: pixel i from the class and pixels < i
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), tokens)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.hparams.lr, total_steps=int(total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def digits_sampler(module: DigitsAutoregressive) -> AutoregressiveSampler:
    """The callback's sampler: 64 pixel tokens through the KV cache, labels drawn per sample (module-level for DDP)."""
    levels = module.hparams.levels
    return AutoregressiveSampler(
        module.model,
        sequence_length=SEQUENCE_LENGTH,
        decode=lambda tokens: tokens_to_images(tokens, levels),
        output_range=(-1, 1),
        num_classes=NUM_CLASSES,
        null_label=NULL_LABEL,
        kv_cache=True,
    )


# The printed table ----------------------------------------------------------------------------------------------------


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
    lines = [
        f"\nepoch {record['epoch']} (step {record['global_step']}): {record['eval_seconds']:.1f} s of evaluation",
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


# Pictures -------------------------------------------------------------------------------------------------------------


def save_sample_grid(module: DigitsAutoregressive, path: Path, w: float, per_class: int = 10, seed: int = 2) -> None:
    """A PNG grid of samples at guidance ``w``: row ``k`` holds ``per_class`` samples of digit ``k``."""
    sampler = digits_sampler(module)
    sampler.guidance = w
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    with torch.inference_mode(), eval_mode(module):
        images = sample_range(sampler, 0, labels.shape[0], seed=seed, batch_size=250, device="cpu", labels=labels)
    big = nn.functional.interpolate((images + 1) / 2, scale_factor=2.0, mode="nearest")
    save_image(big, path, nrow=per_class, padding=2, pad_value=1.0)


def save_tradeoff_curve(record: dict[str, Any], guidance: tuple[float, ...], path: Path) -> bool:
    """A PNG of FID (x, lower is better) against Inception Score (y, higher is better), one point per ``w``.
    Returns False when matplotlib (the ``plots`` extra) is missing."""
    if not figures.matplotlib_available():
        return False
    points = [(w, record[f"fid/w={w:g}"], record[f"is/w={w:g}"]) for w in guidance]
    figures.tradeoff_figure(points, title=f"guidance trade-off, epoch {record['epoch']}").savefig(path, dpi=120)
    return True


# Main -----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=4, help="passes over the digits per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--levels", type=int, default=4, help="intensity levels: the vocabulary of pixel tokens")
    parser.add_argument("--dim", type=int, default=64, help="width of the transformer")
    parser.add_argument("--depth", type=int, default=2, help="transformer blocks")
    parser.add_argument("--num-samples", type=int, default=200, help="samples per evaluation and strength")
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores/devices)")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto", help="e.g. ddp (CPU processes)")
    parser.add_argument("--out", type=Path, default=Path("runs/autoregressive_digits"))
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/lightning_genmetrics/demo").expanduser())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.epochs, args.repeats, args.dim, args.depth = 2, 1, 16, 1
        args.num_samples, args.guidance = 40, [0.0, 2.0]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    # On a machine other jobs keep busy, --threads 1 is faster: waiting threads spin on the cores they lack.
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // args.devices))
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
    # The 8×8 originals (the interpolation to their own size changes nothing) as pixel tokens.
    small, _ = load_digits_images(SIDE)
    tokens = images_to_tokens(small, args.levels)
    train = TensorDataset(tokens.repeat(args.repeats, 1), labels.repeat(args.repeats))
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
    module = DigitsAutoregressive(levels=args.levels, dim=args.dim, depth=args.depth)
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
