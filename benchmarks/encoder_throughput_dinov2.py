"""Throughput of the DINOv2 encoders on CPU at 224×224, this project's port vs timm's, and the cost of each resize.

Both networks get the same random weights (the port's initialisation; timm's model built for 224×224 inputs and given
the port's state dict with the positional table resampled as the reference does, so both compute the same function)
and the same seeded normalised inputs ``[batch, 3, 224, 224]``. A first untimed pass of each checks that they agree
(max relative difference printed). Then ``--repeats`` timed passes of one batch per network under
``torch.inference_mode()``, alternating which goes first, so load from other processes hits both. Reported per
variant and thread count: images per second of the median pass of each, and the median over repeats of the ratio
ours / timm within a repeat (above 1: ours is faster). Then the preprocessing alone (uint8 256×256 → normalised
224×224) per ``resize`` mode, images per second.

Run: ``PYTHONPATH=. python benchmarks/encoder_throughput_dinov2.py [--variants vits14 vitb14 --batch-size 32
--repeats 3 --threads 1 2]`` (ViT-S and ViT-B: a few minutes on 2 CPU cores shared with other work).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import timm
import torch

from lightning_genmetrics.features.dinov2 import DINOV2_RESIZE_MODES, DINOv2Encoder, dinov2_preprocess

TIMM_NAMES = {
    "vits14": "vit_small_patch14_dinov2",
    "vitb14": "vit_base_patch14_dinov2",
    "vitl14": "vit_large_patch14_dinov2",
    "vitg14": "vit_giant_patch14_dinov2",
}


def build(variant: str) -> tuple[DINOv2Encoder, torch.nn.Module]:
    torch.manual_seed(0)
    ours = DINOv2Encoder(variant, pretrained=False)
    state = {key: value for key, value in ours.state_dict().items() if key != "mask_token"}
    state["pos_embed"] = ours.positional_embedding(16, 16).detach().clone()
    state = {key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2."): value for key, value in state.items()}
    with torch.device("meta"):
        anchor = timm.create_model(TIMM_NAMES[variant], pretrained=False, num_classes=0, img_size=224)
    anchor.load_state_dict(state, strict=True, assign=True)
    return ours, anchor.eval()


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_variant(variant: str, batch: int, repeats: int, threads: list[int]) -> None:
    ours, anchor = build(variant)
    pixels = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        mine, theirs = ours.encode(pixels), anchor(pixels)
        difference = (mine - theirs).abs().max() / theirs.abs().max()
        print(f"{variant}: max relative difference ours vs timm {difference:.2e}")
        for count in threads:
            torch.set_num_threads(count)
            ours_s, anchor_s, ratios = [], [], []
            for repeat in range(repeats):
                passes = [("ours", lambda: ours.encode(pixels)), ("timm", lambda: anchor(pixels))]
                if repeat % 2:
                    passes.reverse()
                seconds = {name: timed(run) for name, run in passes}
                ours_s.append(seconds["ours"])
                anchor_s.append(seconds["timm"])
                ratios.append(seconds["timm"] / seconds["ours"])
            print(
                f"  threads={count} batch={batch}: ours {batch / statistics.median(ours_s):7.2f} img/s, "
                f"timm {batch / statistics.median(anchor_s):7.2f} img/s, ours/timm {statistics.median(ratios):.3f} "
                f"(passes: ours {[round(s, 2) for s in ours_s]} s, timm {[round(s, 2) for s in anchor_s]} s)"
            )


def bench_preprocessing(batch: int, repeats: int) -> None:
    images = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    for mode in DINOV2_RESIZE_MODES:
        seconds = [timed(lambda mode=mode: dinov2_preprocess(images, mode)) for _ in range(repeats)]
        print(f"preprocess {mode:15s} 256→224: {batch / statistics.median(seconds):8.1f} img/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["vits14", "vitb14"], choices=sorted(TIMM_NAMES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, timm {timm.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    bench_preprocessing(args.batch_size, args.repeats)
    for variant in args.variants:
        bench_variant(variant, args.batch_size, args.repeats, args.threads)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
