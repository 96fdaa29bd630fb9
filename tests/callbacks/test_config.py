"""The configuration's checks at ``setup`` without a Trainer run: what needs the resolved sampler, the built metrics
or the first real batch is refused before the first training step, naming the argument."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import GANSampler
from lightning_genmetrics.callbacks import GenerativeMetricsCallback
from lightning_genmetrics.callbacks.config import check_metrics
from lightning_genmetrics.callbacks.plug import MetricPlug
from lightning_genmetrics.callbacks.registry import build_builtin_metrics
from tests.callbacks.support import LATENT, CountingImages, TinyGAN
from tests.helpers import TinyFeatureNet

RANGE = (-1.0, 1.0)


def sampler() -> GANSampler:
    return GANSampler(TinyGAN().generator, latent_shape=(LATENT,))


def plugs(names: tuple[str, ...] = ("fid", "kid"), subset_size: int = 4) -> list[MetricPlug]:
    net = TinyFeatureNet(6, seed=5, declare=True)
    kwargs = {"kid": {"subsets": 2, "subset_size": subset_size}}
    metrics = build_builtin_metrics(names, dict.fromkeys(names, net), kwargs, RANGE)
    return [MetricPlug(name, metric) for name, metric in metrics.items()]


def config(real: object, **kwargs: object):
    options = {"metrics": ("fid",), "num_samples": 8}
    options.update(kwargs)
    return GenerativeMetricsCallback(sampler(), real, **options).config


@pytest.mark.parametrize(
    ("real", "names", "message"),
    [
        (DataLoader(TensorDataset(torch.rand(0, 3, 8, 8)), batch_size=4), ("fid",), "empty DataLoader"),
        (
            DataLoader(TensorDataset(torch.rand(1, 3, 8, 8)), batch_size=4),
            ("fid",),
            "at least 2 images, got a DataLoader of 1",
        ),
        (DataLoader(CountingImages(3), batch_size=4), ("fid", "kid"), "'kid': `subset_size` (4) exceeds the 3 real"),
        (DataLoader(TensorDataset(torch.rand(4, 3, 8, 8) * 3), batch_size=4), ("fid",), "first batch of `real`"),
    ],
)
def test_the_real_data_are_checked_at_setup(real: DataLoader, names: tuple[str, ...], message: str) -> None:
    checked = config(real)
    with pytest.raises(MisconfigurationException, match=re.escape(message)):
        checked.check_data(plugs(names), RANGE)


def test_a_metric_without_real_images_needs_no_real_data_check() -> None:
    checked = config(DataLoader(TensorDataset(torch.rand(0, 3, 8, 8)), batch_size=4))
    checked.check_data(plugs(("is",)), RANGE)  # the empty loader is not read: no metric takes real images


def test_a_cache_dir_that_is_a_file_and_empty_loaders_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    path.write_text("")
    with pytest.raises(MisconfigurationException, match="`cache_dir` to be a directory"):
        config(DataLoader(CountingImages(4), batch_size=4), cache_dir=path).check_data(plugs(), RANGE)
    masks = DataLoader(TensorDataset(torch.zeros(0, 8, 8, dtype=torch.int64)), batch_size=4)
    checked = config(None, metrics=(), segmenter=torch.nn.Identity(), masks=masks, num_mask_classes=2)
    with pytest.raises(MisconfigurationException, match="`masks` to hold samples"):
        checked.check_data([], RANGE)


def test_the_sampler_is_checked_at_setup() -> None:
    checked = config(None, metrics=(), classifier=torch.nn.Identity())
    with pytest.raises(MisconfigurationException, match="needs `num_classes`"):
        checked.check_sampler(sampler())
    checked = config(DataLoader(CountingImages(4), batch_size=4), guidance=[0.0, 1.0])
    with pytest.raises(MisconfigurationException, match="needs a guided sampler"):
        checked.check_sampler(sampler())
    conditional = GANSampler(TinyGAN().generator, latent_shape=(LATENT,), num_classes=3)
    checked = config(None, metrics=(), classifier=torch.nn.Identity())
    checked.check_sampler(conditional)
    assert checked.num_classes == 3  # read from the sampler


def test_metrics_mix_names_and_mappings_in_order() -> None:
    fid = build_builtin_metrics(("fid",), {"fid": TinyFeatureNet(6, declare=True)}, {}, RANGE)["fid"]
    names, user = check_metrics(("is", {"mine": fid}, "kid"), allow_empty=False)
    assert names == ("is", "mine", "kid")
    assert user == {"mine": fid}
    for bad in ("fid", ("fid", "fid"), ("psnr",), {"x": "fid"}, ()):
        with pytest.raises(MisconfigurationException, match="`metrics` to be"):
            check_metrics(bad, allow_empty=False)
    with pytest.raises(MisconfigurationException, match="`best_guidance_by` to be None, or with `guidance`"):
        config(None, metrics=("is",), best_guidance_by="is")
