"""The built-in metric names of ``GenerativeMetricsCallback(metrics=...)``: name -> the metric, built for the callback.

A built-in name is a shorthand: the callback builds the metric with its encoder and settings and then treats it as
it treats any ``torchmetrics.Metric`` a user plugs in (see :mod:`~lightning_genmetrics.callbacks.plug`).

====================  =====================================  ===================================  =====================
name                  metric                                 features (default)                   ``feature`` may name
====================  =====================================  ===================================  =====================
``fid``               ``FrechetInceptionDistance``           Inception pool (2048)                —
``is``                ``InceptionScore``                     Inception logits                     —
``kid``               ``KernelInceptionDistance``            Inception pool                       —
``sfid``              ``FrechetInceptionDistance`` (a)       Inception ``mixed_6/conv`` (2023)    —
``fd_dinov2``         ``FrechetInceptionDistance``           ``"dinov2-vitl14"`` (as EDM2)        another DINOv2
``precision_recall``  ``PrecisionRecallDensityCoverage``     Inception pool (b)                   DINOv2 (c), CLIP
``cmmd``              ``CLIPMaximumMeanDiscrepancy``         ``"clip-vit-l14-336"`` (CMMD's)      CLIP ViT-B/32, DINOv2
``fd_infinity``       ``FrechetInceptionDistanceInfinity``   Inception pool                       DINOv2
====================  =====================================  ===================================  =====================

(a) on the shared network's ``"2023"`` layer: what ``SpatialFrechetInceptionDistance`` computes, from the same pass.
(b) as the ADM evaluator, LlamaGen and VAR report precision and recall. (c) dgm-eval's default encoder, e.g.
``metric_kwargs={"precision_recall": {"feature": "dinov2-vitl14"}}``.

**One pass per encoder per batch.** Every metric reading the FID InceptionV3 reads one shared network (FID, KID,
FD∞ and PRDC its pool features, IS its logits and sFID its ``mixed_6/conv`` map through views of it), and every
metric reading a named encoder reads one shared instance of it (``fd_dinov2`` and ``precision_recall`` on
``"dinov2-vitl14"`` hold the same module), so a batch runs each encoder once.

**Encoder options** in ``metric_kwargs[name]``: ``feature`` (the encoder or layer, where the table allows another),
``weights_path`` (a local weights file: the FID Inception's, or a DINOv2/CLIP file), ``verify_weights`` (check a
given file against the pinned SHA-256; ``False`` only for your own weights) and ``antialias`` (the resize:
Inception's torchmetrics resize instead of TF1's, DINOv2's ``"edm2"`` instead of ``"dgm-eval"``). Weights belong to
the encoder, not the metric: ``weights_path``/``verify_weights`` given for one metric serve every metric on that
encoder (two different files for one encoder are refused). Metrics on one encoder with another ``antialias`` get
their own instance (another resize is another pass).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn

from lightning_genmetrics.features.clip import CLIP_ENCODERS
from lightning_genmetrics.features.dinov2 import DINOV2_ENCODER_NAMES
from lightning_genmetrics.features.inception import INCEPTION_LAYERS
from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.metrics import (
    CLIPMaximumMeanDiscrepancy,
    FrechetInceptionDistance,
    FrechetInceptionDistanceInfinity,
    InceptionScore,
    KernelInceptionDistance,
    PrecisionRecallDensityCoverage,
)

# The callback feeds every metric uint8 images and manages these itself (the real side, the range).
RESERVED_KWARGS = frozenset(
    {"input_range", "feature_input", "reset_real_features", "real_statistics", "data_range", "normalize"}
)
# Read by the registry to build (or pick) the shared encoder, not passed to the metric.
ENCODER_KWARGS = frozenset({"feature", "weights_path", "verify_weights", "antialias"})
INCEPTION = "inception"  # the encoder of the Inception layers: the FID InceptionV3
_POOL = "2048"
_CLIP = tuple(CLIP_ENCODERS)
_DINOV2 = DINOV2_ENCODER_NAMES


@dataclass(frozen=True)
class BuiltIn:
    """A built-in metric: its class (what the callback can check before building it), its default features (a
    layer of the shared FID InceptionV3, or a named encoder such as ``"dinov2-vitl14"``), and what else
    ``metric_kwargs``' ``feature`` may name (nothing: its definition fixes the network)."""

    cls: type[nn.Module]
    feature: str
    features: tuple[str, ...] = ()

    def default(self, argument: str) -> Any:
        """The class's default for a constructor argument, or ``None`` when it has none."""
        parameter = inspect.signature(self.cls).parameters.get(argument)
        return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


