"""The paper's Figures 1 and 2, and one spectrogram per technique, on our data.

Pure plotting: every function takes arrays (time-averaged scattering coefficients,
time-averaged relevance maps, audio) and returns a :class:`matplotlib.figure.Figure`;
nothing here depends on pytest or on a trained model. The validation suite builds
the inputs from its fixtures (``validation/test_relevance_claims.py``,
``validation/test_data_claims.py``).

* :func:`figure1` - Wang et al. Fig. 1: for one example per technique, (a) its
  log-spectrogram, (b) its time-averaged scattering coefficients S1 + S2 and (c..)
  its local relevance map under each LRP rule, on the carrier (lambda1) x modulation
  (lambda2) grid, with the example's true (f0, modulation rate) marked.
* :func:`figure2` - Wang et al. Fig. 2: per class, the mean scattering grid over
  its test examples (top) and the top-n aggregated relevance counts (Eq. 13) under
  each rule, with the technique's physical modulation band marked along lambda2.
* :func:`technique_spectrograms` - one log-spectrogram per technique.

Helpers :func:`pick_examples`, :func:`audio_example` and :func:`class_aggregates`
build the inputs from per-example arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pmt_core.explain.relevance import top_n_aggregate
from pmt_core.features.grid import CarrierModulationGrid
from pmt_core.features.scattering import PathTable
from pmt_core.figures.plots import plot_grid, plot_log_spectrogram
from pmt_core.techniques import MODULATION_BAND_HZ

__all__ = [
    "A4_HZ",
    "composite_label",
    "AudioExample",
    "ClassAggregate",
    "LocalExample",
    "audio_example",
    "class_aggregates",
    "figure1",
    "figure2",
    "pick_examples",
    "technique_spectrograms",
]

#: The paper's Fig. 1 shows examples at A4 (A#4 for trill).
A4_HZ = 440.0

def composite_label(name: str) -> str:
    """Short panel title of an LRP composite (its registry label, else its name)."""
    from pmt_core.explain.lrp import COMPOSITES

    spec = COMPOSITES.get(name)
    return spec.label if spec is not None else name

# Colours of the ground-truth marks: visible on magma/viridis (dark) and on the
# diverging RdBu_r map (white at zero).
_TRUTH_ON_DARK = "cyan"
_TRUTH_ON_SIGNED = "black"
_BAND_COLOUR = "white"
_MEDIAN_COLOUR = "red"


# ------------------------------------------------------------------ inputs ----
@dataclass(frozen=True, kw_only=True)
class AudioExample:
    """One example's audio and ground truth, for a spectrogram panel.

    Attributes
    ----------
    technique : str
    audio : numpy.ndarray or None
        Mono signal; None draws an empty panel.
    sample_rate : int
        Hz.
    f0_hz, modulation_rate_hz : float
        Ground truth; NaN when unknown (nothing is marked then).
    description : str
        Free text under the technique name (instrument, split, prediction ...).
    """

    technique: str
    audio: np.ndarray | None = None
    sample_rate: int = 44100
    f0_hz: float = math.nan
    modulation_rate_hz: float = math.nan
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class LocalExample(AudioExample):
    """One example of Figure 1: audio, scattering and relevance, all time-averaged.

    Attributes
    ----------
    scattering : numpy.ndarray, shape (paths,)
        Time-averaged raw scattering coefficients (kymatio's scale undone).
    relevance : mapping of str to numpy.ndarray, shape (paths,)
        Rule -> time-averaged signed relevance (``relevance.local_maps``).
    """

    scattering: np.ndarray
    relevance: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClassAggregate:
    """One class of Figure 2.

    Attributes
    ----------
    technique : str
    mean_scattering : numpy.ndarray, shape (paths,)
        Mean over the class's examples of the time-averaged scattering coefficients.
    counts : mapping of str to numpy.ndarray, shape (paths,)
        Rule -> top-n position counts (``relevance.top_n_aggregate``).
    n_examples : int
    top_n : int
    median_rate_hz : float
        Median (log scale) ground-truth modulation rate; NaN when unknown.
    """

    technique: str
    mean_scattering: np.ndarray
    counts: Mapping[str, np.ndarray] = field(default_factory=dict)
    n_examples: int = 0
    top_n: int = 5
    median_rate_hz: float = math.nan


def _finite(x) -> float:
    """``x`` as a float, NaN for None, non-numbers, non-positive or non-finite values."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) and x > 0 else math.nan


def pick_examples(
    class_names: Sequence[str],
    true,
    pred=None,
    f0_hz=None,
    target_hz: float = A4_HZ,
) -> dict[str, int | None]:
    """Choose one example per class, as in the paper's Fig. 1.

    Among the correctly classified examples of the class (all of its examples if
    none is, or if ``pred`` is None), the one whose f0 is nearest ``target_hz`` on a
    log scale; without any known f0, the first of them.

    Parameters
    ----------
    class_names : sequence of str
        Name of each label.
    true : array-like of int, shape (examples,)
        True label of each example.
    pred : array-like of int, shape (examples,), optional
        Predicted label; None treats every example as correct.
    f0_hz : array-like, shape (examples,), optional
        Pitch (Hz); NaN where unknown.
    target_hz : float
        Pitch to aim at (A4 = 440 Hz).

    Returns
    -------
    dict of str to int or None
        Class name -> index into the example axis; None for a class with no example.
    """
    true = np.asarray(true).astype(int).ravel()
    f0 = np.full(true.shape, np.nan) if f0_hz is None else np.asarray(f0_hz, float).ravel()
    if f0.shape != true.shape:
        raise ValueError(f"{f0.size} f0 values for {true.size} labels")
    correct = np.ones(true.shape, bool) if pred is None else true == np.asarray(pred).ravel()
    known = np.isfinite(f0) & (f0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(known, np.abs(np.log2(f0 / target_hz)), np.inf)
    chosen: dict[str, int | None] = {}
    for k, name in enumerate(class_names):
        members = np.flatnonzero(true == k)
        good = members[correct[members]]
        pool = good if good.size else members
        if pool.size == 0:
            chosen[name] = None
            continue
        # argmin over inf distances returns the first: "any" when no f0 is known.
        chosen[name] = int(pool[np.argmin(distance[pool])])
    return chosen


def audio_example(
    row,
    sample_rate: int = 44100,
    n_samples: int = 2**18,
    technique: str | None = None,
    description: str | None = None,
) -> AudioExample:
    """Regenerate (or read) one data set row's audio with its ground truth.

    Parameters
    ----------
    row : pandas.Series or mapping
        A data set row (``path``, ``technique``, optional ``f0_hz``,
        ``modulation_rate_hz``, ``instrument``).
    sample_rate, n_samples : int
        As the scattering transform sees the audio.
    technique, description : str, optional
        Default: the row's technique; instrument name.

    Returns
    -------
    AudioExample
    """
    from pmt_core.data.sources import example_audio

    def get(key):
        return row[key] if key in row else None

    audio = example_audio(row, sample_rate=sample_rate, n_samples=n_samples)
    if description is None:
        description = str(get("instrument") or "")
    return AudioExample(
        technique=technique or str(get("technique")),
        audio=np.asarray(audio, dtype=np.float64),
        sample_rate=int(sample_rate),
        f0_hz=_finite(get("f0_hz")),
        modulation_rate_hz=_finite(get("modulation_rate_hz")),
        description=description,
    )


def class_aggregates(
    class_names: Sequence[str],
    labels,
    scattering,
    maps: Mapping[str, np.ndarray],
    rates_hz=None,
    n: int = 5,
) -> dict[str, ClassAggregate | None]:
    """Per-class inputs of :func:`figure2` from per-example arrays.

    Parameters
    ----------
    class_names : sequence of str
    labels : array-like of int, shape (examples,)
        Class of each example (index into ``class_names``).
    scattering : array-like, shape (examples, paths)
        Time-averaged scattering coefficients.
    maps : mapping of str to array-like, shape (examples, paths)
        Rule -> time-averaged relevance.
    rates_hz : array-like, shape (examples,), optional
        Ground-truth modulation rates (NaN where unknown).
    n : int
        Top-n of the aggregation (the paper's 5).

    Returns
    -------
    dict of str to ClassAggregate or None
        None for a class with no example.
    """
    labels = np.asarray(labels).astype(int).ravel()
    scattering = np.asarray(scattering, dtype=np.float64)
    if scattering.shape[0] != labels.size:
        raise ValueError(f"{scattering.shape[0]} scattering maps for {labels.size} labels")
    rates = (np.full(labels.size, np.nan) if rates_hz is None
             else np.asarray(rates_hz, dtype=np.float64).ravel())
    counts = {rule: top_n_aggregate(m, labels, n=n, n_classes=len(class_names))
              for rule, m in maps.items()}
    out: dict[str, ClassAggregate | None] = {}
    for k, name in enumerate(class_names):
        m = labels == k
        if not m.any():
            out[name] = None
            continue
        r = rates[m]
        r = r[np.isfinite(r) & (r > 0)]
        out[name] = ClassAggregate(
            technique=name,
            mean_scattering=scattering[m].mean(axis=0),
            counts={rule: c[k] for rule, c in counts.items()},
            n_examples=int(m.sum()),
            top_n=n,
            # rates are geometric: median on a log scale (same as linear for odd n)
            median_rate_hz=float(np.exp2(np.median(np.log2(r)))) if r.size else math.nan,
        )
    return out


# ----------------------------------------------------------------- drawing ----
def _as_grid(paths: PathTable | CarrierModulationGrid) -> CarrierModulationGrid:
    return paths if isinstance(paths, CarrierModulationGrid) else \
        CarrierModulationGrid.from_paths(paths)


def _rules_of(items, attribute: str, rules: Sequence[str] | None) -> list[str]:
    """Rules to draw: given, else every key seen, in order of first appearance."""
    if rules is not None:
        return list(rules)
    seen: list[str] = []
    for item in items:
        for rule in getattr(item, attribute) if item is not None else ():
            if rule not in seen:
                seen.append(rule)
    return seen


def _grid_axes(panel, top: float = 0.84):
    """(S1 strip, S2 plane) axes of one grid panel (a subfigure), sharing the carrier axis.

    One subfigure per panel with fixed relative margins, as ``plot_grid`` lays out a
    figure of its own: constrained layout over many panels opened gaps as wide as
    the carrier tick labels between strip and plane.
    """
    ax_s1, ax_s2 = panel.subplots(1, 2, sharey=True,
                                  gridspec_kw={"width_ratios": [1, 12], "wspace": 0.12})
    panel.subplots_adjust(left=0.2, right=0.86, bottom=0.2, top=top)
    return ax_s1, ax_s2


def _draw_grid(values, grid, axes, title, label, scale, integer=False):
    """plot_grid into ``axes`` with a panel title (plot_grid's title is a suptitle).

    ``integer`` puts the colour bar's ticks on whole numbers (counts).
    """
    fig = axes[1].figure
    plot_grid(grid.lay(np.asarray(values, dtype=np.float64)), grid, label=label, scale=scale,
              axes=axes)
    axes[1].set_title(title, fontsize=8)
    colourbar = fig.axes[-1]  # plot_grid's colour bar, the axis it added last
    colourbar.tick_params(which="both", labelsize=6)
    if integer:
        colourbar.yaxis.set_major_locator(MaxNLocator(integer=True))
    colourbar.yaxis.label.set_size(7)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(7)
        ax.yaxis.label.set_size(7)


def _keep_limits(axes):
    """Snapshot of the axes' limits, so that marks outside the grid do not rescale it."""
    return [(ax, ax.get_xlim(), ax.get_ylim()) for ax in axes]


def _restore_limits(snapshot):
    for ax, xlim, ylim in snapshot:
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)


def _mark_truth(axes, f0_hz: float, rate_hz: float, colour: str) -> None:
    """Mark the true (lambda1 = f0, lambda2 = rate): lines for each, a cross where both."""
    ax_s1, ax_s2 = axes
    snapshot = _keep_limits(axes)
    if math.isfinite(rate_hz):
        ax_s2.axvline(rate_hz, color=colour, ls="--", lw=0.9)
    if math.isfinite(f0_hz):
        ax_s1.axhline(f0_hz, color=colour, ls=":", lw=1.2)
        ax_s2.axhline(f0_hz, color=colour, ls=":", lw=0.9)
    if math.isfinite(rate_hz) and math.isfinite(f0_hz):
        ax_s2.plot(rate_hz, f0_hz, marker="x", color=colour, ms=8, mew=1.8)
    _restore_limits(snapshot)


def _mark_band(ax_s2, technique: str, median_rate_hz: float) -> None:
    """Mark the technique's physical lambda2 band and the median true rate on an S2 plane."""
    snapshot = _keep_limits([ax_s2])
    band = MODULATION_BAND_HZ.get(technique)
    if band is not None:
        lo, hi = band
        for edge in (lo, hi):
            ax_s2.axvline(edge, color=_BAND_COLOUR, ls="--", lw=0.9)
        # A bar above the plane says which side of the two edges is the band.
        ax_s2.axvspan(lo, hi, ymin=1.0, ymax=1.05, color="tab:green", clip_on=False, lw=0)
    if math.isfinite(median_rate_hz):
        ax_s2.axvline(median_rate_hz, color=_MEDIAN_COLOUR, lw=1.1)
    _restore_limits(snapshot)


def _panels(fig, n_rows: int, n_cols: int, heights=None, widths=None):
    """Return a gridspec filling the figure, whose cells become subfigures (panels)."""
    return fig.add_gridspec(n_rows, n_cols, left=0, right=1, bottom=0, top=1, wspace=0,
                            hspace=0, height_ratios=heights, width_ratios=widths)


def _placeholder(panel, text: str):
    ax = panel.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="0.4",
            transform=ax.transAxes)
    return ax


