"""``genmetrics``: FID, Inception Score, KID and reference statistics over image folders and statistics files.

Examples::

    genmetrics stats data/train -o train_stats.npz      # reference statistics with provenance
    genmetrics fid train_stats.npz samples/             # a statistics file or a folder on each side
    genmetrics is samples/ --splits 10
    genmetrics kid data/val samples/ --subset-size 1000
    genmetrics fid a/ b/ --json --weights pt_inception-2015-12-05-6726825d.pth
    genmetrics stats data/train -o mine.npz --feature my_nets.py:encoder   # no Inception weights needed

Features come from the standard FID InceptionV3 (layer 2048 for FID/KID, ``logits_unbiased`` for
IS) behind the chosen resize protocol, or from the network that ``--feature SPEC`` names (see
:func:`feature_network` for the accepted forms, what the network receives and how its statistics are
labelled). Errors (bad arguments, unreadable images, empty folders, mismatched or corrupt statistics,
missing weights) print one line on stderr that names the command's flags, and exit with status 2;
warnings print one line each. ``-o`` is checked before any image is read.

Building the argument parser imports neither torch nor the metrics: ``genmetrics --help`` answers at
once, and only the chosen command imports what it runs.

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
import hashlib
import importlib
import importlib.util
import json
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from lightning_genmetrics.stats import Provenance, ReferenceStatistics

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# 16-bit grayscale modes: scaled to 8 bits, v -> round(v · 255 / 65535).
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
# Modes read as they are; with a transparency key they go through the alpha check below.
_EXACT_MODES = ("RGB", "L", "1")
_ALPHA_MODES = ("RGBA", "LA", "PA", "P")
_INCEPTION_LAYERS = ("64", "192", "768", "2048")
_RESIZE_PROTOCOLS = ("tf1", "torch-antialias", "clean")
# --feature-input -> the metrics' `feature_input`: the folder's images are uint8, so "as_given" hands over uint8.
_FEATURE_INPUTS = {"float": "float", "uint8": "as_given"}
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_SPEC_FORMS = "MODULE:ATTRIBUTE, PATH.py:ATTRIBUTE or a TorchScript file"


class CommandError(Exception):
    """A failure to report on one line, without a traceback."""


# Images --------------------------------------------------------------------------------------------------


class _ImageFolder:
    """The images under a folder (recursively, sorted), as uint8 ``[3, H, W]`` tensors; a map-style dataset."""

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
        import torch
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
        >>> import numpy as np
        >>> from PIL import Image
        >>> gradient = Image.fromarray(np.array([[0, 128, 129, 65535]], dtype=np.uint16))
        >>> gradient.mode, image_to_rgb8(gradient)[0, :, 0].tolist()
        ('I;16', [0, 0, 1, 255])
    """
    import numpy as np

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
    import torch

    start = 0
    for end in range(1, len(images) + 1):
        if end == len(images) or images[end].shape != images[start].shape:
            yield torch.stack(images[start:end])
            start = end


def _feed_folder(dataset: _ImageFolder, args: argparse.Namespace, consume: Callable[[torch.Tensor], None]) -> int:
    import torch

    folder = dataset.folder
    loader = torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=list,
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


# The feature network -------------------------------------------------------------------------------------


