"""Relevance claims that ask what the model uses, and the composites' contrast.

Whether a map shows its own model's use of each band (agreement with band
occlusion, beyond the other replicates'), which of two planted mechanisms a
model has (model B: a class tag), and whether a composite gives sharper maps
than LRP-epsilon (the paper's kurtosis). Each runs on every explainer, as the
families of :mod:`pmt_core.claims.relevance` do, from the same :class:`View`.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims import protocol as pr
from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, claim
from pmt_core.claims.families import (
    Family,
    FamilyResult,
    Nulls,
    family,
    reading_bounds,
    reading_measurement,
)
from pmt_core.claims.relevance_view import COMPOSITES, view
from pmt_core.explain import relevance as R
from pmt_core.figures.claims import explainer_bars_figure
from pmt_core.stats.correlation import model_specific_agreement
from pmt_core.stats.intervals import MacroMean, MeanOfFinite, crossed_t, per_replicate_estimate

_macro = MacroMean()
_mean = MeanOfFinite()


def _agreement_with_use(ev) -> FamilyResult:
    from pmt_core.claims.model import occlusion

    v = view(ev)
    if v.n_rep < 2:
        return FamilyResult(not_applicable="needs at least two replicates: a map is held "
                                           "against its own model's use and the others'")
    o = occlusion(ev)
    # every replicate explains the same (true) class: its drops and maps compare
    agreed = v.correct.all(axis=0)
    out = FamilyResult(strata=v.true, n=int(agreed.sum()))
    own = [np.where(agreed[:, None], o.drops[r], np.nan) for r in range(v.n_rep)]
    profiles = {name: [o.bands.profile(m) for m in per_rep] for name, per_rep in v.maps.items()}
    # planted controls: a map whose band profile is its own model's drops, and one
    # whose profile is another replicate's (right input, wrong model)
    profiles["oracle_use"] = own
    profiles["adversary_other_model"] = [own[(r + 1) % v.n_rep] for r in range(v.n_rep)]
    for name, per_rep in profiles.items():
        lift, with_own = model_specific_agreement(per_rep, own)
        out.values[name] = (lift, v.classes)
        out.figures[name] = {"agreement with its own model's use": crossed_t(
            (with_own, v.classes), _macro, strata=v.true, seed=ev.seed)}
    out.detail = (
        f"Test examples every replicate classifies correctly ({out.n}): per replicate and "
        f"example, Spearman rho over the {len(o.bands.hz)} lambda2 bands between the map's "
        "band profile (relevance summed over each band's paths) and the band-occlusion drops "
        "of the predicted logit (model.uses_rate); figure: rho with the replicate's own "
        "drops minus the mean rho with the other replicates' drops, macro over classes. The "
        "input, its energy and every other map that ignores which model it explains score "
        "0 exactly (averaged over replicates), whatever they share with the drops: what is "
        "left is the model-specific part of the use, the part only the model can show.")
    return out


AGREEMENT = family(Family(
    "relevance.agreement_with_use",
    AtLeast("lift over other replicates' use", th.AGREEMENT_MIN_LIFT,
            name="shows its own model's use", effect=th.EFFECT_RHO,
            why="a map that ignores which model it explains scores 0"),
    _macro, _agreement_with_use, must_reject=(),
    oracles=("oracle_use",), adversaries=("adversary_other_model",),
    beside=("energy_raw", "input"),
    excluded="the nulls that ignore the model score 0 by construction of the test (not of "
             "the bar), so they cannot be shown above it; the planted controls test it."))


@claim("relevance.agreement_with_use.{composite}", title="Relevance ({composite}) follows "
       "its own model's use of each band (occlusion), beyond what other replicates use",
       params={"composite": COMPOSITES},
       unit="Spearman rho with own drops minus with other replicates' drops",
       paper="relevance shows what the network uses (sections 4.2-4.3)",
       bounds=reading_bounds(AGREEMENT))
def agreement_with_use(ev, composite):
    """Model-specific agreement of a map's band profile with band-occlusion drops."""
    return reading_measurement(ev, AGREEMENT, composite)


