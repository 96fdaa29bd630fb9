"""``genmetrics``: FID, Inception Score, KID and reference statistics over image folders and statistics files.

Examples::

    genmetrics stats data/train -o train_stats.npz      # reference statistics with provenance
    genmetrics fid train_stats.npz samples/             # a statistics file or a folder on each side
    genmetrics is samples/ --splits 10
    genmetrics kid data/val samples/ --subset-size 1000
    genmetrics fid a/ b/ --json --weights pt_inception-2015-12-05-6726825d.pth

Features come from the standard FID InceptionV3 (layer 2048 for FID/KID, ``logits_unbiased`` for
IS) behind the chosen resize protocol. Errors (unreadable images, empty folders, mismatched or
corrupt statistics, missing weights) print one line on stderr and exit with status 2.

Images become 8-bit RGB only where that is exact: 8-bit RGB, grayscale (``L``, replicated) and
bilevel (``1``, as 0/255) images as they are; palette images through their palette; 16-bit
grayscale (``I;16*``, and ``I`` with values in 0..65535) scaled by ``round(v · 255 / 65535)``; images
with an alpha channel or transparency key (``RGBA``, ``LA``, ``PA``, ``P``...) only if fully opaque,
alpha dropped. Everything else is refused with the file and its mode: float images (``F``), ``I``
outside 0..65535, transparent pixels, 16-bit colour (Pillow keeps only its high byte), CMYK, YCbCr,
LAB, HSV and other modes without one exact 8-bit RGB reading.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# 16-bit grayscale modes: scaled to 8 bits, v -> round(v · 255 / 65535).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# Modes read as they are; with a transparency key they go through the alpha check below.
_EXACT_MODES = ("RGB", "L", "1")
_ALPHA_MODES = ("RGBA", "LA", "PA", "P")


class CommandError(Exception):
    """A failure to report on one line, without a traceback."""


class _ImageFolder(torch.utils.data.Dataset):
    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise CommandError(f"'{folder}' is neither an image folder nor a .npz statistics file")
        self.folder = folder
        self.paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise CommandError(f"no images in '{folder}' (looked for {', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                array = image_to_rgb8(image, path)
        except CommandError:
            raise
        except Exception as error:
            raise CommandError(f"cannot read image '{path}': {error}") from error
        return torch.from_numpy(array.copy()).permute(2, 0, 1)


def image_to_rgb8(image: Any, path: str | Path = "<image>") -> np.ndarray:
    """A Pillow image as uint8 ``[H, W, 3]``, or a ``CommandError`` when no 8-bit reading of it is exact.

    See the module docstring for what each mode becomes; refusals name ``path`` and the mode.

    Example:
        >>> from PIL import Image
        >>> gradient = Image.fromarray(np.array([[0, 128, 129, 65535]], dtype=np.uint16))
        >>> gradient.mode, image_to_rgb8(gradient)[0, :, 0].tolist()
        ('I;16', [0, 0, 1, 255])
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise CommandError(
                f"cannot read image '{path}' faithfully: mode {mode!r} holds values in "
                f"[{values.min()}, {values.max()}], outside the 16-bit range 0..65535"
            )
        # round(v · 255 / 65535) = round(v / 257), and v / 257 is never a tie: exact in integers.
        gray = ((values + 128) // 257).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if any(";16" in raw for raw in _raw_modes(image)):
        raise CommandError(
            f"cannot read image '{path}' faithfully: 16-bit colour (mode {mode!r}), which Pillow reduces by "
            "dropping the low byte instead of rounding; convert it to 8 bits first"
        )
    transparent = "transparency" in image.info
    if mode in _EXACT_MODES and not transparent:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if mode in (*_EXACT_MODES, *_ALPHA_MODES):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        if (rgba[..., 3] != 255).any():
            raise CommandError(
                f"cannot read image '{path}' faithfully: mode {mode!r} with transparent pixels (alpha < 255), "
                "whose colour depends on a background; composite it onto one first"
            )
        return rgba[..., :3]
    if mode == "F":
        raise CommandError(
            f"cannot read image '{path}' faithfully: mode 'F' (floating-point pixels) has no defined range to scale "
            "to 8 bits; write it as 8-bit RGB (or 16-bit grayscale) first"
        )
    raise CommandError(
        f"cannot read image '{path}' faithfully: mode {mode!r} has no exact 8-bit RGB reading (supported: "
        f"{', '.join((*_EXACT_MODES, *_ALPHA_MODES, *_SIXTEEN_BIT_MODES, 'I'))}); convert it to 8-bit RGB first"
    )


def _raw_modes(image: Any) -> list[str]:
    """The modes a Pillow image's pixel data are stored in (``"RGB;16B"`` ...), read before decoding."""
    modes = []
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str):
            modes.append(raw)
    return modes


