"""Per-example records of a run: which clips carry a claim, which contradict it.

A run's claims are statements about thousands of (example, replicate) pairs; these
files keep the pairs so that a reader can see which clips carry or contradict a
claim, and load the maps into a notebook without rerunning anything:

``examples.csv``
    One row per test example and S1+S2 replicate (replicate-major): the example
    (``example``: its position in the test split; ``row``: its row in
    ``split.csv``; ``id``: its path, or ``synthetic:<example_id>``), its class,
    the replicate's prediction and softmax probability, f0, the recorded and
    estimated modulation rates with the estimate's confidence (``rates.csv``), and
    per explainer ``<explainer>.peak_lambda1_hz``, ``.peak_lambda2_hz`` (the S2
    path of largest signed relevance: the relevance claims' peak),
    ``.peak_octaves_from_rate`` and ``.s1_share``; where band occlusion ran
    (``model.uses_rate``), ``occlusion.peak_lambda2_hz`` (the band whose removal
    costs the predicted logit most) and ``occlusion.peak_drop``.
``maps.npz``
    ``maps.npz[<explainer>][replicate, example]``: the time-averaged map over the
    paths (float32) of the LRP readings and of the model-free maps they are read
    beside (:data:`SAVED_NULLS`); a map that is the same for every replicate (the
    input, its energy) is kept once, with a replicate axis of length 1 that
    broadcasts. ``order``, ``carrier_hz``, ``modulation_hz`` describe the path
    axis, ``example``, ``row`` and ``id`` the example axis, as in
    ``examples.csv``. At the ci size (200 test examples, 5 replicates, 1,200
    paths) that is about 22 MB; the gradient attributions are left out (another
    20 MB) and can be recomputed from the checkpoints.

The records only read stages the claims computed; they compute none.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pmt_core.explain import relevance as R
from pmt_core.infra.atomic import atomic_path

EXAMPLES_CSV = "examples.csv"
MAPS_NPZ = "maps.npz"
#: Explainer kinds whose maps ``maps.npz`` keeps, plus the model-free nulls of
#: :data:`SAVED_NULLS`: a random map or a class's constant map is no clip's
#: evidence, and all 14 explainers at the paper's size would be about 0.4 GB.
SAVED_KINDS = ("lrp",)
#: The nulls a relevance map is read beside (the input and its energy).
SAVED_NULLS = ("input", "energy_raw", "energy_norm")
#: Examples shown in a worst-cases view.
WORST_CASES = 6


def _example_ids(rows: pd.DataFrame) -> list[str]:
    """Return the path of each row, or ``synthetic:<example_id>`` where there is none."""
    paths = rows["path"].fillna("").astype(str) if "path" in rows else pd.Series(
        [""] * len(rows), index=rows.index)
    ids = rows["example_id"] if "example_id" in rows else pd.Series(rows.index, index=rows.index)
    return [p if p else f"synthetic:{i}" for p, i in zip(paths, ids, strict=True)]


def _softmax_max(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).max(axis=1)


def _octaves(a_hz: np.ndarray, b_hz: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a_hz, dtype=float), np.asarray(b_hz, dtype=float)
    known = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    out[known] = np.abs(np.log2(a[known] / b[known]))
    return out


def saved_explainers(names) -> list[str]:
    """Return those of ``names`` whose maps ``maps.npz`` keeps (:data:`SAVED_KINDS`)."""
    from pmt_core.explain.explainers import EXPLAINERS

    return [n for n in names if n in SAVED_NULLS
            or (n in EXPLAINERS and EXPLAINERS[n].kind in SAVED_KINDS)]


def example_records(run) -> tuple[pd.DataFrame, dict] | None:
    """Return the run's per-example table and maps (module notes), or None.

    None when the run trained no S1+S2 model (no claim needed one). Stages the
    claims did not compute (explanations, rates, band occlusion) leave their
    columns out.
    """
    if not run.computed("models"):
        return None
    models = run.models.replicates.get("s1s2") or []
    if not models:
        return None
    data = run.data
    test = data.index("test")
    rows = data.frame.iloc[test]
    n = len(test)
    base = pd.DataFrame({
        "example": np.arange(n), "row": test, "id": _example_ids(rows),
        "technique": rows["technique"].to_numpy(), "subset": "test"})
    for name in ("f0_hz", "modulation_rate_hz", "distractor_rate_hz"):
        column = data.column(name, "test")
        if column is not None:
            base[name] = column
    rate = None
    if run.computed("rates"):
        stage = run.rates
        rate = stage.of("test")
        base["rate_used_hz"] = rate
        base["rate_source"] = stage.source
        estimates = stage.estimates.iloc[test].reset_index(drop=True)
        for column in ("rate_estimate_hz", "rate_salience", "rate_cue", "rate_confident"):
            if column in estimates:
                base[column] = estimates[column].to_numpy()
    paths = run.compression.paths
    explanations = run.explanations if run.computed("explanations") else None
    occlusion = run.band_occlusion if run.computed("band_occlusion") else None
    parts, maps = [], {}
    names = list(explanations.maps) if explanations is not None else []
    for r, m in enumerate(models):
        part = base.copy()
        part.insert(0, "replicate", r)
        part["seed"] = m.seed
        pred = np.asarray(m.test_pred, dtype=int)
        part["predicted"] = [data.class_names[k] for k in pred]
        part["correct"] = pred == np.asarray(m.test_true, dtype=int)
        part["p_predicted"] = _softmax_max(m.test_logits)
        for name in names:
            values = np.asarray(explanations.maps[name][r], dtype=np.float64)
            peak = R.peak_path(values, paths, order=2)
            part[f"{name}.peak_lambda1_hz"] = paths.carrier_hz[peak]
            part[f"{name}.peak_lambda2_hz"] = paths.modulation_hz[peak]
            if rate is not None:
                part[f"{name}.peak_octaves_from_rate"] = _octaves(paths.modulation_hz[peak],
                                                                  rate)
            part[f"{name}.s1_share"] = R.s1_share(values, paths)
        if occlusion is not None:
            drops = occlusion.drops[r]
            best = np.argmax(drops, axis=1)
            part["occlusion.peak_lambda2_hz"] = occlusion.bands.hz[best]
            part["occlusion.peak_drop"] = drops[np.arange(n), best]
        parts.append(part)
    for name in saved_explainers(names):
        stacked = np.stack([np.asarray(a, dtype=np.float32) for a in explanations.maps[name]])
        same = all(np.array_equal(stacked[0], other) for other in stacked[1:])
        maps[name] = stacked[:1] if same else stacked
    if maps:
        maps.update(order=np.asarray(paths.order), carrier_hz=np.asarray(paths.carrier_hz),
                    modulation_hz=np.asarray(paths.modulation_hz), example=np.arange(n),
                    row=test, id=np.asarray(base["id"], dtype=str))
    return pd.concat(parts, ignore_index=True), maps


def write_records(table: pd.DataFrame, maps: dict, report_dir: str | Path) -> tuple[Path, ...]:
    """Write ``examples.csv`` (and ``maps.npz`` where there are maps) atomically.

    Parameters
    ----------
    table, maps
        :func:`example_records` of a run.
    report_dir : path-like

    Returns
    -------
    tuple of Path
        The files written.
    """
    report_dir = Path(report_dir)
    written = [report_dir / EXAMPLES_CSV]
    with atomic_path(written[0]) as tmp:
        table.to_csv(tmp, index=False)
    if maps:
        written.append(report_dir / MAPS_NPZ)
        with atomic_path(written[1]) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **maps)
    else:  # an earlier run's maps would describe other models
        (report_dir / MAPS_NPZ).unlink(missing_ok=True)
    return tuple(written)


def clear_records(report_dir: str | Path) -> None:
    """Remove an earlier run's records from a report folder (this run made none)."""
    for name in (EXAMPLES_CSV, MAPS_NPZ):
        (Path(report_dir) / name).unlink(missing_ok=True)


