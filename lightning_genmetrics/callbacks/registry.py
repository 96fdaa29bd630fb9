"""The built-in metric names of ``GenerativeMetricsCallback(metrics=...)``: name -> the metric, built for the callback.

A built-in name is a shorthand: the callback builds the metric with its feature network and settings and then
treats it as it treats any ``torchmetrics.Metric`` a user plugs in (see :mod:`~lightning_genmetrics.callbacks.plug`).
The three built-ins share one FID InceptionV3 by default, so one network pass per batch serves them all: FID and
KID read its pool features, the Inception Score its logits through a view of the same network.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from lightning_genmetrics.features.preprocess import InputRange
from lightning_genmetrics.metrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance

# The callback feeds every metric uint8 images and manages these itself (the real side, the range, the network).
RESERVED_KWARGS = frozenset(
    {"feature", "input_range", "feature_input", "reset_real_features", "real_statistics", "data_range", "normalize"}
)
DEFAULT_INCEPTION = "default"


@dataclass(frozen=True)
class BuiltIn:
    """A built-in metric: its class (what the callback can check before building it) and its default layer of the
    shared FID InceptionV3 (a layer name, or ``DEFAULT_INCEPTION`` for the 2048-d pool features)."""

    cls: type[nn.Module]
    inception_layer: str

    def default(self, argument: str) -> Any:
        """The class's default for a constructor argument, or ``None`` when it has none."""
        parameter = inspect.signature(self.cls).parameters.get(argument)
        return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


BUILT_IN: dict[str, BuiltIn] = {
    "fid": BuiltIn(FrechetInceptionDistance, DEFAULT_INCEPTION),
    "is": BuiltIn(InceptionScore, "logits_unbiased"),
    "kid": BuiltIn(KernelInceptionDistance, DEFAULT_INCEPTION),
}


def build_builtin_metrics(
    names: tuple[str, ...],
    extractors: Mapping[str, nn.Module | None],
    metric_kwargs: Mapping[str, Mapping[str, Any]],
    input_range: InputRange,
    inception: Callable[[], nn.Module] | None = None,
) -> dict[str, nn.Module]:
    """Build the built-in metrics ``names``, each with its extractor (``None``: the shared default network).

    The real side is kept across ``reset()`` (``reset_real_features=False``): the callback feeds it once.

    Args:
        names: built-in names (keys of ``BUILT_IN``).
        extractors: a module or ``None`` per name.
        metric_kwargs: extra constructor arguments per name.
        input_range: the range of the images the extractors' provenance records.
        inception: builds the default network (``FIDInceptionV3("2048")``, imported only when needed).

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
        >>> metrics = build_builtin_metrics(("fid", "is"), {"fid": net, "is": net}, {}, (0.0, 1.0))
        >>> {name: type(metric).__name__ for name, metric in metrics.items()}
        {'fid': 'FrechetInceptionDistance', 'is': 'InceptionScore'}
    """
    chosen: dict[str, Any] = {name: extractors.get(name) for name in names}
    pool_users = [
        name for name in names if chosen[name] is None and BUILT_IN[name].inception_layer == DEFAULT_INCEPTION
    ]
    network = None
    if pool_users:
        if inception is None:
            from lightning_genmetrics.features.inception import FIDInceptionV3

            network = FIDInceptionV3("2048")
        else:
            network = inception()
        chosen.update(dict.fromkeys(pool_users, network))
    for name in names:
        if chosen[name] is None:
            layer = BUILT_IN[name].inception_layer
            # One network for every built-in: its pass over a batch gives the pool features and the logits.
            chosen[name] = layer if network is None else network.layer_view(layer)
    metrics: dict[str, nn.Module] = {}
    for name in names:
        kwargs: dict[str, Any] = {"input_range": input_range, "feature_input": "float", **metric_kwargs.get(name, {})}
        if "reset_real_features" in inspect.signature(BUILT_IN[name].cls).parameters:
            kwargs["reset_real_features"] = False
        metrics[name] = BUILT_IN[name].cls(chosen[name], **kwargs)
    return metrics
