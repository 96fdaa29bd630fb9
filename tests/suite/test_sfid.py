"""sFID: the 2015 graph's `mixed_6/conv`[..., :7] features, against torch-fidelity's port of the same graph on
seeded weights, and the Fréchet distance over them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_genmetrics import FIDInceptionV3, FrechetInceptionDistance
from lightning_genmetrics.metrics.frechet import SpatialFrechetInceptionDistance
from tests.helpers import exact_frechet


@pytest.fixture
def weights_file(seeded_inception_weights):
    return seeded_inception_weights


def _images(rng, n, size=(40, 56)):
    return torch.from_numpy(rng.integers(0, 256, (n, 3, *size), dtype=np.uint8))


def test_features_are_torch_fidelitys_mixed_6d_1x1_branch_first_7_channels_channel_last(rng, weights_file):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    reference = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights_file)
    )
    captured = {}
    hook = reference.Mixed_6d.branch1x1.register_forward_hook(lambda module, args, out: captured.update(out=out))
    images = _images(rng, 3)
    with torch.no_grad():
        reference(images)
    hook.remove()
    nhwc = captured["out"][:, :7].permute(0, 2, 3, 1)  # the ADM evaluator's spatial[..., :7], then reshape
    assert nhwc.shape == (3, 17, 17, 7)
    expected = nhwc.reshape(3, -1).numpy()
    network = FIDInceptionV3("2023", weights_path=weights_file, verify_weights=False)
    features = network(images)
    assert features.shape == (3, 2023)
    np.testing.assert_allclose(features.numpy(), expected, atol=1e-4, rtol=1e-4)
    # Computed in the same pass as the pooled features and the logits.
    both = network.forward_layers(images, ["2023", "2048", "logits_unbiased"])
    assert torch.equal(both["2023"], features)


def test_sfid_is_the_frechet_distance_of_those_features(rng, weights_file, monkeypatch):
    from lightning_genmetrics.features import weights

    monkeypatch.setattr(weights, "inception_weights_path", lambda path=None, verify=True: weights_file)
    real, fake = _images(rng, 6), _images(rng, 5)
    sfid = SpatialFrechetInceptionDistance()
    by_layer = FrechetInceptionDistance(feature=2023)
    for metric in (sfid, by_layer):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    network = FIDInceptionV3("2023", weights_path=weights_file, verify_weights=False)
    expected = exact_frechet(network(real).double().numpy(), network(fake).double().numpy())
    assert sfid.num_features == 2023
    assert float(sfid.compute()) == pytest.approx(expected, rel=1e-6)
    assert float(by_layer.compute()) == float(sfid.compute())
    assert sfid.feature_provenance().layer == "2023"
