"""Throughput of the FID InceptionV3 feature extractor on CPU: this project vs torch-fidelity.

Both networks get the same seeded weights (``tests.helpers.seeded_inception_state()``, the key set
of the real weights file, saved to a temporary file that both load) and the same seeded uint8
images ``[N, 3, H, W]``; both resize them to 299×299 with the TF1-compatible bilinear protocol and
return the 2048-d pool features:

- this project: ``FIDInceptionV3(layer="2048", resize="tf1", weights_path=..., verify_weights=False)``;
- torch-fidelity 0.4.0: ``FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
  feature_extractor_weights_path=...)`` (float32, its default).

For every input size, one untimed pass of each network first warms it up and checks that the
features agree (max abs difference, printed), so the timings compare the same computation. Then
``--repeats`` timed forward passes of one batch per network, under ``torch.inference_mode()``,
alternating between the two (the one that goes first alternates too), so load from other
processes hits both. Reported: images per second of the median (and fastest) pass, and the ratio
ours / torch-fidelity (above 1: ours is faster) of the median passes, of the fastest passes, and
the median over repeats of the ratio within a repeat (the two passes of a repeat run back to back,
so this one is the least affected by load that changes during the run).

Run: ``PYTHONPATH=. python benchmarks/inception_throughput.py [--batch-size 16 --repeats 5
--sizes 32 299 --threads 2]`` (about 4.5 min on 2 CPU cores shared with other work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch_fidelity
from torch import Tensor
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

import lightning_genmetrics
from lightning_genmetrics.features.inception import FIDInceptionV3
from tests.helpers import seeded_inception_state


class Result(NamedTuple):
    size: int
    batch: int
    max_abs_diff: float
    max_abs_feature: float
    ours: list[float]  # seconds per timed pass
    anchor: list[float]


def build_networks(weights: Path) -> tuple[FIDInceptionV3, FeatureExtractorInceptionV3]:
    """Both extractors from the same weights file; torch-fidelity loads it with ``strict=True``."""
    ours = FIDInceptionV3(layer="2048", resize="tf1", weights_path=weights, verify_weights=False)
    anchor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    return ours, anchor


def timed(fn: Callable[[Tensor], Tensor], images: Tensor) -> tuple[float, Tensor]:
    with torch.inference_mode():
        start = time.perf_counter()
        features = fn(images)
        return time.perf_counter() - start, features


def run_size(
    ours: Callable[[Tensor], Tensor], anchor: Callable[[Tensor], Tensor], size: int, batch: int, repeats: int, seed: int
) -> Result:
    generator = torch.Generator().manual_seed(seed + size)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)

    # Warm-up pass (not timed), also the agreement check.
    _, ours_features = timed(ours, images)
    _, anchor_features = timed(anchor, images)
    max_abs_diff = float((ours_features - anchor_features).abs().max())
    max_abs_feature = float(anchor_features.abs().max())

    times: dict[str, list[float]] = {"ours": [], "anchor": []}
    methods = {"ours": ours, "anchor": anchor}
    for repeat in range(repeats):
        order = ("ours", "anchor") if repeat % 2 == 0 else ("anchor", "ours")
        for name in order:
            seconds, _ = timed(methods[name], images)
            times[name].append(seconds)
    return Result(size, batch, max_abs_diff, max_abs_feature, times["ours"], times["anchor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per network and size; median reported")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[32, 299], help="input side lengths H = W (resized to 299 inside)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torch-fidelity {torch_fidelity.__version__}, "
        f"lightning_genmetrics {lightning_genmetrics.__version__}; {os.cpu_count()} CPUs; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "seeded-inception.pth"
        torch.save(seeded_inception_state(), weights)
        ours, anchor = build_networks(weights)

    def anchor_2048(images: Tensor) -> Tensor:
        return anchor(images)[0]  # torch-fidelity returns one tensor per requested feature

    results = [run_size(ours, anchor_2048, size, args.batch_size, args.repeats, args.seed) for size in args.sizes]
    print(f"load average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")

    print("\nfeature agreement (2048-d pool features, same weights and images):")
    for r in results:
        print(
            f"  {r.size}x{r.size}: max |ours - torch-fidelity| = {r.max_abs_diff:.1e} "
            f"(max |feature| = {r.max_abs_feature:.3g})"
        )

    print("\nseconds per timed pass, in order:")
    for r in results:
        print(
            f"  {r.size}x{r.size}: ours {' '.join(f'{t:.2f}' for t in r.ours)}; "
            f"torch-fidelity {' '.join(f'{t:.2f}' for t in r.anchor)}"
        )

    header = f"{'input':>9} {'batch':>5} {'ours img/s':>10} {'torch-fidelity img/s':>20} {'ratio':>6}"
    print(f"\n{header}   (median pass; fastest pass in brackets)")
    for r in results:
        ours_rate = r.batch / statistics.median(r.ours)
        anchor_rate = r.batch / statistics.median(r.anchor)
        print(
            f"{f'{r.size}x{r.size}':>9} {r.batch:>5} {ours_rate:>10.2f} {anchor_rate:>20.2f} "
            f"{ours_rate / anchor_rate:>6.2f}   [{r.batch / min(r.ours):.2f} vs {r.batch / min(r.anchor):.2f}]"
        )
    print()
    for r in results:
        median_ratio = statistics.median(r.anchor) / statistics.median(r.ours)
        fastest_ratio = min(r.anchor) / min(r.ours)
        paired_ratio = statistics.median(a / o for a, o in zip(r.anchor, r.ours, strict=True))
        print(
            f"{r.size}x{r.size}: ratio (ours / torch-fidelity) = {median_ratio:.2f}x "
            f"[fastest passes {fastest_ratio:.2f}x; median of per-repeat ratios {paired_ratio:.2f}x]"
        )


if __name__ == "__main__":
    main()