def feature_network(spec: str) -> tuple[nn.Module, str]:
    """The network ``--feature SPEC`` names, and the name its statistics' provenance gives it.

    ``SPEC`` is one of:

    - ``MODULE:ATTRIBUTE`` (``my_package.nets:encoder``): ``MODULE`` imported as Python imports it (it must
      be on ``sys.path``, e.g. installed or on ``PYTHONPATH``), then its ``ATTRIBUTE`` (dotted names such
      as ``Nets.small`` are followed). Named ``"MODULE:ATTRIBUTE"``.
    - ``PATH.py:ATTRIBUTE``: the Python file executed as a module of its own, as an import runs it (so only
      files you trust; ``__name__`` is not ``"__main__"`` and its folder is not added to ``sys.path``), then
      its ``ATTRIBUTE``. Named ``"FILE.py:ATTRIBUTE"`` with the file's name only, so the same file in another
      folder gives comparable statistics.
    - any other existing file (``encoder.pt``): a TorchScript archive written by ``torch.jit.save``,
      loaded onto the CPU by ``torch.jit.load``, which runs no Python pickle (the file holds TorchScript
      code and tensors; its code runs when images go through it). Named after the file.

    ``ATTRIBUTE`` may be an ``nn.Module`` instance (used as it is), an ``nn.Module`` class or a function
    returning one (called with no arguments). A class or function must build the same weights on every
    call (load them, or seed): statistics record a hash of the weights, and those of other weights are
    refused.

    Raises:
        CommandError: the SPEC fits none of the forms, cannot be imported or loaded, or gives no ``nn.Module``.

    Example:
        >>> network, name = feature_network("torch.nn:Flatten")
        >>> name, type(network).__name__
        ('torch.nn:Flatten', 'Flatten')
    """
    location, colon, attribute = spec.rpartition(":")
    if colon and location and _DOTTED_NAME.fullmatch(attribute):
        if location.lower().endswith(".py"):
            file = Path(location).expanduser()
            namespace = _module_from_file(file, spec)
            name = f"{file.name}:{attribute}"
        elif _DOTTED_NAME.fullmatch(location):
            namespace = _import_module(location, spec)
            name = spec
        else:
            raise CommandError(f"--feature {spec!r}: {location!r} is neither a module name nor a .py file")
        return _as_network(_attribute(namespace, attribute, spec), attribute, spec), name
    file = Path(spec).expanduser()
    if file.suffix.lower() == ".py":
        raise CommandError(f"--feature {spec!r}: name the network in the file: --feature {spec}:ATTRIBUTE")
    if not file.is_file():
        raise CommandError(f"--feature {spec!r}: no such file, and not {_SPEC_FORMS}")
    return _torchscript(file), file.name


