"""``ClassifierFeatures``: a trained classifier as a feature extractor (a hidden layer for FID/KID, logits for IS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor, nn

ClassifierOutput = Literal["features", "logits"]


class ClassifierFeatures(nn.Module):
    """Wraps a trained classifier so the metrics read one of its layers (FID/KID) or its logits (IS).

    Domain-specific classifiers (digits, faces, medical images) separate samples of their domain far better
    than ImageNet's InceptionV3. With ``output="features"`` the wrapper returns the output of
    ``feature_layer`` — usually the penultimate layer — captured by a forward hook that exists only during
    the call; tensors of more than two dimensions are flattened to ``[N, D]``. With ``output="logits"`` it
    returns the classifier's output, which ``InceptionScore`` reads as logits.

    The metrics give feature extractors float images in ``[0, 1]`` with three channels (a grayscale image
    is repeated); ``input_transform`` maps them to what the classifier was trained on, for example
    ``lambda x: x[:, :1] * 2 - 1`` for grayscale inputs in ``[-1, 1]``.

    The wrapper's ``layer`` attribute (the layer name, or ``"logits"``) enters the provenance of reference
    statistics, so statistics of one layer are never mistaken for another's.

    Args:
        classifier: the trained classifier, called on the (transformed) images.
        feature_layer: the layer whose output is the feature vector: its name in
            ``classifier.named_modules()`` or the submodule itself. Required for ``output="features"``,
            not allowed for ``"logits"``.
        output: ``"features"`` or ``"logits"``.
        num_features: the feature size ``D`` if known; by default the ``out_features`` of an ``nn.Linear``
            feature layer, else ``None`` (the metric fixes it at its first update).
        input_transform: a function applied to the ``[N, 3, H, W]`` images in ``[0, 1]`` before the classifier.

    Raises:
        TypeError: ``classifier`` or ``feature_layer`` not an ``nn.Module`` (or a name), ``input_transform``
            not callable, ``num_features`` not an int.
        ValueError: an unknown ``output``, a ``feature_layer`` missing for ``"features"`` or given for
            ``"logits"``, a name or module that is not in ``classifier``, ``num_features`` < 1.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))
        >>> features = ClassifierFeatures(classifier, "2")
        >>> features(torch.rand(4, 3, 8, 8)).shape, ClassifierFeatures(classifier, "1").num_features
        (torch.Size([4, 32]), 32)
        >>> logits = ClassifierFeatures(classifier, output="logits", num_features=10)
        >>> logits(torch.rand(4, 3, 8, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        classifier: nn.Module,
        feature_layer: str | nn.Module | None = None,
        *,
        output: ClassifierOutput = "features",
        num_features: int | None = None,
        input_transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"Expected `classifier` to be an nn.Module, got {type(classifier).__name__}.")
        if output not in ("features", "logits"):
            raise ValueError(f"Expected `output` to be 'features' or 'logits', got {output!r}.")
        if input_transform is not None and not callable(input_transform):
            raise TypeError(f"Expected `input_transform` to be callable or None, got {input_transform!r}.")
        self.classifier = classifier
        self.output = output
        self.input_transform = input_transform
        self.layer, self._layer_module = self._resolve_layer(classifier, feature_layer, output)
        if num_features is None and isinstance(self._layer_module, nn.Linear):
            num_features = self._layer_module.out_features
        if num_features is not None and (isinstance(num_features, bool) or not isinstance(num_features, int)):
            raise TypeError(f"Expected `num_features` to be an int or None, got {num_features!r}.")
        if num_features is not None and num_features < 1:
            raise ValueError(f"Expected `num_features` >= 1, got {num_features}.")
        self.num_features: int | None = num_features

    @staticmethod
    def _resolve_layer(
        classifier: nn.Module, feature_layer: Any, output: ClassifierOutput
    ) -> tuple[str, nn.Module | None]:
        if output == "logits":
            if feature_layer is not None:
                raise ValueError(f"`feature_layer` is for output='features'; got {feature_layer!r} with 'logits'.")
            return "logits", None
        if feature_layer is None:
            raise ValueError("output='features' needs `feature_layer` (a layer name or submodule of `classifier`).")
        names = dict(classifier.named_modules())
        if isinstance(feature_layer, str):
            if feature_layer not in names or feature_layer == "":
                shown = [name for name in names if name][:20]
                raise ValueError(
                    f"Expected `feature_layer` to name a layer of `classifier` {shown}, got {feature_layer!r}."
                )
            return feature_layer, names[feature_layer]
        if not isinstance(feature_layer, nn.Module):
            raise TypeError(f"Expected `feature_layer` to be a layer name or an nn.Module, got {feature_layer!r}.")
        for name, module in names.items():
            if module is feature_layer and name:
                return name, module
        raise ValueError(f"Expected `feature_layer` to be a submodule of `classifier`, got {feature_layer!r}.")

    def forward(self, images: Tensor) -> Tensor:
        """Features ``[N, D]`` (or logits ``[N, C]``) of float images ``[N, 3, H, W]`` in ``[0, 1]``.

        Raises:
            RuntimeError: the feature layer did not run during the classifier's forward pass.
            TypeError: the feature layer's output is not a tensor.
        """
        inputs = images if self.input_transform is None else self.input_transform(images)
        if self._layer_module is None:
            return self.classifier(inputs)
        captured: list[Any] = []
        handle = self._layer_module.register_forward_hook(lambda module, args, out: captured.append(out))
        try:
            self.classifier(inputs)
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"The feature layer {self.layer!r} did not run in the classifier's forward pass.")
        # A layer called more than once (shared weights) gives the output of its last call.
        features = captured[-1]
        if not isinstance(features, Tensor):
            raise TypeError(
                f"Expected the feature layer {self.layer!r} to output a Tensor, got {type(features).__name__}."
            )
        return features.flatten(1) if features.ndim > 2 else features

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, output={self.output!r}, num_features={self.num_features}"
