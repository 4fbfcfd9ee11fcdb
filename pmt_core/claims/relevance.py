"""Relevance claims of the paper (sections 4.2-4.3), each run on every explainer.

Relevance lives in the compressed input domain (method.md section 1; the input
batch norm folded into the first convolution, pmt_core.explain.lrp); maps are
its average over the frames, for the replicate's predicted class (one-hot top,
so a map's sign never depends on the logit's). Every family below computes its
figure for every explainer of :mod:`pmt_core.explain.explainers`; a paper
reading passes only if it also beats the strongest null the family must reject
(:mod:`pmt_core.claims.families`).

Scoring conventions:

* "Peak" = largest signed time-averaged relevance among the S2 paths (the
  paper's argmax, Eq. 13): the most positive evidence for the explained class.
* Where relevance lands (localisation, peak modulation, pitch) is scored on
  correctly classified test examples only, per replicate: only for them is the
  explanation one of the true technique.
"""

from __future__ import annotations

import math

import numpy as np

from pmt_core.claims import protocol as pr
from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, AtMost, claim
from pmt_core.claims.families import (
    INPUT_NULLS,
    Family,
    FamilyResult,
    class_macro,
    family,
    reading_bounds,
    reading_measurement,
)
from pmt_core.claims.relevance_view import (
    COMPOSITES,
    PAPER_TEXT_READING,
    View,
    per_replicate_macro,
    planted_map,
    view,
)
from pmt_core.explain import relevance as R
from pmt_core.figures.claims import scatter_figure
from pmt_core.stats import equivalence as EQ
from pmt_core.stats.bulk_statistics import WithinClassRho
from pmt_core.stats.correlation import within_class_rho
from pmt_core.stats.intervals import (
    N_VARIANCE_DRAWS_GENERIC,
    MacroMean,
    MeanOfFinite,
    crossed_t,
)
from pmt_core.techniques import MODULATION_BAND_HZ

_macro = MacroMean()
_mean = MeanOfFinite()


def _median(values):
    v = values[0][np.isfinite(values[0])]
    return float(np.median(v)) if v.size else math.nan


def estimated_rate_attenuation(v: View, fam: Family, out: FamilyResult, seed: int,
                               figure_of) -> None:
    """Declare how much the rate estimator's error shrinks ``fam``'s figure (estimated rates).

    A map planted at each scored example's rate is scored against rates moved by
    errors drawn from the estimator's error measured where rates are known
    (:func:`pmt_core.data.rates.attenuation`); the share of its figure it keeps
    lowers the criterion's rejection bar (:meth:`pmt_core.claims.core.Bound.rejection_bar`),
    so that the estimator's error alone cannot decide "does not hold". Nothing
    changes where the data record their rates.

    Parameters
    ----------
    figure_of : callable
        ``(peak_hz, told_rate_hz, classes) -> float``: the family's figure for
        peaks at ``peak_hz`` when the claim is told ``told_rate_hz`` (all examples
        scored, one replicate).
    """
    from pmt_core.data.rates import attenuation, attenuation_note

    known = v.known(v.rate)
    if not v.rates_estimated or not known.any():
        return
    peak = R.peak_modulation_hz(planted_map(v, np.where(known, v.rate, np.nan))[known],
                                v.paths)
    classes = v.true[known]
    techniques = np.asarray(v.class_names, dtype=object)[classes]
    factor, se = attenuation(lambda told: figure_of(peak, told, classes), v.rate[known],
                             techniques, seed)
    out.attenuation[fam.figure] = factor
    out.detail += attenuation_note(factor, se, fam.criterion.name, fam.criterion.value)


def _localisation_lift(peak_hz, told_hz, classes, tol=pr.RATE_TOL_OCTAVES) -> float:
    """Macro lift of one replicate's peaks against ``told_hz`` (every example scored)."""
    lift = ((R.octave_distance(peak_hz, told_hz) <= tol)
            - R.expected_permuted_hits(peak_hz, told_hz, classes, tol))
    return class_macro(lift[None, :].astype(float), np.asarray(classes, float)[None, :])


