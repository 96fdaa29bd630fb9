"""``genmetrics``: FID, FD on DINOv2/CLIP/sFID features, IS, KID, precision/recall, CMMD and reference statistics.

Examples::

    genmetrics stats data/train -o train_stats.npz      # reference statistics with provenance
    genmetrics fid train_stats.npz samples/             # a statistics file or a folder on each side
    genmetrics fd data/val samples/ --encoder dinov2-vitl14          # FD_DINOv2
    genmetrics stats data/train -o train_dinov2.npz --encoder dinov2-vitl14
    genmetrics fd data/val samples/ --encoder inception-spatial      # sFID
    genmetrics prdc data/val samples/ --k 3                          # precision, recall, density, coverage
    genmetrics cmmd data/val samples/                                # on CLIP ViT-L/14@336px
    genmetrics is samples/ --splits 10
    genmetrics kid data/val samples/ --subset-size 1000
    genmetrics fid a/ b/ --json --weights pt_inception-2015-12-05-6726825d.pth
    genmetrics stats data/train -o mine.npz --feature my_nets.py:encoder   # no standard weights needed

Features come from a standard network that ``--encoder NAME`` picks (``stats``, ``fd``, ``kid``, ``prdc``, ``cmmd``):
the FID InceptionV3 (layer 2048 for FID/KID/PRD, ``logits_unbiased`` for IS, the 2023 spatial features for
sFID), DINOv2 (ViT-S/B/L/g, patch 14) or CLIP (ViT-B/32, ViT-L/14@336px), each behind the preprocessing that
``--resize`` names (default: the one of the metric's reference); or from the network that ``--feature SPEC``
names (see :func:`feature_network` for the accepted forms, what the network receives and how its statistics
are labelled). Errors (bad arguments, unreadable images, empty folders, too few images, mismatched or corrupt
statistics, missing weights) print one line on stderr that names the command's flags, and exit with status 2;
warnings print one line each. Flags and ``-o`` are checked before any weights or image are read.

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
_SPATIAL_LAYER = "2023"  # sFID's features: the first 7 channels of Inception's 17x17 mixed_6/conv map
# The standard encoders (`--encoder`) and the preprocessing modes each accepts (`--resize`), its default first. Written
# out here so that the parser imports nothing; tests/test_cli_suite.py checks them against the feature modules.
_INCEPTION_RESIZES = ("tf1", "torch-antialias", "clean")
_DINOV2_RESIZES = ("dgm-eval", "edm2", "dgm-eval-clean")
_CLIP_PREPROCESSES = ("clip", "cmmd", "torch-fidelity", "torch-antialias")
_ENCODERS: dict[str, tuple[str, ...]] = {
    "inception": _INCEPTION_RESIZES,
    "inception-spatial": _INCEPTION_RESIZES,
    **{f"dinov2-{variant}": _DINOV2_RESIZES for variant in ("vits14", "vitb14", "vitl14", "vitg14")},
    "clip-vit-b32": _CLIP_PREPROCESSES,
    # CMMD's reference crops the centred square, then resizes.
    "clip-vit-l14-336": ("cmmd", "clip", "torch-fidelity", "torch-antialias"),
}
_RESIZES = tuple(dict.fromkeys(mode for modes in _ENCODERS.values() for mode in modes))
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
    """The network every image folder of a command goes through: a standard encoder or ``--feature``'s network.

    Built on first use (once per command), so that a command on statistics files only reads no weights.

    Args:
        args: the parsed command line.
        inception_layer: the Inception layer of the ``inception`` encoder (``--layer``, or the command's own).
    """

    def __init__(self, args: argparse.Namespace, inception_layer: str = "2048") -> None:
        self.args = args
        self.encoder = _encoder_name(args)
        self.inception_layer = inception_layer
        self._network: nn.Module | None = None
        self._provenance: Provenance | None = None
        self.label: str | None = None  # the provenance's extractor name for --feature's network
        self.receives = "uint8"  # what the network gets: "uint8" (folders hold uint8 images) or "float"

    @property
    def feature_input(self) -> str:
        """The metrics' ``feature_input`` for what ``--feature-input`` names."""
        return _FEATURE_INPUTS[self.args.feature_input]

    def network(self) -> nn.Module:
        if self._network is not None:
            return self._network
        args = self.args
        if args.feature is None:
            self._network = _encoder_network(args, self.encoder, self.inception_layer)
            return self._network
        import torch

        network, self.label = feature_network(args.feature)
        # What the network receives belongs to what it computes: uint8 and [0, 1] floats give other features.
        self.receives = "uint8" if getattr(network, "input_dtype", None) == torch.uint8 else args.feature_input
        self._network = network.to(args.device)
        return self._network

    def provenance(self) -> Provenance:
        """What statistics of a folder computed here record about their features (``num_samples`` aside).

        Computed once: the weights' hash reads every parameter (seconds for the largest encoders).
        """
        if self._provenance is None:
            from lightning_genmetrics import __version__
            from lightning_genmetrics.features.extractor import ImageFeatures
            from lightning_genmetrics.stats import Provenance

            fields = ImageFeatures(self.network()).provenance_fields()
            if self.label is not None:
                fields["extractor"] = self.label
            fields["feature_input"] = self.receives
            self._provenance = Provenance(**fields, package_version=__version__)
        return self._provenance

    def statistics(self, source: Any) -> ReferenceStatistics:
        """``source`` if it is loaded statistics, else the statistics of its images."""
        import dataclasses

        from lightning_genmetrics.features.extractor import ImageFeatures
        from lightning_genmetrics.metrics.frechet import FrechetDistance

        if not isinstance(source, _ImageFolder):
            return source
        # FrechetInceptionDistance's computation (the checked features of ImageFeatures into FrechetDistance), with
        # the provenance computed once for every folder of the command.
        features = ImageFeatures(self.network(), feature_input=self.feature_input)  # type: ignore[arg-type]
        metric = FrechetDistance(features.num_features).to(self.args.device)
        _feed_folder(source, self.args, lambda batch: metric.update(features(batch), real=True))
        statistics = metric.real_statistics()
        provenance = dataclasses.replace(self.provenance(), num_samples=statistics.provenance.num_samples)
        return dataclasses.replace(statistics, provenance=provenance)


def _encoder_name(args: argparse.Namespace) -> str:
    """The command's ``--encoder``, or its default (``fid`` and ``is`` have the Inception network only)."""
    return getattr(args, "encoder", None) or args.default_encoder


def _encoder_network(args: argparse.Namespace, name: str, inception_layer: str) -> nn.Module:
    """The standard encoder ``name`` with ``--resize``, ``--weights`` and ``--no-verify-weights``."""
    resize = args.resize or _ENCODERS[name][0]
    weights = {"weights_path": args.weights, "verify_weights": not args.no_verify_weights}
    try:
        if name.startswith("inception"):
            from lightning_genmetrics.features.inception import FIDInceptionV3

            layer = _SPATIAL_LAYER if name == "inception-spatial" else inception_layer
            network: nn.Module = FIDInceptionV3(layer, resize=resize, **weights)  # type: ignore[arg-type]
        elif name.startswith("dinov2-"):
            from lightning_genmetrics.features.dinov2 import DINOv2Encoder

            network = DINOv2Encoder(name.removeprefix("dinov2-"), resize=resize, **weights)  # type: ignore[arg-type]
        else:
            from lightning_genmetrics.features.clip import CLIPImageEncoder

            network = CLIPImageEncoder.from_name(name, preprocess=resize, **weights)
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


def _image_folders(args: argparse.Namespace, what: str, needed: int = 1, flag: str = "") -> list[_ImageFolder]:
    """The two image folders of a metric that needs the images themselves, each with at least ``needed`` images
    (``flag``: the flag and value that need that many, named in the message for a folder that is too small)."""
    for path in (args.first, args.second):
        if _is_statistics_file(Path(path)):
            raise CommandError(f"{what} needs image folders, got the statistics file '{path}'")
    folders = [_ImageFolder(Path(args.first)), _ImageFolder(Path(args.second))]
    for folder in folders:
        if len(folder) < needed:
            raise CommandError(
                f"{what} with {flag} needs at least {needed} images on each side, got {len(folder)} in "
                f"'{folder.folder}': add images or lower {flag.split()[0]}"
            )
    return folders


def _check_output(output: str) -> Path:
    """The ``-o`` path, refused before any work if the statistics could not be written there."""
    path = Path(output).expanduser()
    if path.suffix.lower() != ".npz":
        raise CommandError(f"-o/--output '{path}' must end in .npz (genmetrics fd recognises statistics files by it)")
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
    if len(folder) < 2:
        raise CommandError(f"statistics need at least 2 images (a covariance), got 1 in '{folder.folder}'")
    statistics = _Features(args, args.layer or "2048").statistics(folder)
    path = save_statistics(output, statistics)
    provenance = statistics.provenance
    return {
        "statistics": str(path),
        "num_samples": provenance.num_samples,
        "extractor": provenance.extractor,
        "layer": provenance.layer,
        "resize": provenance.resize,
    }


def _frechet(args: argparse.Namespace, inception_layer: str) -> tuple[float, ReferenceStatistics, ReferenceStatistics]:
    """The Fréchet distance between the two sides of ``fid``/``fd``, and the statistics of each side."""
    from lightning_genmetrics.functional.frechet import frechet_distance
    from lightning_genmetrics.stats import check_compatible

    paths = (args.first, args.second)
    sources = [_source(path) for path in paths]
    for source in sources:
        if isinstance(source, _ImageFolder) and len(source) < 2:
            raise CommandError(
                f"a Fréchet distance needs at least 2 images on each side (a covariance), got 1 in '{source.folder}'"
            )
    features = _Features(args, inception_layer)
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
    check_compatible(
        first.provenance,
        second.provenance,
        what="two sets of statistics",
        allow_mismatch=args.allow_provenance_mismatch,
    )
    if first.num_features != second.num_features:
        differences = first.provenance.differences(second.provenance)
        because = f" ({'; '.join(differences)})" if differences else ""
        raise CommandError(f"the statistics have {first.num_features} and {second.num_features} features{because}")
    counts = (first.provenance.num_samples, second.provenance.num_samples)
    value = frechet_distance(first.mu, first.sigma, second.mu, second.sigma, num_samples=counts)
    return value.item(), first, second


def _run_fid(args: argparse.Namespace) -> dict[str, Any]:
    value, first, second = _frechet(args, args.layer or "2048")
    return {"fid": value, "num_samples": [first.provenance.num_samples, second.provenance.num_samples]}


def _run_fd(args: argparse.Namespace) -> dict[str, Any]:
    value, first, second = _frechet(args, "2048")
    return {
        "fd": value,
        "extractor": first.provenance.extractor,
        "num_samples": [first.provenance.num_samples, second.provenance.num_samples],
    }


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

    real, fake = _image_folders(args, "KID", args.subset_size, f"--subset-size {args.subset_size}")
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


def _run_prdc(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.metrics.prdc import PrecisionRecallDensityCoverage

    # Each sample's ball reaches its k-th nearest neighbour among the other samples of its side.
    real, fake = _image_folders(args, "precision/recall", args.k + 1, f"--k {args.k}")
    features = _Features(args, "2048")
    metric = PrecisionRecallDensityCoverage(
        features.network(),
        k=args.k,
        max_samples=args.max_samples,
        seed=args.seed,
        feature_input=features.feature_input,  # type: ignore[arg-type]
    ).to(args.device)
    _feed_folder(real, args, lambda batch: metric.update(batch, real=True))
    _feed_folder(fake, args, lambda batch: metric.update(batch, real=False))
    values = {name: value.item() for name, value in metric.compute().items()}
    used = metric.samples_used()
    return {
        **{name: values[name] for name in ("precision", "recall", "density", "coverage")},
        "num_samples": [used["real_seen"], used["fake_seen"]],
        "samples_used": [used["real_used"], used["fake_used"]],
    }


def _run_cmmd(args: argparse.Namespace) -> dict[str, Any]:
    from lightning_genmetrics.metrics.cmmd import CLIPMaximumMeanDiscrepancy

    real, fake = _image_folders(args, "CMMD")
    features = _Features(args)
    metric = CLIPMaximumMeanDiscrepancy(
        features.network(),
        max_samples=args.max_samples,
        seed=args.seed,
        feature_input=features.feature_input,  # type: ignore[arg-type]
    ).to(args.device)
    counts = [
        _feed_folder(real, args, lambda batch: metric.update(batch, real=True)),
        _feed_folder(fake, args, lambda batch: metric.update(batch, real=False)),
    ]
    value = metric.compute().item()
    return {
        "cmmd": value,
        "num_samples": counts,
        "samples_used": [int(metric.real_keys.shape[0]), int(metric.fake_keys.shape[0])],
    }


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot mean anything, before any file is read."""
    encoder = getattr(args, "encoder", None)
    if args.feature is not None:
        if encoder is not None:
            raise CommandError(f"--encoder {encoder} and --feature both choose the feature network; pass one of them")
        encoder_only = {
            "--weights": args.weights is not None,
            "--no-verify-weights": args.no_verify_weights,
            "--resize": args.resize is not None,
            "--layer": getattr(args, "layer", None) is not None,
        }
        given = [flag for flag, present in encoder_only.items() if present]
        if given:
            raise CommandError(
                f"{', '.join(given)} configure{'s' if len(given) == 1 else ''} the standard network (--encoder), "
                "which --feature replaces (its network resizes the images itself and its output is the feature)"
            )
    else:
        if args.feature_input != "float":
            raise CommandError(
                "--feature-input says what a --feature network receives; the standard networks take uint8"
            )
        name = _encoder_name(args)
        network = f"--encoder {name}" if hasattr(args, "encoder") else "the Inception network"
        modes = _ENCODERS[name]
        if args.resize is not None and args.resize not in modes:
            raise CommandError(
                f"--resize {args.resize} is not a preprocessing of {network} (its modes: {', '.join(modes)}; "
                f"default {modes[0]})"
            )
        if getattr(args, "layer", None) is not None and name != "inception":
            raise CommandError(f"--layer picks a layer of --encoder inception, not of {network}")
    max_samples = getattr(args, "max_samples", None)
    if max_samples is None:
        return
    if args.command == "kid" and max_samples < args.subset_size:
        raise CommandError(
            f"--max-samples {max_samples} keeps fewer images than --subset-size {args.subset_size} needs"
        )
    if args.command == "prdc" and max_samples < args.k + 1:
        raise CommandError(
            f"--max-samples {max_samples} keeps fewer images than --k {args.k} needs (at least {args.k + 1})"
        )


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


_ENCODER_HELP = """\
--encoder NAME picks a standard network; --resize picks how it preprocesses the images (default first):
  inception          FID's InceptionV3, 2048 pool features         tf1, torch-antialias, clean
  inception-spatial  sFID's 2023 features (mixed_6/conv, 7x17x17)  tf1, torch-antialias, clean
  dinov2-vits14, dinov2-vitb14, dinov2-vitl14 (FD_DINOv2's), dinov2-vitg14
                     DINOv2's CLS embedding                        dgm-eval, edm2, dgm-eval-clean
  clip-vit-b32       CLIP ViT-B/32 image embedding (CLIP-FID)      clip, cmmd, torch-fidelity, torch-antialias
  clip-vit-l14-336   CLIP ViT-L/14@336px, unit length (CMMD's)     cmmd, clip, torch-fidelity, torch-antialias
tf1 is the resize of published FID numbers, dgm-eval that of FD_DINOv2 (PIL bicubic), edm2 EDM2's
antialiased torch bicubic, clip OpenAI's preprocess (clean-fid's CLIP-FID), cmmd the CMMD reference's
crop and resize, torch-fidelity torch-fidelity 0.4's. Weights are pinned by SHA-256 and downloaded
once into the torch hub cache; --weights FILE names a local copy (checked against the pin unless
--no-verify-weights). Statistics record the encoder, the hash of its weights, its layer and its
preprocessing: statistics of another encoder or preprocessing are refused (--allow-provenance-mismatch)."""

_FEATURE_HELP = """\
--feature SPEC computes the features with another network, so no standard weights are needed:
  MODULE:ATTRIBUTE    imported as Python imports it (installed, or on PYTHONPATH)
  PATH.py:ATTRIBUTE   that file, run as a module (only files you trust)
  PATH                a TorchScript file (torch.jit.save), loaded by torch.jit.load (no pickle)
ATTRIBUTE is an nn.Module, or a class or function that returns one when called with no arguments
(it must build the same weights every time: statistics record their hash). The network gets each
batch of images at its own size (it resizes and normalises itself) as float RGB in [0, 1]
(--feature-input float) or as uint8 0..255 (--feature-input uint8), and returns [N, D] features;
for 'is', its outputs are the logits of the classes. Statistics record it as 'SPEC' (a file without
its folder) with the hash of its weights and the input it received: statistics of another network,
other weights or another input are refused."""


def build_parser() -> argparse.ArgumentParser:
    """The ``genmetrics`` argument parser; building it imports neither torch nor the metrics.

    Example:
        >>> args = build_parser().parse_args(["is", "samples/", "--feature", "nets.py:classifier"])
        >>> args.splits, args.feature, args.feature_input
        (10, 'nets.py:classifier', 'float')
        >>> args = build_parser().parse_args(["fd", "real/", "fake/", "--encoder", "dinov2-vitl14"])
        >>> args.encoder, args.resize
        ('dinov2-vitl14', None)
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
        help=f"another feature network instead of a standard one: {_SPEC_FORMS} (see below; "
        "default: the standard network)",
    )
    options.add_argument(
        "--feature-input",
        choices=tuple(_FEATURE_INPUTS),
        default="float",
        help="what a --feature network receives: float RGB in [0, 1], or uint8 RGB 0..255 (default: %(default)s)",
    )
    options.add_argument(
        "--resize",
        choices=_RESIZES,
        default=None,
        metavar="MODE",
        help="how the standard network preprocesses the images: Inception tf1 (published FID numbers, "
        "torch-fidelity, pytorch-fid), torch-antialias (torchmetrics) or clean (clean-fid); DINOv2 dgm-eval, "
        "edm2 or dgm-eval-clean; CLIP clip, cmmd, torch-fidelity or torch-antialias (default: the network's "
        "first: tf1, dgm-eval, clip for clip-vit-b32, cmmd for clip-vit-l14-336)",
    )
    options.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="a local copy of the standard network's weights (default: its environment variable, e.g. "
        "$LIGHTNING_GENMETRICS_INCEPTION_WEIGHTS, $LIGHTNING_GENMETRICS_DINOV2_VITL14_WEIGHTS, "
        "$LIGHTNING_GENMETRICS_CLIP_VIT_B32_WEIGHTS, else the torch hub cache, downloaded there on first use)",
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

    def command(name: str, summary: str, *, encoder: str | None = None) -> argparse.ArgumentParser:
        """A command; with ``encoder``, it takes ``--encoder`` (that one by default)."""
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.",
            epilog=_FEATURE_HELP if encoder is None else f"{_ENCODER_HELP}\n\n{_FEATURE_HELP}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(default_encoder=encoder or "inception")
        if encoder is not None:
            sub.add_argument(
                "--encoder",
                choices=tuple(_ENCODERS),
                default=None,
                metavar="NAME",
                help=f"the standard network the features come from: {', '.join(_ENCODERS)} (see below; "
                f"default: {encoder})",
            )
        return sub

    def allow_mismatch(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--allow-provenance-mismatch",
            action="store_true",
            help="compare statistics of another network, weights, layer, preprocessing or input anyway",
        )

    def reservoir(sub: argparse.ArgumentParser, minimum: int) -> None:
        sub.add_argument(
            "--max-samples",
            type=_integer(minimum),
            default=None,
            metavar="N",
            help="keep a seeded random subset of N images per side (default: keep all, the exact value)",
        )
        sub.add_argument(
            "--seed",
            type=_integer(0),
            default=0,
            metavar="S",
            help="the seed that picks the --max-samples subset (default: %(default)s)",
        )

    layer_help = "the Inception layer the features come from (default: 2048; only with --encoder inception)"
    stats = command(
        "stats", "write the reference statistics (mean, covariance, provenance) of an image folder", encoder="inception"
    )
    stats.add_argument("folder", help="the image folder, searched recursively")
    stats.add_argument(
        "-o", "--output", required=True, metavar="FILE.npz", help="the statistics file to write (required)"
    )
    stats.add_argument("--layer", choices=_INCEPTION_LAYERS, default=None, help=layer_help)
    stats.set_defaults(run=_run_stats)

    fd = command(
        "fd", "Fréchet distance between two image folders or statistics files, on any encoder", encoder="inception"
    )
    fd.add_argument("first", help="an image folder or a .npz statistics file")
    fd.add_argument("second", help="an image folder or a .npz statistics file")
    allow_mismatch(fd)
    fd.set_defaults(run=_run_fd)

    fid = command("fid", "FID between two image folders or statistics files (fd on the Inception network)")
    fid.add_argument("first", help="an image folder or a .npz statistics file")
    fid.add_argument("second", help="an image folder or a .npz statistics file")
    fid.add_argument(
        "--layer",
        choices=_INCEPTION_LAYERS,
        default=None,
        help="the Inception layer the features come from (default: 2048)",
    )
    allow_mismatch(fid)
    fid.set_defaults(run=_run_fid)

    inception = command("is", "Inception Score of an image folder")
    inception.add_argument("folder", help="the image folder, searched recursively")
    inception.add_argument(
        "--splits", type=_integer(1), default=10, metavar="N", help="number of splits (default: %(default)s)"
    )
    inception.set_defaults(run=_run_is)

    kid = command("kid", "KID between two image folders", encoder="inception")
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

    prdc = command(
        "prdc",
        "improved precision and recall, density and coverage between two image folders (k-nearest-neighbour balls)",
        encoder="inception",
    )
    prdc.add_argument("first", help="the real image folder")
    prdc.add_argument("second", help="the generated image folder")
    prdc.add_argument(
        "--k",
        type=_integer(1),
        default=3,
        metavar="K",
        help="the neighbour whose distance is each ball's radius; each folder needs at least K + 1 images "
        "(default: %(default)s)",
    )
    reservoir(prdc, 2)
    prdc.set_defaults(run=_run_prdc)

    cmmd = command(
        "cmmd",
        "CMMD (Gaussian-kernel MMD of CLIP embeddings, x1000) between two image folders",
        encoder="clip-vit-l14-336",
    )
    cmmd.add_argument("first", help="the real image folder")
    cmmd.add_argument("second", help="the generated image folder")
    reservoir(cmmd, 1)
    cmmd.set_defaults(run=_run_cmmd)
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
