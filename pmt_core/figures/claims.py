"""The claims' figures, as named functions of arrays (no run, no pytest).

Each returns a :class:`matplotlib.figure.Figure`; the claims attach them and
the report renders each once. Keeping them here (not in the claims) lets the
unit tests draw every one on small fabricated inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from pmt_core.features.grid import CarrierModulationGrid
from pmt_core.features.scattering import PathTable
from pmt_core.figures.plots import plot_grid

__all__ = [
    "confusion_figure",
    "curves_figure",
    "distribution_figure",
    "explainer_bars_figure",
    "s2_grid_figure",
    "scatter_figure",
    "stack_figures",
    "stage_figure",
]


def s2_grid_figure(values: np.ndarray, paths: PathTable, marks, title: str) -> Figure:
    """Draw the S2 plane of one time-averaged scattering map (log colours), marks crossed."""
    grid = CarrierModulationGrid.from_paths(paths)
    s2_only = np.where(paths.second_order, values, np.nan)
    return plot_grid(grid.lay(s2_only), grid, title=title, label="S2 (time-averaged)",
                     marks=marks, scale="log")


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """Confusion matrix as counts, shaded by the row-normalised rate (recall)."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 * len(class_names) + 2, 1.0 * len(class_names) + 1.5),
                 layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=30, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted technique")
    ax.set_ylabel("true technique")
    ax.set_title(title, fontsize=9)
    for i in ticks:
        for j in ticks:
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", color=colour)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    return fig


