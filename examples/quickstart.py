"""Quick start: FID, Inception Score and KID on generated tensors, with a stand-in feature extractor.

Runs offline in seconds. "Real" images are smooth random colour fields; the "generated" ones are
the same kind of images degraded by increasing noise, so FID and KID should grow with the noise
and the Inception Score of a classifier should change with it. The feature extractor is a small
seeded convolutional network (random weights), standing in for the FID InceptionV3, whose real
weights this example does not download; pass ``feature=2048`` to use the standard network.

    python examples/quickstart.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from lightning_genmetrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance


def stand_in_network(out_features: int, seed: int = 0, gain: float = 1.0) -> nn.Module:
    """A seeded conv net: images as passed to ``update`` (here floats in [-1, 1]) -> ``out_features`` values (scaled
    by ``gain``)."""
    torch.manual_seed(seed)
    head = nn.Linear(16 * 2 * 2, out_features)
    with torch.no_grad():
        head.weight.mul_(gain)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        head,
    )


def smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random low-frequency colour fields in [-1, 1], shape ``[n, 3, size, size]``."""
    coarse = torch.rand(n, 3, 4, 4, generator=generator) * 2 - 1
    return nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=512)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    features, classifier = stand_in_network(64, seed=1, gain=100.0), stand_in_network(10, seed=2, gain=300.0)
    fid = FrechetInceptionDistance(features, input_range=(-1, 1), reset_real_features=False)
    kid = KernelInceptionDistance(features, subsets=20, subset_size=128, input_range=(-1, 1), reset_real_features=False)
    inception_score = InceptionScore(classifier, splits=4, input_range=(-1, 1))

    real = smooth_images(args.num_images, args.size, generator)
    for batch in real.split(128):
        fid.update(batch, real=True)
        kid.update(batch, real=True)

    print(f"{'noise':>6} {'FID':>10} {'KID mean':>10} {'KID std':>10} {'IS mean':>8} {'IS std':>8}")
    for noise in (0.0, 0.1, 0.3, 0.6):
        fake = smooth_images(args.num_images, args.size, generator)
        fake = (fake + noise * torch.randn(fake.shape, generator=generator)).clamp(-1, 1)
        for batch in fake.split(128):
            fid.update(batch, real=False)
            kid.update(batch, real=False)
            inception_score.update(batch)
        kid_mean, kid_std = kid.compute()
        is_mean, is_std = inception_score.compute()
        print(
            f"{noise:>6.1f} {fid.compute().item():>10.4f} {kid_mean.item():>10.5f} {kid_std.item():>10.5f} "
            f"{is_mean.item():>8.4f} {is_std.item():>8.4f}"
        )
        for metric in (fid, kid, inception_score):
            metric.reset()  # the real side stays (reset_real_features=False)


if __name__ == "__main__":
    main()
