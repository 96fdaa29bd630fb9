"""Figures for the callback: the generated features' Gaussian beside the real one, and the guidance trade-off.

A Fréchet distance is one number for two Gaussians in feature space (D = 2048 for Inception); it does not
say whether the generated distribution is shifted, too narrow (mode collapse) or too wide. ``pca_projection``
maps both Gaussians into a plane and ``pca_figure`` draws their means and 1σ/2σ ellipses there.

The plane is spanned by the top two principal axes of the *real* covariance, not of the generated or pooled
statistics: the real statistics stay fixed during a run, so the basis and the coordinates stay fixed too,
and figures logged at different epochs can be laid side by side (a basis fitted to the generated features
would turn with the model). They are also the directions in which the real data varies most, so a model
that misses that variation shows as generated ellipses smaller than the real ones. Eigenvectors are defined
only up to sign; each is flipped so that its largest-magnitude component is positive, since otherwise the
eigensolver may mirror the picture between evaluations. Coordinates are centred on the real mean.

matplotlib is optional (``pip install matplotlib``, the ``plots`` extra): it is imported only to draw, and
figures are plain ``matplotlib.figure.Figure`` objects without pyplot, so no global state is touched and
drawing works without a display and off the main thread.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lightning_genmetrics._checks import check_finite, check_tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Covariances accumulated in float64 are symmetric to ~1e-15 relative, float32 ones to ~1e-7; a larger gap
# means a wrong matrix (not a covariance, or a mix-up of arguments), not rounding.
_SYMMETRY_TOLERANCE = 1e-6
_COLORS = {"real": "tab:blue", "generated": "tab:orange"}
_FIGSIZE = (6.0, 4.5)


@functools.cache
def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (checked once, then cached).

    Example:
        >>> matplotlib_available()
        True
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _require_matplotlib() -> None:
    if not matplotlib_available():
        raise ModuleNotFoundError("Drawing figures needs matplotlib: pip install matplotlib (the `plots` extra).")


@dataclass(frozen=True, eq=False)
class PCAProjection:
    """Real and generated Gaussians on the real covariance's top two principal axes (float64 CPU tensors).

    Attributes:
        axes: the two axes as columns ``[D, 2]``, each with its largest-magnitude component positive.
        explained: the fraction of the real total variance (trace of ``real_cov``) along each axis, ``[2]``.
        real_mean: the real mean in these coordinates, ``[2]``: zero, the origin is the real mean.
        real_cov: ``axesᵀ real_cov axes``, ``[2, 2]``: diagonal, the top two eigenvalues.
        fake_mean: ``axesᵀ (fake_mean - real_mean)``, ``[2]``.
        fake_cov: ``axesᵀ fake_cov axes``, ``[2, 2]``.

    Example:
        >>> import torch
        >>> cov = torch.diag(torch.tensor([1.0, 9.0], dtype=torch.float64))
        >>> pca_projection(torch.zeros(2), cov, torch.ones(2), cov).real_cov
        tensor([[9., 0.],
                [0., 1.]], dtype=torch.float64)
    """

    axes: Tensor
    explained: Tensor
    real_mean: Tensor
    real_cov: Tensor
    fake_mean: Tensor
    fake_cov: Tensor


def _check_gaussian(mean: Any, cov: Any, mean_name: str, cov_name: str, dim: int | None) -> tuple[Tensor, Tensor]:
    """Validate a mean ``[D]`` (``D >= 2``, or ``D == dim``) and a symmetric covariance ``[D, D]``; return float64."""
    for name, value in ((mean_name, mean), (cov_name, cov)):
        check_tensor(value, name)
        if not value.is_floating_point():
            raise TypeError(f"Expected `{name}` to be a floating point tensor, got dtype {value.dtype}.")
    if mean.ndim != 1 or mean.shape[0] < 2 or (dim is not None and mean.shape[0] != dim):
        expected = "[D] with D >= 2" if dim is None else f"[{dim}] to match `real_mean`"
        raise ValueError(f"Expected `{mean_name}` to have shape {expected}, got shape {tuple(mean.shape)}.")
    d = mean.shape[0]
    if cov.shape != (d, d):
        raise ValueError(
            f"Expected `{cov_name}` to have shape [{d}, {d}] to match `{mean_name}`, got shape {tuple(cov.shape)}."
        )
    check_finite(mean, mean_name)
    check_finite(cov, cov_name)
    mean, cov = (value.detach().to("cpu", torch.float64) for value in (mean, cov))
    asymmetry, scale = (cov - cov.T).abs().max().item(), cov.abs().max().item()
    if asymmetry > _SYMMETRY_TOLERANCE * scale:
        raise ValueError(
            f"Expected `{cov_name}` to be symmetric, got max |C - Cᵀ| = {asymmetry:.3g} for entries up to {scale:.3g}."
        )
    return mean, (cov + cov.T) / 2


def principal_axes(real_cov: Tensor) -> tuple[Tensor, Tensor]:
    """The top two principal axes ``[D, 2]`` of ``real_cov`` (sign-fixed) and the fraction of its trace on each.

    One ``eigh`` of ``D × D`` (about a second at D = 2048 on two CPU cores): compute it once while the real
    covariance does not change and pass it to :func:`pca_projection` as ``axes``.

    Raises:
        TypeError: ``real_cov`` not a floating point tensor.
        ValueError: not ``[D, D]`` with ``D >= 2``, NaN/Inf, asymmetric, or without positive trace.

    Example:
        >>> import torch
        >>> axes, explained = principal_axes(torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64)))
        >>> axes.tolist(), explained.tolist()
        ([[0.0, 1.0], [1.0, 0.0]], [0.75, 0.25])
    """
    check_tensor(real_cov, "real_cov")
    if real_cov.ndim != 2 or real_cov.shape[0] != real_cov.shape[1] or real_cov.shape[0] < 2:
        raise ValueError(f"Expected `real_cov` to have shape [D, D] with D >= 2, got shape {tuple(real_cov.shape)}.")
    zeros = torch.zeros(real_cov.shape[0], dtype=torch.float64)
    _, real_cov = _check_gaussian(zeros, real_cov, "real_mean", "real_cov", None)
    total = torch.trace(real_cov).item()
    if not total > 0:
        raise ValueError(f"Expected `real_cov` to have a positive trace (total variance), got {total:g}.")
    eigenvalues, eigenvectors = torch.linalg.eigh(real_cov)
    axes = eigenvectors[:, [-1, -2]]
    # The eigensolver's sign can flip with the last bits of the input; a fixed rule keeps epochs comparable.
    largest = axes.abs().argmax(dim=0)
    axes = axes * axes[largest, torch.arange(2)].sign()
    return axes, eigenvalues[[-1, -2]] / total


def pca_projection(
    real_mean: Tensor,
    real_cov: Tensor,
    fake_mean: Tensor,
    fake_cov: Tensor,
    *,
    axes: tuple[Tensor, Tensor] | None = None,
) -> PCAProjection:
    """Project two Gaussians onto the top two principal axes of the real covariance, centred on the real mean.

    Args:
        real_mean: mean of the real features, ``[D]`` with ``D >= 2``.
        real_cov: covariance of the real features, ``[D, D]``, symmetric.
        fake_mean: mean of the generated features, ``[D]``.
        fake_cov: covariance of the generated features, ``[D, D]``, symmetric.
        axes: ``principal_axes(real_cov)`` when already computed.

    Returns:
        A ``PCAProjection``: the axes ``V``, the explained fractions, ``Vᵀ(m - real_mean)`` and ``Vᵀ C V`` per side.

    Raises:
        TypeError: an argument is not a floating point tensor.
        ValueError: wrong or inconsistent shapes, ``D < 2``, NaN/Inf, an asymmetric covariance, or a
            ``real_cov`` without positive trace.

    Example:
        >>> import torch
        >>> real_cov = torch.diag(torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64))
        >>> fake_mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
        >>> p = pca_projection(torch.zeros(3), real_cov, fake_mean, torch.eye(3, dtype=torch.float64))
        >>> p.axes
        tensor([[0., 1.],
                [1., 0.],
                [0., 0.]], dtype=torch.float64)
        >>> p.explained
        tensor([0.7619, 0.1905], dtype=torch.float64)
        >>> p.fake_mean
        tensor([-1.0000,  0.5000], dtype=torch.float64)
    """
    real_mean, real_cov = _check_gaussian(real_mean, real_cov, "real_mean", "real_cov", None)
    fake_mean, fake_cov = _check_gaussian(fake_mean, fake_cov, "fake_mean", "fake_cov", real_mean.shape[0])
    vectors, explained = principal_axes(real_cov) if axes is None else axes
    if tuple(vectors.shape) != (real_mean.shape[0], 2):
        raise ValueError(f"Expected `axes` of shape [{real_mean.shape[0]}, 2], got {tuple(vectors.shape)}.")
    axes = vectors.to(real_cov)
    return PCAProjection(
        axes=axes,
        explained=explained.to(real_cov),
        real_mean=torch.zeros(2, dtype=torch.float64),
        real_cov=axes.T @ real_cov @ axes,
        fake_mean=axes.T @ (fake_mean - real_mean),
        fake_cov=axes.T @ fake_cov @ axes,
    )


def pca_figure(
    projection: PCAProjection, *, title: str = "Features on the real data's top two principal axes"
) -> Figure:
    """Draw the real and generated means and their 1σ (solid) and 2σ (dashed) covariance ellipses.

    Args:
        projection: the output of ``pca_projection``.
        title: the axes title.

    Returns:
        A ``matplotlib.figure.Figure`` with one axes, not registered with pyplot.

    Raises:
        TypeError: ``projection`` is not a ``PCAProjection``.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> import torch
        >>> cov = torch.eye(2, dtype=torch.float64)
        >>> figure = pca_figure(pca_projection(torch.zeros(2), cov, torch.ones(2), 2 * cov))
        >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
        ['real', 'generated']
    """
    if not isinstance(projection, PCAProjection):
        raise TypeError(f"Expected `projection` to be a PCAProjection, got {type(projection).__name__}.")
    _require_matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    figure = Figure(figsize=_FIGSIZE, layout="constrained")
    ax = figure.add_subplot()
    sides = (
        ("real", projection.real_mean, projection.real_cov, "o"),
        ("generated", projection.fake_mean, projection.fake_cov, "x"),
    )
    for name, mean, cov, marker in sides:
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        # Rounding can leave the eigenvalue of a degenerate direction a hair below zero.
        minor, major = eigenvalues.clamp_min(0.0).sqrt().tolist()
        angle = math.degrees(math.atan2(eigenvectors[1, 1].item(), eigenvectors[0, 1].item()))
        center = tuple(mean.tolist())
        ax.plot(*center, marker=marker, linestyle="none", color=_COLORS[name], label=name)
        for k, style in ((1, "-"), (2, "--")):
            ellipse = Ellipse(center, 2 * k * major, 2 * k * minor, angle=angle, fill=False, linestyle=style)
            ellipse.set(edgecolor=_COLORS[name], gid=f"{name} {k}σ")
            ax.add_patch(ellipse)
    pc1, pc2 = (100 * projection.explained).tolist()
    ax.set_xlabel(f"PC1 ({pc1:.1f}% of real variance)")
    ax.set_ylabel(f"PC2 ({pc2:.1f}% of real variance)")
    ax.legend(title="ellipses: 1σ, 2σ (dashed)")
    ax.set_title(title)
    return figure


def _check_points(points: Any) -> list[tuple[float, float, float]]:
    """Validate ``(w, fid, inception_score)`` triples; return them as floats sorted by ``w``."""
    if isinstance(points, (str, bytes)) or not isinstance(points, Iterable):
        raise TypeError(f"Expected `points` to be a sequence of (w, fid, inception_score), got {points!r}.")
    rows = list(points)
    if not rows:
        raise ValueError(f"Expected `points` to be non-empty, got {points!r}.")
    checked = []
    for i, point in enumerate(rows):
        if isinstance(point, (str, bytes)) or not isinstance(point, Sequence) or len(point) != 3:
            raise ValueError(f"Expected `points[{i}]` to be a (w, fid, inception_score) triple, got {point!r}.")
        if not all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in point):
            raise TypeError(f"Expected `points[{i}]` to hold real numbers, got {point!r}.")
        if not all(math.isfinite(value) for value in point):
            raise ValueError(f"Expected `points[{i}]` to be finite, got {point!r}.")
        checked.append((float(point[0]), float(point[1]), float(point[2])))
    strengths = [w for w, _, _ in checked]
    if len(set(strengths)) != len(strengths):
        raise ValueError(f"Expected distinct guidance strengths in `points`, got w = {strengths}.")
    return sorted(checked)


def tradeoff_figure(
    points: Iterable[Sequence[float]],
    *,
    title: str = "Guidance trade-off",
    labels: Sequence[str] = ("FID (lower is better)", "Inception Score (higher is better)"),
) -> Figure:
    """Plot one value against another over a guidance sweep (by default FID against Inception Score), joined in
    increasing ``w`` and labelled by ``w``.

    Args:
        points: ``(w, x, y)`` triples (by default ``(w, fid, inception_score)``), in any order, with distinct ``w``.
        title: the axes title.
        labels: the x and y axis labels.

    Returns:
        A ``matplotlib.figure.Figure`` with one axes, not registered with pyplot.

    Raises:
        TypeError: ``points`` is not iterable, or a value is not a real number (``None`` included).
        ValueError: ``points`` is empty, a point is not a triple, a value is NaN/Inf, or ``w`` repeats.
        ModuleNotFoundError: matplotlib is not installed.

    Example:
        >>> figure = tradeoff_figure([(3.0, 20.0, 8.0), (0.0, 40.0, 5.0), (1.5, 25.0, 7.0)])
        >>> [text.get_text() for text in figure.axes[0].texts]
        ['w=0', 'w=1.5', 'w=3']
    """
    checked = _check_points(points)
    _require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGSIZE, layout="constrained")
    ax = figure.add_subplot()
    ax.plot([fid for _, fid, _ in checked], [score for _, _, score in checked], marker="o", color=_COLORS["generated"])
    for w, fid, score in checked:
        ax.annotate(f"w={w:g}", (fid, score), xytext=(4, 4), textcoords="offset points", fontsize="small")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    return figure