def _module_from_file(file: Path, spec: str) -> Any:
    if not file.is_file():
        raise CommandError(f"--feature {spec!r}: no Python file '{file}'")
    # A name of its own per file, registered in sys.modules as an import would (dataclasses and pickling
    # look classes up there), and never one of the user's module names.
    name = "_genmetrics_feature_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:16]
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise CommandError(f"--feature {spec!r}: cannot load '{file}' as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise CommandError(f"--feature {spec!r}: running '{file}' failed: {type(error).__name__}: {error}") from error
    return module


def _import_module(name: str, spec: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise CommandError(
            f"--feature {spec!r}: no module {error.name!r} (a MODULE:ATTRIBUTE must be importable: installed or on "
            "PYTHONPATH; for a file, use --feature PATH.py:ATTRIBUTE)"
        ) from error
    except Exception as error:
        raise CommandError(f"--feature {spec!r}: importing {name!r} failed: {type(error).__name__}: {error}") from error


def _attribute(namespace: Any, attribute: str, spec: str) -> Any:
    value, found = namespace, []
    for part in attribute.split("."):
        if not hasattr(value, part):
            where = f"'{spec.rpartition(':')[0]}'" + "".join(f".{name}" for name in found)
            raise CommandError(f"--feature {spec!r}: {where} has no attribute {part!r}")
        value = getattr(value, part)
        found.append(part)
    return value


def _as_network(value: Any, attribute: str, spec: str) -> nn.Module:
    from torch import nn

    if isinstance(value, nn.Module):
        return value
    if not callable(value):
        raise CommandError(
            f"--feature {spec!r}: expected an nn.Module, an nn.Module class or a function returning one, "
            f"got {type(value).__name__}"
        )
    try:
        network = value()
    except Exception as error:
        raise CommandError(f"--feature {spec!r}: {attribute}() failed: {type(error).__name__}: {error}") from error
    if not isinstance(network, nn.Module):
        raise CommandError(f"--feature {spec!r}: {attribute}() returned {type(network).__name__}, not an nn.Module")
    return network


def _torchscript(file: Path) -> nn.Module:
    import torch

    try:
        with warnings.catch_warnings():
            # torch deprecates TorchScript in favour of torch.export, whose loader unpickles: keep the safe format
            # without telling every user that torch would rather they did not.
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            return torch.jit.load(str(file), map_location="cpu")
    except Exception as error:
        raise CommandError(
            f"--feature '{file}' is not a TorchScript archive written by torch.jit.save ({_one_line(error)[:200]}); "
            "for a state dict, write a PATH.py:ATTRIBUTE that builds the network and loads it"
        ) from error


class _Features:
    """The network every image folder of a command goes through: the FID InceptionV3 or ``--feature``'s network.

    Built on first use (once per command), so that a command on statistics files only reads no weights.
    """

    def __init__(self, args: argparse.Namespace, inception_layer: str) -> None:
        self.args = args
        self.inception_layer = inception_layer
        self._network: nn.Module | None = None
        self.label: str | None = None  # the provenance's extractor name for --feature's network

    @property
    def feature_input(self) -> str:
        """The metrics' ``feature_input`` for what ``--feature-input`` names."""
        return _FEATURE_INPUTS[self.args.feature_input]

    def network(self) -> nn.Module:
        if self._network is not None:
            return self._network
        args = self.args
        if args.feature is None:
            self._network = _inception(args, self.inception_layer)
            return self._network
        import torch

        network, name = feature_network(args.feature)
        # What the network receives belongs to what it computes: uint8 and [0, 1] floats give other features.
        receives = "uint8" if getattr(network, "input_dtype", None) == torch.uint8 else args.feature_input
        self.label = f"{name} ({receives} input)"
        self._network = network.to(args.device)
        return self._network

    def provenance(self) -> Provenance:
        """What statistics of a folder computed here record about their features (``num_samples`` aside)."""
        from lightning_genmetrics.features.extractor import ImageFeatures
        from lightning_genmetrics.stats import Provenance

        fields = ImageFeatures(self.network()).provenance_fields()
        return Provenance(**{**fields, **({"extractor": self.label} if self.label else {})})

    def statistics(self, source: Any) -> ReferenceStatistics:
        """``source`` if it is loaded statistics, else the statistics of its images."""
        import dataclasses

        from lightning_genmetrics.metrics.frechet import FrechetInceptionDistance

        if not isinstance(source, _ImageFolder):
            return source
        metric = FrechetInceptionDistance(self.network(), feature_input=self.feature_input).to(self.args.device)
        _feed_folder(source, self.args, lambda batch: metric.update(batch, real=True))
        statistics = metric.real_statistics()
        if self.label is None:
            return statistics
        provenance = dataclasses.replace(statistics.provenance, extractor=self.label)
        return dataclasses.replace(statistics, provenance=provenance)


def _inception(args: argparse.Namespace, layer: str) -> nn.Module:
    from lightning_genmetrics.features.inception import FIDInceptionV3

    try:
        network = FIDInceptionV3(
            layer,  # type: ignore[arg-type]
            resize=args.resize or "tf1",
            weights_path=args.weights,
            verify_weights=not args.no_verify_weights,
        )
    except RuntimeError as error:  # no copy of the weights and no download (offline)
        raise CommandError(
            f"{_one_line(error)} Without these weights, --feature SPEC computes the features with another network."
        ) from error
    return network.to(args.device)


# Commands ------------------------------------------------------------------------------------------------


def _is_statistics_file(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def _source(path: str) -> Any:
    """A loaded statistics file, or an image folder to read (checked before any network is built)."""
    from lightning_genmetrics.stats import load_statistics

    return load_statistics(path) if _is_statistics_file(Path(path)) else _ImageFolder(Path(path))


def _check_output(output: str) -> Path:
    """The ``-o`` path, refused before any work if the statistics could not be written there."""
    path = Path(output).expanduser()
    if path.suffix.lower() != ".npz":
        raise CommandError(f"-o/--output '{path}' must end in .npz (genmetrics fid recognises statistics files by it)")
    if path.is_dir():
        raise CommandError(f"-o/--output '{path}' is a folder; name the .npz file to write")
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(f"-o/--output '{path}': the folder '{folder}' does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise CommandError(f"-o/--output '{path}': cannot write in '{folder}' ({error.strerror or error})") from error
    return path


def _run_stats(args: argparse.Namespace) -> dict[str, Any]:
    output = _check_output(args.output)
    from lightning_genmetrics.stats import save_statistics

    folder = _ImageFolder(Path(args.folder))
    statistics = _Features(args, args.layer or "2048").statistics(folder)
    path = save_statistics(output, statistics)
    provenance = statistics.provenance
    return {
        "statistics": str(path),
        "num_samples": provenance.num_samples,
        "extractor": provenance.extractor,
        "layer": provenance.layer,
    }


def _run_fid(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.functional.frechet import frechet_distance
    from lightning_genmetrics.stats import check_compatible

    paths = (args.first, args.second)
    sources = [_source(path) for path in paths]
    features = _Features(args, args.layer or "2048")
    folders = [isinstance(source, _ImageFolder) for source in sources]
    if any(folders) and not all(folders):
        # A statistics file that the folder's features could not be compared with is refused before the images
        # are read (the run could take hours).
        expected = features.provenance()
        for path, source, folder in zip(paths, sources, folders, strict=True):
            differences = [] if folder else source.provenance.differences(expected)
            if differences and not args.allow_provenance_mismatch:
                raise CommandError(
                    f"the statistics in '{path}' were produced differently from the other side's features (the "
                    f"file's first: {'; '.join(differences)}); recompute them with the same flags, or pass "
                    "--allow-provenance-mismatch to compare anyway"
                )
    first, second = (features.statistics(source) for source in sources)
    if first.num_features != second.num_features:
        differences = first.provenance.differences(second.provenance)
        because = f" ({'; '.join(differences)})" if differences else ""
        raise CommandError(f"the statistics have {first.num_features} and {second.num_features} features{because}")
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
    features = _Features(args, "logits_unbiased")
    # A --feature network's output is taken as logits: the score uses softmax(output) as class probabilities.
    metric = InceptionScore(features.network(), splits=args.splits, feature_input=features.feature_input)
    metric = metric.to(args.device)
    count = _feed_folder(folder, args, metric.update)
    mean, std = metric.compute()
    return {"inception_score_mean": mean.item(), "inception_score_std": std.item(), "num_samples": count}


def _run_kid(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.metrics.kid import KernelInceptionDistance

    for path in (args.first, args.second):
        if _is_statistics_file(Path(path)):
            raise CommandError(f"KID needs image folders, got the statistics file '{path}'")
    real, fake = _ImageFolder(Path(args.first)), _ImageFolder(Path(args.second))
    for folder in (real, fake):
        if len(folder) < args.subset_size:
            raise CommandError(
                f"KID needs at least --subset-size {args.subset_size} images on each side, got {len(folder)} in "
                f"'{folder.folder}': add images or lower --subset-size"
            )
    features = _Features(args, "2048")
    metric = KernelInceptionDistance(
        features.network(),
        subsets=args.subsets,
        subset_size=args.subset_size,
        max_samples=args.max_samples,
        feature_input=features.feature_input,
    ).to(args.device)
    counts = [
        _feed_folder(real, args, lambda batch: metric.update(batch, real=True)),
        _feed_folder(fake, args, lambda batch: metric.update(batch, real=False)),
    ]
    mean, std = metric.compute()
    return {"kid_mean": mean.item(), "kid_std": std.item(), "num_samples": counts}


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot mean anything, before any file is read."""
    if args.feature is not None:
        inception_only = {
            "--weights": args.weights is not None,
            "--no-verify-weights": args.no_verify_weights,
            "--resize": args.resize is not None,
            "--layer": getattr(args, "layer", None) is not None,
        }
        given = [flag for flag, present in inception_only.items() if present]
        if given:
            raise CommandError(
                f"{', '.join(given)} configure{'s' if len(given) == 1 else ''} the Inception network, which --feature "
                "replaces (its network resizes the images itself and its output is the feature)"
            )
    elif args.feature_input != "float":
        raise CommandError("--feature-input says what a --feature network receives; the Inception network takes uint8")
    max_samples, subset_size = getattr(args, "max_samples", None), getattr(args, "subset_size", None)
    if max_samples is not None and max_samples < subset_size:
        raise CommandError(f"--max-samples {max_samples} keeps fewer images than --subset-size {subset_size} needs")


# The parser ----------------------------------------------------------------------------------------------


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_FEATURE_HELP = """\
--feature SPEC computes the features with another network, so no Inception weights are needed:
  MODULE:ATTRIBUTE    imported as Python imports it (installed, or on PYTHONPATH)
  PATH.py:ATTRIBUTE   that file, run as a module (only files you trust)
  PATH                a TorchScript file (torch.jit.save), loaded by torch.jit.load (no pickle)
ATTRIBUTE is an nn.Module, or a class or function that returns one when called with no arguments
(it must build the same weights every time: statistics record their hash). The network gets each
batch of images at its own size (it resizes and normalises itself) as float RGB in [0, 1]
(--feature-input float) or as uint8 0..255 (--feature-input uint8), and returns [N, D] features;
for 'is', its outputs are the logits of the classes. Statistics record it as 'SPEC (float input)'
(a file without its folder) with the hash of its weights: statistics of another network, other
weights or another input are refused."""


def build_parser() -> argparse.ArgumentParser:
    """The ``genmetrics`` argument parser; building it imports neither torch nor the metrics.

    Example:
        >>> args = build_parser().parse_args(["is", "samples/", "--feature", "nets.py:classifier"])
        >>> args.splits, args.feature, args.feature_input
        (10, 'nets.py:classifier', 'float')
    """
    from lightning_genmetrics import __version__

    common = argparse.ArgumentParser(add_help=False)
    options = common.add_argument_group("options of every command")
    options.add_argument(
        "--batch-size", type=_integer(1), default=50, metavar="N", help="images per forward pass (default: %(default)s)"
    )
    options.add_argument(
        "--device",
        default="auto",
        help="where the network runs: auto (cuda if available, else cpu), or a torch device such as cpu, cuda:1 "
        "(default: %(default)s)",
    )
    options.add_argument(
        "--num-workers",
        type=_integer(0),
        default=0,
        metavar="N",
        help="image-decoding worker processes; 0 decodes in the main process (default: %(default)s)",
    )
    options.add_argument(
        "--feature",
        metavar="SPEC",
        default=None,
        help=f"another feature network instead of the FID InceptionV3: {_SPEC_FORMS} (see below; "
        "default: the FID InceptionV3)",
    )
    options.add_argument(
        "--feature-input",
        choices=tuple(_FEATURE_INPUTS),
        default="float",
        help="what a --feature network receives: float RGB in [0, 1], or uint8 RGB 0..255 (default: %(default)s)",
    )
    options.add_argument(
        "--resize",
        choices=_RESIZE_PROTOCOLS,
        default=None,
        help="how the Inception network resizes images to 299x299: tf1 (published FID numbers, torch-fidelity, "
        "pytorch-fid), torch-antialias (torchmetrics) or clean (clean-fid) (default: tf1)",
    )
    options.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="a local copy of the Inception weights (default: $LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS, else the "
        "torch hub cache, downloaded there on first use)",
    )
    options.add_argument(
        "--no-verify-weights",
        action="store_true",
        help="accept --weights whose SHA-256 is not the pinned one (your own conversion)",
    )
    options.add_argument("--json", action="store_true", help="print the result as one JSON object")
    options.add_argument("--quiet", action="store_true", help="no progress on stderr")

    parser = argparse.ArgumentParser(
        prog="genmetrics",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="Run 'genmetrics COMMAND --help' for a command's arguments.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}", help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="the command to run")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.",
            epilog=_FEATURE_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    layer_help = "the Inception layer the features come from (default: 2048; not with --feature)"
    stats = command("stats", "write the reference statistics (mean, covariance, provenance) of an image folder")
    stats.add_argument("folder", help="the image folder, searched recursively")
    stats.add_argument(
        "-o", "--output", required=True, metavar="FILE.npz", help="the statistics file to write (required)"
    )
    stats.add_argument("--layer", choices=_INCEPTION_LAYERS, default=None, help=layer_help)
    stats.set_defaults(run=_run_stats)

    fid = command("fid", "FID between two image folders or statistics files")
    fid.add_argument("first", help="an image folder or a .npz statistics file")
    fid.add_argument("second", help="an image folder or a .npz statistics file")
    fid.add_argument("--layer", choices=_INCEPTION_LAYERS, default=None, help=layer_help)
    fid.add_argument(
        "--allow-provenance-mismatch",
        action="store_true",
        help="compare statistics of another network, weights, layer or resize protocol anyway",
    )
    fid.set_defaults(run=_run_fid)

    inception = command("is", "Inception Score of an image folder")
    inception.add_argument("folder", help="the image folder, searched recursively")
    inception.add_argument(
        "--splits", type=_integer(1), default=10, metavar="N", help="number of splits (default: %(default)s)"
    )
    inception.set_defaults(run=_run_is)

    kid = command("kid", "KID between two image folders")
    kid.add_argument("first", help="the real image folder")
    kid.add_argument("second", help="the generated image folder")
    kid.add_argument(
        "--subsets", type=_integer(1), default=100, metavar="N", help="number of random subsets (default: %(default)s)"
    )
    kid.add_argument(
        "--subset-size",
        type=_integer(2),
        default=1000,
        metavar="N",
        help="images per subset and side; each folder needs at least this many (default: %(default)s)",
    )
    kid.add_argument(
        "--max-samples",
        type=_integer(2),
        default=None,
        metavar="N",
        help="keep a seeded reservoir of N images per side (default: keep all)",
    )
    kid.set_defaults(run=_run_kid)
    return parser


# Reporting -----------------------------------------------------------------------------------------------

# The library words its errors for Python callers; the command's user passes flags. Each pattern is one wording
# the library uses (stats.check_compatible, features.weights, functional.kid ...), with the flag that does it.
_FLAG_WORDING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"allow_provenance_mismatch=True"), "--allow-provenance-mismatch"),
    (re.compile(r"\bverify=False"), "--no-verify-weights"),
    (re.compile(r"given by `path`"), "given by --weights"),
    (re.compile(r"\bweights_path='([^']*)'"), r"--weights \1"),
    (re.compile(r"\bfewer splits\b"), "a smaller --splits"),
)


def cli_wording(message: str) -> str:
    """``message`` with the library's Python argument names replaced by the command's flags.

    Example:
        >>> cli_wording("Recompute them, or pass allow_provenance_mismatch=True to compare anyway.")
        'Recompute them, or pass --allow-provenance-mismatch to compare anyway.'
    """
    for pattern, flag in _FLAG_WORDING:
        message = pattern.sub(flag, message)
    return message


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    # DataLoader workers wrap the original error in a traceback; its last line is the message.
    lines = [line for line in text.splitlines() if line.strip()]
    if "Traceback" in text:
        lines = [lines[-1].split(": ", 1)[-1]]
    return " ".join(" ".join(lines).split())


def _print_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"genmetrics: warning: {cli_wording(_one_line(Warning(str(message))))}", file=sys.stderr)


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
        with warnings.catch_warnings():
            warnings.showwarning = _print_warning
            _check_arguments(args)
            if args.device == "auto":
                import torch

                args.device = "cuda" if torch.cuda.is_available() else "cpu"
            result = args.run(args)
    except (CommandError, ValueError, TypeError, RuntimeError, OSError) as error:
        print(f"genmetrics: error: {cli_wording(_one_line(error))}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _format(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