def _rate_rho(peak_hz, told_hz, classes) -> float:
    """Within-class rho of one replicate's peaks with ``told_hz`` (every example scored)."""
    return within_class_rho((np.log2(peak_hz)[None, :], np.log2(told_hz)[None, :],
                             np.asarray(classes, float)[None, :]))


# -------------------------------------------------------------- localisation --
def _localisation(ev) -> FamilyResult:
    v = view(ev)
    if not v.known(v.rate).any():
        return FamilyResult(not_applicable="the data set has no per-example modulation rate")
    tol = pr.RATE_TOL_OCTAVES
    out = FamilyResult(strata=v.true)
    hits_all, chance = {}, None
    for name, per_rep in v.maps.items():
        lift = np.full((v.n_rep, v.n), np.nan)
        hits = np.full((v.n_rep, v.n), np.nan)
        present = np.full((v.n_rep, v.n), np.nan)
        for r in range(v.n_rep):
            keep = v.correct[r] & v.known(v.rate)
            if not keep.any():
                continue
            peak = R.peak_modulation_hz(per_rep[r][keep], v.paths)
            hit = R.octave_distance(peak, v.rate[keep]) <= tol
            hits[r, keep] = hit
            present[r, keep] = R.peak_on_present(per_rep[r][keep], v.inputs[keep],
                                                 v.input_mean, v.paths)
            lift[r, keep] = hit - R.expected_permuted_hits(peak, v.rate[keep], v.true[keep], tol)
        out.values[name] = (lift, v.classes)
        hits_all[name] = (hits, present)
    scored = v.correct & v.known(v.rate)[None, :]
    out.n = int(scored.any(axis=0).sum())
    chance = R.chance_hit_rate(v.paths, np.where(v.known(v.rate), v.rate, 1.0), tol)
    chance_macro = per_replicate_macro(np.where(scored, chance[None, :], np.nan), v.classes)
    for name, (hits, present) in hits_all.items():
        out.figures[name] = {"hit rate (macro)": per_replicate_macro(hits, v.classes),
                             "chance hit rate (random map, macro)": chance_macro,
                             "peaks on present modulation (macro)":
                                 per_replicate_macro(present, v.classes)}
    out.detail = (
        f"Correctly classified test examples with a known rate, per replicate ({out.n} "
        f"examples scored by at least one of {v.n_rep} replicates). Hit: the S2 path with the "
        f"largest time-averaged relevance has lambda2 within {tol} octave of the example's "
        "rate. Presence: the peak path's input exceeds its training mean (the input batch "
        "norm subtracts it, so a positive peak elsewhere is evidence of an absence). "
        "Figure: hit minus the expected hit against the rates of the example's class "
        "shuffled (a map that knows only the class scores 0), macro-averaged over classes; "
        "interval: crossed bootstrap over replicates and examples.")
    out.detail += v.rate_note
    estimated_rate_attenuation(v, LOCALISATION, out, ev.seed, _localisation_lift)
    out.tables.append(([{"explainer": n, **{k: round(x.value, 4)
                                            for k, x in out.figures[n].items()}}
                        for n in out.values], "Hit rates per explainer (macro over classes)"))
    out.plots.append(lambda composite: _figure1(ev, v, composite))
    return out


