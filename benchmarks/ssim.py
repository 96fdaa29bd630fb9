"""SSIM throughput on 16×3×256×256 float32 batches: this project against torchmetrics, in one run.

Both get the same seeded batches (target uniform in [0, 1], prediction = target + Gaussian noise,
clamped) and the same call, ``structural_similarity_index_measure(preds, target, data_range=1.0,
reduction="none")``: an 11-tap Gaussian window with sigma 1.5 over reflect-padded images (both defaults):

- this project: :func:`lightning_genmetrics.functional.structural_similarity_index_measure`,
  float64 throughout, two 1-D passes as matrix products;
- torchmetrics: ``torchmetrics.functional.image.structural_similarity_index_measure``, float32,
  one 11×11 2-D convolution.

Every repeat runs both one after the other, so load from other processes hits both. Also printed, on
the first batch: the largest per-image difference between the two, and this project's with
``border="valid"`` from scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``.

Run: ``PYTHONPATH=. python benchmarks/ssim.py [--batches 4 --repeats 5 --threads N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torchmetrics
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure as torchmetrics_ssim

from lightning_genmetrics.functional.ssim import structural_similarity_index_measure

SHAPE = (16, 3, 256, 256)


def make_batches(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        target = torch.rand(SHAPE, generator=generator)
        preds = (target + 0.1 * torch.randn(SHAPE, generator=generator)).clamp(0, 1)
        batches.append((preds, target))
    return batches


def ours(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none")


def theirs(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torchmetrics_ssim(preds, target, data_range=1.0, reduction="none")


def seconds(method: Callable, batches: list) -> float:
    start = time.perf_counter()
    for preds, target in batches:
        method(preds, target)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4, help="batches of 16 images per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method; median and fastest reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}; "
        f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}"
    )
    batches = make_batches(args.batches, args.seed)

    preds, target = (x.double().numpy() for x in batches[0])
    reference = np.array(
        [
            structural_similarity(
                p, t, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
            for p, t in zip(preds, target, strict=True)
        ]
    )
    difference = (ours(*batches[0]) - theirs(*batches[0]).double()).abs().max().item()
    print(f"largest per-image |ours - torchmetrics| on batch 0 = {difference:.1e}")
    valid = structural_similarity_index_measure(*batches[0], data_range=1.0, reduction="none", border="valid")
    error = np.abs(valid.numpy() - reference).max()
    print(f"largest per-image |ours with border='valid' - scikit-image| on batch 0 = {error:.1e}")

    methods = {"ours": ours, "torchmetrics": theirs}
    for method in methods.values():
        seconds(method, batches[:1])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    images = args.batches * SHAPE[0]
    for repeat in range(args.repeats):
        for name, method in methods.items():
            times[name].append(seconds(method, batches))
        print(f"repeat {repeat}: " + ", ".join(f"{name} {images / times[name][-1]:.1f} images/s" for name in methods))
    print(f"load average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")
    median = {name: images / statistics.median(values) for name, values in times.items()}
    fastest = {name: images / min(values) for name, values in times.items()}
    for name in methods:
        print(f"{name:>12}: median {median[name]:.1f} images/s, fastest run {fastest[name]:.1f} images/s")
    print(
        f"ours / torchmetrics throughput = {median['ours'] / median['torchmetrics']:.2f}x (median) "
        f"[{fastest['ours'] / fastest['torchmetrics']:.2f}x fastest runs]"
    )


if __name__ == "__main__":
    main()
