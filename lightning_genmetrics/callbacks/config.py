"""The callback's configuration, built and checked once: every error names the argument and the value received.

``CallbackConfig.build`` checks what can be checked from the arguments alone (raising
``MisconfigurationException`` in the callback's constructor); ``check_sampler`` and ``check_data`` check, at
``setup`` and before the first training step, what needs the resolved sampler, the built metrics or the first
batch of the real data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler

from lightning_genmetrics.callbacks.plug import MetricPlug, update_parameters
from lightning_genmetrics.callbacks.real_side import keeps_statistics
from lightning_genmetrics.callbacks.reconstruction import RECONSTRUCTION_METRICS
from lightning_genmetrics.callbacks.registry import BUILT_IN, RESERVED_KWARGS, choose_encoders
from lightning_genmetrics.callbacks.sharding import known_sample_count
from lightning_genmetrics.features.preprocess import InputRange, batch_to_images, check_input_range, images_to_uint8
from lightning_genmetrics.samplers.base import MAX_SAMPLES, sampler_output_range
from lightning_genmetrics.stats import ReferenceStatistics, load_statistics

# Trainer entry points the callback can evaluate in, by their `TrainerFn` value.
STAGES = (TrainerFn.FITTING.value, TrainerFn.VALIDATING.value, TrainerFn.TESTING.value)
_GUIDED_SAMPLER_ATTRIBUTES = ("guidance", "null_label", "num_classes")
EMASource = Literal["auto"] | nn.Module | None
# Built-in names, a {name: metric} mapping, or a sequence mixing names and mappings.
MetricsArgument = Sequence[str | Mapping[str, nn.Module]] | Mapping[str, nn.Module]


def misconfigured(name: str, value: Any, expected: str) -> MisconfigurationException:
    return MisconfigurationException(f"Expected `{name}` to be {expected}, got {value!r}.")


def check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise misconfigured(name, value, f"an int >= {minimum}")
    return value


def check_optional_int(value: Any, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise misconfigured(name, value, f"None or an int >= {minimum}")
    return value


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise misconfigured(name, value, "a bool")
    return value


def check_names(value: Any, name: str, allowed: Sequence[str], *, allow_empty: bool) -> tuple[str, ...]:
    """A sequence of distinct names among ``allowed`` (a bare string is refused: it is a sequence of letters)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise misconfigured(name, value, f"a sequence of names among {sorted(allowed)}")
    names = tuple(value)
    if (not names and not allow_empty) or any(n not in allowed for n in names) or len(set(names)) != len(names):
        raise misconfigured(name, value, f"distinct names among {sorted(allowed)}")
    return names


def check_fixed_order_loader(value: Any, name: str) -> DataLoader:
    """A DataLoader that iterates in a fixed order, as every rank reads its share of its batches by position."""
    if not isinstance(value, DataLoader):
        raise misconfigured(name, value, "a DataLoader")
    if isinstance(value.sampler, RandomSampler):
        raise MisconfigurationException(
            f"Expected `{name}` to iterate in a fixed order (every rank reads its share of the batches), "
            f"got a shuffling DataLoader ({value!r}); create it with shuffle=False."
        )
    return value


def check_guidance(guidance: Any) -> tuple[float, ...] | None:
    if guidance is None:
        return None
    values = tuple(guidance) if isinstance(guidance, Sequence) and not isinstance(guidance, str) else ()
    if (
        not values
        or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) for w in values)
        or any(w < -1 for w in values)
        or len(set(values)) != len(values)
    ):
        raise misconfigured("guidance", guidance, "None or a non-empty sequence of distinct numbers >= -1")
    return tuple(float(w) for w in values)


def check_metrics(value: Any, *, allow_empty: bool) -> tuple[tuple[str, ...], dict[str, nn.Module]]:
    """Built-in names and ``{name: metric}`` mappings, in the order given: all names, and the user's metrics.

    Example:
        >>> from torchmetrics import MeanMetric
        >>> names, user = check_metrics(("fid", {"brightness": MeanMetric()}), allow_empty=False)
        >>> names, list(user)
        (('fid', 'brightness'), ['brightness'])
    """
    expected = f"built-in names among {sorted(BUILT_IN)}, a mapping {{name: Metric}}, or a sequence of both"
    items = [value] if isinstance(value, Mapping) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise misconfigured("metrics", value, expected)
    names: list[str] = []
    user: dict[str, nn.Module] = {}
    for item in items:
        if isinstance(item, str) and item in BUILT_IN:
            names.append(item)
        elif isinstance(item, Mapping) and all(
            isinstance(name, str)
            and name
            and isinstance(metric, nn.Module)
            and callable(getattr(metric, "update", None))
            for name, metric in item.items()
        ):
            names.extend(item)
            user.update(item)
        else:
            raise misconfigured("metrics", value, expected)
    if (not names and not allow_empty) or len(set(names)) != len(names):
        raise misconfigured("metrics", value, f"distinct {expected}")
    return tuple(names), user


