"""The image metrics on the standard FID InceptionV3 (seeded weights) reproduce the conformance fixture.

`expected.npz` holds torch-fidelity's features for these inputs and the exact Fréchet distance between
them, so this checks the whole chain: uint8 images -> TF1 resize -> network -> streaming statistics.
"""

import numpy as np
import pytest
import torch

from lightning_genmetrics import FIDInceptionV3, FrechetInceptionDistance, InceptionScore
from tests.helpers import INCEPTION_FIXTURES


def test_fid_and_is_match_fixture(seeded_inception_weights):
    inputs = np.load(INCEPTION_FIXTURES / "metric_inputs.npz")
    expected = np.load(INCEPTION_FIXTURES / "expected.npz")
    real, fake = torch.from_numpy(inputs["real"]), torch.from_numpy(inputs["fake"])
    network = FIDInceptionV3("2048", weights_path=seeded_inception_weights, verify_weights=False)
    fid = FrechetInceptionDistance(feature=network)
    fid.update(real[:10], real=True)
    fid.update(real[10:], real=True)
    fid.update(fake, real=False)
    assert fid.compute().item() == pytest.approx(float(expected["fid_tf1/2048"]), rel=1e-4)

    logits = FIDInceptionV3("logits_unbiased", weights_path=seeded_inception_weights, verify_weights=False)
    inception_score = InceptionScore(feature=logits, splits=1, input_range=(0, 1))
    inception_score.update(fake.double() / 255)  # float input, declared range: same uint8 after rounding
    assert inception_score.compute()[0].item() == pytest.approx(float(expected["is/splits1/mean"]), rel=1e-5)


def test_layer_names_select_the_standard_network(monkeypatch, seeded_inception_weights):
    from lightning_genmetrics.features import weights

    monkeypatch.setattr(weights, "inception_weights_path", lambda path=None, verify=True: seeded_inception_weights)
    fid = FrechetInceptionDistance(feature=768)
    assert fid.num_features == 768
    assert isinstance(fid.extractor.module, FIDInceptionV3)
    assert fid.extractor.module.layer == "768"
