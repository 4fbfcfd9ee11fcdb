"""LRP mechanics claims: canonizer, zennit against a float64 reference, conservation.

Run on every S1+S2 replicate (the canonizer on both input kinds); figures are
worst cases over replicates and examples, which the bars bound.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims import thresholds as th
from pmt_core.claims.core import AtLeast, AtMost, Measurement, Tolerance, Within, claim
from pmt_core.explain import lrp
from pmt_core.explain import lrp_captum as cap
from pmt_core.stats.intervals import crossed_t, exact, per_replicate_estimate, proportion

COMPOSITES = tuple(lrp.RULES)


@claim("lrp.canonizer", title="zennit merges exactly the conv+BN pairs; logits move only by "
       "the kept batch-norm eps", unit="max relative logit shift",
       bounds=[Within("batch norms merged", th.CONV_BN_PAIRS, th.CONV_BN_PAIRS),
               AtMost("max relative logit shift", th.CANONIZER_MAX_REL_LOGIT_SHIFT,
                      why="~7x the first-order estimate 1.5e-5 of the kept eps")],
       # The shift is float32 rounding of trained weights (1.59e-5 and 1.65e-5 in two
       # smoke runs of one seed): compared by order of magnitude, not to 1e-3.
       tolerances={"max relative logit shift": Tolerance("bar")})
def canonizer(ev) -> Measurement:
    """Count merged batch norms (fewest over replicates); largest relative logit shift."""
    rows, merged, shifts = [], [], []
    for model in ev.lrp_checks.canonizer():
        merged.append(min(model["merged"], model["pairs"]))
        shifts.append(model["shift"])
        rows.append({"input": model["input"], "replicate": model["replicate"],
                     "conv+BN pairs": model["pairs"], "merged": model["merged"],
                     "relative logit shift": f"{model['shift']:.3g}"})
    m = Measurement(figures={"batch norms merged": exact(min(merged)),
                             "max relative logit shift": exact(max(shifts))})
    m.detail = ("SequentialMergeBatchNorm pairs leaves in assignment order; the merged count "
                "is read from the registered canonizer and compared with the conv+BN pairs "
                "traced in a forward pass. zennit resets merged batch norms but keeps eps = "
                "1e-5, so each scales by (1 + 1e-5)^-1/2; shift relative to the largest test "
                "logit.")
    m.table(rows, "Batch-norm merging per model")
    return m


@claim("lrp.reference_match.{composite}", title="zennit LRP ({composite}) equals a "
       "matrix-form float64 re-implementation", params={"composite": COMPOSITES},
       unit="max relative error",
       bounds=[AtMost("max relative error", th.REFERENCE_MAX_REL_ERR,
                      why="float64 rounding is 1e-16 to 1e-14; a wiring error shows at 1e-2")])
def reference_match(ev, composite) -> Measurement:
    """Max over examples and replicates of max|R_zennit - R_ref| / max|R_ref| (float64)."""
    errors = ev.lrp_checks.reference_errors(composite)
    m = Measurement(figures={"max relative error": exact(errors.max(), errors.size),
                             "median relative error": float(np.median(errors))},
                    n=errors.size)
    m.detail = (f"{errors.size // ev.models.n_replicates} test examples evenly spaced over "
                "the split, per replicate; the "
                "explained class is the replicate's prediction, top = logit. Reference: numpy "
                "float64, batch norms merged by hand as zennit does (kept eps factor), "
                "convolutions as unfolded matrix products.")
    return m


#: Composites whose layers next to the merged norms use epsilon, which merging
#: affine layers leaves unchanged at vanishing epsilon; z+ on a convolution reads
#: other weights once a batch norm is merged into it, so a z+ first or conv layer
#: gives another map on the network as trained, by the rule's definition.
MERGE_INVARIANT = tuple(c for c in cap.CAPTUM_COMPOSITES
                        if lrp.COMPOSITES[c].first_layer_rule == lrp.COMPOSITES[c].conv_rule
                        == "epsilon")


_CAPTUM_DETAIL = ("{n} test examples evenly spaced over the split, "
                  "per replicate; the explained class is the replicate's prediction, top = "
                  "logit, float64. Captum's LRP (captum.attr.LRP), each layer's rule set "
                  "explicitly (pmt_core.explain.lrp_captum). ")


@claim("lrp.captum_match.{composite}", title="zennit LRP ({composite}) equals Captum's LRP, "
       "an independent implementation", params={"composite": cap.CAPTUM_COMPOSITES},
       unit="max relative error",
       bounds=[AtMost("max relative error", th.REFERENCE_MAX_REL_ERR,
                      why="same network and epsilon: float64 rounding only; a rule or wiring "
                          "error shows at 1e-2")])
def captum_match(ev, composite) -> Measurement:
    """Max over examples and replicates of max|R_zennit - R_captum| / max|R_zennit|."""
    errors = ev.lrp_checks.captum_errors(composite, as_trained=False)
    m = Measurement(figures={"max relative error": exact(errors.max(), errors.size)},
                    n=errors.size)
    m.detail = _CAPTUM_DETAIL.format(n=errors.size // ev.models.n_replicates) + (
        "Captum runs on the network zennit's canonizers produce (input norm folded, batch "
        "norms merged), at the composite's epsilon: only the propagation differs.")
    return m


@claim("lrp.captum_match_as_trained.{composite}", title="zennit LRP ({composite}) at "
       "epsilon -> 0 equals Captum's on the network as trained, batch norms un-merged",
       params={"composite": MERGE_INVARIANT}, unit="max relative error",
       bounds=[AtMost("max relative error", th.REFERENCE_MAX_REL_ERR,
                      why="LRP-0 is unchanged by merging affine layers (zennit's kept "
                          "batch-norm eps modelled): float64 rounding only")],
       # Rounding-level: left to its bar, never compared with a baseline in decades
       # (the baseline of b093f0f stored 5.7e-5, before the kept eps was modelled).
       tolerances={"max relative error": Tolerance("bar")})
def captum_match_as_trained(ev, composite) -> Measurement:
    """As :func:`captum_match`, with no zennit code on Captum's side (canonizers checked)."""
    errors = ev.lrp_checks.captum_errors(composite, as_trained=True)
    m = Measurement(figures={"max relative error": exact(errors.max(), errors.size)},
                    n=errors.size)
    m.detail = _CAPTUM_DETAIL.format(n=errors.size // ev.models.n_replicates) + (
        "Captum runs on the network as trained (input norm and every batch norm their own "
        "layers, epsilon rule, each norm after a convolution scaled by (1 + eps)^-1/2 as "
        "zennit's merge leaves it), epsilon and stabilisers 1e-300 on both sides: a check "
        "of zennit's canonizers too. Only composites with epsilon next to the merged norms: "
        f"{', '.join(MERGE_INVARIANT)}.")
    return m