def _truth_text(example: AudioExample) -> str:
    parts = []
    if math.isfinite(example.f0_hz):
        parts.append(f"f0 {example.f0_hz:.0f} Hz")
    if math.isfinite(example.modulation_rate_hz):
        parts.append(f"rate {example.modulation_rate_hz:.3g} Hz")
    return ", ".join(parts) or "no ground truth"


def _draw_spectrogram(ax, example: AudioExample, title: str) -> None:
    if example.audio is None or np.size(example.audio) == 0:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no audio", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=8)
        return
    plot_log_spectrogram(np.asarray(example.audio, dtype=np.float64), example.sample_rate,
                         title=title, ax=ax)
    ax.title.set_size(8)
    ax.tick_params(labelsize=7)
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)
    if math.isfinite(example.f0_hz):
        ylim = ax.get_ylim()
        ax.axhline(example.f0_hz, color=_TRUTH_ON_DARK, ls=":", lw=1.0)
        ax.set_ylim(ylim)


def figure1(
    examples: Mapping[str, LocalExample | None],
    paths: PathTable | CarrierModulationGrid,
    rules: Sequence[str] | None = None,
    highlight: str | None = None,
) -> list[Figure]:
    """Local relevance maps of one example per technique (the paper's Fig. 1).

    One figure per entry of ``examples`` (a row of the paper's figure; the five rows
    in one PNG would exceed ~300 KB). Panels: (a) log-spectrogram (dotted: f0),
    (b) time-averaged scattering coefficients (log colour scale), then the
    time-averaged relevance under each rule (diverging scale centred on 0). Each
    grid panel is an S1 strip (column "S1") beside the S2 plane, carriers lambda1 on
    the vertical axis and modulations lambda2 on the horizontal one, both in Hz on
    log axes. Ground truth, where known: dotted line at lambda1 = f0, dashed line at
    lambda2 = modulation rate, cross at both.

    Parameters
    ----------
    examples : mapping of str to LocalExample or None
        Technique -> its example, in order; None gives a "no test example" figure.
    paths : PathTable or CarrierModulationGrid
        Path metadata of the maps' path axis.
    rules : sequence of str, optional
        Relevance panels, in order; default every rule in the examples.
    highlight : str, optional
        A rule whose panel title is drawn in bold (the claim being illustrated).

    Returns
    -------
    list of matplotlib.figure.Figure
        One per technique, with 1 spectrogram axis + 3 axes per grid panel (S1, S2,
        colour bar), i.e. ``1 + 3 * (1 + len(rules))`` axes; a single axis for a
        technique without example.
    """
    grid = _as_grid(paths)
    rows = list(examples.items())
    rules = _rules_of([e for _, e in rows], "relevance", rules)
    return [_figure1_row(technique, ex, grid, rules, highlight) for technique, ex in rows]