def _figure1(ev, v: View, composite: str):
    """Draw the paper's Fig. 1 analogue (replicate 0, one example per class, A4-nearest).

    Attached to the paper's text reading only: every reading's map is in it.
    """
    if composite != PAPER_TEXT_READING:
        return None
    from pmt_core.figures.paper import LocalExample, figure1, pick_examples

    picks = pick_examples(v.class_names, v.true, v.pred[0], v.f0)
    rows = ev.data.frame.iloc[ev.data.index("test")].reset_index(drop=True)
    cfg = ev.scattering_config
    examples = {}
    for name, i in picks.items():
        if i is None:
            examples[name] = None
            continue
        audio = ev.test_clip(i)  # for the spectrogram panel
        examples[name] = LocalExample(
            technique=name, audio=np.asarray(audio, float), sample_rate=cfg.sample_rate,
            f0_hz=float(v.f0[i]) if v.f0 is not None else math.nan,
            modulation_rate_hz=float(v.rate[i]) if v.rate is not None else math.nan,
            description=f"{rows.iloc[i].get('instrument', '')}, test #{i}, predicted "
                        f"{v.class_names[v.pred[0][i]]}",
            scattering=v.energy[i],
            relevance={c: v.maps[c][0][i] for c in COMPOSITES if c in v.maps})
    figs = figure1(examples, v.paths, highlight=composite)
    from pmt_core.figures.claims import stack_figures

    return (stack_figures(figs),
            "Figure 1 analogue (replicate 0): per technique, the log-spectrogram, the "
            "time-averaged scattering and the local relevance map of every LRP reading "
            f"(bold: {composite}); dotted f0, dashed true modulation rate, cross at both.")


LOCALISATION = family(Family(
    "relevance.localisation",
    AtLeast("lift over permuted rates", th.LOCALISATION_MIN_LIFT, name="tracks the rate",
            effect=th.EFFECT_LIFT,
            why="a map that knows only the class scores 0; five points above it"),
    _macro, _localisation, oracles=("oracle_rate",),
    adversaries=("adversary_distractor", "adversary_permuted"),
    beside=("energy_raw", "energy_norm", "input"),
    excluded="the input and its energy carry the modulation, so they localise the rate "
             "legitimately: they are shown beside each reading; whether the model uses the "
             "rate needs an intervention on the model, not a harder bar (audit H3)."))


@claim("relevance.localisation.{composite}", title="Peak S2 relevance ({composite}) lies at "
       "each example's own modulation rate, beyond its class's rates",
       params={"composite": COMPOSITES}, unit="hit rate minus the permuted-rate hit rate",
       paper="relevance is localised around the modulation rate (e.g. 8 Hz trill, 32 Hz "
             "flatterzunge), section 4.2", bounds=reading_bounds(LOCALISATION))
def localisation(ev, composite):
    """Lift of the peak's hit rate over the within-class permuted rates, per explainer."""
    return reading_measurement(ev, LOCALISATION, composite)


# ------------------------------------------------------------- peak modulation --


#: Example resamples behind the class-median ordering's variance (a Python
#: statistic per draw and replicate).
ORDER_DRAWS = 100


def _ordered_share(class_names):
    """Statistic ``(peaks in Hz, classes) -> share of band-ordered class-median pairs``."""
    def share(values):
        peaks_hz, classes = values
        return R.ordered_pair_share(peaks_hz.ravel(), classes.ravel(), class_names,
                                    MODULATION_BAND_HZ)[0]
    return share


