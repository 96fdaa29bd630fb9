"""Precision/recall/density/coverage and CMMD at N samples per side: state memory against torch-fidelity 0.4, and
the error of the bounded reservoir against the exact value at that N.

Features: seeded synthetic embeddings with structure. A ``--latent``-dimensional Gaussian mixture (10 modes) is
embedded isometrically in D dimensions, plus isotropic noise of a fixed total variance (0.25, whatever D);
the generated side drops two modes (lower recall and coverage) and is wider and shifted (lower precision and
density), so no value is trivially 0 or 1. Both sides go through the same row "extractor" in every library,
so only what the metrics keep, and how they compute, differs.

Memory is measured at the feature widths of the published protocols: D = 2048 (Inception pool, the ADM
evaluator's precision/recall) for PRDC and D = 768 (CLIP ViT-L/14, CMMD's reference encoder) for CMMD:

- ours: the bytes of ``metric_state`` (float32 features and int64 keys of a bottom-k reservoir of at most
  ``max_samples`` rows per side), and the peak resident memory the updates and ``compute`` add (Linux
  ``VmHWM``, reset before each step);
- torch-fidelity: the features its extraction loop (``get_featuresdict_from_dataset``, ``save_cpu_ram=True``)
  hands back for both sides, which its metrics keep whole (``2·N·D`` float32), and the peak memory that loop
  adds. It has no density/coverage and no CMMD; for CMMD the anchor is this "keep every embedding" state, which
  the reference CMMD code holds too. Its default precision/recall (``save_cpu_ram=False``) also builds N × N
  float32 distance matrices, one after another: their size is printed, not allocated.

The exact value is the same metric with ``max_samples=None`` (every row, float64). Its k-NN radii are
``N²·D`` work: at N = 50,000 and D = 2048 about 8.5 min on two idle CPU cores (501 s of compute, 3.9 GiB peak), so
by default the PRDC error is measured at ``--error-dim-prdc 64`` (the mixture is the same; with fixed noise variance
the values stay close across D, as the reservoir rows at both widths show), and CMMD's at D = 768;
``--error-dim-prdc 2048`` measures it at the protocol width.

Run: ``PYTHONPATH=. python benchmarks/reservoir_metrics.py`` (45 min at N = 50,000 on 2 CPU cores shared with
other work at load average 10, most of it the two exact values; ``--n 5000`` for a quick run);
``--metrics prdc --error-dim-prdc 2048``: 13 min on 2 idle cores.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy
from lightning_genmetrics.metrics.prdc import PrecisionRecallDensityCoverage

MIB = 2**20


class RowFeatures(nn.Module):
    """Hands back the feature row stored in each "image": the images are float32 features [N, 1, 1, D] in
    disguise (scaled into the declared range (-1, 1); precision, recall, density, coverage and CMMD of
    unit-normalised embeddings do not change under a common scaling), so that the metrics see the features."""

    def forward(self, images: Tensor) -> Tensor:
        return images.flatten(1)


def features(n: int, dim: int, latent: int, seed: int) -> tuple[Tensor, Tensor]:
    """``(real, generated)`` float32 ``[n, dim]``: a latent mixture embedded in ``dim`` dimensions, scaled into
    (-1, 1)."""
    generator = torch.Generator().manual_seed(seed)
    modes = 10
    centres = 3.0 * torch.randn(modes, latent, generator=generator)
    basis = torch.linalg.qr(torch.randn(dim, latent, generator=generator)).Q.T  # orthonormal rows

    def side(mode_count: int, spread: float, shift: float) -> Tensor:
        chosen = torch.randint(0, mode_count, (n,), generator=generator)
        z = centres[chosen] + shift + spread * torch.randn(n, latent, generator=generator)
        return z @ basis + (0.5 / dim**0.5) * torch.randn(n, dim, generator=generator)

    real, fake = side(modes, 1.0, 0.0), side(modes - 2, 1.2, 0.3)
    scale = 1.01 * float(torch.maximum(real.abs().max(), fake.abs().max()))
    return real / scale, fake / scale


def state_bytes(metric: nn.Module) -> int:
    return sum(value.numel() * value.element_size() for value in metric.metric_state.values())


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_added(run: Callable[[], object]) -> tuple[object, float, float]:
    """``(result, peak resident MiB added over the start, seconds)``: Linux resets ``VmHWM`` on request."""
    # Blocks over 128 KiB get their own mapping, so freed tensors leave the resident set and peaks do not hide in
    # memory the allocator kept from earlier steps (-3 is glibc's M_MMAP_THRESHOLD).
    ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    return result, _status_mib("VmHWM") - before, seconds


def feed(metric, real: Tensor, fake: Tensor, batch: int) -> None:
    # Integer ids key the reservoir (features are not uint8 images): the same rows in any batching.
    for start in range(0, real.shape[0], batch):
        stop = min(start + batch, real.shape[0])
        ids = torch.arange(start, stop)
        metric.update(real[start:stop].reshape(-1, 1, 1, real.shape[1]), real=True, sample_ids=ids)
        metric.update(fake[start:stop].reshape(-1, 1, 1, fake.shape[1]), real=False, sample_ids=ids + 10**9)


class _Indices(Dataset):
    """Sample i is the tensor ``[i]``: torch-fidelity's loader batches the indices, its extractor looks the rows up."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Tensor:
        return torch.tensor([index])


