"""``ImageFeatures``: checked images in, checked ``[N, D]`` features out, from any extractor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_bool, check_finite, check_option
from lightning_genmetrics.features.batch import ImageBatch
from lightning_genmetrics.features.preprocess import InputRange, check_input_range

FeatureInput = Literal["as_given", "float"]
FEATURE_INPUTS: tuple[str, ...] = get_args(FeatureInput)
_PACKAGE_PREFIX = __name__.split(".")[0] + "."


class ImageFeatures(nn.Module):
    """Wraps a feature extractor with the library's image protocol.

    ``forward(images)`` checks the images and maps them to uint8 RGB (see
    :func:`~lightning_genmetrics.features.preprocess.images_to_uint8`; the uint8 images also key the
    samples of KID and IS), then calls the extractor on:

    - the uint8 images, for a module whose ``input_dtype`` attribute is ``torch.uint8`` (the FID
      InceptionV3, which does its own resizing and scaling);
    - with ``feature_input="as_given"``, the images exactly as the caller passed them (uint8 stays
      uint8 in 0..255, floats stay floats in their ``input_range``, a single channel stays single),
      as torchmetrics hands them to a custom network;
    - with ``feature_input="float"``, and always for the library's own wrappers such as
      :class:`~lightning_genmetrics.ClassifierFeatures`: float RGB images in ``[0, 1]``
      (``uint8 / 255``) in the dtype of the module's first floating parameter (float32 if it has none).

    The extractor runs in eval mode without gradients (its own train/eval mode is restored
    afterwards), and must return ``[N, D]`` (``[N, D, 1, 1]`` is flattened); NaN/Inf features raise.

    ``images`` may also be an :class:`~lightning_genmetrics.features.batch.ImageBatch`: its uint8 images,
    converted once, are read, and the module runs once per batch for every wrapper of the same module
    fed that batch (several metrics sharing a network share its pass). Sharing needs the batch: a plain
    tensor is converted and extracted for this call alone.

    The extractor's parameters and buffers are kept out of ``state_dict()`` (of this module and of any
    parent, such as a metric in a ``LightningModule``) and ignored by ``load_state_dict`` when a state
    dict still holds them: they are fixed weights that the constructor re-creates, so checkpoints need
    not carry them (the FID InceptionV3 is 95 MB); they still follow ``.to()`` and are in ``parameters()``.

    Args:
        module: the extractor.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        num_features: ``D`` if known; else the module's ``num_features`` attribute, else ``None``
            (the metric then fixes it at its first update).
        feature_input: what a module that does not declare ``input_dtype = torch.uint8`` receives:
            ``"float"`` (``[0, 1]`` floats) or ``"as_given"`` (the images as passed).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> features = ImageFeatures(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), input_range=(0, 1))
        >>> features(torch.ones(2, 1, 4, 4))
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
        >>> as_given = ImageFeatures(nn.Flatten(), input_range=(-1, 1), feature_input="as_given")
        >>> as_given(torch.tensor([[[[-1.0, 0.5]]]]))
        tensor([[-1.0000,  0.5000]])
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        input_range: InputRange | None = None,
        num_features: int | None = None,
        feature_input: FeatureInput = "float",
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"Expected a feature extractor nn.Module, got {type(module).__name__}.")
        self.module = module
        self.input_range = check_input_range(input_range)
        self.feature_input: FeatureInput = check_option(feature_input, "feature_input", FEATURE_INPUTS)  # type: ignore[assignment]
        declared = num_features if num_features is not None else getattr(module, "num_features", None)
        self.num_features: int | None = declared if isinstance(declared, int) else None
        keep_out_of_state_dict(self, "module")

    @classmethod
    def resolve(
        cls,
        feature: Any,
        *,
        input_range: InputRange | None,
        layers: Sequence[str],
        weights_path: str | None = None,
        antialias: bool = False,
        feature_input: FeatureInput = "float",
    ) -> ImageFeatures:
        """Build the extractor a metric's ``feature`` argument names: a standard Inception layer or a module.

        ``antialias`` picks the standard network's resize: ``False`` for the TF1 protocol of published numbers,
        ``True`` for torchmetrics' (see :mod:`~lightning_genmetrics.features.resize`); a module resizes itself.

        Raises:
            ValueError: an Inception layer not in ``layers``, or ``weights_path`` given with a module.
            TypeError: ``feature`` neither a layer name/number nor an ``nn.Module``; ``antialias`` not a bool.
        """
        check_bool(antialias, "antialias")
        if isinstance(feature, nn.Module):
            if weights_path is not None:
                raise ValueError("`weights_path` is for the standard Inception network; got a custom `feature` module.")
            return cls(feature, input_range=input_range, feature_input=feature_input)
        if isinstance(feature, bool) or not isinstance(feature, (int, str)):
            raise TypeError(f"Expected `feature` to be one of {list(layers)} or an nn.Module, got {feature!r}.")
        encoder = _named_encoder(feature, antialias=antialias, weights_path=weights_path)
        if encoder is not None:
            return cls(encoder, input_range=input_range)
        if str(feature) not in layers:
            raise ValueError(f"Expected `feature` to be one of {list(layers)} or an nn.Module, got {feature!r}.")
        from lightning_genmetrics.features.inception import FIDInceptionV3

        resize = "torch-antialias" if antialias else "tf1"
        network = FIDInceptionV3(str(feature), resize=resize, weights_path=weights_path)  # type: ignore[arg-type]
        return cls(network, input_range=input_range)

    def provenance_fields(self) -> dict[str, str]:
        """``extractor``, ``weights_sha256``, ``layer``, ``resize`` and ``feature_input`` (what the module receives:
        ``uint8``, ``float`` or ``as_given``) for reference-statistics provenance."""
        from lightning_genmetrics.stats import weights_fingerprint

        return {
            "extractor": str(getattr(self.module, "extractor_name", type(self.module).__qualname__)),
            "weights_sha256": weights_fingerprint(self.module),
            "layer": str(getattr(self.module, "layer", "output")),
            "resize": str(getattr(self.module, "resize", "none")),
            "feature_input": self.input_kind(),
        }

    def input_kind(self) -> str:
        """What the module receives: ``"uint8"`` (it declares ``input_dtype = torch.uint8``), ``"float"`` (``[0, 1]``
        floats: ``feature_input="float"`` or the library's own wrappers) or ``"as_given"``."""
        if getattr(self.module, "input_dtype", None) == torch.uint8:
            return "uint8"
        # The library's own wrappers (ClassifierFeatures) are documented to take [0, 1] floats.
        own = type(self.module).__module__.startswith(_PACKAGE_PREFIX)
        return "float" if self.feature_input == "float" or own else "as_given"

    def forward(self, images: Tensor | ImageBatch) -> Tensor:
        """Features ``[N, D]`` of ``images`` (float32 or the extractor's dtype); see ``extract``."""
        return self.extract(images)

    def image_batch(self, images: Any) -> ImageBatch:
        """``images`` as an :class:`~lightning_genmetrics.features.batch.ImageBatch` in this extractor's
        ``input_range``: the batch itself when given one (checked: float images must be in this range), else a new
        batch of this call's own, shared with nothing.

        Raises:
            TypeError, ValueError: as ``ImageBatch``; a batch of float images in another range.
        """
        if isinstance(images, ImageBatch):
            images.check_range(self.input_range)
            return images
        return ImageBatch(images, self.input_range)

    def prepare(self, images: Any) -> Tensor:
        """Check ``images`` (a tensor or an ``ImageBatch``) and give them as uint8 ``[N, 3, H, W]`` (see
        ``images_to_uint8``; a batch's ``uint8``, converted when it was built)."""
        return self.image_batch(images).uint8

    def extract(self, images: Tensor | ImageBatch, *, given: Tensor | None = None) -> Tensor:
        """Features ``[N, D]`` of ``images``, checked (shape, feature size, finite).

        Given an ``ImageBatch``, the module's output is computed once per batch and module: other wrappers of the
        same module fed the same batch (another metric's) reuse it, each checking it against its own settings. A
        module with a ``forward_batch(batch)`` method (the FID Inception network and its layer views) is called
        through it, so it can share more than its own output on the batch. Given a tensor, the images are checked
        and converted here and nothing is shared.

        Args:
            images: a tensor of images (see the class) or an ``ImageBatch``.
            given: for ``feature_input="as_given"``, images to hand the module instead of the batch's own (the
                Inception Score's torchmetrics truncation); the call is then not shared.
        """
        batch = self.image_batch(images)
        return self._check_output(self._output(batch, given), len(batch))

    def raw_output(self, images: Tensor | ImageBatch) -> Any:
        """The module's output for ``images`` (a tensor or an ``ImageBatch``, shared as in ``extract``), unchecked:
        for networks whose output is not a feature vector (a segmenter's class maps). Eval mode (restored after),
        no gradients."""
        return self._output(self.image_batch(images), None)

    def _output(self, batch: ImageBatch, given: Tensor | None) -> Any:
        kind, source = self._module_input(batch)
        if kind == "as_given" and given is not None:
            return self._run(kind, given)
        if kind == "uint8" and callable(getattr(self.module, "forward_batch", None)):
            return batch.computed("forward_batch", self.module, lambda: self._run(kind, batch))
        return batch.computed(f"output of {kind}", self.module, lambda: self._run(kind, source))

    def _module_input(self, batch: ImageBatch) -> tuple[str, Tensor]:
        """What the module receives, as ``(kind, source tensor)``: ``uint8``, ``float`` (made from ``uint8``) or
        ``as_given`` (the batch's images untouched)."""
        kind = self.input_kind()
        return kind, batch.images if kind == "as_given" else batch.uint8

    def _run(self, kind: str, source: Tensor | ImageBatch) -> Any:
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                if isinstance(source, ImageBatch):
                    return self.module.forward_batch(source)
                return self.module(source.to(self._float_dtype()) / 255 if kind == "float" else source)
        finally:
            self.module.train(was_training)

    def _float_dtype(self) -> torch.dtype:
        for parameter in self.module.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return torch.float32

    def _check_output(self, features: Any, batch: int) -> Tensor:
        name = f"the output of the feature extractor {type(self.module).__name__}"
        if not isinstance(features, Tensor):
            raise TypeError(f"Expected {name} to be a Tensor, got {type(features).__name__}.")
        if features.ndim == 4 and features.shape[2:] == (1, 1):
            features = features.flatten(1)
        if features.ndim != 2 or features.shape[0] != batch:
            raise ValueError(f"Expected {name} to have shape [{batch}, D], got {tuple(features.shape)}.")
        if self.num_features is not None and features.shape[1] != self.num_features:
            raise ValueError(
                f"Expected {name} to have {self.num_features} features (its `num_features`), "
                f"got shape {tuple(features.shape)}."
            )
        if not features.is_floating_point():
            raise TypeError(f"Expected {name} to be floating point, got dtype {features.dtype}.")
        check_finite(features, "features from the extractor")
        return features