def worst_cases(table: pd.DataFrame, maps: dict, explainer: str, k: int = WORST_CASES):
    """Return the ``k`` correctly classified examples whose peak lies farthest from the rate.

    Ranked by the median over replicates of ``<explainer>.peak_octaves_from_rate``
    (an example counts where at least half of the replicates classify it
    correctly). Returns ``(rows, figure, caption)``, or None when the table has no
    such column or no such example.
    """
    column = f"{explainer}.peak_octaves_from_rate"
    if column not in table or explainer not in maps:
        return None
    scored = table[table["correct"] & table[column].notna()]
    if scored.empty:
        return None
    n_rep = int(table["replicate"].max()) + 1
    grouped = scored.groupby("example")
    stats = pd.DataFrame({"distance": grouped[column].median(),
                          "replicates": grouped.size()})
    stats = stats[stats["replicates"] >= math.ceil(n_rep / 2)]
    if stats.empty:
        return None
    chosen = stats.sort_values("distance", ascending=False, kind="stable").head(k)
    first = table[table["replicate"] == 0].set_index("example")
    rows = []
    for example, s in chosen.iterrows():
        info = first.loc[example]
        rows.append({"example": int(example), "id": info["id"],
                     "technique": info["technique"],
                     "rate (Hz)": float(info.get("rate_used_hz", math.nan)),
                     "peak lambda2, median over replicates (Hz)": float(
                         scored[scored["example"] == example][
                             f"{explainer}.peak_lambda2_hz"].median()),
                     "octaves from the rate (median)": float(s["distance"]),
                     "replicates correct": int(s["replicates"])})
    figure = _worst_case_figure(maps, explainer, chosen.index.to_numpy(), rows)
    caption = (f"The {len(rows)} correctly classified test examples whose {explainer} "
               "peak lies farthest from their modulation rate (median over replicates); "
               "each map is the replicates' mean of the time-averaged relevance, the "
               "rate marked. Rows in examples.csv, maps in maps.npz.")
    return rows, figure, caption


