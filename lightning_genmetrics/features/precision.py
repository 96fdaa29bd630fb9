"""Full float32 precision on CUDA: feature extraction must not run on TF32 (it changes the metric values)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def full_fp32_precision() -> Iterator[None]:
    """Turn TF32 off for CUDA matmuls and convolutions, restoring the caller's settings afterwards."""
    matmul = torch.backends.cuda.matmul
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        # torch >= 2.9: reading the legacy flags raises once a user has set the new ones.
        saved = (matmul.fp32_precision, conv.fp32_precision)
        matmul.fp32_precision, conv.fp32_precision = "ieee", "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = saved
    else:
        saved = (matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, False
        try:
            yield
        finally:
            matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
