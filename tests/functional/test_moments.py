import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_genmetrics.functional import features_to_moments, merge_moments


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    d=st.integers(1, 6),
    shift=st.sampled_from([0.0, 1e3, -1e6]),
    cuts=st.lists(st.floats(0, 1), max_size=5),
)
def test_any_split_merges_to_the_whole(seed, n, d, shift, cuts):
    x = shift + np.random.default_rng(seed).standard_normal((n, d))
    points = sorted({int(c * n) for c in cuts})
    merged = features_to_moments(torch.from_numpy(x[:0]))
    for part in np.split(x, points):
        merged = merge_moments(merged, features_to_moments(torch.from_numpy(part)))
    whole = features_to_moments(torch.from_numpy(x))
    assert int(merged[0]) == n
    torch.testing.assert_close(merged[1], whole[1], rtol=1e-12, atol=1e-12 * abs(shift) + 1e-13)
    centred = x - x.mean(0)
    reference = torch.from_numpy(centred.T @ centred)
    torch.testing.assert_close(merged[2], reference, rtol=1e-9, atol=1e-9 * max(1.0, float(reference.abs().max())))