def _peak_modulation(ev) -> FamilyResult:
    v = view(ev)
    if not v.known(v.rate).any():
        return FamilyResult(not_applicable="the data set has no per-example modulation rate")
    out = FamilyResult(strata=v.true)
    rate = np.broadcast_to(np.log2(np.where(v.known(v.rate), v.rate, np.nan)), v.pred.shape)
    for name, per_rep in v.maps.items():
        peaks = np.full((v.n_rep, v.n), np.nan)
        for r in range(v.n_rep):
            keep = v.correct[r] & v.known(v.rate)
            peaks[r, keep] = np.log2(R.peak_modulation_hz(per_rep[r][keep], v.paths))
        out.values[name] = (peaks, np.array(rate), v.classes)
        peaks_hz = np.exp2(peaks)
        _, rows = R.ordered_pair_share(peaks_hz.ravel(), v.classes.ravel(), v.class_names,
                                       MODULATION_BAND_HZ)
        # A statistic, not a point: two class medians a few Hz apart swap with the
        # rounding of training (seed 0: 0.6 on one machine, 1.0 under --perturb ulp).
        out.figures[name] = {"ordered pairs": crossed_t(
            (peaks_hz, v.classes), _ordered_share(v.class_names), strata=v.true,
            seed=ev.seed, n_draws=ORDER_DRAWS)}
        if name in COMPOSITES:
            out.tables.append((rows, f"{name}: class medians of the peak lambda2 (all "
                                     "replicates), pairs the a-priori bands order"))
    out.n = int((v.correct & v.known(v.rate)[None, :]).any(axis=0).sum())
    out.detail = (
        "Discrimination, not band placement: within each class, Spearman rho between each "
        "correctly classified example's peak lambda2 and its true rate, pooled over classes "
        "by Fisher z (weights n - 3) and averaged over replicates (a class-constant map "
        "scores 0). Second bound: every pair of techniques whose a-priori bands "
        "(pmt_core.techniques.MODULATION_BAND_HZ, fixed before any data) do not overlap "
        "must be ordered as the bands by the class medians of the peak.")
    out.detail += v.rate_note
    estimated_rate_attenuation(v, PEAK_MODULATION, out, ev.seed, _rate_rho)

    def plot(composite):
        peaks = np.exp2(out.values[composite][0])
        rates = np.broadcast_to(v.rate, peaks.shape)
        x = {n: rates[v.classes == k].ravel() for k, n in v.class_rows()}
        y = {n: peaks[v.classes == k].ravel() for k, n in v.class_rows()}
        bands = {n: MODULATION_BAND_HZ[n] for n in x if n in MODULATION_BAND_HZ}
        return (scatter_figure(x, y, f"{composite}: peak lambda2 against the true rate",
                               "true modulation rate (Hz)", "peak lambda2 (Hz)",
                               diagonal_octaves=pr.RATE_TOL_OCTAVES, bands=bands),
                "Each correctly classified example and replicate: the lambda2 of its S2 "
                "relevance peak against its true rate; a faithful map follows the diagonal "
                f"(solid; dotted: within {pr.RATE_TOL_OCTAVES} octave, localisation's hit) "
                "within each class. Bars on the x axis: each technique's a-priori band.")

    out.plots.append(plot)
    out.plots.append(lambda composite: _figure2(ev, v, composite))
    return out


def _figure2(ev, v: View, composite: str):
    """Draw the paper's Fig. 2 analogue (replicate 0): class aggregates (Eq. 13)."""
    if composite != PAPER_TEXT_READING:
        return None
    from pmt_core.figures.paper import class_aggregates, figure2

    keep = v.correct[0]
    maps = {c: v.maps[c][0][keep] for c in COMPOSITES if c in v.maps}
    rate = None if v.rate is None else v.rate[keep]
    aggregates = class_aggregates(v.class_names, v.true[keep], v.energy[keep], maps, rate,
                                  n=pr.AGGREGATE_TOP_N)
    return (figure2(aggregates, v.paths, highlight=composite),
            "Figure 2 analogue (replicate 0, correctly classified test examples): per class, "
            f"the mean scattering and the top-{pr.AGGREGATE_TOP_N} relevance counts of every "
            "LRP reading; white dashes: the a-priori band, red: the median true rate.")


PEAK_MODULATION = family(Family(
    "relevance.peak_modulation",
    AtLeast("within-class rate correlation", th.PEAK_MIN_RATE_RHO, name="follows the rate",
            effect=th.EFFECT_RHO,
            why="a class-constant map scores 0; 0.2 is the floor of a weak association"),
    # the bulk form of within_class_rho over the generic branch's 200 resamples: the
    # same figures bit for bit (tests/test_bulk_statistics.py), 270x faster
    WithinClassRho(n_draws=N_VARIANCE_DRAWS_GENERIC), _peak_modulation,
    extra_bounds=(AtLeast("ordered pairs", th.PEAK_MIN_ORDERED_SHARE, name="physical order",
                          why="bands fixed a priori (method.md section 6)"),),
    oracles=("oracle_rate",), adversaries=("adversary_distractor", "adversary_permuted"),
    beside=("energy_raw", "energy_norm", "input")))


@claim("relevance.peak_modulation.{composite}", title="The peak lambda2 of relevance "
       "({composite}) follows each example's rate within its class, and orders the "
       "techniques as physics does", params={"composite": COMPOSITES},
       unit="within-class Spearman rho (peak lambda2, rate)",
       paper="'8 Hz trill, 32 Hz flatterzunge' (section 4.2)",
       bounds=reading_bounds(PEAK_MODULATION))
