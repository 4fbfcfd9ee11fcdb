"""What the model uses, decided by interventions on its input (no explainer involved).

The relevance claims ask where an explanation lands; the input and its energy
land at the rate too (the physics is in the input), so they cannot say whether
the *model* uses the rate. Band occlusion (:mod:`pmt_core.explain.occlusion`) can:
it removes one lambda2 band at a time and measures the explained logit's drop.
``model.uses_rate`` asks whether the drop is largest at each example's own rate,
beyond the rates of its class (the same within-class permutation null as
``relevance.localisation``); on the modulation-ablated twins, where the
modulation is gone, the same band should matter less.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims import protocol as pr
from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, Measurement, claim
from pmt_core.explain import occlusion as occ
from pmt_core.stats.intervals import MacroMean, crossed_t


class Occlusion:
    """Band-occlusion drops of every S1+S2 replicate on the test split (one per run)."""

    def __init__(self, run):
        models = run.models.replicates["s1s2"]
        self.bands = occ.s2_bands(run.compression.paths)
        self.class_names = tuple(run.data.class_names)
        self.fill = run.input_statistics[0]
        self.true = np.asarray(models[0].test_true, dtype=int)
        self.pred = np.stack([np.asarray(m.test_pred, dtype=int) for m in models])
        self.correct = self.pred == self.true[None, :]
        x = run.test_inputs("s1s2")
        #: (replicates, examples, bands): logit drop of the replicate's prediction
        self.drops = np.stack([
            occ.band_occlusion_drops(m.result.model, x, self.pred[r], self.bands, self.fill)
            for r, m in enumerate(models)])
        self.rate = run.data.column("modulation_rate_hz", "test")
        twins = run.twins
        #: the same on each example's modulation-ablated twin (None without twins),
        #: for the class predicted on the original
        self.twin_drops = None if twins is None or twins.inputs is None else np.stack([
            occ.band_occlusion_drops(m.result.model, twins.inputs, self.pred[r], self.bands,
                                     self.fill)
            for r, m in enumerate(models)])

    @property
    def shares(self) -> np.ndarray:
        """(replicates, examples, bands) drops over each example's total |drop|."""
        return occ.drop_shares(self.drops)

    def near_rate(self, tol_octaves: float = pr.RATE_TOL_OCTAVES) -> np.ndarray:
        """(examples, bands): bands within ``tol_octaves`` of each example's rate."""
        rate = np.full(len(self.true), np.nan) if self.rate is None else self.rate
        return self.bands.near(rate, tol_octaves)


def occlusion(run) -> Occlusion:
    """Return the run's :class:`Occlusion` (computed once)."""
    return run.memo("band_occlusion", lambda: Occlusion(run))


_macro = MacroMean()


@claim("model.uses_rate", title="Occluding the S2 band at each example's own modulation rate "
       "costs the model the most, beyond its class's rates",
       unit="occlusion share at the rate minus its within-class permuted expectation",
       paper="relevance lands on the modulation rate because the network uses it "
             "(sections 4.2-4.3)",
       bounds=[AtLeast("lift over permuted rates", th.MODEL_USE_MIN_LIFT,
                       name="uses each example's rate", effect=th.EFFECT_LIFT,
                       why="a model that uses only class-typical rates scores 0")])
def uses_rate(run) -> Measurement:
    """Within-class lift of the occlusion drop share at each example's rate."""
    o = occlusion(run)
    if o.rate is None or not np.any(o.near_rate().any(axis=1)):
        return Measurement.skip("the data set has no per-example modulation rate near an "
                                "S2 band")
    near = o.near_rate()
    shares = o.shares
    n_rep, n = o.pred.shape
    scored = o.correct & near.any(axis=1)[None, :]
    lift = np.full((n_rep, n), np.nan)
    at_rate = np.full((n_rep, n), np.nan)
    drop_at_rate = np.full((n_rep, n), np.nan)
    twin_at_rate = np.full((n_rep, n), np.nan)
    counts = np.maximum(near.sum(axis=1), 1)
    for r in range(n_rep):
        keep = scored[r]
        if not keep.any():
            continue
        lifted, here, _ = occ.rate_lift(shares[r][keep], near[keep], o.true[keep])
        lift[r, keep], at_rate[r, keep] = lifted, here
        drop_at_rate[r, keep] = (o.drops[r][keep] * near[keep]).sum(axis=1) / counts[keep]
        if o.twin_drops is not None:
            twin_at_rate[r, keep] = ((o.twin_drops[r][keep] * near[keep]).sum(axis=1)
                                     / counts[keep])
    classes = np.broadcast_to(o.true, (n_rep, n)).astype(float)
    seed = run.settings.seed
    figures = {
        "lift over permuted rates": crossed_t((lift, classes), _macro, strata=o.true,
                                              seed=seed),
        "share at the rate (macro)": crossed_t((at_rate, classes), _macro, strata=o.true,
                                               seed=seed),
        "logit drop at the rate": crossed_t(drop_at_rate, strata=o.true, seed=seed)}
    if o.twin_drops is not None:
        figures["logit drop at the rate, ablated twin"] = crossed_t(
            twin_at_rate, strata=o.true, seed=seed)
        figures["logit drop at the rate, original minus twin"] = crossed_t(
            drop_at_rate - twin_at_rate, strata=o.true, seed=seed)
    m = Measurement(figures=figures, n=int(scored.any(axis=0).sum()))
    if not figures["lift over permuted rates"].se > 0:
        # every class's rates fall near the same bands: the lift is 0 by construction
        m.inconclusive = ("the lift has no spread: within each class, the scored examples' "
                          "rates fall near the same bands, so there is nothing to permute")
    m.detail = (
        f"Per S1+S2 replicate and correctly classified test example with a known rate: each "
        f"of the {len(o.bands.hz)} lambda2 bands (every S2 path at that lambda2) in turn "
        "replaced by its training mean, and the drop of the predicted class's logit "
        "recorded (pmt_core.explain.occlusion); shares = drop / sum of |drops| over bands. "
        f"Figure: the mean share of the bands within {pr.RATE_TOL_OCTAVES} octave of the "
        "example's rate minus its expectation with the rate of a random member of the "
        "class (a model that uses only its class's typical rates scores 0), macro over "
        "classes; interval: crossed t over replicates and examples. The ablated twin keeps "
        "the example's pitch, instrument and distractor with the technique's modulation off: "
        "the band at the rate should then cost less.")
    m.table(_band_table(o, scored), "Mean occlusion share per band and class (correctly "
            "classified examples, all replicates): the band each technique's logit leans on")
    return m


def _band_table(o: Occlusion, scored: np.ndarray) -> list[dict]:
    """Per class: mean share per band, the band that costs most and the median rate."""
    shares = o.shares
    rows = []
    for k in np.unique(o.true):
        mask = scored & (o.true == k)[None, :]
        if not mask.any():
            continue
        mean = np.nanmean(shares[mask], axis=0)
        top = int(np.nanargmax(mean)) if np.isfinite(mean).any() else None
        rate = o.rate[o.true == k] if o.rate is not None else np.array([np.nan])
        row = {"class": o.class_names[k], "examples x replicates": int(mask.sum()),
               "median rate (Hz)": round(float(np.nanmedian(rate)), 2),
               "band costing most (Hz)": None if top is None else round(float(o.bands.hz[top]),
                                                                        2)}
        row.update({f"{hz:.3g} Hz": round(float(s), 3) for hz, s in zip(o.bands.hz, mean,
                                                                          strict=True)})
        rows.append(row)
    return rows