def _worst_case_figure(maps: dict, explainer: str, examples: np.ndarray, rows: list[dict]):
    from matplotlib.figure import Figure

    from pmt_core.features.grid import CarrierModulationGrid
    from pmt_core.features.scattering import PathTable
    from pmt_core.figures.plots import plot_grid

    order = np.asarray(maps["order"])
    paths = PathTable(order=order, carrier_hz=np.asarray(maps["carrier_hz"]),
                      modulation_hz=np.asarray(maps["modulation_hz"]),
                      j=np.zeros(len(order), int), n=np.zeros(len(order), int),
                      kymatio_index=np.arange(len(order)))
    grid = CarrierModulationGrid.from_paths(paths)
    columns = min(3, len(examples))
    lines = math.ceil(len(examples) / columns)
    fig = Figure(figsize=(5.0 * columns, 3.4 * lines), layout="constrained")
    axes = np.atleast_2d(fig.subplots(lines, 2 * columns, sharey=True,
                                      gridspec_kw={"width_ratios": [1, 12] * columns}))
    pairs = [(axes[i, 2 * j], axes[i, 2 * j + 1]) for i in range(lines) for j in range(columns)]
    for (ax_s1, ax_s2), example, row in zip(pairs, examples, rows, strict=False):
        mean = np.asarray(maps[explainer][:, example], dtype=np.float64).mean(axis=0)
        plot_grid(grid.lay(mean), grid, label="relevance", scale="signed",
                  axes=(ax_s1, ax_s2))
        if np.isfinite(row["rate (Hz)"]):
            ax_s2.axvline(row["rate (Hz)"], color="k", lw=1, ls="--")
        ax_s2.set_title(f"{row['technique']} #{row['example']}: rate {row['rate (Hz)']:.3g} "
                        f"Hz, peak {row['peak lambda2, median over replicates (Hz)']:.3g} Hz",
                        fontsize=8)
    for ax_s1, ax_s2 in pairs[len(examples):]:
        ax_s1.set_visible(False)
        ax_s2.set_visible(False)
    return fig


#: Claim families whose figure is each example's peak against its rate: a claim
#: of these that does not hold gets the examples that contradict it most.
RATE_PEAK_FAMILIES = ("relevance.localisation", "relevance.peak_modulation")


def attach_worst_cases(claim_records: list[dict], table: pd.DataFrame, maps: dict,
                       report_dir: str | Path) -> int:
    """Add a worst-cases table and figure to each rate claim that does not hold.

    A claim ``<family>.<explainer>`` of :data:`RATE_PEAK_FAMILIES` whose verdict is
    "does not hold" gets the :func:`worst_cases` of its explainer (a table and a
    figure saved under ``figures/``). Returns the number of claims given one.
    """
    from pmt_core.report.records import save_plots, table_record

    attached = 0
    for record in claim_records:
        family, _, explainer = str(record.get("id", "")).rpartition(".")
        if family not in RATE_PEAK_FAMILIES or record.get("verdict") != "does not hold":
            continue
        found = worst_cases(table, maps, explainer)
        if found is None:
            continue
        rows, figure, caption = found
        record.setdefault("tables", []).append(table_record(rows, "Worst cases: " + caption))
        record.setdefault("plots", []).extend(
            save_plots(f"{record['id']}.worst-cases", [(figure, caption)], report_dir))
        attached += 1
    return attached