def peak_modulation(ev, composite):
    """Within-class rank correlation of the peak lambda2 with the true rate."""
    return reading_measurement(ev, PEAK_MODULATION, composite)


# -------------------------------------------------------------- pitch invariance --
def _pitch_peaks(v: View, maps: np.ndarray, r: int) -> np.ndarray:
    """log2 peak lambda2 (below f0 / 2) of replicate ``r``'s scored examples (NaN elsewhere).

    Scored: correctly classified, f0 known, and f0 / 2 above the top of the
    technique's a-priori band (lambda2 is read below f0 / 2 only: harmonics closer
    than a first-order bandwidth beat at lambda2 ~ f0 whatever the explanation,
    and a cut inside the technique's own band would itself make the peak follow
    pitch).
    """
    f0 = np.where(v.known(v.f0), v.f0, np.nan)
    band_high = np.array([MODULATION_BAND_HZ.get(v.class_names[k], (0.0, 0.0))[1]
                          for k in v.true])
    with np.errstate(invalid="ignore"):
        keep = v.correct[r] & v.known(v.f0) & (pr.PITCH_MAX_LAMBDA2_OVER_F0 * f0 >= band_high)
    out = np.full(v.n, np.nan)
    if keep.any():
        below = R.restrict_below(maps[keep], v.paths, pr.PITCH_MAX_LAMBDA2_OVER_F0 * f0[keep])
        out[keep] = np.log2(R.peak_modulation_hz(below, v.paths))
    return out


def _pitch(ev) -> FamilyResult:
    v = view(ev)
    if not v.known(v.f0).any():
        return FamilyResult(not_applicable="the data set has no per-example pitch (f0_hz)")
    out = FamilyResult(strata=v.true)
    log2_f0 = np.log2(np.where(v.known(v.f0), v.f0, np.nan))
    rows = []
    for name, per_rep in v.maps.items():
        peaks = np.stack([_pitch_peaks(v, per_rep[r], r) for r in range(v.n_rep)])
        results = EQ.class_slopes(peaks, log2_f0, v.true, v.class_names,
                                  seed=ev.seed)
        largest, smallest = EQ.combine(results)
        out.estimates[name] = largest
        out.values[name] = ()
        degenerate = {c: r.degenerate for c, r in results.items() if r.degenerate}
        out.figures[name] = {
            "smallest class slope": smallest,
            # Names, not a count: which classes pass is a per-class verdict, held by
            # the slopes' bounds, not a figure for the baseline to compare.
            "classes equivalent": ", ".join(c for c, r in results.items()
                                            if r.outcome == "equivalent") or "none",
            "classes degenerate": len(degenerate)}
        if degenerate:
            out.figures[name]["degenerate"] = "; ".join(f"{c}: {why}"
                                                      for c, why in degenerate.items())
        if name in COMPOSITES or name in ("oracle_rate", "adversary_pitch"):
            for c, r in results.items():
                e = r.estimate
                rows.append({"explainer": name, "class": c, "n": r.n,
                             "slope": None if e is None else e.value,
                             "90% interval": None if e is None else f"[{e.low:.3f}, "
                                                                      f"{e.high:.3f}]",
                             "f0 span (oct)": r.f0_octaves, "outcome": r.outcome,
                             "why degenerate": r.degenerate or ""})
    out.n = int(v.known(v.f0).sum())
    out.tables.append((rows, "Per class: slope of log2 peak lambda2 on log2 f0 (octaves per "
                             "octave), TOST interval"))
    out.plots.append(lambda composite: _pitch_profiles_figure(v, composite))
    out.detail = (
        "Equivalence, not failure to reject (Schuirmann's two one-sided tests): per class, "
        "the slope of log2(peak lambda2) on log2(f0) over correctly classified test "
        "examples, one slope per replicate, averaged; 90 % crossed t interval (each side "
        f"at 5 %). Invariant within +-{EQ.MARGIN_OCTAVES_PER_OCTAVE} octave per octave of "
        "pitch (half the second-order filter spacing): the claim holds when every class's "
        "interval lies inside the margin (intersection-union, Berger 1982), and does not "
        "hold when one class's lies beyond it. lambda2 is read below f0 / 2 (harmonic "
        "beating), for notes whose f0 / 2 clears the technique's a-priori band. Classes "
        "with too few examples, too narrow an f0 span or a flat peak are degenerate: "
        "flagged, not scored. Power: a planted map at each example's true rate must be "
        "shown invariant, one at f0 / 8 must be rejected.")
    return out