# ------------------------------------------------------------ two mechanisms --
def _one_hot_shares(n_bands: int, band) -> np.ndarray:
    """(n, bands) shares 1 at ``band`` per example (none where it is negative)."""
    band = np.asarray(band, dtype=int)
    out = np.zeros((len(band), n_bands))
    rows = np.flatnonzero(band >= 0)
    out[rows, band[rows]] = 1.0
    return out


def _mechanism(ev) -> FamilyResult:
    from pmt_core.explain import mechanism as mech
    from pmt_core.explain.occlusion import band_shares, s2_bands

    stage = ev.mechanism
    if stage is None:
        return FamilyResult(not_applicable="too few lambda2 bands above the techniques' for "
                                           "one tag per class")
    v = view(ev)
    if not v.known(v.rate).any():
        return FamilyResult(not_applicable="the data set has no per-example modulation rate")
    bands = s2_bands(v.paths)
    near = bands.near(np.where(v.known(v.rate), v.rate, np.nan), pr.RATE_TOL_OCTAVES)
    n_models = stage.pred_a.shape[0]
    both = (stage.pred_a == v.true[None, :]) & (stage.pred_b == v.true[None, :])
    tag_band = stage.tags[v.true]
    classes = v.classes[:n_models]
    out = FamilyResult(strata=v.true, n=int(both.any(axis=0).sum()))

    def contrast(shares_a, shares_b) -> np.ndarray:
        c = np.stack([mech.mechanism_contrast(shares_a[k], shares_b[k], near, tag_band)
                      for k in range(n_models)])
        return np.where(both, c, np.nan)

    for name in stage.maps_a:
        shares = {side: [band_shares(bands.profile(m)) for m in maps[name]]
                  for side, maps in (("a", stage.maps_a), ("b", stage.maps_b))}
        out.values[name] = (contrast(shares["a"], shares["b"]), classes)
    # planted: each model's map at its own mechanism; one map for both; swapped
    nearest = np.where(near.any(axis=1), bands.nearest(v.rate), -1)
    at_rate = [_one_hot_shares(len(bands.hz), nearest)] * n_models
    at_tag = [_one_hot_shares(len(bands.hz), tag_band)] * n_models
    out.values["oracle_mechanism"] = (contrast(at_rate, at_tag), classes)
    out.values["adversary_same_map"] = (contrast(at_rate, at_rate), classes)
    out.values["adversary_swapped"] = (contrast(at_tag, at_rate), classes)
    b_accuracy = per_replicate_estimate(stage.b_validation_accuracy)
    for name in out.values:
        out.figures[name] = {"model B's validation accuracy on its tag": b_accuracy}
    out.detail = (
        f"Model B: {n_models} replicate(s) trained on the same inputs with a class tag added "
        f"({mech.TAG_SD:g} training sd on every path of one lambda2 band per class, "
        f"{', '.join(f'{bands.hz[t]:.0f}' for t in stage.tags)} Hz) and labels drawn at "
        "random, so the tag is its only cue; model A: the trained replicates. Test inputs "
        "carry both cues (the technique and its class's tag); scored where both models "
        f"predict the true class ({out.n} examples). Per example: band shares of each "
        "model's map (relevance summed per lambda2 band over the sum of |band relevance|); "
        "figure: (A's share at the rate - B's) + (B's share at the tag - A's), macro over "
        "classes. A map that ignores the model is the same for A and B and scores 0. The "
        "tag lifts its band past the training range, the z-box reading's box.")
    out.detail += v.rate_note
    return out


