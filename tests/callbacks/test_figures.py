"""The callback's figures: the PCA projection against numpy/scikit-learn, figure contents, TensorBoard round trip."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from sklearn.decomposition import PCA
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lightning_genmetrics.callbacks.figures import (
    PCAProjection,
    matplotlib_available,
    pca_figure,
    pca_projection,
    tradeoff_figure,
)

N, D = 500, 6
POINTS = [(3.0, 20.0, 8.0), (0, 40.0, 5.0), (1.5, 25.0, 7.5), (-0.5, 55.0, 4.0)]


def _anisotropic(rng: np.random.Generator, n: int, scales: list[float], shift: float) -> np.ndarray:
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return rng.standard_normal((n, D)) * scales @ rotation.T + shift * rng.standard_normal(D)


def _samples(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Well-separated top eigenvalues, so the reference axes are determined far beyond 1e-8.
    real = _anisotropic(rng, N, [5.0, 3.0, 1.5, 1.0, 0.5, 0.2], shift=1.0)
    fake = _anisotropic(rng, N, [2.0, 2.5, 1.0, 1.0, 0.3, 0.1], shift=2.0)
    return real, fake


def _statistics(samples: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(samples.mean(0)), torch.from_numpy(np.cov(samples, rowvar=False))


def _project(real: np.ndarray, fake: np.ndarray) -> PCAProjection:
    return pca_projection(*_statistics(real), *_statistics(fake))


def _fix_signs(rows: np.ndarray) -> np.ndarray:
    """The sign convention, applied to reference axes given as rows."""
    largest = np.abs(rows).argmax(axis=1)
    return rows * np.sign(rows[np.arange(len(rows)), largest])[:, None]


def _default_projection() -> PCAProjection:
    real_cov = torch.tensor([[4.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    fake_cov = torch.tensor([[2.0, -0.8, 0.1], [-0.8, 3.0, 0.0], [0.1, 0.0, 0.5]], dtype=torch.float64)
    fake_mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return pca_projection(torch.zeros(3, dtype=torch.float64), real_cov, fake_mean, fake_cov)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    matplotlib_available.cache_clear()
    yield
    matplotlib_available.cache_clear()


def test_projection_matches_numpy_and_sklearn(rng: np.random.Generator) -> None:
    real, fake = _samples(rng)
    projection = _project(real, fake)
    axes = projection.axes.numpy()
    assert axes.shape == (D, 2)
    assert projection.axes.dtype == torch.float64

    sklearn = PCA(n_components=2).fit(real)
    np.testing.assert_allclose(axes.T, _fix_signs(sklearn.components_), atol=1e-8)
    eigenvectors = np.linalg.eigh(np.cov(real, rowvar=False))[1][:, ::-1][:, :2]
    np.testing.assert_allclose(axes.T, _fix_signs(eigenvectors.T), atol=1e-8)
    np.testing.assert_allclose(projection.explained.numpy(), sklearn.explained_variance_ratio_, rtol=1e-10)

    for mean, cov, samples in (
        (projection.real_mean, projection.real_cov, real),
        (projection.fake_mean, projection.fake_cov, fake),
    ):
        projected = (samples - real.mean(0)) @ axes
        np.testing.assert_allclose(mean.numpy(), projected.mean(0), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(cov.numpy(), np.cov(projected, rowvar=False), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        projection.real_cov.numpy(), np.diag(sklearn.explained_variance_), rtol=1e-10, atol=1e-10
    )


def test_projection_sign_convention(rng: np.random.Generator) -> None:
    # Without the rule the eigensolver's sign is a coin flip per axis: 40 axes all agreeing would be chance 2**-40.
    for _ in range(20):
        samples = (
            rng.standard_normal((50, 5)) * [4.0, 3.0, 2.0, 1.0, 0.5] @ np.linalg.qr(rng.standard_normal((5, 5)))[0]
        )
        mean, cov = _statistics(samples)
        axes = pca_projection(mean, cov, mean, cov).axes
        largest = axes.abs().argmax(dim=0)
        assert (axes[largest, torch.arange(2)] > 0).all()


def test_projection_invariant_to_sample_order(rng: np.random.Generator) -> None:
    real, fake = _samples(rng)
    expected = _project(real, fake)
    permuted = _project(real[rng.permutation(N)], fake[rng.permutation(N)])
    for field in ("axes", "explained", "real_mean", "real_cov", "fake_mean", "fake_cov"):
        torch.testing.assert_close(getattr(permuted, field), getattr(expected, field), rtol=1e-10, atol=1e-10)


def test_projection_accepts_float32_and_asymmetry_within_rounding(rng: np.random.Generator) -> None:
    real, fake = _samples(rng)
    mean, cov = _statistics(real)
    noisy = cov.clone()
    noisy[0, 1] += 1e-9
    expected = pca_projection(mean, cov, *_statistics(fake))
    projection = pca_projection(mean.float(), noisy, *(value.float() for value in _statistics(fake)))
    torch.testing.assert_close(projection.axes, expected.axes, rtol=1e-6, atol=1e-6)
    assert projection.fake_cov.dtype == torch.float64


def _arguments(**changes: object) -> dict[str, object]:
    cov = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    arguments: dict[str, object] = {
        "real_mean": torch.zeros(3),
        "real_cov": cov,
        "fake_mean": torch.ones(3),
        "fake_cov": cov,
    }
    return {**arguments, **changes}


def _nan_at(tensor: torch.Tensor, index: tuple[int, ...]) -> torch.Tensor:
    tensor = tensor.clone()
    tensor[index] = math.nan
    return tensor


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"real_mean": [0.0, 0.0, 0.0]}, TypeError, "`real_mean`.*list"),
        ({"fake_cov": np.eye(3)}, TypeError, "`fake_cov`.*ndarray"),
        ({"fake_mean": torch.ones(3, dtype=torch.int64)}, TypeError, "`fake_mean`.*int64"),
        ({"real_mean": torch.zeros(1, 3)}, ValueError, r"`real_mean`.*\(1, 3\)"),
        ({"real_cov": torch.eye(4, dtype=torch.float64)}, ValueError, r"`real_cov`.*\(4, 4\)"),
        ({"fake_mean": torch.ones(4)}, ValueError, r"`fake_mean`.*\[3\].*\(4,\)"),
        ({"fake_cov": torch.eye(3)[:2]}, ValueError, r"`fake_cov`.*\(2, 3\)"),
        (
            {"real_mean": torch.zeros(1), "real_cov": torch.ones(1, 1), "fake_mean": torch.ones(1)},
            ValueError,
            r"`real_mean`.*D >= 2.*\(1,\)",
        ),
        ({"fake_mean": _nan_at(torch.ones(3), (1,))}, ValueError, "`fake_mean`.*NaN"),
        ({"real_cov": _nan_at(torch.eye(3), (0, 2))}, ValueError, r"`real_cov`.*NaN.*\(0, 2\)"),
        (
            {"fake_cov": torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])},
            ValueError,
            "`fake_cov`.*symmetric.*0.5",
        ),
        ({"real_cov": torch.zeros(3, 3)}, ValueError, "`real_cov`.*positive trace.*0"),
    ],
)
def test_projection_rejects_bad_arguments(changes: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        pca_projection(**_arguments(**changes))


def _ellipses(figure: Figure) -> dict[str, Ellipse]:
    return {patch.get_gid(): patch for patch in figure.axes[0].patches if isinstance(patch, Ellipse)}


def _ellipse_covariance(ellipse: Ellipse) -> np.ndarray:
    """The covariance whose 1σ ellipse this is: R diag(a², b²) Rᵀ from the semi-axes a, b and the angle."""
    theta = math.radians(ellipse.angle)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return rotation @ np.diag([(ellipse.width / 2) ** 2, (ellipse.height / 2) ** 2]) @ rotation.T


def test_pca_figure_contents(rng: np.random.Generator) -> None:
    projection = _project(*_samples(rng))
    figure = pca_figure(projection, title="epoch 3")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 1
    ax = figure.axes[0]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["real", "generated"]
    pc1, pc2 = (100 * projection.explained).tolist()
    assert ax.get_xlabel() == f"PC1 ({pc1:.1f}% of real variance)"
    assert ax.get_ylabel() == f"PC2 ({pc2:.1f}% of real variance)"
    assert ax.get_title() == "epoch 3"

    ellipses = _ellipses(figure)
    assert set(ellipses) == {"real 1σ", "real 2σ", "generated 1σ", "generated 2σ"}
    real = ellipses["real 1σ"]
    semi_axes = sorted([real.width / 2, real.height / 2])
    np.testing.assert_allclose(semi_axes, np.sqrt(np.linalg.eigvalsh(projection.real_cov.numpy())), rtol=1e-12)
    np.testing.assert_allclose(real.center, [0.0, 0.0], atol=1e-12)
    for name, mean, cov in (
        ("real", projection.real_mean, projection.real_cov),
        ("generated", projection.fake_mean, projection.fake_cov),
    ):
        for k in (1, 2):
            ellipse = ellipses[f"{name} {k}σ"]
            np.testing.assert_allclose(ellipse.center, mean.numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(_ellipse_covariance(ellipse), k**2 * cov.numpy(), rtol=1e-10, atol=1e-10)
    assert ellipses["real 1σ"].get_edgecolor() != ellipses["generated 1σ"].get_edgecolor()
    assert ellipses["real 1σ"].get_edgecolor() == ellipses["real 2σ"].get_edgecolor()


def test_pca_figure_of_degenerate_covariance() -> None:
    cov = torch.diag(torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64))
    ellipses = _ellipses(pca_figure(pca_projection(torch.zeros(3), cov, torch.zeros(3), torch.zeros(3, 3))))
    assert ellipses["real 1σ"].width == pytest.approx(2 * math.sqrt(2))
    assert ellipses["real 1σ"].height == 0
    assert ellipses["generated 2σ"].width == ellipses["generated 2σ"].height == 0


def test_pca_figure_rejects_non_projection() -> None:
    with pytest.raises(TypeError, match=r"`projection`.*dict"):
        pca_figure({"axes": torch.eye(2)})  # type: ignore[arg-type]


def test_tradeoff_figure_contents() -> None:
    figure = tradeoff_figure(POINTS, title="epoch 2")
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 1
    ax = figure.axes[0]
    (line,) = ax.get_lines()
    ordered = sorted(POINTS)
    np.testing.assert_array_equal(line.get_xdata(), [fid for _, fid, _ in ordered])
    np.testing.assert_array_equal(line.get_ydata(), [score for _, _, score in ordered])
    assert [text.get_text() for text in ax.texts] == ["w=-0.5", "w=0", "w=1.5", "w=3"]
    assert [tuple(text.xy) for text in ax.texts] == [(fid, score) for _, fid, score in ordered]
    assert ax.get_xlabel() == "FID (lower is better)"
    assert ax.get_ylabel() == "Inception Score (higher is better)"
    assert ax.get_title() == "epoch 2"


def test_tradeoff_figure_accepts_one_point_and_numpy_numbers() -> None:
    (line,) = tradeoff_figure([(np.float64(2.0), np.float32(12.5), 9)]).axes[0].get_lines()
    assert line.get_xdata().tolist() == [12.5]
    assert line.get_ydata().tolist() == [9.0]


@pytest.mark.parametrize(
    ("points", "error", "match"),
    [
        ([], ValueError, "`points`.*non-empty"),
        (None, TypeError, "`points`.*None"),
        ("w=1", TypeError, "`points`.*'w=1'"),
        ([(0.0, 10.0)], ValueError, r"`points\[0\]`.*triple.*\(0.0, 10.0\)"),
        ([(0.0, 10.0, 5.0), 3.0], ValueError, r"`points\[1\]`.*triple.*3.0"),
        ([(0.0, 10.0, None)], TypeError, r"`points\[0\]`.*real numbers.*None"),
        ([(0.0, "10", 5.0)], TypeError, r"`points\[0\]`.*real numbers"),
        ([(True, 10.0, 5.0)], TypeError, r"`points\[0\]`.*real numbers.*True"),
        ([(0.0, 10.0, 5.0), (1.0, math.nan, 5.0)], ValueError, r"`points\[1\]`.*finite.*nan"),
        ([(0.0, 10.0, math.inf)], ValueError, r"`points\[0\]`.*finite.*inf"),
        ([(1.0, 10.0, 5.0), (1, 12.0, 6.0)], ValueError, r"distinct.*`points`.*\[1.0, 1.0\]"),
    ],
)
def test_tradeoff_figure_rejects_bad_points(points: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        tradeoff_figure(points)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["pca", "tradeoff"])
def test_figures_round_trip_through_tensorboard(kind: str, tmp_path: Path) -> None:
    figure = pca_figure(_default_projection()) if kind == "pca" else tradeoff_figure(POINTS)
    width, height = (figure.get_size_inches() * figure.dpi).round().astype(int)
    writer = SummaryWriter(str(tmp_path))
    writer.add_figure(f"gen/{kind}", figure, global_step=7)
    writer.close()
    (image,) = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload().Images(f"gen/{kind}")
    assert image.step == 7
    assert (image.width, image.height) == (width, height)
    assert image.encoded_image_string.startswith(b"\x89PNG")


def test_missing_matplotlib_is_reported_with_the_install_command(no_matplotlib: None) -> None:
    assert matplotlib_available() is False
    with pytest.raises(ModuleNotFoundError, match=r"pip install matplotlib \(the `plots` extra\)"):
        pca_figure(_default_projection())
    with pytest.raises(ModuleNotFoundError, match="matplotlib"):
        tradeoff_figure(POINTS)
