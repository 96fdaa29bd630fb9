"""Binned binary AUROC update: N = 10⁶ scores, T = 1000 thresholds, against torchmetrics.

Both libraries get the same seeded float32 probabilities and int64 labels (scores of the positives
shifted up, so the AUROC is about 0.76):

- this project: ``AUROC("binary", num_bins=1000).update(preds, target)``: validation, an O(N)
  bin lookup on the uniform threshold grid and one ``bincount`` into two int64 histograms;
- torchmetrics: ``BinaryAUROC(thresholds=1000).update(preds, target)``, which compares every score
  with every threshold (O(N·T) work, in a loop over thresholds at this size).

The torchmetrics update takes seconds, so it runs ``--anchor-repeats`` times (default 1) and ours
``--repeats`` times; the median of each is printed and their ratio. The script also checks that
both give the same AUROC, prints the exact AUROC (``num_bins=None``) with its distance to the
binned value and the binned mode's error bound, and the time of each ``compute``.

Run: ``PYTHONPATH=. python benchmarks/auroc.py [--samples 1000000 --bins 1000 --repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torchmetrics
from torchmetrics.classification import BinaryAUROC as TorchmetricsBinaryAUROC

from lightning_genmetrics.metrics.auroc import AUROC


def scores(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (n,), generator=generator)
    logits = torch.randn(n, generator=generator) + 1.0 * target
    return torch.sigmoid(logits), target


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--bins", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of our update")
    parser.add_argument("--anchor-repeats", type=int, default=1, help="timed runs of torchmetrics' update")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}; "
        f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}"
    )
    preds, target = scores(args.samples)
    ours = AUROC("binary", num_bins=args.bins)
    theirs = TorchmetricsBinaryAUROC(thresholds=args.bins)
    exact = AUROC("binary", num_bins=None)
    ours.update(preds[:1000], target[:1000])  # warm-up: first calls load code
    theirs.update(preds[:1000], target[:1000])
    ours.reset()
    theirs.reset()

    our_runs = timed(lambda: ours.update(preds, target), args.repeats)
    their_runs = timed(lambda: theirs.update(preds, target), args.anchor_repeats)
    exact_runs = timed(lambda: exact.update(preds, target), 1)
    start = time.perf_counter()
    binned_value = ours.compute().item()
    binned_compute = time.perf_counter() - start
    start = time.perf_counter()
    exact_value = exact.compute().item()
    exact_compute = time.perf_counter() - start
    their_value = theirs.compute().item()

    print(f"\nupdate with N = {args.samples:,} float32 scores, T = {args.bins} thresholds")
    print(f"{'method':<40} {'median s':>9} {'min s':>8}  all runs (s)")
    for name, runs in (
        (f"ours, AUROC(num_bins={args.bins})", our_runs),
        (f"torchmetrics BinaryAUROC(thresholds={args.bins})", their_runs),
        ("ours, exact (num_bins=None): keeps scores", exact_runs),
    ):
        listed = " ".join(f"{t:.3f}" for t in runs)
        print(f"{name:<40} {statistics.median(runs):>9.4f} {min(runs):>8.4f}  {listed}")
    print(
        f"\nAUROC binned {binned_value:.10f} (compute {binned_compute * 1e3:.1f} ms), torchmetrics {their_value:.10f}; "
        f"|diff| {abs(binned_value - their_value):.1e} (torchmetrics accumulates in float32)"
    )
    print(
        f"AUROC exact {exact_value:.10f} (compute {exact_compute:.2f} s); |binned - exact| = "
        f"{abs(binned_value - exact_value):.2e} <= error bound {ours.error_bound().item():.2e}"
    )
    print(f"load average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")
    ratio = statistics.median(their_runs) / statistics.median(our_runs)
    print(f"\ntorchmetrics update time / ours (binned, T = {args.bins}, N = {args.samples:,}) = {ratio:.0f}x")


if __name__ == "__main__":
    main()
