"""Small seeded networks and float64 references shared by the tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

INCEPTION_FIXTURES = Path(__file__).parent / "fixtures" / "fid_inception"


def seeded_inception_state() -> dict[str, torch.Tensor]:
    """Seeded weights for the FID InceptionV3 key set, by the fixture README's recipe (keys.json in order)."""
    generator = torch.Generator().manual_seed(20261120)
    state = {}
    for name, shape in json.loads((INCEPTION_FIXTURES / "keys.json").read_text()):
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        elif name.endswith("running_mean"):
            state[name] = 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bn.weight"):
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("bias"):
            state[name] = 0.1 * torch.randn(shape, generator=generator)
        else:
            state[name] = torch.randn(shape, generator=generator) * math.sqrt(2 / math.prod(shape[1:]))
    return state


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