#: f0 groups per class in the pitch figure (terciles of the class's test f0).
PITCH_FIGURE_GROUPS = 3


def _pitch_profiles_figure(v: View, composite: str):
    """Draw each class's lambda2 profile of positive relevance per f0 tercile.

    A pitch-invariant map keeps its profile across the groups while the carriers
    move with pitch; each example's profile is normalised to sum 1 before the
    average over the correctly classified examples of every replicate.
    """
    from matplotlib.figure import Figure

    classes = v.class_rows()
    fig = Figure(figsize=(3.0 * len(classes) + 0.6, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(classes), sharey=True))
    log2_f0 = np.log2(np.where(v.known(v.f0), v.f0, np.nan))
    lam2 = v.paths.modulation_hz[v.paths.second_order]
    for ax, (k, name) in zip(axes, classes, strict=True):
        members = np.flatnonzero((v.true == k) & v.known(v.f0))
        band = MODULATION_BAND_HZ.get(name)
        if band is not None:
            ax.axvspan(*band, color="0.9", label="a-priori band")
        ax.set_xscale("log")
        ax.set_xlim(lam2.min(), lam2.max())
        ax.set_xlabel("modulation $\\lambda_2$ (Hz)", fontsize=8)
        ax.tick_params(labelsize=7)
        if members.size < PITCH_FIGURE_GROUPS:
            ax.set_title(f"{name}: inconclusive, n = {members.size}", fontsize=8)
            continue
        edges = np.quantile(log2_f0[members], np.linspace(0, 1, PITCH_FIGURE_GROUPS + 1))
        group = np.clip(np.searchsorted(edges[1:-1], log2_f0[members], side="right"), 0,
                        PITCH_FIGURE_GROUPS - 1)
        for g in range(PITCH_FIGURE_GROUPS):
            idx = members[group == g]
            profiles = []
            for r in range(v.n_rep):
                keep = idx[v.correct[r, idx]]
                if keep.size:
                    freqs, profile = R.lambda2_profile(np.clip(v.maps[composite][r][keep], 0,
                                                               None), v.paths)
                    total = profile.sum(axis=1, keepdims=True)
                    profiles.append(profile / np.where(total > 0, total, 1.0))
            label = f"f0 {2 ** edges[g]:.0f}-{2 ** edges[g + 1]:.0f} Hz"
            if not profiles:
                ax.plot([], [], label=f"{label}: n = 0")
                continue
            stacked = np.concatenate(profiles)
            ax.plot(freqs, stacked.mean(axis=0), label=f"{label} (n = {len(stacked)})")
        scored = int(v.correct[:, members].sum())
        ax.set_title(name if scored else f"{name}: inconclusive, n = 0", fontsize=9)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("share of positive relevance", fontsize=8)
    fig.suptitle(f"{composite}: lambda2 profile of relevance per f0 group", fontsize=9)
    return (fig, "Per class, the lambda2 profile of positive relevance (summed over carriers, "
                 "each example's normalised to 1, averaged over the correctly classified "
                 "examples of every replicate) for the low, middle and high thirds of the "
                 "class's pitch. A pitch-invariant map keeps its peak across the groups; a "
                 "peak near f0 that moves with the groups is harmonic beating, which the "
                 "slope ignores (it reads lambda2 below f0 / 2).")