@dataclass
class CallbackConfig:
    """The checked arguments of ``GenerativeMetricsCallback`` (see its docstring for their meaning)."""

    sampler: Any
    metric_names: tuple[str, ...]
    user_metrics: dict[str, nn.Module]
    feature_extractor: dict[str, nn.Module | None]
    metric_kwargs: dict[str, dict[str, Any]]
    every_n_epochs: int | None
    every_n_steps: int | None
    evaluate_on_last_epoch: bool
    num_samples: int
    batch_size: int
    seed: int
    prefix: str
    log_images: bool
    num_images: int
    log_figures: bool
    progress_bar: bool
    real_input_range: InputRange | None
    cache_dir: Path | None
    real_loader: DataLoader | None
    real_statistics: ReferenceStatistics | None
    guidance: tuple[float, ...] | None
    ema: EMASource
    classifier: nn.Module | None
    num_classes: int | None
    segmenter: nn.Module | None
    masks: DataLoader | None
    num_mask_classes: int | None
    reconstruct: Callable[[Any, Tensor], Tensor] | None
    reconstruction_data: DataLoader | None
    reconstruction_metrics: tuple[str, ...]
    on_nonfinite: Literal["nan", "raise"]
    stages: tuple[str, ...]
    refingerprint_on_resume: bool
    best_guidance_by: str | None

    @property
    def builtin_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.metric_names if name not in self.user_metrics)

    @classmethod
    def build(cls, sampler: Any, real: Any, metrics: Any, feature_extractor: Any, **kwargs: Any) -> CallbackConfig:
        """Check every argument of the callback.

        Raises:
            MisconfigurationException: an argument of the wrong type or value (the message names it and the value).
        """
        classifier = _check_module(kwargs["classifier"], "classifier")
        segmenter = _check_module(kwargs["segmenter"], "segmenter")
        masks, num_mask_classes = kwargs["masks"], kwargs["num_mask_classes"]
        given = [segmenter is not None, masks is not None, num_mask_classes is not None]
        if any(given) and not all(given):
            raise MisconfigurationException(
                "A segmenter evaluation needs `segmenter`, `masks` and `num_mask_classes` together, got "
                f"segmenter={segmenter!r}, masks={masks!r}, num_mask_classes={num_mask_classes!r}."
            )
        reconstruct = kwargs["reconstruct"]
        if reconstruct is not None and not callable(reconstruct):
            raise misconfigured("reconstruct", reconstruct, "None or a function (pl_module, images) -> images")
        others = classifier is not None or segmenter is not None or reconstruct is not None
        metric_names, user_metrics = check_metrics(metrics, allow_empty=others)
        every_n_epochs = check_optional_int(kwargs["every_n_epochs"], "every_n_epochs", 1)
        every_n_steps = check_optional_int(kwargs["every_n_steps"], "every_n_steps", 1)
        if every_n_epochs is None and every_n_steps is None:
            raise MisconfigurationException("Expected `every_n_epochs` or `every_n_steps` to be set, got both None.")
        num_samples = check_int(kwargs["num_samples"], "num_samples", 2)
        if num_samples > MAX_SAMPLES:
            raise misconfigured("num_samples", num_samples, "at most 2**32")
        seed = check_int(kwargs["seed"], "seed", 0)
        if seed >= 2**64:
            raise misconfigured("seed", seed, "below 2**64")
        if not isinstance(kwargs["prefix"], str):
            raise misconfigured("prefix", kwargs["prefix"], "a str")
        config = cls(
            sampler=_check_sampler(sampler),
            metric_names=metric_names,
            user_metrics=user_metrics,
            feature_extractor={},
            metric_kwargs={},
            every_n_epochs=every_n_epochs,
            every_n_steps=every_n_steps,
            evaluate_on_last_epoch=check_bool(kwargs["evaluate_on_last_epoch"], "evaluate_on_last_epoch"),
            num_samples=num_samples,
            batch_size=check_int(kwargs["batch_size"], "batch_size", 1),
            seed=seed,
            prefix=kwargs["prefix"],
            log_images=check_bool(kwargs["log_images"], "log_images"),
            num_images=min(check_int(kwargs["num_images"], "num_images", 1), num_samples),
            log_figures=check_bool(kwargs["log_figures"], "log_figures"),
            progress_bar=check_bool(kwargs["progress_bar"], "progress_bar"),
            real_input_range=_check_real_input_range(kwargs["real_input_range"]),
            cache_dir=None if kwargs["cache_dir"] is None else Path(kwargs["cache_dir"]).expanduser(),
            real_loader=None,
            real_statistics=None,
            guidance=check_guidance(kwargs["guidance"]),
            ema=_check_ema(kwargs["ema"]),
            classifier=classifier,
            num_classes=check_optional_int(kwargs["num_classes"], "num_classes", 2),
            segmenter=segmenter,
            masks=None if masks is None else check_fixed_order_loader(masks, "masks"),
            num_mask_classes=check_optional_int(num_mask_classes, "num_mask_classes", 1),
            reconstruct=reconstruct,
            reconstruction_data=None,
            reconstruction_metrics=check_names(
                kwargs["reconstruction_metrics"], "reconstruction_metrics", RECONSTRUCTION_METRICS, allow_empty=False
            ),
            on_nonfinite=_check_on_nonfinite(kwargs["on_nonfinite"]),
            stages=check_names(kwargs["stages"], "stages", STAGES, allow_empty=False),
            refingerprint_on_resume=check_bool(kwargs["refingerprint_on_resume"], "refingerprint_on_resume"),
            best_guidance_by=kwargs["best_guidance_by"],
        )
        config.feature_extractor = config._check_feature_extractor(feature_extractor)
        config.metric_kwargs = config._check_metric_kwargs(kwargs["metric_kwargs"])
        config._check_subset_sizes()
        config.real_loader, config.real_statistics = config._check_real(real)
        config.reconstruction_data = config._check_reconstruction_data(kwargs["reconstruction_data"])
        if config.best_guidance_by is not None and (
            not isinstance(config.best_guidance_by, str) or not config.guidance
        ):
            raise misconfigured("best_guidance_by", config.best_guidance_by, "None, or with `guidance` a logged name")
        return config

    # Checks that need several arguments -------------------------------------------------------------------------

    def _metric_or_class(self, name: str) -> Any:
        return self.user_metrics[name] if name in self.user_metrics else BUILT_IN[name].cls

    def _metric_attribute(self, name: str, attribute: str) -> Any:
        """A metric's attribute before it is built: a user metric's own, or a built-in's ``metric_kwargs`` value
        (else its constructor's default)."""
        if name in self.user_metrics:
            return getattr(self.user_metrics[name], attribute, None)
        return self.metric_kwargs.get(name, {}).get(attribute, BUILT_IN[name].default(attribute))

    def _check_feature_extractor(self, value: Any) -> dict[str, nn.Module | None]:
        """One extractor (or ``None``, the standard Inception) per built-in metric name."""
        names = self.builtin_names
        if value is None or isinstance(value, nn.Module):
            return dict.fromkeys(names, value)
        if not isinstance(value, Mapping) or any(
            name not in names or not (module is None or isinstance(module, nn.Module)) for name, module in value.items()
        ):
            raise misconfigured("feature_extractor", value, f"None, an nn.Module, or a mapping from {names} to them")
        return {name: value.get(name) for name in names}

    def _check_metric_kwargs(self, metric_kwargs: Any) -> dict[str, dict[str, Any]]:
        if metric_kwargs is None:
            return {}
        names = self.builtin_names + (self.reconstruction_metrics if self.reconstruct is not None else ())
        if not isinstance(metric_kwargs, Mapping) or any(
            name not in names or not isinstance(kwargs, Mapping) for name, kwargs in metric_kwargs.items()
        ):
            raise misconfigured("metric_kwargs", metric_kwargs, f"a mapping from {names} to dicts")
        if any(RESERVED_KWARGS & set(kwargs) for kwargs in metric_kwargs.values()):
            raise misconfigured(
                "metric_kwargs", metric_kwargs, f"free of the callback-managed {sorted(RESERVED_KWARGS)}"
            )
        checked = {name: dict(kwargs) for name, kwargs in metric_kwargs.items()}
        try:
            # The encoder options (feature, weights_path, verify_weights, antialias), checked without building.
            choose_encoders(self.builtin_names, self.feature_extractor, checked)
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(f"Invalid `metric_kwargs`: {error}") from error
        return checked

    def _check_subset_sizes(self) -> None:
        """A metric drawing subsets of ``subset_size`` samples (KID) needs that many generated samples; one with
        ``k``-nearest-neighbour radii (precision/recall) ``k + 1``; one fitting FD over nested subsets whose
        smallest holds a share ``min_fraction`` (FD∞) ``2 / min_fraction`` (two samples expected in it)."""
        for name in self.metric_names:
            subset_size = self._metric_attribute(name, "subset_size")
            if isinstance(subset_size, int) and subset_size > self.num_samples:
                raise MisconfigurationException(
                    f"Metric {name!r}: `subset_size` ({subset_size}) exceeds `num_samples` ({self.num_samples}); "
                    f"pass metric_kwargs={{{name!r}: {{'subset_size': ...}}}} (or build it) with at most num_samples."
                )
            k = self._metric_attribute(name, "k")
            if isinstance(k, int) and k + 1 > self.num_samples:
                raise MisconfigurationException(
                    f"Metric {name!r}: k-nearest-neighbour radii with `k`={k} need at least {k + 1} generated "
                    f"samples, got `num_samples`={self.num_samples}."
                )
            fraction = self._metric_attribute(name, "min_fraction")
            if isinstance(fraction, float) and 0 < fraction < 1 and self.num_samples * fraction < 2:
                raise MisconfigurationException(
                    f"Metric {name!r}: its smallest subset holds a share `min_fraction`={fraction:g} of the samples "
                    f"and needs 2 of them: `num_samples` must be at least {math.ceil(2 / fraction)} (thousands for a "
                    f"meaningful fit), got {self.num_samples}."
                )

    def _check_real(self, real: Any) -> tuple[DataLoader | None, ReferenceStatistics | None]:
        with_real = [name for name in self.metric_names if "real" in update_parameters(self._metric_or_class(name))]
        if real is None:
            if with_real:
                raise misconfigured("real", real, f"real images or statistics for {with_real}")
            return None, None
        if isinstance(real, DataLoader):
            return check_fixed_order_loader(real, "real"), None
        if isinstance(real, ReferenceStatistics):
            statistics = real
        elif isinstance(real, (str, os.PathLike)):
            try:
                statistics = load_statistics(real)
            except (OSError, ValueError) as error:
                raise MisconfigurationException(f"Cannot use `real`={str(real)!r} as statistics: {error}") from error
        else:
            raise misconfigured("real", real, "a DataLoader, a statistics file path or ReferenceStatistics")
        for name in with_real:
            if not keeps_statistics(self._metric_or_class(name)):
                raise MisconfigurationException(
                    f"Metric {name!r} needs real images, not statistics; got `real`={real!r} with metrics="
                    f"{self.metric_names}. Pass a DataLoader of real images, or drop {name!r}."
                )
        return None, statistics

    def _check_reconstruction_data(self, data: Any) -> DataLoader | None:
        if data is not None:
            return check_fixed_order_loader(data, "reconstruction_data")
        if self.reconstruct is not None and self.real_loader is None:
            raise MisconfigurationException(
                "`reconstruct` needs images to reconstruct: pass `reconstruction_data` (or `real` as a DataLoader)."
            )
        return self.real_loader if self.reconstruct is not None else None

    # Checks at setup ----------------------------------------------------------------------------------------------

    def resolve_sampler(self, pl_module: nn.Module) -> Any:
        """The sampler: the one given, or what the function given returns for ``pl_module``.

        Raises:
            MisconfigurationException: the function returned something that is not a sampler.
        """
        if hasattr(self.sampler, "output_range"):
            return self.sampler
        sampler = self.sampler(pl_module)
        try:
            sampler_output_range(sampler)
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(f"The `sampler` function returned {sampler!r}: {error}") from error
        return sampler

    def check_sampler(self, sampler: Any) -> None:
        """The checks that need the resolved sampler: the guidance sweep, and the classifier's class count (read
        from the sampler when not given)."""
        if self.classifier is not None and self.num_classes is None:
            count = getattr(sampler, "num_classes", None)
            if not isinstance(count, int) or count < 2:
                raise MisconfigurationException(
                    f"A `classifier` needs `num_classes`, or a sampler with `num_classes`; got {sampler!r}."
                )
            self.num_classes = count
        if self.guidance is None:
            return
        # The sweep asks the sampler, not a list of classes: a guided sampler has these attributes.
        if not all(hasattr(sampler, name) for name in _GUIDED_SAMPLER_ATTRIBUTES):
            raise MisconfigurationException(
                f"A guidance sweep (`guidance`={list(self.guidance)}) needs a guided sampler (DiffusionSampler, "
                f"LogSNRDiffusionSampler, FlowMatchingSampler, or one with attributes "
                f"{list(_GUIDED_SAMPLER_ATTRIBUTES)}), got {sampler!r}."
            )
        if any(w != 0 for w in self.guidance) and (sampler.null_label is None or sampler.num_classes is None):
            raise MisconfigurationException(
                f"Guidance strengths {list(self.guidance)} need a guided sampler with `null_label` and `num_classes` "
                f"(labels drawn per sample), got null_label={sampler.null_label}, num_classes={sampler.num_classes}."
            )

    def check_data(self, plugs: Sequence[MetricPlug], real_range: InputRange) -> None:
        """What can be checked cheaply at ``setup``, so that it fails before the first training step, not after N
        epochs: the cache folder, the real loader's size and its first batch, and the other loaders' sizes."""
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise MisconfigurationException(
                f"Expected `cache_dir` to be a directory, got '{self.cache_dir}', which exists and is not one."
            )
        for name, loader in (("masks", self.masks), ("reconstruction_data", self.reconstruction_data)):
            if loader is not None and known_sample_count(loader) == 0:
                raise MisconfigurationException(f"Expected `{name}` to hold samples, got an empty DataLoader.")
        if self.real_loader is not None and any(plug.takes_real for plug in plugs):
            self._check_real_loader(self.real_loader, plugs, real_range)

    def _check_real_loader(self, loader: DataLoader, plugs: Sequence[MetricPlug], real_range: InputRange) -> None:
        count = known_sample_count(loader)
        if count == 0:
            raise MisconfigurationException(
                "Expected `real` to hold real images, got an empty DataLoader (no batches): the metrics "
                f"{[plug.name for plug in plugs if plug.takes_real]} compare the samples with real images."
            )
        if count is not None and count < 2:
            raise MisconfigurationException(f"Expected `real` to hold at least 2 images, got a DataLoader of {count}.")
        for plug in plugs:
            subset_size = getattr(plug.metric, "subset_size", None)
            if plug.takes_real and isinstance(subset_size, int) and count is not None and subset_size > count:
                raise MisconfigurationException(
                    f"Metric {plug.name!r}: `subset_size` ({subset_size}) exceeds the {count} real images of "
                    f"`real`; pass metric_kwargs={{{plug.name!r}: {{'subset_size': ...}}}} (or build it) with at "
                    f"most {count}."
                )
            k = getattr(plug.metric, "k", None)
            if plug.takes_real and isinstance(k, int) and count is not None and k + 1 > count:
                raise MisconfigurationException(
                    f"Metric {plug.name!r}: k-nearest-neighbour radii with `k`={k} need at least {k + 1} real "
                    f"images, got a DataLoader of {count}."
                )
        try:
            # Iterating a DataLoader draws its base seed from the global RNG, which training must not see.
            with torch.random.fork_rng(devices=[]):
                first = next(iter(loader))
        except StopIteration:
            raise MisconfigurationException(
                "Expected `real` to hold real images, got a DataLoader that yields no batch."
            ) from None
        try:
            images_to_uint8(batch_to_images(first, "real batch"), real_range, name="real images")
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(
                f"The first batch of `real` cannot be used (`real_input_range` is {real_range}): {error}"
            ) from error


