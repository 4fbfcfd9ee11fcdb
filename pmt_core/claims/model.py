"""What the model uses, decided by interventions on its input (no explainer involved).

The relevance claims ask where an explanation lands; the input and its energy
land at the rate too (the physics is in the input), so they cannot say whether
the *model* uses the rate. Band occlusion (:mod:`pmt_core.explain.occlusion`) can:
it removes one lambda2 band at a time and measures the explained logit's drop.
``model.uses_rate`` asks whether the drop is largest at each example's own rate,
beyond the rates of its class (the same within-class permutation null as
``relevance.localisation``); on the modulation-ablated twins, where the
modulation is gone, the same band should matter less. ``model.ignores_distractor``
asks the converse of a class-independent modulation as strong as a technique's:
occluding its band should cost no more than occluding bands at random rates of
its distribution, which is what makes ``relevance.distractor`` a test of maps.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims import protocol as pr
from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, AtMost, Bound, Measurement, claim
from pmt_core.explain import occlusion as occ
from pmt_core.explain import relevance as R
from pmt_core.stats.intervals import MacroMean, MeanOfFinite, crossed_t


def occlusion(ev):
    """Return the band-occlusion evidence (``ev.band_occlusion``).

    A :class:`pmt_core.run.sanity.BandOcclusion`, the ``o`` of the functions below:
    the run computes it once, the claims read it.
    """
    return ev.band_occlusion


def near_rate(o, tol_octaves: float = pr.RATE_TOL_OCTAVES) -> np.ndarray:
    """(examples, bands): bands within ``tol_octaves`` of each example's rate."""
    return o.near_rate(tol_octaves)


_macro = MacroMean()


USES_RATE = AtLeast("lift over permuted rates", th.MODEL_USE_MIN_LIFT,
                    name="uses each example's rate", effect=th.EFFECT_LIFT,
                    why="a model that uses only class-typical rates scores 0; five points "
                        "of the occlusion effect above it, as for localisation")


def _scored(o) -> np.ndarray:
    """(replicates, examples): correctly classified, with a band near the rate."""
    return o.correct & near_rate(o).any(axis=1)[None, :]


def _per_band_at_rate(o, values: np.ndarray) -> np.ndarray:
    """(R, n): mean of ``values`` (R, n, bands) over the bands near each scored rate."""
    near, scored = near_rate(o), _scored(o)
    counts = np.maximum(near.sum(axis=1), 1)
    out = (values * near[None]).sum(axis=2) / counts[None, :]
    return np.where(scored, out, np.nan)