def _figure1_row(technique: str, ex: LocalExample | None, grid: CarrierModulationGrid,
                 rules: Sequence[str], highlight: str | None) -> Figure:
    """One technique's figure of :func:`figure1`."""
    if ex is None:
        fig = Figure(figsize=(6.0, 0.8))
        _placeholder(fig, f"{technique}: no test example")
        return fig
    n_panels = 1 + len(rules)
    fig = Figure(figsize=(3.2 * (1 + n_panels), 2.7))
    gs = _panels(fig, 1, 1 + n_panels)
    panel = fig.add_subfigure(gs[0, 0])
    panel.subplots_adjust(left=0.24, right=0.95, bottom=0.2, top=0.84)
    _draw_spectrogram(panel.add_subplot(), ex, f"(a) log-spectrogram\n{_truth_text(ex)}")
    axes = _grid_axes(fig.add_subfigure(gs[0, 1]))
    _draw_grid(ex.scattering, grid, axes, "(b) scattering S1 + S2", "coefficient", "log")
    _mark_truth(axes, ex.f0_hz, ex.modulation_rate_hz, _TRUTH_ON_DARK)
    for c, rule in enumerate(rules):
        axes = _grid_axes(fig.add_subfigure(gs[0, 2 + c]))
        title = f"({chr(ord('c') + c)}) R, {composite_label(rule)}"
        values = ex.relevance.get(rule)
        if values is None:
            values = np.full(len(grid.row), np.nan)
        _draw_grid(values, grid, axes, title, "relevance", "signed")
        if rule == highlight:
            axes[1].title.set_fontweight("bold")
        _mark_truth(axes, ex.f0_hz, ex.modulation_rate_hz, _TRUTH_ON_SIGNED)
    head = technique + (f" ({ex.description})" if ex.description else "")
    fig.suptitle(f"{head}: time-averaged local relevance maps; dotted: f0, dashed: true "
                 "modulation rate", fontsize=10, y=1.0, va="bottom")
    return fig


