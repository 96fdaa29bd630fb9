"""Per-step overhead of ``DiffusionSampler`` relative to its model call, on a tiny model on the CPU.

The model is one 3x3 convolution (3 -> 3 channels), so the sampler's own tensor work (the update rule,
the per-sample noise draws, the checks) is large next to it: the worst case for the overhead. Each run
samples ``--samples`` images of 3x``--size``x``--size`` in ``--steps`` steps with one generator per sample
(the ``sample_range`` path). The model is wrapped in a timer, so the model time is measured inside the
very run whose total time is measured; ``overhead = (total - model) / model``.

Usage: ``PYTHONPATH=. python benchmarks/sampler_overhead.py [--samples 64] [--size 16] [--steps 50]
[--dtypes float32,bfloat16,float16] [--threads 1]``. Put another copy of the package first on ``PYTHONPATH`` to
measure that copy (e.g. an older version, for a before/after comparison).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from lightning_genmetrics.samplers import DiffusionSampler, sample_generators


class TimedModel(nn.Module):
    """A 1-layer conv ε-model that adds the wall time of its calls to ``self.seconds``."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.mul_(0.1)
        self.to(dtype)
        self.seconds = 0.0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        begin = time.perf_counter()
        out = self.conv(x)
        self.seconds += time.perf_counter() - begin
        return out


def measure(method: str, dtype: torch.dtype, args: argparse.Namespace) -> tuple[float, float]:
    """Median model time and median total time (seconds) of ``args.repeats`` sampler calls."""
    torch.manual_seed(0)
    model = TimedModel(dtype)
    sampler = DiffusionSampler(model, (3, args.size, args.size), num_steps=args.steps, method=method)
    models, totals = [], []
    for repeat in range(args.repeats + 1):
        generators = sample_generators(0, 0, args.samples)
        model.seconds = 0.0
        begin = time.perf_counter()
        sampler(args.samples, generator=generators, device="cpu")
        total = time.perf_counter() - begin
        if repeat > 0:  # the first call warms up the allocator and the kernels
            models.append(model.seconds)
            totals.append(total)
    return statistics.median(models), statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtypes", default="float32", help="comma-separated, e.g. float32,bfloat16")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import lightning_genmetrics

    print(f"package: {os.path.dirname(lightning_genmetrics.__file__)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"{args.samples} samples 3x{args.size}x{args.size}, {args.steps} steps, median of {args.repeats} runs")
    print(f"{'method':<6} {'dtype':<9} {'model s':>9} {'total s':>9} {'overhead':>9} {'per step ms':>12}")
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for method in ("ddim", "ddpm"):
            try:
                model_s, total_s = measure(method, dtype, args)
            except (RuntimeError, ValueError) as error:  # the unchanged sampler fails below float32
                print(f"{method:<6} {dtype_name:<9} failed: {str(error).splitlines()[0]}")
                continue
            overhead = (total_s - model_s) / model_s
            per_step = 1000 * (total_s - model_s) / args.steps
            print(f"{method:<6} {dtype_name:<9} {model_s:>9.4f} {total_s:>9.4f} {overhead:>9.2f} {per_step:>12.3f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
