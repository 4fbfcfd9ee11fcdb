"""Sanity checks of the explanations: model randomisation and deletion (AOPC).

Adebayo et al. (2018), "Sanity checks for saliency maps": maps must change when
the learned weights are replaced by random ones. Samek et al. (2017), "Evaluating
the visualization of what a deep neural network has learned": removing the most
relevant inputs first must lower the explained output faster than removing random
ones. Both on the s1s2 model and the test split, in the compressed input domain.

Fixtures (validation/conftest.py): ``trained_models``, ``test_inputs``,
``explanations``, ``run_seed`` and ``claim``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.figure import Figure

from pmt_core.explain import sanity
from pmt_core.explain.lrp import RULES as _RULES
from pmt_core.explain.relevance import local_maps
from validation import thresholds as th

RULES = sorted(_RULES)


def _subset(labels: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Stratified random subset of at most ``n_max`` indices (sorted), seeded."""
    labels = np.asarray(labels)
    if len(labels) <= n_max:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        take = max(1, round(n_max * idx.size / len(labels)))
        picked.append(rng.choice(idx, size=min(take, idx.size), replace=False))
    return np.sort(np.concatenate(picked))[:n_max]


def _inputs(rule, trained_models, test_inputs, explanations, run_seed):
    if rule not in explanations:
        pytest.skip(f"rule {rule!r} not among the computed explanations")
    tm = trained_models["s1s2"]
    expl = explanations[rule]
    idx = _subset(np.asarray(tm.test_true), th.SANITY_MAX_EXAMPLES, run_seed)
    x = test_inputs["s1s2"][idx]
    return tm.model, x, expl, idx


def _quartile_band(ax, x, values, colour, label):
    """Mean line with an interquartile band (values: stages x examples)."""
    q = np.nanquantile(values, [0.25, 0.5, 0.75], axis=1)
    ax.plot(x, np.nanmean(values, axis=1), marker="o", color=colour, label=f"{label} (mean)")
    ax.fill_between(x, q[0], q[2], color=colour, alpha=0.2, lw=0)


@pytest.mark.parametrize("rule", RULES, ids=[f"sanity.model_randomisation.{r}" for r in RULES])
def test_model_randomisation(rule, trained_models, test_inputs, explanations, run_seed, claim):
    max_signed = th.RANDOMISATION_MAX_ABS_MEAN_RHO
    max_abs = th.RANDOMISATION_MAX_MEAN_ABS_MAP_RHO
    c = claim(
        f"sanity.model_randomisation.{rule}",
        title=f"LRP maps ({rule}) change when the network's weights are randomised "
              "(cascading, from the top), in sign and in magnitude",
        threshold={"|mean rho| <": max_signed, "mean rho |map| <": max_abs},
        paper=None,
        unit="mean per-example Spearman rho(trained map, fully randomised map), signed maps "
             "and absolute maps",
    )
    model, x, expl, idx = _inputs(rule, trained_models, test_inputs, explanations, run_seed)
    reference = SimpleNamespace(relevance=expl.relevance[idx], target=expl.target[idx])
    result = sanity.cascading_randomisation(model, x, rule, seed=run_seed,
                                            reference=reference, target=expl.target[idx])
    rows = [{"stage": name, "mean rho": round(float(m), 3),
             f"|mean rho| < {max_signed}": bool(abs(m) < max_signed),
             "mean rho |map|": round(float(a), 3),
             f"mean rho |map| < {max_abs}": bool(a < max_abs),
             "undefined (constant map)": int(u)}
            for name, m, a, u in zip(result.stage_names, result.mean, result.abs_mean,
                                     result.n_undefined, strict=True)]
    final, final_abs = float(result.mean[-1]), float(result.abs_mean[-1])
    c.measured = {"final mean rho": final, "final mean rho |map|": final_abs}
    c.detail = (
        f"{len(idx)} test examples (stratified, seed {run_seed}). On a copy of the trained "
        "s1s2 model, fc2, fc1, conv3, conv2, conv1 are re-initialised cumulatively from "
        "PyTorch's default distribution (Adebayo et al. 2018); batch norms keep their trained "
        "statistics. Each stage is explained with the same rule and the trained model's "
        "predicted class; its time-averaged maps are compared with the trained maps by "
        "per-example Spearman rho, on the signed maps and on their absolute values (Adebayo "
        "et al. report both: a sign flip alone is not a change of what the map points at). "
        "Asserted at the fully randomised stage: |mean signed rho| < "
        f"{max_signed} (a strongly negative rho is a mirrored, not a new, ranking) and mean "
        f"rho of |maps| < {max_abs} (magnitudes must not survive without the weights, the "
        "known failure of z+-type rules: Sixt, Granz & Landgraf 2020). Measured: signed "
        f"{final:.3g}, |map| {final_abs:.3g}."
    )
    c.table(rows, "Rank correlation with the trained model's maps per randomisation stage, "
                  "signed and absolute maps")
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    stages = np.arange(len(result.layers) + 1)
    ones = np.ones((1, result.rank_correlation.shape[1]))
    _quartile_band(ax, stages, np.vstack([ones, result.rank_correlation]), "C0", "signed")
    _quartile_band(ax, stages, np.vstack([ones, result.abs_rank_correlation]), "C1", "|map|")
    ax.axhline(max_signed, color="C0", ls="--", lw=1, label=f"±{max_signed}: bound on |signed|")
    ax.axhline(-max_signed, color="C0", ls="--", lw=1)
    ax.axhline(max_abs, color="C1", ls=":", lw=1.5, label=f"{max_abs}: bound on |map|")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(stages, ("trained",) + result.stage_names)
    ax.set_ylim(-1.05, 1.05)  # signed rho can approach -1 (mirrored maps)
    ax.set_ylabel("Spearman rho with trained maps")
    ax.set_title(f"Cascading randomisation ({rule}): final signed {final:.2f}, "
                 f"|map| {final_abs:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    c.figure(fig, "Mean (line) and interquartile range (band) of the per-example rank "
                  "correlation between the trained and the progressively randomised model's "
                  "maps, signed (blue) and absolute (orange); both must end inside their "
                  "bounds.")
    failures = []  # both reasons reported together; NaN fails both comparisons
    if not abs(final) < max_signed:
        failures.append(f"signed maps keep (or mirror) their ranking without the learned "
                        f"weights: |mean rho| {abs(final):.3g} >= {max_signed}")
    if not final_abs < max_abs:
        failures.append(f"map magnitudes survive randomisation of every layer: mean rho of "
                        f"|maps| {final_abs:.3g} >= {max_abs} (insensitivity to the weights, "
                        "cf. Sixt et al. 2020)")
    assert not failures, "; ".join(failures) + f". {rows}"