def torchmetrics_input_range(normalize: Any, input_range: Any) -> InputRange | None:
    """The ``input_range`` of a metric given torchmetrics' ``normalize`` and this library's ``input_range``.

    ``normalize=True`` is torchmetrics' "float images in [0, 1]", i.e. ``input_range=(0, 1)``;
    ``normalize=False`` (its "uint8 images") leaves ``input_range`` as given (uint8 images are always accepted).

    Raises:
        TypeError: ``normalize`` not a bool.
        ValueError: ``normalize=True`` with another ``input_range``; an unsupported ``input_range``.

    Example:
        >>> torchmetrics_input_range(True, None)
        (0.0, 1.0)
        >>> torchmetrics_input_range(False, (-1, 1))
        (-1.0, 1.0)
    """
    check_bool(normalize, "normalize")
    checked = check_input_range(input_range)
    if normalize and checked not in (None, (0.0, 1.0)):
        raise ValueError(
            f"Got normalize=True (float images in [0, 1]) and input_range={input_range!r}: pass only "
            f"input_range={input_range!r} for images in that range, or only normalize=True for [0, 1]."
        )
    return (0.0, 1.0) if normalize else checked


def torchmetrics_weights_path(weights_path: Any, feature_extractor_weights_path: Any) -> Any:
    """The Inception weights file named by ``weights_path`` or by torchmetrics' ``feature_extractor_weights_path``.

    Raises:
        ValueError: both given, naming different files.

    Example:
        >>> torchmetrics_weights_path(None, "weights.pth")
        'weights.pth'
    """
    if feature_extractor_weights_path is None:
        return weights_path
    if weights_path is not None and str(weights_path) != str(feature_extractor_weights_path):
        raise ValueError(
            f"Got weights_path={str(weights_path)!r} and feature_extractor_weights_path="
            f"{str(feature_extractor_weights_path)!r}: they name the same file; pass one of them."
        )
    return feature_extractor_weights_path


