"""State memory of InceptionScore and KernelInceptionDistance: this project vs torchmetrics.

Both libraries get the same tiny, seeded feature extractor (flatten a 3×8×8 image, one linear layer
to 1008 logits for IS or 2048 features for KID: the widths of the FID InceptionV3 heads), and the same
uint8 images in batches, so only what the metrics keep differs. State bytes are the sum of
``numel · element_size`` over ``metric.metric_state`` (list states: over their elements).

- torchmetrics keeps every logit / feature vector (float32), so its state grows linearly with N.
- This project's InceptionScore keeps per-split sums (``splits·(C + 2)`` numbers, constant), and its
  KernelInceptionDistance keeps a reservoir of at most ``max_samples`` features per side (+ an int64
  key each), so its state stops growing at ``max_samples``.

KID gets N real and N generated images (state counts both sides). Nothing is computed; only the
states are measured. The same sizes would hold with the real Inception network, whose outputs
have the same widths.

Run: ``PYTHONPATH=. python benchmarks/state_memory.py [--sizes 1000 50000 --batch-size 500]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable, Iterator

import torch
import torchmetrics
import torchmetrics.image
from torch import Tensor, nn
from torchmetrics import Metric

import lightning_genmetrics

MIB = 2**20
IMAGE_SHAPE = (3, 8, 8)


class TinyExtractor(nn.Module):
    """``[N, 3, 8, 8]`` uint8 (scaled by 1/255) or float in [0, 1] -> ``[N, width]``, one seeded linear layer."""

    def __init__(self, width: int, seed: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, width)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(self.linear.weight.shape, generator=generator) * 0.3)
            self.linear.bias.zero_()

    def forward(self, images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.to(torch.float32) / 255
        return self.linear(images.flatten(1))


def state_bytes(metric: Metric) -> int:
    total = 0
    for value in metric.metric_state.values():
        for tensor in value if isinstance(value, list) else [value]:
            total += tensor.numel() * tensor.element_size()
    return total


def batches(n: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        yield torch.randint(0, 256, (size, *IMAGE_SHAPE), dtype=torch.uint8, generator=generator)


def fill(update: Callable[..., None], n: int, batch_size: int, *, kid: bool) -> float:
    """Feed ``n`` images (per side for KID); return the seconds taken."""
    start = time.perf_counter()
    if kid:
        for images in batches(n, batch_size, seed=1):
            update(images, real=True)
        for images in batches(n, batch_size, seed=2):
            update(images, real=False)
    else:
        for images in batches(n, batch_size, seed=3):
            update(images)
    return time.perf_counter() - start


def check_same_features(logits: nn.Module, n: int, batch_size: int) -> None:
    """With one split both libraries compute the same Inception Score: the extractor sees the same inputs."""
    ours = lightning_genmetrics.InceptionScore(logits, splits=1)
    theirs = torchmetrics.image.InceptionScore(logits, splits=1)
    fill(ours.update, n, batch_size, kid=False)
    fill(theirs.update, n, batch_size, kid=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics' std of a single split is NaN (ddof = 1)
        value_theirs = float(theirs.compute()[0])
    value_ours = float(ours.compute()[0])
    print(f"\nsame extractor check, N = {n}, splits=1: IS ours {value_ours:.6f}, torchmetrics {value_theirs:.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 50_000], help="images (per side for KID)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--splits", type=int, default=10, help="Inception Score splits")
    parser.add_argument(
        "--max-samples", type=int, nargs="+", default=[10_000, 2000], help="KID reservoir sizes of this project"
    )
    args = parser.parse_args()
    # torchmetrics warns at construction that it stores every feature; that is what is measured here.
    warnings.filterwarnings("ignore", message=".*will save all extracted features.*")

    logits, features = TinyExtractor(1008, seed=0), TinyExtractor(2048, seed=1)
    candidates: list[tuple[str, str, Callable[[], Metric]]] = [
        ("InceptionScore", "this project", lambda: lightning_genmetrics.InceptionScore(logits, splits=args.splits)),
        ("InceptionScore", "torchmetrics", lambda: torchmetrics.image.InceptionScore(logits, splits=args.splits)),
    ]
    for max_samples in args.max_samples:
        candidates.append(
            (
                "KernelInceptionDistance",
                f"this project, max_samples={max_samples}",
                lambda m=max_samples: lightning_genmetrics.KernelInceptionDistance(features, max_samples=m),
            )
        )
    candidates.append(
        ("KernelInceptionDistance", "torchmetrics", lambda: torchmetrics.image.KernelInceptionDistance(features))
    )

    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}; "
        f"{os.cpu_count()} CPUs; images {IMAGE_SHAPE} uint8, batches of {args.batch_size}; IS: 1008 logits, "
        f"{args.splits} splits; KID: 2048 features, N images per side"
    )
    print(f"\n{'metric':<24} {'library':<34} {'N':>7} {'state MiB':>10} {'fill s':>7}")
    mib: dict[tuple[str, str, int], float] = {}
    for metric_name, library, build in candidates:
        for n in args.sizes:
            metric = build()
            seconds = fill(metric.update, n, args.batch_size, kid=metric_name == "KernelInceptionDistance")
            mib[metric_name, library, n] = state_bytes(metric) / MIB
            print(f"{metric_name:<24} {library:<34} {n:>7} {mib[metric_name, library, n]:>10.3f} {seconds:>7.1f}")
            del metric

    check_same_features(logits, min(args.sizes), args.batch_size)
    n = max(args.sizes)
    print(f"\nAt N = {n}:")
    print(
        f"  InceptionScore: torchmetrics / ours = "
        f"{mib['InceptionScore', 'torchmetrics', n] / mib['InceptionScore', 'this project', n]:.0f}x"
    )
    for max_samples in args.max_samples:
        library = f"this project, max_samples={max_samples}"
        ratio = mib["KernelInceptionDistance", "torchmetrics", n] / mib["KernelInceptionDistance", library, n]
        print(f"  KernelInceptionDistance: torchmetrics / ours (max_samples={max_samples}) = {ratio:.1f}x")
    print(
        "  (our KID state is bounded by max_samples per side; it grows like torchmetrics' until then, "
        "plus an 8-byte key per kept image)"
    )


if __name__ == "__main__":
    main()