def _lift(o, shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, n) within-class lift and share at the rate of per-band ``shares`` (R, n, B)."""
    near, scored = near_rate(o), _scored(o)
    lift = np.full(scored.shape, np.nan)
    at_rate = np.full(scored.shape, np.nan)
    for r in range(scored.shape[0]):
        keep = scored[r]
        if keep.any():
            lifted, here, _ = occ.rate_lift(shares[r][keep], near[keep], o.true[keep])
            lift[r, keep], at_rate[r, keep] = lifted, here
    return lift, at_rate


def _macro_estimate(ev, o, values: np.ndarray):
    classes = np.broadcast_to(o.true, values.shape).astype(float)
    return crossed_t((values, classes), _macro, strata=o.true, seed=ev.seed)


#: Why a lift without spread is not a figure: it is 0 by construction.
_NOTHING_TO_PERMUTE = ("within each class, the scored examples' rates fall near the same "
                       "bands: there is nothing to permute, and the lift is 0 by construction")


def _no_rates(o) -> bool:
    return o.rate is None or not np.any(near_rate(o).any(axis=1))


@claim("model.uses_rate", title="Occluding the S2 band at each example's own modulation rate "
       "costs the model the most, beyond its class's rates",
       unit="occlusion share at the rate minus its within-class permuted expectation",
       paper="relevance lands on the modulation rate because the network uses it "
             "(sections 4.2-4.3)", bounds=[USES_RATE])
def uses_rate(ev) -> Measurement:
    """Within-class lift of the occlusion drop share at each example's rate."""
    o = occlusion(ev)
    if _no_rates(o):
        return Measurement.skip("the data set has no per-example modulation rate near an "
                                "S2 band")
    lift, at_rate = _lift(o, o.shares)
    seed = ev.seed
    drop_at_rate = _per_band_at_rate(o, o.drops)
    figures = {
        "lift over permuted rates": _macro_estimate(ev, o, lift),
        "share at the rate (macro)": _macro_estimate(ev, o, at_rate),
        "logit drop at the rate": crossed_t(drop_at_rate, strata=o.true, seed=seed)}
    if o.twin_drops is not None:
        twin_at_rate = _per_band_at_rate(o, o.twin_drops)
        figures["logit drop at the rate, ablated twin"] = crossed_t(
            twin_at_rate, strata=o.true, seed=seed)
        figures["logit drop at the rate, original minus twin"] = crossed_t(
            drop_at_rate - twin_at_rate, strata=o.true, seed=seed)
    if not figures["lift over permuted rates"].se > 0:
        return Measurement.skip(_NOTHING_TO_PERMUTE)
    scored = _scored(o)
    m = Measurement(figures=figures, n=int(scored.any(axis=0).sum()))
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
    m.detail += o.rate_note
    if ev.rates.source == "estimated":
        _declare_estimator_attenuation(ev, o, m)
    m.table(_band_table(o, scored), "Mean occlusion share per band and class (correctly "
            "classified examples, all replicates): the band each technique's logit leans on")
    return m


def _declare_estimator_attenuation(ev, o, m: Measurement) -> None:
    """Lower the rejection bar by what the rate estimator's error alone costs the lift.

    A planted model that uses the band at each example's rate (the rates at hand),
    scored against those rates moved by the estimator's measured error
    (:func:`pmt_core.data.rates.attenuation`), as the relevance rate claims do.
    """
    from pmt_core.data.rates import attenuation, attenuation_note

    known = np.isfinite(o.rate) & (o.rate > 0)
    shares = occ.band_shares(planted_drops(o, np.where(known, o.rate, np.nan))[0][known])
    classes = o.true[known]

    def lift(told):
        lifted, _, _ = occ.rate_lift(shares, o.bands.near(told, pr.RATE_TOL_OCTAVES), classes)
        return _macro((lifted[None, :], classes[None, :].astype(float)))

    techniques = np.asarray(o.class_names, dtype=object)[classes]
    factor, se = attenuation(lift, o.rate[known], techniques, ev.seed)
    m.attenuation[USES_RATE.figure] = factor
    m.detail += attenuation_note(factor, se, USES_RATE.name, USES_RATE.value)


def planted_drops(o, target_hz, seed: int = 0) -> np.ndarray:
    """(R, n, bands) drops of a planted model that uses only the band nearest each target.

    The nearest band costs 1, every other a faint seeded noise (1e-3) that breaks
    ties; an example without a target costs noise only. The same for every
    replicate: a planted mechanism does not depend on training.
    """
    rng = np.random.default_rng([seed, 29])
    drops = 1e-3 * rng.random((len(o.true), len(o.bands.hz)))
    band = o.bands.nearest(target_hz)
    known = np.flatnonzero(band >= 0)
    drops[known, band[known]] += 1.0
    return np.broadcast_to(drops, o.drops.shape)


#: The planted mechanisms of ``power.model.uses_rate``: (name, must pass).
USE_CONTROLS = (("oracle_rate", True), ("adversary_permuted", False),
                ("adversary_distractor", False))


