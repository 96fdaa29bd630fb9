from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import fresh_seed, seeded_inception_state


@pytest.fixture
def rng() -> np.random.Generator:
    """Fresh random inputs on every run; the seed is printed so a failure can be replayed."""
    seed = fresh_seed()
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def seeded_inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file of the seeded FID InceptionV3 (``tests.helpers.seeded_inception_state``), written once per
    session: ``FIDInceptionV3(layer, weights_path=seeded_inception_weights, verify_weights=False)``. Code that cannot
    take a fixture builds the same network with ``tests.helpers.seeded_inception_network(layer)``."""
    path = tmp_path_factory.mktemp("seeded-inception") / "seeded-inception.pth"
    torch.save(seeded_inception_state(), path)
    return path