PITCH = family(Family(
    "relevance.pitch_invariance",
    AtMost("largest class slope", EQ.MARGIN_OCTAVES_PER_OCTAVE, name="invariant to pitch",
           effect=th.EFFECT_SLOPE,
           why="TOST: +-0.25 octave per octave, half a lambda2 filter spacing"),
    lambda values: math.nan, _pitch, must_reject=(),
    extra_bounds=(AtLeast("smallest class slope", -EQ.MARGIN_OCTAVES_PER_OCTAVE,
                          name="invariant to pitch (below)", why="the TOST's other side"),),
    oracles=("oracle_rate",), adversaries=("adversary_pitch",),
    excluded="class-constant and random maps ignore pitch by construction, and maps of the "
             "input, its energy or a randomised model follow the signal, whose modulation "
             "below f0 / 2 does not depend on pitch: invariance is necessary, not "
             "sufficient, and the localisation claims carry the discrimination."))


@claim("relevance.pitch_invariance.{composite}", title="The lambda2 peak of relevance "
       "({composite}) does not move with pitch (slope within +-0.25 octave per octave in "
       "every class)", params={"composite": COMPOSITES},
       unit="largest class slope of log2 peak lambda2 on log2 f0",
       paper="'high values at the modulation rate of the playing techniques across pitch' "
             "(section 4.3)", bounds=reading_bounds(PITCH))
def pitch_invariance(ev, composite):
    """Largest and smallest class slope of log2 peak lambda2 on log2 f0 (TOST)."""
    return reading_measurement(ev, PITCH, composite)


# ------------------------------------------------------------------- S1 share --
def _s1_share(ev) -> FamilyResult:
    v = view(ev)
    out = FamilyResult(strata=v.true, n=v.n)
    for name, per_rep in v.maps.items():
        out.values[name] = (np.stack([R.s1_share(m, v.paths) for m in per_rep]),)
    out.detail = (f"Per test example, sum |R| on the {int(v.paths.first_order.sum())} S1 paths "
                  f"over sum |R| on all {len(v.paths)}; median over examples and replicates, "
                  f"against S1's share of the paths ({v.paths.first_order.mean():.3f}).")
    return out


S1_SHARE = family(Family(
    "relevance.s1_share",
    AtMost("median S1 share", lambda c: c["s1_path_share"], name="S1 carries little",
           effect=th.EFFECT_S1_SHARE,
           why="S1's share of the paths: less than its head count"),
    _median, _s1_share,
    must_reject=INPUT_NULLS, beside=("energy_norm", "input"),
    excluded="an i.i.d. random map sits on the bar by construction (its expected share is "
             "the head count), so it cannot be rejected; the class-constant map is S2-only "
             "by construction."))


@claim("relevance.s1_share.{composite}", title="S1 carries little relevance ({composite}): "
       "less than its share of the paths",
       params={"composite": COMPOSITES}, unit="median share of |relevance| on S1",
       paper="S1 'exhibits low relevance values for all PMTs as compared to S2' (4.2)",
       bounds=reading_bounds(S1_SHARE))
def s1_share(ev, composite):
    """Median share of |relevance| on the S1 paths."""
    return reading_measurement(ev, S1_SHARE, composite)


# --------------------------------------------------------- energy correlation --
def _energy(ev) -> FamilyResult:
    v = view(ev)
    out = FamilyResult(strata=v.true, n=v.n)
    for name, per_rep in v.maps.items():
        signed = np.stack([R.rowwise_spearman(m, v.energy) for m in per_rep])
        absolute = np.stack([R.rowwise_spearman(np.abs(m), v.energy) for m in per_rep])
        out.values[name] = (signed,)
        out.figures[name] = {"median rho |R|": crossed_t(
            (absolute,), _median, strata=v.true, seed=ev.seed)}
    out.detail = ("Per test example, Spearman rho between the time-averaged relevance and "
                  "the time-averaged raw scattering coefficients (kymatio's per-path scale "
                  "undone) over all paths; median over examples and replicates. Also on "
                  "|relevance| (second bound).")
    return out


