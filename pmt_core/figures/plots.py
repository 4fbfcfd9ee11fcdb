"""Figures shared by the report and the command line: grids, spectrograms.

Every figure is a :class:`matplotlib.figure.Figure` made without pyplot, so no
global state changes and importing this module never switches the user's
matplotlib backend (a notebook keeps its own); PNGs are rendered by the Agg
canvas, which needs no display.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure

from pmt_core.features.grid import CarrierModulationGrid


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges between log-spaced centres (geometric midpoints, ends mirrored)."""
    logc = np.log(centres)
    mid = (logc[1:] + logc[:-1]) / 2
    first = logc[0] - (mid[0] - logc[0])
    last = logc[-1] + (logc[-1] - mid[-1])
    return np.exp(np.concatenate([[first], mid, [last]]))


def plot_grid(
    values: np.ma.MaskedArray,
    grid: CarrierModulationGrid,
    title: str = "",
    label: str = "",
    marks: list[tuple[float, float]] | None = None,
    scale: str = "linear",
    axes=None,
):
    """Draw a carrier x modulation grid: an S1 strip beside the S2 plane.

    Parameters
    ----------
    values : numpy.ma.MaskedArray, shape grid.shape
        Output of :meth:`CarrierModulationGrid.lay` for one map.
    grid : CarrierModulationGrid
    title, label : str
        Figure title and colour-bar label.
    marks : list of (carrier_hz, modulation_hz), optional
        Points to mark with a cross (for example the true (w1, w2) of a test tone);
        a NaN modulation marks the carrier only.
    scale : {"linear", "log", "signed"}
        Colour scale: linear, logarithmic (positive data) or diverging around 0.
    axes : pair of matplotlib axes, optional
        Draw into (S1 axis, S2 axis) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if axes is None:
        axes = Figure(figsize=(6.4, 4.2)).subplots(
            1, 2, sharey=True, gridspec_kw={"width_ratios": [1, 12]})
    ax_s1, ax_s2 = axes
    fig = ax_s2.figure
    data = np.ma.masked_invalid(values)
    finite = data.compressed()
    if scale == "log":
        positive = finite[finite > 0]
        vmax = positive.max() if positive.size else 1.0
        norm = LogNorm(vmin=max(vmax * 1e-4, positive.min() if positive.size else 1e-4), vmax=vmax)
        data = np.ma.masked_less_equal(data, 0)
        cmap = "magma"
    elif scale == "signed":
        bound = np.abs(finite).max() if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
        cmap = "RdBu_r"
    else:
        norm = None
        cmap = "viridis"
    y_edges = _log_edges(grid.carrier_hz)
    ax_s1.pcolormesh([0, 1], y_edges, data[:, :1], norm=norm, cmap=cmap)
    mesh = ax_s2.pcolormesh(_log_edges(grid.modulation_hz), y_edges, data[:, 1:], norm=norm,
                            cmap=cmap)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_facecolor("#e8e8e8")  # masked cells: no scattering path there
    ax_s1.set_xticks([0.5], ["S1"])
    ax_s1.set_ylabel("carrier $\\lambda_1$ (Hz)")
    ax_s2.set_xscale("log")
    ax_s2.set_xlabel("modulation $\\lambda_2$ (Hz)")
    for carrier, modulation in marks or []:
        if np.isfinite(modulation):
            ax_s2.plot(modulation, carrier, marker="x", color="cyan", ms=10, mew=2)
        else:
            ax_s1.axhline(carrier, color="cyan", lw=1.5)
    fig.colorbar(mesh, ax=list(axes), label=label, fraction=0.05, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_log_spectrogram(audio: np.ndarray, sample_rate: int, title: str = "", ax=None):
    """Draw a log-frequency power spectrogram (dB) of a mono signal."""
    from scipy.signal import spectrogram

    if ax is None:
        ax = Figure(figsize=(4.5, 3.2)).subplots()
    freqs, times, power = spectrogram(audio, fs=sample_rate, nperseg=2048, noverlap=1536)
    keep = freqs >= 30
    db = 10 * np.log10(power[keep] + 1e-12)
    ax.pcolormesh(times, freqs[keep], db, vmin=db.max() - 80, vmax=db.max(), cmap="magma",
                  shading="auto")
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def figure_to_png(fig, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes (Agg canvas); a pyplot figure is closed too."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)  # attaches the canvas; the figure's own one may be headless
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig, "number", None) is not None:  # made by pyplot: release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


def figure_to_data_uri(fig, dpi: int = 100) -> str:
    """Render a figure as a base64 PNG data URI (self-contained HTML) and close it."""
    return "data:image/png;base64," + base64.b64encode(figure_to_png(fig, dpi)).decode("ascii")
