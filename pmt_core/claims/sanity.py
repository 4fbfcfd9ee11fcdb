"""Sanity checks, on every explainer: deletion, model and data randomisation.

* Deletion (Samek et al. 2017): removing the paths a map ranks first (MoRF)
  must lower the explained logit more than removing those it ranks last (LeRF);
  the paper's readings must also beat the nulls, which include orders computed
  from the input alone (audit M4: an input-only order passes a
  relevance-vs-random test).
* Model randomisation (Adebayo et al. 2018): with every layer re-initialised,
  input norm included, the maps must change; every stage of the cascade is
  reported for the LRP readings.
* Data randomisation (Adebayo et al. 2018): a model trained on shuffled labels
  must give other maps than the trained one.

All on the run's sanity examples (:meth:`pmt_core.run.Run.sanity_index`), for
every S1+S2 replicate, with each replicate's predicted class as target. The maps
and curves are the run's sanity stage (:mod:`pmt_core.run.sanity`:
read as ``ev.sanity_deletion``, ``ev.sanity_randomisation`` and
``ev.sanity_data_randomisation``); this module computes their statistics only.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims import protocol as pr
from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, AtMost, claim
from pmt_core.claims.families import (
    ALL_NULLS,
    MODEL_FREE_NULLS,
    Family,
    FamilyResult,
    family,
    reading_bounds,
    reading_measurement,
)
from pmt_core.explain import relevance as R
from pmt_core.explain.explainers import lrp_explainer_names
from pmt_core.explain.perturbation import aopc_per_example
from pmt_core.figures.claims import curves_figure, stage_figure
from pmt_core.stats.intervals import Estimate, MeanOfFinite, per_replicate_estimate

COMPOSITES = lrp_explainer_names()


_mean = MeanOfFinite()


# -------------------------------------------------------------------- deletion --
def _deletion(ev) -> FamilyResult:
    stage = ev.sanity_deletion
    idx = stage.index
    models = ev.models.replicates["s1s2"]
    out = FamilyResult(strata=models[0].test_true[idx], n=len(idx))
    curves = {}
    for name in stage.morf:
        gaps, morf_curves, lerf_curves = [], [], []
        for morf, lerf in zip(stage.morf[name], stage.lerf[name], strict=True):
            gaps.append(aopc_per_example(morf) - aopc_per_example(lerf))
            morf_curves.append(morf[:, :1] - morf)
            lerf_curves.append(lerf[:, :1] - lerf)
        out.values[name] = (np.stack(gaps),)
        curves[name] = (np.concatenate(morf_curves), np.concatenate(lerf_curves))
        out.figures[name] = {
            "AOPC most relevant first": per_replicate_estimate(
                [float(c.mean()) for c in morf_curves]),
            "AOPC least relevant first": per_replicate_estimate(
                [float(c.mean()) for c in lerf_curves])}
    steps = np.arange(pr.DELETION_STEPS + 1) * pr.DELETION_PER_STEP

    def plot(composite):
        strongest = max((n for n in ALL_NULLS.names() if n in curves),
                        key=lambda n: _mean(out.values[n]), default=None)
        shown = {f"{composite} MoRF": curves[composite][0],
                 f"{composite} LeRF": curves[composite][1]}
        if strongest is not None:
            shown[f"{strongest} MoRF"] = curves[strongest][0]
            shown[f"{strongest} LeRF"] = curves[strongest][1]
        return (curves_figure(steps, shown, f"Deletion: {composite} against the strongest null",
                              "paths removed", "drop of the explained logit"),
                "Mean and interquartile band of the logit drop as paths are set to their "
                "training mean, most relevant first (MoRF) and least relevant first (LeRF).")

    out.plots.append(plot)
    out.detail = (f"{len(idx)} test examples (stratified, seeded) per replicate; "
                  f"{pr.DELETION_STEPS} steps of {pr.DELETION_PER_STEP} paths (all frames of a "
                  "path set to its training mean in the compressed domain: no evidence after "
                  "the input batch norm); AOPC (Samek et al. 2017) per example, most minus "
                  "least relevant first, in logit units; mean over examples and replicates.")
    return out


DELETION = family(Family(
    "sanity.deletion",
    AtLeast("AOPC gap (MoRF - LeRF)", th.DELETION_MIN_GAP, name="ranks by effect",
            effect=th.EFFECT_DELETION,
            why="removing the top of the ranking must hurt more than removing its bottom"),
    _mean, _deletion, margin=th.DELETION_MIN_MARGIN))


@claim("sanity.deletion.{composite}", title="Deleting the paths {composite} ranks first "
       "lowers the logit more than deleting those it ranks last, beyond every null",
       params={"composite": COMPOSITES}, unit="AOPC(MoRF) - AOPC(LeRF), logit units",
       bounds=reading_bounds(DELETION))
def deletion(ev, composite):
    """Mean per-example AOPC gap between most- and least-relevant-first deletion."""
    return reading_measurement(ev, DELETION, composite)


# ------------------------------------------------------------- randomisation --
def _rho_values(trained, other):
    signed = R.rowwise_spearman(trained, other)
    absolute = R.rowwise_spearman(np.abs(trained), np.abs(other))
    return signed, absolute


def _randomisation(ev) -> FamilyResult:
    stage = ev.sanity_randomisation
    idx, layers = stage.index, stage.layers
    models = ev.models.replicates["s1s2"]
    out = FamilyResult(strata=models[0].test_true[idx], n=len(idx))
    names = list(stage.randomised)
    signed = {n: [] for n in names}
    absolute = {n: [] for n in names}
    for n in names:
        for r, randomised in enumerate(stage.randomised[n]):
            s, a = _rho_values(ev.explanations.maps[n][r][idx], randomised)
            signed[n].append(s)
            absolute[n].append(a)
    # replicate 0, every stage: (stages, n) abs rho
    trained = {n: ev.explanations.maps[n][0][idx] for n in COMPOSITES}
    stages = {n: [np.stack([_rho_values(trained[n], maps)[1] for maps in stage.cascade[n]])]
              for n in COMPOSITES}
    for n in names:
        out.values[n] = (np.stack(absolute[n]),)
        out.figures[n] = {"|mean rho| signed": _signed_estimate(np.stack(signed[n]))}
    stage_names = tuple(name if k == 0 else "+" + name for k, name in enumerate(layers))

    def plot(composite):
        per = np.concatenate(stages[composite], axis=1)  # (stages, R * n)
        ones = np.ones((1, per.shape[1]))
        return (stage_figure(("trained",) + stage_names, {"rho |map|": np.vstack([ones, per])},
                             f"Cascading randomisation ({composite})",
                             bar=th.RANDOMISATION_MAX_RHO),
                "Mean and interquartile band of the per-example rank correlation of |maps| "
                "with the trained model's, as layers are re-initialised from the output "
                "down (input norm last).")

    out.plots.append(plot)
    out.tables.append(([{"stage": s, **{n: float(np.nanmean(np.concatenate(
        stages[n], axis=1)[j])) for n in COMPOSITES}} for j, s in enumerate(stage_names)],
        "Mean rho of |maps| with the trained maps at each cascade stage"))
    out.detail = (f"{len(idx)} test examples per replicate. On a copy of each replicate, the "
                  f"layers {', '.join(layers)} are re-initialised cumulatively (batch norms: "
                  "running statistics reset, affine parameters re-drawn); the LRP readings "
                  "are explained after every stage (replicate 0, the curve below), every "
                  "explainer of every replicate after the last (the figure), with the "
                  "trained replicate's predictions as targets. Figure: mean per-example "
                  "Spearman rho of |maps| with the trained maps (Adebayo et al. 2018); second "
                  "bound on the signed maps (a mirrored ranking is no new ranking).")
    return out


def _signed_estimate(signed: np.ndarray) -> Estimate:
    from pmt_core.stats.intervals import crossed_t

    est = crossed_t(signed)
    lo, hi = sorted((abs(est.low), abs(est.high)))
    low = 0.0 if est.low <= 0 <= est.high else lo
    return Estimate(abs(est.value), low, hi, est.method, est.n, est.replicates)


MODEL_RANDOMISATION = family(Family(
    "sanity.model_randomisation",
    AtMost("mean rho |map|", th.RANDOMISATION_MAX_RHO, name="depends on the weights",
           effect=th.EFFECT_RANDOMISATION,
           why="Adebayo et al. 2018; an input-only map scores 1"),
    _mean, _randomisation, must_reject=MODEL_FREE_NULLS,
    extra_bounds=(AtMost("|mean rho| signed", th.RANDOMISATION_MAX_RHO,
                         name="signed maps change", why="a mirrored ranking is no new one"),),
    excluded="random maps change whatever happens, and the randomised-model null is "
             "randomised already."))


@claim("sanity.model_randomisation.{composite}", title="Maps of {composite} change when "
       "every layer of the network is re-initialised, in magnitude and in sign",
       params={"composite": COMPOSITES}, unit="mean Spearman rho of |maps|, trained vs "
       "randomised", bounds=reading_bounds(MODEL_RANDOMISATION))
def model_randomisation(ev, composite):
    """Rank correlation of the trained and fully randomised models' |maps|."""
    return reading_measurement(ev, MODEL_RANDOMISATION, composite)