def _check_module(value: Any, name: str) -> nn.Module | None:
    if value is not None and not isinstance(value, nn.Module):
        raise misconfigured(name, value, "None or an nn.Module")
    return value


def _check_sampler(sampler: Any) -> Any:
    if not callable(sampler):
        raise misconfigured("sampler", sampler, "a sampler with `output_range`, or a function of the LightningModule")
    if hasattr(sampler, "output_range"):
        try:
            sampler_output_range(sampler)
        except (TypeError, ValueError) as error:
            raise MisconfigurationException(f"Invalid `sampler` {sampler!r}: {error}") from error
    return sampler


def _check_real_input_range(value: Any) -> InputRange | None:
    try:
        return check_input_range(value)
    except (TypeError, ValueError) as error:
        raise misconfigured("real_input_range", value, "None, (0, 1) or (-1, 1)") from error


def _check_ema(ema: Any) -> EMASource:
    if not (ema is None or ema == "auto" or isinstance(ema, nn.Module)):
        raise misconfigured("ema", ema, "'auto', None or an EMA nn.Module")
    return ema


def _check_on_nonfinite(value: Any) -> Literal["nan", "raise"]:
    if value not in ("nan", "raise"):
        raise misconfigured("on_nonfinite", value, "'nan' or 'raise'")
    return value
