"""Small seeded networks and float64 references shared by the tests."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Bound at import: a test may monkeypatch the library's names to builders that call these helpers.
from lightning_genmetrics.features.inception import FIDInceptionV3
from lightning_genmetrics.features.lpips_nets import LPIPSNetwork

INCEPTION_FIXTURES = Path(__file__).parent / "fixtures" / "fid_inception"
ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _seeded_inception_tensors() -> tuple[tuple[str, torch.Tensor], ...]:
    generator = torch.Generator().manual_seed(20261120)
    state = []
    for name, shape in json.loads((INCEPTION_FIXTURES / "keys.json").read_text()):
        if name.endswith("num_batches_tracked"):
            tensor = torch.tensor(0)
        elif name.endswith("running_var"):
            tensor = 0.5 + torch.rand(shape, generator=generator)
        elif name.endswith("running_mean"):
            tensor = 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bn.weight"):
            tensor = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bias"):
            tensor = 0.1 * torch.randn(shape, generator=generator)
        else:
            tensor = torch.randn(shape, generator=generator) * math.sqrt(2 / math.prod(shape[1:]))
        state.append((name, tensor))
    return tuple(state)


def seeded_inception_state() -> dict[str, torch.Tensor]:
    """Seeded weights for the FID InceptionV3 key set, by the fixture README's recipe (keys.json in order).

    Made once per process: the tensors are shared, so load or save them, do not change them in place. Tests that take
    fixtures use the session's weights file, the ``seeded_inception_weights`` fixture (tests/conftest.py).
    """
    return dict(_seeded_inception_tensors())


def seeded_inception_network(layer: str = "2048", **kwargs: Any) -> FIDInceptionV3:
    """``FIDInceptionV3(layer, pretrained=False, **kwargs)`` holding ``seeded_inception_state()`` (for code that
    cannot take the fixture: DDP workers, module-level constants, monkeypatched builders)."""
    network = FIDInceptionV3(layer, pretrained=False, **kwargs)
    network.load_state_dict(seeded_inception_state())
    return network


@functools.cache
def _seeded_lpips_tensors(net: str, seed: int) -> tuple[tuple[str, torch.Tensor], ...]:
    generator = torch.Generator().manual_seed(seed)
    state = []
    for name, value in LPIPSNetwork(net, pretrained=False).state_dict().items():
        if name.startswith("heads."):
            tensor = 0.1 * torch.rand(value.shape, generator=generator)
        elif name.endswith("bias"):
            tensor = 0.1 * torch.randn(value.shape, generator=generator)
        else:
            tensor = torch.randn(value.shape, generator=generator) * math.sqrt(2 / math.prod(value.shape[1:]))
        state.append((name, tensor))
    return tuple(state)


def seeded_lpips_state(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights for an LPIPS network's state dict: He-scaled normal backbone weights, small biases and positive
    heads. Made once per ``(net, seed)``: the tensors are shared, so load them (``load_state_dict`` copies), do not
    change them in place."""
    return dict(_seeded_lpips_tensors(net, seed))


def seeded_lpips_network(net: str, seed: int = 0) -> LPIPSNetwork:
    """An ``LPIPSNetwork(net, pretrained=False)`` holding ``seeded_lpips_state(net, seed)``."""
    network = LPIPSNetwork(net, pretrained=False)
    network.load_state_dict(seeded_lpips_state(net, seed))
    return network


class ReadCountingImages(torch.utils.data.Dataset):
    """``n`` seeded images ``[3, 8, 8]`` uniform in ``[low, 1]`` that count how often they are read."""

    def __init__(self, n: int = 16, seed: int = 1, low: float = -1.0) -> None:
        self.images = low + (1 - low) * torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        self.reads = 0

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads += 1
        return self.images[index]


class TinyFeatureNet(nn.Module):
    """A seeded conv net ``[N, 3, H, W]`` float in [0, 1] -> ``[N, num_features]``; deterministic weights.

    It runs one image at a time, so an image's features are bit-identical in any batch: float32
    convolutions otherwise change their last bits with the batch size, which would blur the
    float64-exact comparisons of the metrics' statistics against references.
    """

    def __init__(self, num_features: int = 16, seed: int = 0, *, declare: bool = False) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 12, 3, stride=2)
        self.head = nn.Linear(12, num_features)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
        if declare:
            self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 0:
            return x.new_zeros(0, self.head.out_features)
        return torch.cat([self._one(image[None]) for image in x])

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x * 2 - 1)).mean(dim=(2, 3))
        return self.head(h) * 3


class PixelLogits(nn.Module):
    """Logits ``8·x`` of an image's first ``num_classes`` values (``[N, C, H, W]`` floats in [0, 1]): exact per image
    in any batch and nearly free, for tests that feed a metric many images many times."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, : self.num_classes] * 8


def exact_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two feature sets with the trace-sqrt term as a nuclear norm (float64).

    For centred A (n×d), B (m×d): tr √(Σ1Σ2) = ‖A Bᵀ‖_* / √((n−1)(m−1)), exact even when n, m < d.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    n, m = a.shape[0], b.shape[0]
    trace_a = np.einsum("ij,ij->", ca, ca) / (n - 1)
    trace_b = np.einsum("ij,ij->", cb, cb) / (m - 1)
    # ‖A Bᵀ‖_* = ‖R_a R_bᵀ‖_* with A = Q_a R_a, B = Q_b R_b (orthonormal Q): a small SVD when n, m > d.
    ra = np.linalg.qr(ca, mode="r") if n > ca.shape[1] else ca
    rb = np.linalg.qr(cb, mode="r") if m > cb.shape[1] else cb
    nuclear = np.linalg.svd(ra @ rb.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    return float(((mu_a - mu_b) ** 2).sum() + trace_a + trace_b - 2 * nuclear)


def exact_inception_score(logits: np.ndarray, split_index: np.ndarray, splits: int) -> tuple[float, float]:
    """Per-split exp(E KL(p ‖ p̄)) from its definition, in float64 (scipy's softmax and entropy)."""
    from scipy.special import rel_entr, softmax

    p = softmax(np.asarray(logits, dtype=np.float64), axis=1)
    scores = []
    for s in range(splits):
        chunk = p[split_index == s]
        marginal = chunk.mean(0, keepdims=True)
        scores.append(np.exp(rel_entr(chunk, marginal).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def exact_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased polynomial MMD² by explicit loops over pairs (float64), independent of the library's algebra."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma

    def kernel(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (gamma * (u @ v.T) + coef0) ** degree

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    off = ~np.eye(m, dtype=bool)
    return float(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())


def run_example(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``examples/<script>`` as a user runs it (a subprocess of this checkout); return its stdout, or fail with
    its output."""
    env = dict(os.environ)
    # The checkout under test, whatever the environment's installed copy points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def write_image_folder(path: Path, images: torch.Tensor) -> Path:
    """Create the folder ``path`` holding uint8 ``[N, 3, H, W]`` ``images`` as PNG files ``000.png``, ``001.png``..."""
    from PIL import Image

    path.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path / f"{i:03d}.png")
    return path


def fresh_seed() -> int:
    """A new random seed for this run's inputs, printed so that a failure can be replayed with it."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"random seed: {seed}")
    return seed
