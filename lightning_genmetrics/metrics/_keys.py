"""Per-sample keys for the image metrics: from caller-given ids, else from the uint8 pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_tensor
from lightning_genmetrics.functional.sampling import sample_keys


def image_keys(uint8_images: Tensor, sample_ids: Tensor | None, seed: int) -> Tensor:
    """Keys of a batch: hashed ``sample_ids`` ([N] integers) if given, else hashed pixels.

    Raises:
        TypeError: ``sample_ids`` not an integer tensor.
        ValueError: ``sample_ids`` not of shape ``[N]``.
    """
    n = uint8_images.shape[0]
    if sample_ids is None:
        return sample_keys(uint8_images, seed)
    check_tensor(sample_ids, "sample_ids")
    if sample_ids.dtype.is_floating_point or sample_ids.is_complex() or sample_ids.dtype == torch.bool:
        raise TypeError(f"Expected `sample_ids` to be an integer tensor, got dtype {sample_ids.dtype}.")
    if sample_ids.shape != (n,):
        raise ValueError(f"Expected `sample_ids` to have shape [{n}] (one per image), got {tuple(sample_ids.shape)}.")
    return sample_keys(sample_ids.to(torch.int64).reshape(n, 1), seed).to(uint8_images.device)