def torch_fidelity_kept(real: Tensor, fake: Tensor, batch: int) -> tuple[int, float]:
    """Bytes of the features torch-fidelity's extraction loop keeps for both sides, and the peak MiB it adds."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.utils import get_featuresdict_from_dataset

    class Rows(FeatureExtractorBase):
        def __init__(self, table: Tensor) -> None:
            super().__init__("rows", ["rows"])
            self.table = table

        @staticmethod
        def get_provided_features_list():
            return ("rows",)

        def forward(self, indices: Tensor) -> tuple[Tensor]:
            return (self.table[indices.flatten()].clone(),)

    def extract_both() -> list[Tensor]:
        return [
            get_featuresdict_from_dataset(_Indices(side.shape[0]), Rows(side), batch, False, True, False)["rows"]
            for side in (real, fake)
        ]

    kept, peak, _ = peak_added(extract_both)
    return sum(t.numel() * t.element_size() for t in kept), peak


def build(kind: str, max_samples: int | None) -> nn.Module:
    if kind == "prdc":
        return PrecisionRecallDensityCoverage(RowFeatures(), max_samples=max_samples, input_range=(-1, 1))
    return CLIPMaximumMeanDiscrepancy(RowFeatures(), max_samples=max_samples, input_range=(-1, 1))


def measure(kind: str, max_samples: int | None, real: Tensor, fake: Tensor, batch: int) -> dict:
    metric = build(kind, max_samples)
    _, update_peak, update_s = peak_added(lambda: feed(metric, real, fake, batch))
    result, compute_peak, compute_s = peak_added(metric.compute)
    values = {k: float(v) for k, v in result.items()} if isinstance(result, dict) else {"cmmd": float(result)}
    return {
        "state": state_bytes(metric) / MIB,
        "update_peak": update_peak,
        "compute_peak": compute_peak,
        "update_s": update_s,
        "compute_s": compute_s,
        "values": values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="samples per side")
    parser.add_argument("--dim-prdc", type=int, default=2048, help="PRDC feature width for memory (Inception pool)")
    parser.add_argument("--dim-cmmd", type=int, default=768, help="CMMD embedding width (CLIP ViT-L/14)")
    parser.add_argument("--error-dim-prdc", type=int, default=64, help="PRDC width for the exact value")
    parser.add_argument("--max-samples", type=int, nargs="+", default=[10_000, 2_000], help="reservoir sizes")
    parser.add_argument("--latent", type=int, default=16, help="intrinsic dimension of the mixture")
    parser.add_argument("--batch-size", type=int, default=1_000, help="update batch size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metrics", nargs="+", choices=("prdc", "cmmd"), default=["prdc", "cmmd"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"N = {args.n} per side, torch {torch.__version__}, {args.threads} threads, load {os.getloadavg()}",
        flush=True,
    )

    # (metric, width, with the exact value): memory at the protocol widths, the error where the exact value fits.
    cases = [("prdc", args.dim_prdc, args.error_dim_prdc == args.dim_prdc), ("cmmd", args.dim_cmmd, True)]
    if args.error_dim_prdc != args.dim_prdc:
        cases.insert(1, ("prdc", args.error_dim_prdc, True))
    cases = [case for case in cases if case[0] in args.metrics]
    rows = []
    for kind, dim, with_exact in cases:
        real, fake = features(args.n, dim, args.latent, args.seed)
        kept, kept_peak = torch_fidelity_kept(real, fake, args.batch_size)
        print(
            f"\n{kind} D={dim}: torch-fidelity keeps {kept / MIB:.1f} MiB of features (its loop adds a peak of "
            f"{kept_peak:.0f} MiB)",
            flush=True,
        )
        if kind == "prdc":
            print(
                f"  torch-fidelity's default precision/recall (save_cpu_ram=False) builds three N×N float32 distance "
                f"matrices one after another, {args.n**2 * 4 / MIB:,.0f} MiB each, twice that while it concatenates "
                "the blocks of one (not run)"
            )
        runs = {size: measure(kind, size, real, fake, args.batch_size) for size in args.max_samples}
        if with_exact:
            runs[None] = measure(kind, None, real, fake, args.batch_size)
        for size, run in runs.items():
            print(
                f"  max_samples={size}: state {run['state']:.1f} MiB, peak added by updates {run['update_peak']:.0f} "
                f"MiB and compute {run['compute_peak']:.0f} MiB, update {run['update_s']:.1f} s, compute "
                f"{run['compute_s']:.1f} s, values {run['values']}",
                flush=True,
            )
        for size, run in runs.items():
            for name, value in run["values"].items():
                exact = runs[None]["values"][name] if with_exact else None
                rows.append((name, dim, size, run, kept / MIB, value, exact))
        del real, fake

    header = (
        f"{'metric':9s} {'N':>6s} {'D':>5s} {'max_samples':>11s} {'ours MiB':>9s} {'t-f MiB':>8s} {'ratio':>7s} "
        f"{'value':>9s} {'exact':>9s} {'abs err':>8s} {'compute s':>9s}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for name, dim, size, run, kept_mib, value, exact in rows:
        exact_s = "—" if exact is None else f"{exact:.6f}"
        error = "—" if exact is None else f"{abs(value - exact):.1e}"
        print(
            f"{name:9s} {args.n:>6d} {dim:>5d} {size!s:>11s} {run['state']:>9.1f} {kept_mib:>8.1f} "
            f"{kept_mib / run['state']:>6.1f}× {value:>9.6f} {exact_s:>9s} {error:>8s} {run['compute_s']:>9.1f}"
        )
    print(f"\nload at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