def figure2(
    aggregates: Mapping[str, ClassAggregate | None],
    paths: PathTable | CarrierModulationGrid,
    rules: Sequence[str] | None = None,
    highlight: str | None = None,
) -> Figure:
    """Class-wise mean scattering and top-n aggregated relevance (the paper's Fig. 2).

    One column per entry of ``aggregates``; top row: mean time-averaged scattering
    coefficients over the class's examples (log colour scale); one row per rule
    below: the top-n position counts of Eq. 13 (linear scale; zero counts are
    drawn, masked cells have no scattering path). Along lambda2, dashed white lines
    and a green bar above the plane mark the technique's physical modulation band
    (``MODULATION_BAND_HZ``) and a red line the median true rate, where known.

    Parameters
    ----------
    aggregates : mapping of str to ClassAggregate or None
        Technique -> its aggregate, in column order; None draws a placeholder.
    paths : PathTable or CarrierModulationGrid
    rules : sequence of str, optional
        Rows of counts, in order; default every rule in the aggregates.
    highlight : str, optional
        A rule whose row titles are drawn in bold.

    Returns
    -------
    matplotlib.figure.Figure
        Axes per drawn column: 3 per grid panel (S1, S2, colour bar), i.e.
        ``3 * (1 + len(rules))``; one axis per placeholder column.
    """
    grid = _as_grid(paths)
    cols = list(aggregates.items())
    if not cols:
        raise ValueError("figure2 needs at least one technique")
    rules = _rules_of([a for _, a in cols], "counts", rules)
    n_rows = 1 + len(rules)
    # Placeholder columns (a class without a test example) need only a word or two.
    widths = [1.0 if agg is not None else 0.3 for _, agg in cols]
    fig = Figure(figsize=(3.4 * sum(widths), 2.6 * n_rows + 0.3))
    gs = _panels(fig, n_rows, len(cols), widths=widths,
                 heights=[1.0 + 0.3 / 2.6] + [1.0] * (n_rows - 1))
    for c, (technique, agg) in enumerate(cols):
        if agg is None:
            _placeholder(fig.add_subfigure(gs[:, c]), f"{technique}:\nno test example")
            continue
        lo, hi = MODULATION_BAND_HZ.get(technique, (math.nan, math.nan))
        rate = (f", median rate {agg.median_rate_hz:.3g} Hz"
                if math.isfinite(agg.median_rate_hz) else "")
        # the top row is 0.3 in taller: room for a two-line title above the band bar
        axes = _grid_axes(fig.add_subfigure(gs[0, c]), top=0.84 * 2.6 / 2.9 - 0.02)
        _draw_grid(agg.mean_scattering, grid, axes,
                   f"{technique} (n = {agg.n_examples}): mean scattering\n"
                   f"band {lo:g}-{hi:g} Hz{rate}", "mean coefficient", "log")
        _mark_band(axes[1], technique, agg.median_rate_hz)
        for r, rule in enumerate(rules):
            axes = _grid_axes(fig.add_subfigure(gs[1 + r, c]))
            title = f"{technique}: top-{agg.top_n} counts\n{composite_label(rule)}"
            values = agg.counts.get(rule)
            if values is None:
                values = np.full(len(grid.row), np.nan)
            _draw_grid(values, grid, axes, title, "count", "linear", integer=True)
            if rule == highlight:
                axes[1].title.set_fontweight("bold")
            _mark_band(axes[1], technique, agg.median_rate_hz)
    fig.suptitle("Class-wise mean scattering (top) and top-n aggregated relevance; dashed "
                 "white + green bar: physical modulation band, red: median true rate",
                 fontsize=10, y=1.0, va="bottom")
    return fig


def technique_spectrograms(examples: Mapping[str, AudioExample | None]) -> Figure:
    """One log-spectrogram per technique, side by side.

    Parameters
    ----------
    examples : mapping of str to AudioExample or None
        Technique -> its example, in panel order; None draws a placeholder.

    Returns
    -------
    matplotlib.figure.Figure
        One axis per technique (frequency in Hz on a log axis, time in s); dotted
        line at f0 where known; the title gives f0 and the modulation rate.
    """
    items = list(examples.items())
    if not items:
        raise ValueError("technique_spectrograms needs at least one technique")
    fig = Figure(figsize=(3.2 * len(items), 2.8))
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.18, top=0.8, wspace=0.35)
    for ax, (technique, ex) in zip(axes, items, strict=True):
        if ex is None:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{technique}:\nno example", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
            continue
        head = technique + (f" - {ex.description}" if ex.description else "")
        _draw_spectrogram(ax, ex, f"{head}\n{_truth_text(ex)}")
    fig.suptitle("Log-spectrogram of one example per technique (dotted: f0)", fontsize=10,
                 y=1.0, va="bottom")
    return fig