@pytest.mark.parametrize("rule", RULES, ids=[f"sanity.deletion.{r}" for r in RULES])
def test_deletion(rule, trained_models, test_inputs, explanations, run_seed, claim):
    c = claim(
        f"sanity.deletion.{rule}",
        title=f"Deleting the most relevant paths ({rule}) lowers the explained logit faster "
              "than deleting random paths",
        threshold={"AOPC ratio >": th.DELETION_MIN_AOPC_RATIO,
                   "Wilcoxon p <": th.DELETION_WILCOXON_ALPHA},
        paper=None,
        unit="AOPC(relevance order) / AOPC(random order), target logit",
    )
    model, x, expl, idx = _inputs(rule, trained_models, test_inputs, explanations, run_seed)
    maps = local_maps(expl.relevance[idx])
    comp = sanity.deletion_comparison(
        model, x, maps, steps=th.DELETION_STEPS, per_step=th.DELETION_PER_STEP,
        baseline=th.DELETION_BASELINE, seed=run_seed, target=expl.target[idx],
    )
    c.measured = {"AOPC ratio": comp.ratio, "AOPC relevance": comp.aopc_relevance,
                  "AOPC random": comp.aopc_random, "Wilcoxon p": comp.wilcoxon_p}
    c.detail = (
        f"{len(idx)} test examples (stratified, seed {run_seed}). Paths are removed "
        f"{th.DELETION_PER_STEP} at a time over {th.DELETION_STEPS} steps (all 32 frames of a "
        "path), most relevant first (largest signed time-averaged relevance) or in a random "
        "order; a removed path is set to the input batch norm's running mean, i.e. the "
        "per-path training mean of the compressed feature (zero normalised deviation). "
        "AOPC after Samek et al. (2017): mean over steps 0..L and examples of the drop of "
        "the explained (predicted) logit. One-sided paired Wilcoxon test on per-example "
        "AOPC. An infinite ratio means random deletion did not lower the logit on average "
        "while relevance-ordered deletion did; NaN means neither did."
    )
    d_rel, d_rnd = comp.relevance.drop, comp.random.drop
    rows = [{"paths removed": int(k), "mean drop (relevance)": round(float(a), 4),
             "mean drop (random)": round(float(b), 4)}
            for k, a, b in zip(comp.relevance.n_removed, d_rel.mean(0), d_rnd.mean(0),
                               strict=True)][:: max(1, th.DELETION_STEPS // 10)]
    c.table(rows, "Mean drop of the explained logit against paths removed")
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    k = comp.relevance.n_removed
    _quartile_band(ax, k, d_rel.T, "C0", "most relevant first")
    _quartile_band(ax, k, d_rnd.T, "0.4", "random")
    ax.set_xlabel("paths removed (of 1,200)")
    ax.set_ylabel("drop of the explained logit")
    ax.set_title(f"Deletion ({rule}): AOPC ratio {comp.ratio:.3g}", fontsize=9)
    ax.legend(fontsize=7)
    c.figure(fig, "Perturbation curves (Samek et al. 2017): mean and interquartile range of "
                  "the logit drop as paths are set to their training mean.")
    assert comp.ratio > th.DELETION_MIN_AOPC_RATIO, c.measured  # NaN fails
    assert comp.wilcoxon_p < th.DELETION_WILCOXON_ALPHA, c.measured