MECHANISM = family(Family(
    "relevance.mechanism",
    AtLeast("mechanism contrast", th.MECHANISM_MIN_CONTRAST,
            name="tells the two mechanisms apart", effect=th.EFFECT_LIFT,
            why="a map that ignores the model scores 0; five points above it"),
    _macro, _mechanism,
    must_reject=Nulls(("everything", "example", "model")),
    oracles=("oracle_mechanism",), adversaries=("adversary_same_map", "adversary_swapped"),
    excluded="LRP of a randomised model differs between the two models by chance only."))


@claim("relevance.mechanism.{composite}", title="Relevance ({composite}) shows which of two "
       "known mechanisms its model uses (the technique's rate, or a class tag)",
       params={"composite": COMPOSITES}, unit="share contrast between the two models' maps",
       paper="relevance shows what the network uses (sections 4.2-4.3)",
       bounds=reading_bounds(MECHANISM))
def mechanism(ev, composite):
    """Contrast of model A's and model B's maps at each model's own mechanism."""
    return reading_measurement(ev, MECHANISM, composite)


# ----------------------------------------------------------- kurtosis contrast --
def _kurtosis(ev) -> FamilyResult:
    v = view(ev)
    out = FamilyResult(strata=v.true, n=v.n)
    if "epsilon" not in v.maps:
        return FamilyResult(not_applicable="no LRP-epsilon explanations in this run")
    eps = np.stack([R.kurtosis_per_example(m) for m in v.maps["epsilon"]])
    # per replicate (mean over replicates), so the gate sees how training moves them
    eps_mean = per_replicate_estimate([R.kurtosis_summary(row).mean for row in eps])
    for name, per_rep in v.maps.items():
        k = np.stack([R.kurtosis_per_example(m) for m in per_rep])
        out.values[name] = (k - eps,)
        summaries = [R.kurtosis_summary(row) for row in k]
        out.figures[name] = {
            "mean kurtosis": per_replicate_estimate([s.mean for s in summaries]),
            "sd kurtosis": per_replicate_estimate([s.sd for s in summaries]),
            "LRP-epsilon mean kurtosis": eps_mean}
    out.detail = ("Kurtosis as in the authors' code: scipy.stats.kurtosis (Fisher, biased) "
                  "over each example's time-averaged relevances, S1 and S2 together; the "
                  "figure is the mean over examples and replicates of the composite's minus "
                  "LRP-epsilon's, with its paired crossed t interval. Paper: "
                  "LRP-eps 13.82 (sd 8.81), LRP-[eps, z+] 19.22 (sd 13.72).")
    out.plots.append(lambda composite: (explainer_bars_figure(
        {n: {"measured": out.figures[n]["mean kurtosis"].value, "interval": None,
             "null": n not in COMPOSITES, "label": n} for n in out.values},
        "Mean kurtosis of the maps per explainer", ylabel="kurtosis (Fisher)"),
        "Mean per-example kurtosis of every explainer's maps."))
    return out


KURTOSIS = family(Family(
    "relevance.kurtosis_contrast",
    AtLeast("kurtosis difference", th.KURTOSIS_MIN_DIFFERENCE, name="more contrasted",
            effect=th.EFFECT_KURTOSIS,
            why="the paper's ordering, 19.22 > 13.82"),
    _mean, _kurtosis, must_reject=(), margin=None,
    excluded="contrast is a property of a map, not evidence of faithfulness: no null "
             "must fail it."))


@claim("relevance.kurtosis_contrast.{composite}", title="The composite ({composite}) gives "
       "more contrasted maps than LRP-epsilon (per-example kurtosis)",
       params={"composite": tuple(c for c in COMPOSITES if c != "epsilon")},
       unit="mean kurtosis difference (composite - LRP-epsilon)",
       paper="LRP-eps 13.82 (sd 8.81); LRP-[eps, z+] 19.22 (sd 13.72)",
       bounds=reading_bounds(KURTOSIS))
def kurtosis_contrast(ev, composite):
    """Mean per-example kurtosis of the composite's maps minus LRP-epsilon's."""
    return reading_measurement(ev, KURTOSIS, composite)
