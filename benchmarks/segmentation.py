"""Segmentation confusion-matrix update: pixels per second against torchmetrics, and memory against C.

Both libraries get the same seeded int64 label maps ``[8, 512, 512]`` (the prediction agrees with the
target on about 70 % of the pixels) and C = 21 classes (Pascal VOC):

- this project: ``SegmentationMetrics(21).update(pred, target)`` (validation, one ``bincount``);
- torchmetrics: ``MulticlassJaccardIndex(21).update(pred, target)`` with its default argument
  validation, and with ``validate_args=False``;
- both again with ``ignore_index=255`` on targets with 10 % ignored pixels;
- torchmetrics' per-image mean IoU, ``MeanIoU(21, input_format="index")``, in both libraries (here three
  ``bincount`` s per update; torchmetrics one-hot encodes both maps as int64 ``[N, C, H, W]``).

Every repeat runs every method once, so load from other processes hits all of them; the median
and the fastest of the repeats are printed, and the ratios of the medians.

Memory: the peak resident memory an ``update`` adds on top of its inputs, measured in a fresh
process per case (Linux ``VmHWM``, reset just before the update), for C = 21, 150 and 1000 on the
same pixel count. The update needs
O(pixels) memory plus the ``8·(C + 1)·C`` bytes of its counts, not ``pixels × C`` or ``N × C²``.

Run: ``PYTHONPATH=. python benchmarks/segmentation.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torchmetrics
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.segmentation import MeanIoU as TorchmetricsMeanIoU

from lightning_genmetrics.metrics.segmentation import MeanIoU, SegmentationMetrics

SHAPE = (8, 512, 512)


def label_maps(num_classes: int, ignored: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, SHAPE, generator=generator)
    noise = torch.randint(0, num_classes, SHAPE, generator=generator)
    pred = torch.where(torch.rand(SHAPE, generator=generator) < 0.7, target, noise)
    if ignored:
        target = torch.where(torch.rand(SHAPE, generator=generator) < ignored, 255, target)
    return pred, target


def time_methods(methods: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():  # warm-up: first calls load code
        fn()
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def peak_update_memory(library: str, num_classes: int) -> float:
    """MiB that one update adds to the peak resident memory of a fresh process (inputs excluded).

    Linux only: the peak (``VmHWM``) is reset to the current resident size through
    ``/proc/self/clear_refs`` just before the update, and ``MALLOC_MMAP_THRESHOLD_`` makes glibc map
    every large block afresh, so memory the allocator already holds cannot hide a temporary.
    """
    code = (
        "import torch\n"
        "from benchmarks.segmentation import SHAPE, make_metric\n"
        "def status(key):\n"
        "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(key))\n"
        f"metric = make_metric({library!r}, {num_classes})\n"
        "metric.update(torch.zeros(1, 4, 4, dtype=torch.int64), torch.zeros(1, 4, 4, dtype=torch.int64))\n"
        f"pred, target = torch.randint(0, {num_classes}, SHAPE), torch.randint(0, {num_classes}, SHAPE)\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = status('VmRSS:')\n"
        "metric.update(pred, target)\n"
        "print((status('VmHWM:') - before) / 1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip())


def make_metric(library: str, num_classes: int) -> torch.nn.Module:
    metrics = {
        "ours": lambda: SegmentationMetrics(num_classes),
        "torchmetrics": lambda: MulticlassJaccardIndex(num_classes),
        "ours MeanIoU": lambda: MeanIoU(num_classes, input_format="index"),
        "torchmetrics MeanIoU": lambda: TorchmetricsMeanIoU(num_classes, input_format="index"),
    }
    return metrics[library]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method; the median is reported")
    parser.add_argument("--classes", type=int, default=21)
    args = parser.parse_args()
    c = args.classes
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchmetrics {torchmetrics.__version__}; "
        f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f}"
    )
    pixels = SHAPE[0] * SHAPE[1] * SHAPE[2]
    pred, target = label_maps(c)
    pred_i, target_i = label_maps(c, ignored=0.1)
    ours, ours_i = SegmentationMetrics(c), SegmentationMetrics(c, ignore_index=255)
    ours_miou, theirs_miou = make_metric("ours MeanIoU", c), make_metric("torchmetrics MeanIoU", c)
    theirs, theirs_i = MulticlassJaccardIndex(c), MulticlassJaccardIndex(c, ignore_index=255)
    fast, fast_i = (MulticlassJaccardIndex(c, validate_args=False, **kw) for kw in ({}, {"ignore_index": 255}))
    methods: dict[str, Callable[[], None]] = {
        "ours": lambda: ours.update(pred, target),
        "torchmetrics": lambda: theirs.update(pred, target),
        "torchmetrics, validate_args=False": lambda: fast.update(pred, target),
        "ours, ignore_index=255": lambda: ours_i.update(pred_i, target_i),
        "torchmetrics, ignore_index=255": lambda: theirs_i.update(pred_i, target_i),
        "torchmetrics, ignore_index=255, no validation": lambda: fast_i.update(pred_i, target_i),
        "ours MeanIoU (per image)": lambda: ours_miou.update(pred, target),
        "torchmetrics MeanIoU (per image)": lambda: theirs_miou.update(pred, target),
    }
    times = time_methods(methods, args.repeats)
    print(f"\nupdate on {list(SHAPE)} int64 label maps, C = {c} ({pixels / 1e6:.2f} Mpixel per update)")
    print(f"{'method':<48} {'median s':>9} {'min s':>8} {'Mpixel/s':>9}")
    medians = {}
    for name, runs in times.items():
        medians[name] = statistics.median(runs)
        print(f"{name:<48} {medians[name]:>9.4f} {min(runs):>8.4f} {pixels / 1e6 / medians[name]:>9.1f}")
    ours.reset()
    ours.update(pred, target)
    theirs.reset()
    theirs.update(pred, target)
    mine, other = ours.compute()["miou"].item(), theirs.compute().item()
    print(f"mIoU ours {mine:.10f}, torchmetrics {other:.10f} (|diff| {abs(mine - other):.1e})")
    for metric in (ours_miou, theirs_miou):
        metric.reset()
        metric.update(pred, target)
    mine, other = ours_miou.compute().item(), theirs_miou.compute().item()
    print(f"MeanIoU ours {mine:.10f}, torchmetrics {other:.10f} (|diff| {abs(mine - other):.1e})")

    print("\npeak resident memory added by one update (MiB; the inputs themselves are 2 x 16 MiB):")
    print(f"{'C':>6} {'ours':>8} {'torchmetrics':>13} {'state 8·C² (MiB)':>17}")
    for classes in (21, 150, 1000):
        mine, other = peak_update_memory("ours", classes), peak_update_memory("torchmetrics", classes)
        print(f"{classes:>6} {mine:>8.1f} {other:>13.1f} {8 * classes * classes / 2**20:>17.2f}")
    # torchmetrics' MeanIoU one-hot encodes both maps (2 x 8·C bytes per pixel): C = 21 only.
    mine, other = peak_update_memory("ours MeanIoU", c), peak_update_memory("torchmetrics MeanIoU", c)
    print(f"MeanIoU, C = {c}: ours {mine:.1f} MiB, torchmetrics {other:.1f} MiB")

    print(f"\nload average at end {os.getloadavg()[0]:.2f} (more than the CPU count means other processes competed)")
    for label, anchor, mine in (
        ("default validation", "torchmetrics", "ours"),
        ("torchmetrics without validation", "torchmetrics, validate_args=False", "ours"),
        ("ignore_index=255", "torchmetrics, ignore_index=255", "ours, ignore_index=255"),
        ("MeanIoU, per image", "torchmetrics MeanIoU (per image)", "ours MeanIoU (per image)"),
    ):
        print(f"torchmetrics time / ours ({label}) = {medians[anchor] / medians[mine]:.1f}x")


if __name__ == "__main__":
    main()
