"""Precision/recall/density/coverage and CMMD at N samples per side: state memory and time against
torch-fidelity 0.4, and the error of the bounded reservoir against the exact value at that N.

Both sides are seeded Gaussian features (real ~ N(0, I), generated ~ N(0.15, 1.1² I), D dimensions), so
the features are the same for every method and only what the metrics keep, and how they compute, differs.

- torch-fidelity keeps every feature vector of both sides (``2·N·D`` float32) and its default
  (``save_cpu_ram=False``) precision/recall builds full ``N × N`` float32 distance matrices (three of
  them); it has no CMMD.
- ``PrecisionRecallDensityCoverage`` / ``CLIPMaximumMeanDiscrepancy`` keep a seeded bottom-k reservoir of at
  most ``max_samples`` rows per side (float32 + an int64 key) and compute in float64 blocks of
  ``block_size`` rows: memory ``O(block_size · max_samples)``.

The error of the reservoir is its value at ``max_samples`` against the exact value (``max_samples=None``, all
N rows) of the same metric on the same features. The exact values at N = 50,000 cost minutes on a CPU (the
k-NN radii are ``N²·D`` work): lower ``--n`` or ``--dim`` on a busy machine.

Run: ``PYTHONPATH=. python benchmarks/reservoir_metrics.py [--n 50000 --dim 64 --max-samples 10000]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import Tensor, nn

from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy
from lightning_genmetrics.metrics.prdc import PrecisionRecallDensityCoverage

MIB = 2**20


class RowFeatures(nn.Module):
    """Hands back the feature row stored in each "image": the images are float32 features [N, 1, 1, D] in
    disguise (scaled into the declared range (-1, 1); precision, recall, density, coverage and CMMD of
    unit-normalised embeddings do not change under a common scaling), so that the metrics see the features."""

    def forward(self, images: Tensor) -> Tensor:
        return images.flatten(1)


def features(n: int, dim: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(n, dim, generator=generator)
    fake = 0.15 + 1.1 * torch.randn(n, dim, generator=generator)
    scale = 1.01 * float(torch.cat([real, fake]).abs().max())
    return real / scale, fake / scale


def state_bytes(metric: nn.Module) -> int:
    return sum(value.numel() * value.element_size() for value in metric.metric_state.values())


def feed(metric, real: Tensor, fake: Tensor, batch: int) -> None:
    # Integer ids key the reservoir (features are not uint8 images): the same rows in any batching.
    for start in range(0, real.shape[0], batch):
        stop = min(start + batch, real.shape[0])
        ids = torch.arange(start, stop)
        metric.update(real[start:stop].reshape(-1, 1, 1, real.shape[1]), real=True, sample_ids=ids)
        metric.update(fake[start:stop].reshape(-1, 1, 1, fake.shape[1]), real=False, sample_ids=ids + 10**9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="samples per side")
    parser.add_argument("--dim", type=int, default=64, help="feature dimension (2048 for Inception pool features)")
    parser.add_argument("--max-samples", type=int, default=10_000, help="reservoir size per side")
    parser.add_argument("--batch-size", type=int, default=5_000, help="update batch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-torch-fidelity", action="store_true", help="torch-fidelity's N×N matrices need RAM")
    args = parser.parse_args()
    print(f"N = {args.n} per side, D = {args.dim}, max_samples = {args.max_samples}; load {os.getloadavg()}")
    real, fake = features(args.n, args.dim, args.seed)

    values, seconds = {}, {}
    for name, max_samples in (("reservoir", args.max_samples), ("exact", None)):
        for kind, build in (
            ("prdc", lambda m: PrecisionRecallDensityCoverage(RowFeatures(), max_samples=m, input_range=(-1, 1))),
            ("cmmd", lambda m: CLIPMaximumMeanDiscrepancy(RowFeatures(), max_samples=m, input_range=(-1, 1))),
        ):
            metric = build(max_samples)
            feed(metric, real, fake, args.batch_size)
            start = time.perf_counter()
            result = metric.compute()
            seconds[kind, name] = time.perf_counter() - start
            values[kind, name] = {k: float(v) for k, v in result.items()} if isinstance(result, dict) else float(result)
            state = state_bytes(metric) / MIB
            print(f"{kind:4s} {name:9s}: state {state:8.1f} MiB, compute {seconds[kind, name]:7.1f} s")
            print(f"     value {values[kind, name]}")

    print("\nerror of the reservoir against the exact value at this N:")
    for key, exact in values["prdc", "exact"].items():
        print(
            f"  {key:9s} exact {exact:.6f}  reservoir {values['prdc', 'reservoir'][key]:.6f}  "
            f"|diff| {abs(exact - values['prdc', 'reservoir'][key]):.2e}"
        )
    exact, bounded = values["cmmd", "exact"], values["cmmd", "reservoir"]
    print(f"  cmmd      exact {exact:.6f}  reservoir {bounded:.6f}  |diff| {abs(exact - bounded):.2e}")

    kept = 2 * args.n * args.dim * 4
    print(
        f"\ntorch-fidelity keeps 2·N·D float32 = {kept / MIB:.1f} MiB of features; its default precision/recall "
        f"builds three N×N float32 matrices = {3 * args.n**2 * 4 / MIB:.0f} MiB."
    )
    if not args.skip_torch_fidelity:
        from torch_fidelity.metric_prc import calculate_precision_recall_part

        start = time.perf_counter()
        precision, recall = calculate_precision_recall_part(fake, real, 3, 10_000)  # its save_cpu_ram path
        elapsed = time.perf_counter() - start
        print(
            f"torch-fidelity prc (save_cpu_ram, float32): precision {precision:.6f} recall {recall:.6f} in "
            f"{elapsed:.1f} s; ours exact {seconds['prdc', 'exact']:.1f} s "
            f"(ratio {elapsed / seconds['prdc', 'exact']:.2f}), reservoir {seconds['prdc', 'reservoir']:.1f} s"
        )
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