def _planted_targets(ev, o) -> dict:
    """Target rate per test example of each planted mechanism (those the data allow)."""
    rate = np.where(np.isfinite(o.rate) & (o.rate > 0), o.rate, np.nan)
    other = np.full(len(rate), np.nan)
    rng = np.random.default_rng([ev.seed, 23])
    for k in np.unique(o.true):
        members = np.flatnonzero((o.true == k) & np.isfinite(rate))
        if members.size > 1:
            other[members] = rate[np.roll(members, rng.integers(1, members.size))]
    out = {"oracle_rate": rate, "adversary_permuted": other}
    distractor = ev.data.column("distractor_rate_hz", "test")
    if distractor is not None:
        out["adversary_distractor"] = np.where(np.isfinite(distractor) & (distractor > 0),
                                               distractor, np.nan)
    return out


def _control_bounds(criterion: Bound, controls) -> list[Bound]:
    """Bounds of a power claim: each planted mechanism meets the criterion or fails it.

    ``controls``: (name, must pass) pairs; a control that must fail meets the
    criterion's bar from the other side.
    """
    flip = {"at least": "at most", "at most": "at least"}
    return [Bound(f"{name}: {criterion.figure}", criterion.op if passes else flip[criterion.op],
                  criterion.value, f"{'accepts' if passes else 'rejects'} {name}",
                  "a mechanism with the property by construction must meet the criterion"
                  if passes else "a mechanism that lacks the property must fail the criterion")
            for name, passes in controls]


@claim("power.model.uses_rate", title="The criterion of model.uses_rate accepts a planted "
       "model that uses each example's rate and rejects planted models that use another "
       "rate", unit="planted controls", bounds=_control_bounds(USES_RATE, USE_CONTROLS))
def uses_rate_controls(ev) -> Measurement:
    """Planted occlusion drops through the criterion of model.uses_rate."""
    o = occlusion(ev)
    if _no_rates(o):
        return Measurement.skip("the data set has no per-example modulation rate near an "
                                "S2 band")
    targets = _planted_targets(ev, o)
    missing = [name for name, _ in USE_CONTROLS if name not in targets]
    if missing:
        return Measurement.skip(f"planted controls not computed on these data: {missing}")
    figures = {}
    for name, _ in USE_CONTROLS:
        lift, _ = _lift(o, occ.band_shares(planted_drops(o, targets[name], ev.seed)))
        figures[f"{name}: {USES_RATE.figure}"] = _macro_estimate(ev, o, lift)
    if not figures[f"oracle_rate: {USES_RATE.figure}"].se > 0:
        return Measurement.skip(_NOTHING_TO_PERMUTE)
    m = Measurement(figures=figures, n=int(_scored(o).any(axis=0).sum()))
    m.detail = ("Planted mechanisms in place of the model's occlusion drops, on the same "
                "scored examples and replicates: a model that uses only the band nearest "
                "each example's rate (must pass), nearest another same-class example's rate "
                "or the distractor's (must fail).")
    return m


def _band_table(o, scored: np.ndarray) -> list[dict]:
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


# ------------------------------------------------------------------ distractor --
IGNORES_DISTRACTOR = AtMost("distractor lift", th.DISTRACTOR_MAX_LIFT,
                            name="ignores the distractor", effect=th.EFFECT_DISTRACTOR,
                            why="no more than at random rates, a quarter's allowance (as "
                                "relevance.distractor)")


def _distractor_scoring(ev, o):
    """(scored, random rates, distractor) of the test split, or None without distractors."""
    distractor = ev.data.column("distractor_rate_hz", "test")
    if distractor is None or o.rate is None:
        return None
    scored, random_rates = R.distractor_scoring(distractor, o.rate, o.bands.hz,
                                                pr.DISTRACTOR_TOL_OCTAVES, ev.seed)
    return (scored, random_rates, distractor) if scored.any() else None