def check_input_img_size(value: Any) -> tuple[int, ...]:
    """Check torchmetrics' ``input_img_size``: a ``(C, H, W)`` tuple of positive ints.

    torchmetrics uses it only for the dummy image it feeds a custom network that lacks ``num_features`` (to read
    the feature size); here the first update fixes the feature size, so it changes nothing.

    Raises:
        ValueError: not three positive ints.

    Example:
        >>> check_input_img_size((3, 299, 299))
        (3, 299, 299)
    """
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in value)
    ):
        raise ValueError(f"Expected `input_img_size` to be a (C, H, W) tuple of positive ints, got {value!r}.")
    return tuple(value)


def keep_out_of_state_dict(owner: nn.Module, child: str) -> None:
    """Keep ``owner.<child>``'s parameters and buffers out of ``state_dict()`` (of ``owner`` and of any parent), and
    have ``load_state_dict`` ignore them when a state dict still holds them (older checkpoints load strictly).

    For fixed, pinned weights that a constructor re-creates (feature extractors, LPIPS networks): checkpoints need
    not carry them. They still follow ``.to()`` and are in ``parameters()``.

    Example:
        >>> holder = nn.Module()
        >>> holder.net, holder.head = nn.Linear(2, 2), nn.Linear(2, 1)
        >>> keep_out_of_state_dict(holder, "net")
        >>> sorted(holder.state_dict())
        ['head.bias', 'head.weight']
    """
    owner._frozen_child = child
    owner._frozen_load_prefix = ""
    owner.register_state_dict_post_hook(_drop_frozen_state)
    owner.register_load_state_dict_pre_hook(_skip_frozen_state)
    owner.register_load_state_dict_post_hook(_forgive_frozen_state)


