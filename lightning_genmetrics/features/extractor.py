"""``ImageFeatures``: checked images in, checked ``[N, D]`` features out, from any extractor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightning_genmetrics._checks import check_finite
from lightning_genmetrics.features.preprocess import InputRange, check_input_range, images_to_uint8
from lightning_genmetrics.features.shared import memoized


class ImageFeatures(nn.Module):
    """Wraps a feature extractor with the library's image protocol.

    ``forward(images)`` checks the images and maps them to uint8 RGB (see
    :func:`~lightning_genmetrics.features.preprocess.images_to_uint8`), then calls the extractor:

    - a module whose ``input_dtype`` attribute is ``torch.uint8`` (the FID InceptionV3) gets the
      uint8 images as they are and does its own resizing and scaling;
    - any other module gets ``float`` images in ``[0, 1]`` (``uint8 / 255``) in the dtype of its
      first floating parameter (float32 if it has none).

    The extractor runs in eval mode without gradients (its own train/eval mode is restored
    afterwards), and must return ``[N, D]`` (``[N, D, 1, 1]`` is flattened); NaN/Inf features raise.

    The extractor's parameters and buffers are kept out of ``state_dict()`` (of this module and of any
    parent, such as a metric in a ``LightningModule``) and ignored by ``load_state_dict`` when a state
    dict still holds them: they are fixed weights that the constructor re-creates, so checkpoints need
    not carry them (the FID InceptionV3 is 95 MB); they still follow ``.to()`` and are in ``parameters()``.

    Args:
        module: the extractor.
        input_range: the range of float images, ``(0, 1)`` or ``(-1, 1)``; ``None`` accepts uint8 only.
        num_features: ``D`` if known; else the module's ``num_features`` attribute, else ``None``
            (the metric then fixes it at its first update).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> features = ImageFeatures(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), input_range=(0, 1))
        >>> features(torch.ones(2, 1, 4, 4))
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
    """

    def __init__(
        self, module: nn.Module, *, input_range: InputRange | None = None, num_features: int | None = None
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"Expected a feature extractor nn.Module, got {type(module).__name__}.")
        self.module = module
        self.input_range = check_input_range(input_range)
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
    ) -> ImageFeatures:
        """Build the extractor a metric's ``feature`` argument names: a standard Inception layer or a module.

        Raises:
            ValueError: an Inception layer not in ``layers``, or ``weights_path`` given with a module.
            TypeError: ``feature`` neither a layer name/number nor an ``nn.Module``.
        """
        if isinstance(feature, nn.Module):
            if weights_path is not None:
                raise ValueError("`weights_path` is for the standard Inception network; got a custom `feature` module.")
            return cls(feature, input_range=input_range)
        if isinstance(feature, bool) or not isinstance(feature, (int, str)):
            raise TypeError(f"Expected `feature` to be one of {list(layers)} or an nn.Module, got {feature!r}.")
        if str(feature) not in layers:
            raise ValueError(f"Expected `feature` to be one of {list(layers)} or an nn.Module, got {feature!r}.")
        from lightning_genmetrics.features.inception import FIDInceptionV3

        network = FIDInceptionV3(str(feature), weights_path=weights_path)
        return cls(network, input_range=input_range)

    def provenance_fields(self) -> dict[str, str]:
        """``extractor``, ``weights_sha256``, ``layer`` and ``resize`` for reference-statistics provenance."""
        from lightning_genmetrics.stats import weights_fingerprint

        return {
            "extractor": type(self.module).__qualname__,
            "weights_sha256": weights_fingerprint(self.module),
            "layer": str(getattr(self.module, "layer", "output")),
            "resize": str(getattr(self.module, "resize", "none")),
        }

    def forward(self, images: Tensor) -> Tensor:
        """Features ``[N, D]`` of ``images`` (float32 or the extractor's dtype)."""
        return self.extract(self.prepare(images))

    def prepare(self, images: Any) -> Tensor:
        """Check ``images`` and map them to uint8 ``[N, 3, H, W]`` (see ``images_to_uint8``)."""
        return images_to_uint8(images, self.input_range)

    def extract(self, uint8: Tensor) -> Tensor:
        """Features ``[N, D]`` of images already passed through ``prepare``; computed once per module and batch
        within :func:`~lightning_genmetrics.features.shared.shared_extraction`."""
        return memoized("features", self.module, uint8, lambda: self._extract(uint8))

    def _extract(self, uint8: Tensor) -> Tensor:
        return self._check_output(self.raw_output(uint8), uint8.shape[0])

    def raw_output(self, uint8: Tensor) -> Any:
        """The module's output for images already passed through ``prepare``, unchecked: for networks whose output
        is not a feature vector (a segmenter's class maps). Eval mode (restored after), no gradients."""
        if getattr(self.module, "input_dtype", None) == torch.uint8:
            inputs = uint8
        else:
            inputs = uint8.to(self._float_dtype()) / 255
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return self.module(inputs)
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