def _distractor_lift(o, drops: np.ndarray, scoring) -> np.ndarray:
    """(R, n) share of |drop| near the distractor over the share near random rates."""
    scored, random_rates, distractor = scoring
    tol = pr.DISTRACTOR_TOL_OCTAVES
    shares = occ.band_shares(np.abs(drops))
    at = (shares * o.bands.near(distractor, tol)[None]).sum(axis=2)
    base = np.mean([(shares * o.bands.near(random_rates[:, j], tol)[None]).sum(axis=2)
                    for j in range(random_rates.shape[1])], axis=0)
    keep = o.correct & scored[None, :] & (base > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep, at / np.where(base > 0, base, 1.0), np.nan)


def _mean_estimate(ev, o, values: np.ndarray):
    return crossed_t(values, MeanOfFinite(), strata=o.true, seed=ev.seed)


_NO_DISTRACTOR = ("no correctly classified test example has a recorded distractor "
                  "(distractor_rate_hz) over an octave from its technique's rate, with S2 "
                  "bands near the distractor and near the random reference rates")


@claim("model.ignores_distractor", title="Occluding the band of a class-independent "
       "distractor costs the model no more than occluding bands at random rates",
       unit="occlusion |drop| share at the distractor over random rates",
       bounds=[IGNORES_DISTRACTOR])
def ignores_distractor(ev) -> Measurement:
    """Share of the occlusion |drop| near the distractor's rate over random rates."""
    o = occlusion(ev)
    scoring = _distractor_scoring(ev, o)
    if scoring is None:
        return Measurement.skip(_NO_DISTRACTOR)
    lift = _distractor_lift(o, o.drops, scoring)
    if not np.isfinite(lift).any():
        return Measurement.skip(_NO_DISTRACTOR)
    m = Measurement(figures={"distractor lift": _mean_estimate(ev, o, lift)},
                    n=int(np.isfinite(lift).any(axis=0).sum()))
    m.detail = (f"Per S1+S2 replicate and correctly classified test example whose distractor "
                f"lies over an octave from its technique's rate: the share of the absolute "
                f"band-occlusion drops (model.uses_rate) within {pr.DISTRACTOR_TOL_OCTAVES} "
                f"octave of the distractor's rate, over the same share around "
                f"{R.DISTRACTOR_RANDOM_RATES} rates drawn from the distractors' distribution "
                "(the draws of relevance.distractor); mean over examples and replicates, "
                "crossed t interval. 1: the distractor's band costs what any band does.")
    m.detail += o.rate_note
    return m


#: The planted mechanisms of ``power.model.ignores_distractor``: (name, must pass).
DISTRACTOR_CONTROLS = (("oracle_rate", True), ("adversary_distractor", False))


@claim("power.model.ignores_distractor", title="The criterion of model.ignores_distractor "
       "accepts a planted model that uses each example's rate and rejects one that uses "
       "the distractor", unit="planted controls",
       bounds=_control_bounds(IGNORES_DISTRACTOR, DISTRACTOR_CONTROLS))
def ignores_distractor_controls(ev) -> Measurement:
    """Planted occlusion drops through the criterion of model.ignores_distractor."""
    o = occlusion(ev)
    scoring = _distractor_scoring(ev, o)
    if scoring is None:
        return Measurement.skip(_NO_DISTRACTOR)
    targets = _planted_targets(ev, o)
    lifts = {name: _distractor_lift(o, planted_drops(o, targets[name], ev.seed),
                                    scoring) for name, _ in DISTRACTOR_CONTROLS}
    if not all(np.isfinite(lift).any() for lift in lifts.values()):
        return Measurement.skip(_NO_DISTRACTOR)
    figures = {f"{name}: {IGNORES_DISTRACTOR.figure}": _mean_estimate(ev, o, lift)
               for name, lift in lifts.items()}
    m = Measurement(figures=figures, n=int(scoring[0].sum()))
    m.detail = ("Planted mechanisms in place of the model's occlusion drops, on the same "
                "scored examples and replicates: a model that uses only the band nearest "
                "each example's rate (must pass), or nearest its distractor's (must fail).")
    return m