# Module-level functions rather than bound methods or closures: `register_state_dict_post_hook` sets an
# attribute on the hook, and the metrics holding these modules must stay picklable and deep-copyable.
def _drop_frozen_state(owner: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    _delete_frozen_keys(state_dict, f"{prefix}{owner._frozen_child}")
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        _delete_frozen_keys(metadata, f"{prefix}{owner._frozen_child}")


def _skip_frozen_state(owner: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    # Runs before the children are loaded from this same dict: without its keys, the child keeps its weights
    # and reports them missing, which `_forgive_frozen_state` then takes back. The `_metadata` is left alone:
    # at the root it is the caller's.
    owner._frozen_load_prefix = prefix
    _delete_frozen_keys(state_dict, f"{prefix}{owner._frozen_child}")


def _forgive_frozen_state(owner: nn.Module, incompatible_keys: Any) -> None:
    # A load post-hook is not given the prefix, hence `_frozen_load_prefix`; the lists are shared by the whole
    # `load_state_dict` call, so only the keys under this child are removed.
    child = f"{owner._frozen_load_prefix}{owner._frozen_child}."
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [key for key in keys if not key.startswith(child)]


def _delete_frozen_keys(mapping: dict[str, Any], child: str) -> None:
    """Delete ``child`` and everything under it."""
    for key in [key for key in mapping if f"{key}.".startswith(f"{child}.")]:
        del mapping[key]


def _named_encoder(feature: Any, *, antialias: bool, weights_path: str | None) -> nn.Module | None:
    """The DINOv2 or CLIP encoder a name such as ``"dinov2-vitl14"`` or ``"clip-vit-l14-336"`` stands for, else None."""
    if not isinstance(feature, str):
        return None
    if feature.startswith("dinov2-"):
        from lightning_genmetrics.features.dinov2 import DINOV2_ENCODER_NAMES, DINOv2Encoder

        if feature not in DINOV2_ENCODER_NAMES:
            raise ValueError(f"Expected a DINOv2 encoder name among {list(DINOV2_ENCODER_NAMES)}, got {feature!r}.")
        resize = "edm2" if antialias else "dgm-eval"
        return DINOv2Encoder(feature.removeprefix("dinov2-"), resize=resize, weights_path=weights_path)
    if feature.startswith("clip-"):
        from lightning_genmetrics.features.clip import CLIP_ENCODERS, CLIPImageEncoder

        if feature not in CLIP_ENCODERS:
            raise ValueError(f"Expected a CLIP encoder name among {list(CLIP_ENCODERS)}, got {feature!r}.")
        return CLIPImageEncoder.from_name(feature, weights_path=weights_path)
    return None