def _data_randomisation(ev) -> FamilyResult:
    stage = ev.sanity_data_randomisation
    idx = stage.index
    models = ev.models.replicates["s1s2"]
    out = FamilyResult(strata=models[0].test_true[idx], n=len(idx))
    for n, per_model in stage.maps.items():
        out.values[n] = (np.stack([_rho_values(ev.explanations.maps[n][r][idx], maps)[1]
                                   for r, maps in enumerate(per_model)]),)
    out.detail = (f"{stage.n_models} S1+S2 model(s) trained on shuffled training (and "
                  "validation) labels with replicate k's seed, explained on the sanity "
                  "examples for the trained replicate's predicted class; figure: mean "
                  "Spearman rho of |maps| with trained replicate k's (Adebayo et al. 2018).")
    return out


DATA_RANDOMISATION = family(Family(
    "sanity.data_randomisation",
    AtMost("mean rho |map|", th.RANDOMISATION_MAX_RHO, name="depends on the labels",
           effect=th.EFFECT_RANDOMISATION,
           why="Adebayo et al. 2018; an input-only map scores 1"),
    _mean, _data_randomisation, must_reject=MODEL_FREE_NULLS,
    excluded="random maps change whatever happens, and the randomised-model null "
             "ignores the training altogether."))


@claim("sanity.data_randomisation.{composite}", title="Maps of {composite} differ for a "
       "network trained on shuffled labels", params={"composite": COMPOSITES},
       unit="mean Spearman rho of |maps|, trained vs shuffled-label model",
       bounds=reading_bounds(DATA_RANDOMISATION))
def data_randomisation(ev, composite):
    """Rank correlation of |maps| of the trained and the shuffled-label models."""
    return reading_measurement(ev, DATA_RANDOMISATION, composite)


__all__ = ["COMPOSITES"]