BUILT_IN: dict[str, BuiltIn] = {
    "fid": BuiltIn(FrechetInceptionDistance, _POOL),
    "is": BuiltIn(InceptionScore, "logits_unbiased"),
    "kid": BuiltIn(KernelInceptionDistance, _POOL),
    "sfid": BuiltIn(FrechetInceptionDistance, "2023"),
    "fd_dinov2": BuiltIn(FrechetInceptionDistance, "dinov2-vitl14", _DINOV2),
    "precision_recall": BuiltIn(PrecisionRecallDensityCoverage, _POOL, (_POOL, *_DINOV2, *_CLIP)),
    "cmmd": BuiltIn(CLIPMaximumMeanDiscrepancy, "clip-vit-l14-336", (*_CLIP, *_DINOV2)),
    "fd_infinity": BuiltIn(FrechetInceptionDistanceInfinity, _POOL, (_POOL, *_DINOV2)),
}


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a built-in metric reads: the metrics with equal choices (but for ``layer``) share one instance.

    Args:
        encoder: ``"inception"`` (the FID InceptionV3) or a named encoder (``"dinov2-vitl14"``, ``"clip-vit-b32"``).
        layer: the Inception layer (``None`` for a named encoder).
        antialias: the resize (see the module docstring); always ``False`` for CLIP, which has one preprocessing.
        weights_path: a local weights file, or ``None`` for the cache/download.
        verify_weights: check ``weights_path`` against the pinned SHA-256.
    """

    encoder: str
    layer: str | None
    antialias: bool = False
    weights_path: str | None = None
    verify_weights: bool = True

    @property
    def instance_key(self) -> tuple[str, bool, str | None, bool]:
        return self.encoder, self.antialias, self.weights_path, self.verify_weights

    def build(self) -> nn.Module:
        """A new instance of the encoder (the Inception network whole; views of its layers are taken from it).

        Raises:
            RuntimeError: the weights are not available locally and cannot be downloaded (the encoder's message:
                the file, its SHA-256, its URL and where to put it).
            ValueError, FileNotFoundError: a weights file that does not match or does not exist.
        """
        weights = {"weights_path": self.weights_path, "verify_weights": self.verify_weights}
        if self.encoder == INCEPTION:
            from lightning_genmetrics.features.inception import FIDInceptionV3

            return FIDInceptionV3(_POOL, resize="torch-antialias" if self.antialias else "tf1", **weights)
        if self.encoder in _DINOV2:
            from lightning_genmetrics.features.dinov2 import DINOv2Encoder

            # The same choice of resize as a metric's `feature="dinov2-..."` (ImageFeatures.resolve).
            resize = "edm2" if self.antialias else "dgm-eval"
            return DINOv2Encoder(self.encoder.removeprefix("dinov2-"), resize=resize, **weights)  # type: ignore[arg-type]
        from lightning_genmetrics.features.clip import CLIPImageEncoder

        return CLIPImageEncoder.from_name(self.encoder, **weights)


def choose_encoders(
    names: tuple[str, ...],
    extractors: Mapping[str, nn.Module | None],
    metric_kwargs: Mapping[str, Mapping[str, Any]],
) -> dict[str, EncoderChoice]:
    """The encoder of every built-in metric in ``names`` without a module in ``extractors``, from its encoder
    options in ``metric_kwargs`` (checked here, without building anything).

    Raises:
        ValueError: a ``feature`` the metric does not take, encoder options beside a user's module, two different
            weights files (or ``verify_weights``) for one encoder.
        TypeError: an option of the wrong type.

    Example:
        >>> choices = choose_encoders(("fid", "is", "fd_dinov2"), {}, {"fd_dinov2": {"weights_path": "d.pth"}})
        >>> [(c.encoder, c.layer, c.weights_path) for c in choices.values()]
        [('inception', '2048', None), ('inception', 'logits_unbiased', None), ('dinov2-vitl14', None, 'd.pth')]
    """
    choices: dict[str, EncoderChoice] = {}
    weights: dict[str, dict[str, tuple[str, Any]]] = {}  # encoder -> option -> (the metric giving it, its value)
    for name in names:
        kwargs, built_in = metric_kwargs.get(name, {}), BUILT_IN[name]
        options = sorted(ENCODER_KWARGS & set(kwargs))
        if extractors.get(name) is not None:
            if set(options) - {"antialias"}:
                raise ValueError(
                    f"Metric {name!r} reads the module given as `feature_extractor`; its metric_kwargs {options} "
                    "are for the encoder the callback builds. Drop one or the other."
                )
            continue
        feature = kwargs.get("feature", built_in.feature)
        if "feature" in kwargs and feature not in built_in.features:
            allowed = f"one of {list(built_in.features)}" if built_in.features else "not given (its network is fixed)"
            raise ValueError(f"Expected metric_kwargs[{name!r}]['feature'] to be {allowed}, got {feature!r}.")
        encoder = INCEPTION if feature in INCEPTION_LAYERS else feature
        antialias = kwargs.get("antialias", False)
        if "antialias" in kwargs and built_in.default("antialias") is None:
            raise ValueError(f"Metric {name!r} ({built_in.cls.__name__}) takes no `antialias`, got {antialias!r}.")
        if not isinstance(antialias, bool):
            raise TypeError(f"Expected metric_kwargs[{name!r}]['antialias'] to be a bool, got {antialias!r}.")
        given = weights.setdefault(encoder, {})
        for option in ("weights_path", "verify_weights"):
            if option not in kwargs:
                continue
            value = _check_weights_option(name, option, kwargs[option])
            if option in given and given[option][1] != value:
                raise ValueError(
                    f"Metrics {given[option][0]!r} and {name!r} read one encoder ({encoder!r}) but give it "
                    f"different `{option}`: {given[option][1]!r} and {value!r}."
                )
            given[option] = (name, value)
        choices[name] = EncoderChoice(
            encoder,
            feature if encoder == INCEPTION else None,
            antialias=antialias and encoder not in _CLIP,
        )
    # Weights belong to the encoder: given for one of its metrics, they serve all of them.
    return {
        name: replace(choice, **{option: value for option, (_, value) in weights[choice.encoder].items()})
        for name, choice in choices.items()
    }


def _check_weights_option(name: str, option: str, value: Any) -> Any:
    if option == "verify_weights":
        if not isinstance(value, bool):
            raise TypeError(f"Expected metric_kwargs[{name!r}]['verify_weights'] to be a bool, got {value!r}.")
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"Expected metric_kwargs[{name!r}]['weights_path'] to be a path, got {value!r}.")
    return str(Path(value).expanduser())


def build_builtin_metrics(
    names: tuple[str, ...],
    extractors: Mapping[str, nn.Module | None],
    metric_kwargs: Mapping[str, Mapping[str, Any]],
    input_range: InputRange,
) -> dict[str, nn.Module]:
    """Build the built-in metrics ``names``, each with its extractor (``None``: its shared default encoder).

    One instance per encoder (see :func:`choose_encoders`): the Inception layers other than the pool features are
    views of the one network, read in its pass. The real side is kept across ``reset()``
    (``reset_real_features=False``): the callback feeds it once.

    Args:
        names: built-in names (keys of ``BUILT_IN``).
        extractors: a module or ``None`` per name.
        metric_kwargs: extra constructor arguments per name, encoder options included.
        input_range: the range of the images the extractors' provenance records.

    Raises:
        MisconfigurationException: a metric or encoder that cannot be built, naming the metric; the message of the
            error it raised (an encoder's offline message says which weights file is needed and where to put it).

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
        >>> metrics = build_builtin_metrics(("fid", "is"), {"fid": net, "is": net}, {}, (0.0, 1.0))
        >>> {name: type(metric).__name__ for name, metric in metrics.items()}
        {'fid': 'FrechetInceptionDistance', 'is': 'InceptionScore'}
    """
    try:
        choices = choose_encoders(names, extractors, metric_kwargs)
    except (TypeError, ValueError) as error:
        raise MisconfigurationException(f"Invalid `metric_kwargs`: {error}") from error
    instances: dict[tuple[str, bool, str | None, bool], nn.Module] = {}
    metrics: dict[str, nn.Module] = {}
    for name in names:
        built_in = BUILT_IN[name]
        try:
            feature = extractors.get(name)
            choice = choices.get(name)
            if feature is None and choice is not None:
                key = choice.instance_key
                if key not in instances:
                    instances[key] = choice.build()
                network = instances[key]
                # One network for every Inception layer: its pass over a batch gives them all.
                feature = network if choice.layer in (None, _POOL) else network.layer_view(choice.layer)
            kwargs = {key: value for key, value in metric_kwargs.get(name, {}).items() if key not in ENCODER_KWARGS}
            kwargs = {"input_range": input_range, "feature_input": "float", **kwargs}
            if "reset_real_features" in inspect.signature(built_in.cls).parameters:
                kwargs["reset_real_features"] = False
            metrics[name] = built_in.cls(feature, **kwargs)
        except (TypeError, ValueError, RuntimeError, OSError) as error:
            raise MisconfigurationException(
                f"Cannot build the metric {name!r} ({built_in.cls.__name__}): {type(error).__name__}: {error}"
            ) from error
    return metrics
