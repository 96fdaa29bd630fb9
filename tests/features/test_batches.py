"""DataLoader batches straight into FID, IS and KID: an ``(images, labels)`` batch gives its images; a list of
single images is refused instead of silently reduced to its first image."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_genmetrics import FrechetInceptionDistance, InceptionScore, KernelInceptionDistance
from lightning_genmetrics.features.preprocess import batch_to_images
from tests.contract import unchanged_state
from tests.helpers import TinyFeatureNet


def _images(rng, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, size=(n, 3, 8, 8), dtype="uint8"))


def test_batch_to_images_takes_the_first_tensor_of_a_tuple_or_list():
    images, labels = torch.zeros(3, 3, 4, 4), torch.arange(3)
    assert batch_to_images((images, labels)) is images
    assert batch_to_images([images]) is images
    assert batch_to_images(images) is images


@pytest.mark.parametrize(
    ("batch", "named"),
    [
        ([torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)], r"torch\.stack"),
        ((), "starting with nothing"),
        (["images", torch.zeros(1, 3, 4, 4)], "starting with str"),
    ],
)
def test_batch_to_images_refuses_what_it_cannot_read(batch, named):
    with pytest.raises(TypeError, match=named):
        batch_to_images(batch)


@pytest.mark.parametrize("kind", ["fid", "kid", "is"])
def test_dataloader_batches_give_the_value_of_the_tensors(rng, kind):
    real, fake = _images(rng, 24), _images(rng, 20)

    def build():
        if kind == "fid":
            return FrechetInceptionDistance(TinyFeatureNet(), feature_input="float")
        if kind == "kid":
            return KernelInceptionDistance(TinyFeatureNet(), subsets=4, subset_size=8, feature_input="float")
        return InceptionScore(TinyFeatureNet(), splits=2, feature_input="float")

    def feed(metric, images, real_side, as_loader):
        labelled = TensorDataset(images, torch.arange(len(images)))
        batches = DataLoader(labelled, batch_size=7) if as_loader else images.split(7)
        for batch in batches:
            if kind == "is":
                if not real_side:
                    metric.update(batch)
            else:
                metric.update(batch, real=real_side)

    values = []
    for as_loader in (False, True):
        metric = build()
        feed(metric, real, True, as_loader)
        feed(metric, fake, False, as_loader)
        values.append(metric.compute())
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)


def test_a_list_of_single_images_is_refused_and_changes_nothing(rng):
    metric = FrechetInceptionDistance(TinyFeatureNet(), feature_input="float")
    metric.update(_images(rng, 4), real=True)
    with unchanged_state(metric), pytest.raises(TypeError, match=r"torch\.stack"):
        metric.update(list(_images(rng, 4)), real=True)