def training_figure(histories: Sequence[Sequence[Mapping]], title: str) -> Figure:
    """Training loss and validation macro accuracy per epoch, one line per replicate.

    The kept (best-validation) epoch of each replicate is marked with a dot.
    """
    fig = Figure(figsize=(8.0, 2.8), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for r, history in enumerate(histories):
        epochs = [h["epoch"] for h in history]
        accuracy = [h["val_macro_accuracy"] for h in history]
        colour = f"C{r % 10}"
        loss_ax.plot(epochs, [h["loss"] for h in history], color=colour, lw=1)
        acc_ax.plot(epochs, accuracy, color=colour, lw=1, label=f"replicate {r}")
        best = int(np.argmax(accuracy))  # the first maximum, as training keeps it
        acc_ax.plot(epochs[best], accuracy[best], "o", color=colour, ms=4)
    loss_ax.set(xlabel="epoch", ylabel="training loss (weighted CE)", yscale="log")
    acc_ax.set(xlabel="epoch", ylabel="validation macro accuracy")
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    return fig


def explainer_bars_figure(cells: Mapping[str, dict], title: str, bar=None,
                          ylabel: str = "") -> Figure:
    """One bar per explainer with its 95 % interval; nulls hatched, the bar dashed.

    Parameters
    ----------
    cells : mapping
        Explainer name -> ``{"measured", "interval", "null", "label"}``.
    title, ylabel : str
    bar : float or (low, high), optional
        The claim's bar, drawn as a dashed line (two for a band).
    """
    names = list(cells)
    fig = Figure(figsize=(max(6.0, 0.55 * len(names) + 2), 3.6), layout="constrained")
    ax = fig.subplots()
    values = [cells[n].get("measured") for n in names]
    values = [np.nan if v is None else v for v in values]
    intervals = [cells[n].get("interval") or [np.nan, np.nan] for n in names]
    low = [v - (i[0] if i[0] is not None else v) for v, i in zip(values, intervals, strict=True)]
    high = [(i[1] if i[1] is not None else v) - v for v, i in zip(values, intervals, strict=True)]
    colours = ["0.75" if cells[n].get("null") else "C0" for n in names]
    bars = ax.bar(range(len(names)), values, yerr=[np.abs(low), np.abs(high)], color=colours,
                  capsize=3, ecolor="0.2")
    for b, n in zip(bars, names, strict=True):
        if cells[n].get("null"):
            b.set_hatch("//")
    for value in (bar if isinstance(bar, tuple) else (bar,)):
        if value is not None:
            ax.axhline(value, color="crimson", ls="--", lw=1)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(range(len(names)), [cells[n].get("label", n) for n in names], rotation=35,
                  ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return fig


def distribution_figure(groups: Mapping[str, np.ndarray], title: str, ylabel: str,
                        bar=None, ylim=None) -> Figure:
    """Box plots of per-example values, one box per group (class or explainer)."""
    names = [n for n, v in groups.items() if np.size(v)]
    fig = Figure(figsize=(max(5.0, 0.8 * len(names) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    data = [np.asarray(groups[n], float)[np.isfinite(groups[n])] for n in names]
    if data:
        ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    for value in (bar if isinstance(bar, tuple) else (bar,)):
        if value is not None:
            ax.axhline(value, color="crimson", ls="--", lw=1)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return fig


def curves_figure(x: np.ndarray, curves: Mapping[str, np.ndarray], title: str, xlabel: str,
                  ylabel: str) -> Figure:
    """Mean line and interquartile band of per-example curves, one per name."""
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, float)  # (examples, len(x))
        q = np.nanquantile(values, [0.25, 0.75], axis=0)
        ax.plot(x, np.nanmean(values, axis=0), marker=".", color=f"C{k}", label=name)
        ax.fill_between(x, q[0], q[1], color=f"C{k}", alpha=0.15, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return fig


def stage_figure(stages: Sequence[str], series: Mapping[str, np.ndarray], title: str,
                 bar: float | None = None) -> Figure:
    """Mean rho per randomisation stage (x), one line per series (stages x examples)."""
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(stages))
    for k, (name, values) in enumerate(series.items()):
        values = np.asarray(values, float)
        q = np.nanquantile(values, [0.25, 0.75], axis=1)
        ax.plot(x, np.nanmean(values, axis=1), marker="o", color=f"C{k}", label=name)
        ax.fill_between(x, q[0], q[1], color=f"C{k}", alpha=0.15, lw=0)
    if bar is not None:
        ax.axhline(bar, color="crimson", ls="--", lw=1, label=f"bar {bar}")
        ax.axhline(-bar, color="crimson", ls="--", lw=1)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_xticks(x, stages, fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman rho with the trained maps")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def scatter_figure(x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], title: str,
                   xlabel: str, ylabel: str, log: bool = True,
                   diagonal_octaves: float | None = None,
                   bands: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Per-example points, one colour per group (e.g. true rate against peak lambda2).

    Parameters
    ----------
    diagonal_octaves : float, optional
        Draw y = x and the tolerance lines y = x * 2**(+-diagonal_octaves) (log axes).
    bands : mapping, optional
        Group -> (low, high) x range drawn as a bar of the group's colour under the
        points (the techniques' a-priori bands).
    """
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    for row, name in enumerate(x):
        points = ax.scatter(x[name], y[name], s=8, alpha=0.6, label=name)
        if bands and name in bands:  # one lane per group: bands overlap
            ax.axvspan(*bands[name], ymin=0.005 + 0.018 * row, ymax=0.018 + 0.018 * row,
                       color=points.get_facecolor()[0], alpha=0.9)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    if diagonal_octaves is not None:
        # on log-log axes y = k x is a straight line of slope 1 on the screen
        ax.axline((1.0, 1.0), (10.0, 10.0), color="k", lw=1, label="peak = rate")
        for sign in (-1.0, 1.0):
            k = 2.0 ** (sign * diagonal_octaves)
            ax.axline((1.0, k), (10.0, 10.0 * k), color="k", lw=0.8, ls=":",
                      label=f"within {diagonal_octaves:g} octave" if sign > 0 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2)
    return fig


def stack_figures(figures: Sequence[Figure]) -> Figure:
    """Paste several rendered figures into one, top to bottom (one PNG in the report)."""
    import io

    from matplotlib.image import imread

    from pmt_core.figures.plots import figure_to_png

    images = [imread(io.BytesIO(figure_to_png(f, dpi=80)), format="png") for f in figures]
    width = max(i.shape[1] for i in images)
    height = sum(i.shape[0] for i in images)
    out = Figure(figsize=(width / 80, height / 80), dpi=80)
    top = 0
    for image in images:
        ax = out.add_axes((0, 1 - (top + image.shape[0]) / height, image.shape[1] / width,
                           image.shape[0] / height))
        ax.imshow(image)
        ax.set_axis_off()
        top += image.shape[0]
    return out