ENERGY = family(Family(
    "relevance.energy_correlation",
    AtMost("median rho", th.ENERGY_MAX_MEDIAN_RHO, name="does not follow energy",
           effect=th.EFFECT_RHO,
           why="0.3, the conventional bound of a weak correlation"),
    _median, _energy, must_reject=INPUT_NULLS,
    beside=("energy_norm", "input"),
    extra_bounds=(AtMost("median rho |R|", th.ENERGY_MAX_MEDIAN_RHO,
                         name="|R| does not follow energy", why="the same bound on |R|"),),
    excluded="random, class-constant and randomised-model maps do not follow energy "
             "either: the claim is about how relevance relates to energy, and the "
             "localisation claims carry the discrimination."))


@claim("relevance.energy_correlation.{composite}", title="Relevance ({composite}) does not "
       "follow scattering energy (signed and |R|)", params={"composite": COMPOSITES},
       unit="median Spearman rho (relevance, energy)",
       paper="'relevance values do not positively correlate with scattering energy' (4.2)",
       bounds=reading_bounds(ENERGY))
def energy_correlation(ev, composite):
    """Median per-example rank correlation of relevance with raw scattering energy."""
    return reading_measurement(ev, ENERGY, composite)


# ------------------------------------------------------------------ distractor --
def _distractor(ev) -> FamilyResult:
    v = view(ev)
    if not v.known(v.distractor).any() or not v.known(v.rate).any():
        return FamilyResult(not_applicable="the data set records no distractor modulation "
                                           "(distractor_rate_hz)")
    tol = pr.DISTRACTOR_TOL_OCTAVES
    apart, random_rates = R.distractor_scoring(
        v.distractor, v.rate, np.where(v.paths.second_order, v.paths.modulation_hz, np.nan),
        tol, ev.seed)
    out = FamilyResult(strata=v.true)
    out.n = int(apart.sum())
    for name, per_rep in v.maps.items():
        lift = np.full((v.n_rep, v.n), np.nan)
        for r, m in enumerate(per_rep):
            keep = apart & v.correct[r]
            at = R.window_share(m[keep], v.paths, v.distractor[keep], tol)
            base = R.window_share(m[keep], v.paths, random_rates[keep], tol)
            with np.errstate(invalid="ignore", divide="ignore"):
                lift[r, keep] = np.where(base > 0, at / np.where(base > 0, base, 1.0), np.nan)
        out.values[name] = (lift,)
    out.detail = (f"Correctly classified test examples whose distractor (a class-independent "
                  f"modulation as strong as the technique's; on the synthetic data a pulsing "
                  f"brightness) lies over an octave from the technique's rate: the share "
                  f"of S2 |relevance| within {tol} octave of the distractor's rate over the "
                  f"share within the same window around {R.DISTRACTOR_RANDOM_RATES} rates drawn "
                  "from the distractors' "
                  "distribution; mean over examples and replicates (1: the distractor is "
                  "ignored). Power: a planted map peaking at the distractor must be rejected, one "
                  "peaking at the true rate accepted.")
    out.detail += v.rate_note
    return out


DISTRACTOR = family(Family(
    "relevance.distractor",
    AtMost("distractor lift", th.DISTRACTOR_MAX_LIFT, name="ignores the distractor",
           effect=th.EFFECT_DISTRACTOR,
           why="no higher than at random rates, a quarter's allowance"),
    _mean, _distractor, must_reject=INPUT_NULLS,
    oracles=("oracle_rate",), adversaries=("adversary_distractor",),
    beside=("energy_raw", "input"),
    excluded="random, class-constant and randomised-model maps ignore the distractor by "
             "construction. The input and its energy carry the distractor, as strong as a "
             "technique's modulation on the synthetic data: they must fail, while the model "
             "ignores it (model.ignores_distractor)."))


@claim("relevance.distractor.{composite}", title="Relevance ({composite}) ignores a "
       "class-independent distractor modulation", params={"composite": COMPOSITES},
       unit="relevance share at the distractor over random rates",
       bounds=reading_bounds(DISTRACTOR))
def distractor(ev, composite):
    """Relevance share near the distractor's rate over the share near random rates."""
    return reading_measurement(ev, DISTRACTOR, composite)

__all__ = ["COMPOSITES", "PAPER_TEXT_READING", "View", "view"]
