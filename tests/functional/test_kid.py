import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

from lightning_genmetrics.functional import kernel_inception_distance, mmd2_unbiased, polynomial_kernel
from tests.helpers import exact_mmd2

TF_KWARGS = {
    "kid_kernel": "poly",
    "kid_kernel_poly_degree": 3,
    "kid_kernel_poly_gamma": None,
    "kid_kernel_poly_coef0": 1,
    "verbose": False,
    "rng_seed": 0,
}


@pytest.mark.parametrize(("degree", "gamma", "coef0"), [(3, None, 1.0), (2, 0.5, 0.0), (4, None, 2.0)])
def test_mmd2_matches_pairwise_definition(rng, degree, gamma, coef0):
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 0.3
    got = mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y), degree, gamma, coef0).item()
    assert got == pytest.approx(exact_mmd2(x, y, degree, gamma, coef0), rel=1e-11, abs=1e-13)


def test_full_subsets_match_torch_fidelity(rng):
    # With subset_size = n every subset is a permutation of the data, which the estimator ignores.
    x, y = rng.standard_normal((120, 16)), rng.standard_normal((120, 16)) * 1.2
    mean, std = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=3, subset_size=120)
    reference = kid_features_to_metric(
        torch.from_numpy(x), torch.from_numpy(y), kid_subsets=1, kid_subset_size=120, **TF_KWARGS
    )
    assert mean.item() == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-11)
    assert std.item() == pytest.approx(0.0, abs=1e-12)


def test_subsets_are_the_documented_draws(rng):
    x, y = rng.standard_normal((50, 5)), rng.standard_normal((60, 5)) + 0.5
    mean, std = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=4, subset_size=20, seed=7)
    generator = torch.Generator().manual_seed(7)
    values = []
    for _ in range(4):
        i = torch.randperm(50, generator=generator)[:20].numpy()
        j = torch.randperm(60, generator=generator)[:20].numpy()
        values.append(exact_mmd2(x[i], y[j]))
    assert mean.item() == pytest.approx(np.mean(values), rel=1e-11)
    assert std.item() == pytest.approx(np.std(values), rel=1e-9)


def test_too_few_samples():
    with pytest.raises(RuntimeError, match="subset_size=10 samples on each side, got 9 real and 12 generated"):
        kernel_inception_distance(torch.randn(9, 3), torch.randn(12, 3), subset_size=10)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((torch.randn(9, 3), torch.randn(9, 4)), {"subset_size": 5}, ValueError, "3 features per row"),
        ((torch.randn(9, 3), torch.randn(9, 3)), {"subset_size": 1}, ValueError, "subset_size"),
        ((torch.randn(9, 3), torch.randn(9, 3).int()), {"subset_size": 5}, TypeError, "fake_features"),
        ((torch.randn(9, 3), torch.randn(9, 3)), {"subsets": 0}, ValueError, "subsets"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        kernel_inception_distance(*args, **kwargs)


@pytest.mark.parametrize(
    ("kernel", "error", "match"),
    [
        ({"coef0": float("nan")}, ValueError, "`coef0` to be a finite number, got nan"),
        ({"coef0": float("-inf")}, ValueError, "`coef0` to be a finite number, got -inf"),
        ({"coef0": "1"}, TypeError, "`coef0` to be a finite number, got '1'"),
        ({"gamma": float("inf")}, ValueError, "`gamma` to be a positive finite number, got inf"),
        ({"gamma": -0.5}, ValueError, "`gamma` to be a positive finite number, got -0.5"),
        ({"gamma": False}, TypeError, "`gamma` to be a positive number, got False"),
        ({"degree": 0}, ValueError, "`degree` to be an int >= 1, got 0"),
        ({"degree": 2.5}, TypeError, "`degree` to be an int, got 2.5"),
    ],
)
@pytest.mark.parametrize("function", ["kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"])
def test_bad_kernel_parameters(function, kernel, error, match):
    x = torch.randn(6, 3, dtype=torch.float64)
    call = {
        "kernel_inception_distance": lambda: kernel_inception_distance(x, x + 1, subsets=2, subset_size=4, **kernel),
        "mmd2_unbiased": lambda: mmd2_unbiased(x, x + 1, **kernel),
        "polynomial_kernel": lambda: polynomial_kernel(x, x + 1, **kernel),
    }[function]
    with pytest.raises(error, match=match):
        call()


def test_zero_and_negative_coef0_match_the_definition(rng):
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4)) + 0.3
    for coef0 in (0, -1.5):
        got = mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y), 3, 0.7, coef0).item()
        assert got == pytest.approx(exact_mmd2(x, y, 3, 0.7, coef0), rel=1e-11, abs=1e-13)