def _same_size_batches(images: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Stack consecutive images of equal size (folders may mix sizes; the network resizes each)."""
    start = 0
    for end in range(1, len(images) + 1):
        if end == len(images) or images[end].shape != images[start].shape:
            yield torch.stack(images[start:end])
            start = end


def _feed_folder(dataset: _ImageFolder, args: argparse.Namespace, consume: Callable[[torch.Tensor], None]) -> int:
    folder = dataset.folder
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.num_workers, collate_fn=list
    )
    done = 0
    for images in loader:
        for batch in _same_size_batches(images):
            consume(batch.to(args.device))
        done += len(images)
        if not args.quiet:
            print(f"\r{folder}: {done}/{len(dataset)} images", end="", file=sys.stderr, flush=True)
    if not args.quiet:
        print(file=sys.stderr)
    return done


def _network(args: argparse.Namespace, layer: str) -> torch.nn.Module:
    from lightning_genmetrics.features.inception import FIDInceptionV3

    network = FIDInceptionV3(
        layer, resize=args.resize, weights_path=args.weights, verify_weights=not args.no_verify_weights
    )
    return network.to(args.device)


def _is_statistics_file(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def _source(path: str) -> Any:
    """A loaded statistics file, or an image folder to read (checked before any network is built)."""
    from lightning_genmetrics.stats import load_statistics

    return load_statistics(path) if _is_statistics_file(Path(path)) else _ImageFolder(Path(path))


def _statistics(source: Any, args: argparse.Namespace) -> Any:
    from lightning_genmetrics.metrics.frechet import FrechetInceptionDistance

    if not isinstance(source, _ImageFolder):
        return source
    metric = FrechetInceptionDistance(_network(args, args.layer)).to(args.device)
    _feed_folder(source, args, lambda batch: metric.update(batch, real=True))
    return metric.real_statistics()


def _run_stats(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.stats import save_statistics

    statistics = _statistics(_ImageFolder(Path(args.folder)), args)
    path = save_statistics(args.output, statistics)
    return {"statistics": str(path), "num_samples": statistics.provenance.num_samples, "layer": args.layer}


def _run_fid(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.functional.frechet import frechet_distance
    from lightning_genmetrics.stats import check_compatible

    sources = _source(args.first), _source(args.second)
    first, second = (_statistics(source, args) for source in sources)
    if first.num_features != second.num_features:
        raise CommandError(f"the statistics have {first.num_features} and {second.num_features} features")
    check_compatible(
        first.provenance,
        second.provenance,
        what="two sets of statistics",
        allow_mismatch=args.allow_provenance_mismatch,
    )
    counts = (first.provenance.num_samples, second.provenance.num_samples)
    value = frechet_distance(first.mu, first.sigma, second.mu, second.sigma, num_samples=counts)
    return {"fid": value.item(), "num_samples": list(counts)}


def _run_is(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.metrics.inception_score import InceptionScore

    folder = _ImageFolder(Path(args.folder))
    metric = InceptionScore(_network(args, "logits_unbiased"), splits=args.splits).to(args.device)
    count = _feed_folder(folder, args, metric.update)
    mean, std = metric.compute()
    return {"inception_score_mean": mean.item(), "inception_score_std": std.item(), "num_samples": count}


def _run_kid(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.metrics.kid import KernelInceptionDistance

    for path in (args.first, args.second):
        if _is_statistics_file(Path(path)):
            raise CommandError(f"KID needs image folders, got the statistics file '{path}'")
    real, fake = _ImageFolder(Path(args.first)), _ImageFolder(Path(args.second))
    metric = KernelInceptionDistance(
        _network(args, "2048"),
        subsets=args.subsets,
        subset_size=args.subset_size,
        max_samples=args.max_samples,
    ).to(args.device)
    counts = [
        _feed_folder(real, args, lambda batch: metric.update(batch, real=True)),
        _feed_folder(fake, args, lambda batch: metric.update(batch, real=False)),
    ]
    mean, std = metric.compute()
    return {"kid_mean": mean.item(), "kid_std": std.item(), "num_samples": counts}


def build_parser() -> argparse.ArgumentParser:
    """The ``genmetrics`` argument parser."""
    from lightning_genmetrics import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--batch-size", type=int, default=50, help="images per forward pass (default 50)")
    common.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    common.add_argument("--num-workers", type=int, default=0, help="image-decoding worker processes")
    common.add_argument("--resize", choices=("tf1", "torch-antialias", "clean"), default="tf1")
    common.add_argument("--weights", default=None, help="a local copy of the Inception weights")
    common.add_argument(
        "--no-verify-weights", action="store_true", help="accept --weights whose SHA-256 is not the pinned one"
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("--quiet", action="store_true", help="no progress on stderr")

    parser = argparse.ArgumentParser(prog="genmetrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    stats = commands.add_parser("stats", parents=[common], help="reference statistics of an image folder")
    stats.add_argument("folder")
    stats.add_argument("-o", "--output", required=True, help="the .npz file to write")
    stats.add_argument("--layer", choices=("64", "192", "768", "2048"), default="2048")
    stats.set_defaults(run=_run_stats)

    fid = commands.add_parser("fid", parents=[common], help="FID between two folders or statistics files")
    fid.add_argument("first")
    fid.add_argument("second")
    fid.add_argument("--layer", choices=("64", "192", "768", "2048"), default="2048")
    fid.add_argument("--allow-provenance-mismatch", action="store_true")
    fid.set_defaults(run=_run_fid)

    inception = commands.add_parser("is", parents=[common], help="Inception Score of an image folder")
    inception.add_argument("folder")
    inception.add_argument("--splits", type=int, default=10)
    inception.set_defaults(run=_run_is)

    kid = commands.add_parser("kid", parents=[common], help="KID between two image folders")
    kid.add_argument("first")
    kid.add_argument("second")
    kid.add_argument("--subsets", type=int, default=100)
    kid.add_argument("--subset-size", type=int, default=1000)
    kid.add_argument("--max-samples", type=int, default=None, help="reservoir size per side (default: keep all)")
    kid.set_defaults(run=_run_kid)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    # DataLoader workers wrap the original error in a traceback; its last line is the message.
    lines = [line for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        lines = [lines[-1].split(": ", 1)[-1]]
    return " ".join(" ".join(lines).split())


def _format(result: dict[str, Any]) -> str:
    return "\n".join(
        f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}" for key, value in result.items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``genmetrics``; returns the exit status (0, or 2 with a one-line error on stderr).

    Example:
        >>> main(["is", "/no/such/folder", "--quiet"])  # the one-line error goes to stderr
        2
    """
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except (CommandError, ValueError, TypeError, RuntimeError, OSError) as error:
        print(f"genmetrics: error: {_one_line(error)}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _format(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