@claim("lrp.conservation.{composite}", title="LRP ({composite}) conserves relevance layer by "
       "layer in zennit's own backward pass, once the absorbed share is counted",
       params={"composite": COMPOSITES}, unit="worst relative residual",
       bounds=[AtMost("worst relative residual", th.CONSERVATION_MAX_REL_RESIDUAL,
                      why="float64 rounding; a wrong backward pass shows at 1e-2 or more")])
def conservation(ev, composite) -> Measurement:
    """Worst |R_in + absorbed - R_out| / scale over layers, examples and replicates.

    R_in and R_out are zennit's relevances at each layer boundary (captured from
    its backward pass); the absorbed terms (bias and stabiliser shares) are
    computed from the forward activations, so a backward pass that loses,
    creates or misroutes relevance leaves a residual.
    """
    found = ev.lrp_checks.conservation(composite)
    worst = float(found["worst"])
    rows = [{"layer": str(layer), "rule": str(rule),
             "absorbed share of the top (mean)": float(share),
             "worst relative residual": float(residual)}
            for layer, rule, share, residual in zip(
                found["layer"], found["rule"], found["absorbed_share"], found["residual"],
                strict=True)]
    m = Measurement(figures={"worst relative residual": exact(worst)},
                    n=int(found["n"]) * ev.models.n_replicates)
    m.detail = (f"{int(found['n'])} test examples per replicate, float64. Absorbed: bias share "
                "sum_j R_j b_j / (z_j + eps sign z_j) (b+ over the z+ denominator for z+; "
                "merged batch norms and the folded input norm count as biases) plus the "
                "stabiliser share, from the forward pass.")
    m.table(rows, f"Relevance absorbed per layer ({composite}), replicate 0")
    return m


@claim("lrp.conservation_exact.{composite}", title="On the bias-free network, LRP "
       "({composite}) with epsilon -> 0 conserves relevance exactly",
       params={"composite": COMPOSITES}, unit="max |sum R_in / R_top - 1|",
       bounds=[AtMost("max relative error", th.EXACT_CONSERVATION_MAX_REL_ERR,
                      why="exact by the rules' algebra: only float64 rounding remains")])
def conservation_exact(ev, composite) -> Measurement:
    """Max over examples and replicates of |sum R_in / R_top - 1| on a bias-free copy."""
    errors = ev.lrp_checks.conservation_exact_errors(composite)
    m = Measurement(figures={"max relative error": exact(float(errors.max()), errors.size)},
                    n=errors.size)
    m.detail = ("Every bias and batch-norm shift of each trained network set to zero (scales "
                "kept), epsilon and stabiliser 1e-300, float64: with no constant term left, "
                "the rules redistribute all of the top relevance (Bach et al. 2015), so the "
                "input sum equals the explained logit up to rounding.")
    return m


def _nanmedian(values) -> float:
    v = values[0][np.isfinite(values[0])]
    return float(np.median(v)) if v.size else float("nan")


@claim("lrp.input_share.{composite}", title="LRP ({composite}): the input receives a share of "
       "the explained logit, with its sign", params={"composite": COMPOSITES}, role="finding",
       unit="share of maps whose sum has the logit's opposite sign",
       bounds=[AtMost("sign-inverted maps", th.MAX_SIGN_INVERTED_SHARE, effect=th.EFFECT_SHARE,
                      why="conservation: the input sum carries the logit's sign"),
               AtLeast("median input share", th.MIN_MEDIAN_INPUT_SHARE,
                       why="below a tenth the map explains mostly biases")])
def input_share(ev, composite) -> Measurement:
    """Share of test maps whose input sum opposes the logit; median sum R_in / R_top."""
    shares = ev.lrp_checks.input_shares(composite)  # (replicates, n)
    inverted = (shares < 0).astype(float)
    frac = proportion(inverted, seed=ev.seed)
    median = crossed_t(shares, _nanmedian, seed=ev.seed)
    m = Measurement(figures={"sign-inverted maps": frac, "median input share": median,
                             "maps above the logit": per_replicate_estimate(
                                 (shares > 1).mean(axis=1).tolist())},
                    n=shares.shape[1])
    m.detail = ("Per test example and replicate, sum of the input relevance over the top "
                "relevance (the explained logit). A negative share: the map's total evidence "
                "opposes the prediction it explains. Interval of the inverted share: "
                "effective-n Wilson; of the median: crossed t (pmt_core.stats.intervals).")
    q = np.quantile(shares, [0.05, 0.25, 0.5, 0.75, 0.95])
    m.table([{"quantile": k, "input share": float(v)}
             for k, v in zip(("5%", "25%", "50%", "75%", "95%"), q, strict=True)],
            "Distribution of the input share over test examples and replicates")
    return m
