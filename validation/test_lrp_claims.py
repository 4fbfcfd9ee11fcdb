"""LRP mechanics claims: canonizer, zennit vs matrix-form reference, conservation.

Fixtures (validation/conftest.py): ``trained_models``, ``test_inputs``,
``explanations`` (rule -> Explanation, s1s2 model, test split, top="logit") and
``claim``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pmt_core.explain import lrp
from pmt_core.explain import lrp_reference as ref
from validation import thresholds as th

RULES = sorted(lrp.RULES)


def _spread(n_total: int, n: int) -> np.ndarray:
    """Evenly spaced example indices (the split may be ordered by class)."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


def test_lrp_canonizer(trained_models, test_inputs, claim):
    c = claim(
        "lrp.canonizer",
        title="zennit merges exactly the 3 conv+BN pairs, logits move only by the kept eps",
        threshold=th.LRP_CANONIZER_REL_LOGIT_TOL,
        paper=None,
        unit="max |logit(merged) - logit(original)| / max |logit|",
    )
    rows, measured = [], {}
    ok = True
    for key in ("s1", "s1s2"):
        model = trained_models[key].model
        x = test_inputs[key]
        pairs = lrp.count_conv_bn_pairs(model)
        merged = lrp.explain(model, x[:2], "epsilon").n_merged_batchnorms
        shift = lrp.merged_logit_shift(model, x)
        rel = lrp.merged_logit_shift(model, x, relative=True)
        scale = shift / rel if rel else float("nan")
        measured[key] = rel
        rows.append(
            {
                "input": key,
                "conv+BN pairs (forward order)": pairs,
                "batch norms merged": merged,
                "max |delta logit|": f"{shift:.3g}",
                "max |logit|": f"{scale:.3g}",
                "relative shift": f"{rel:.3g}",
            }
        )
        ok &= merged == pairs == th.LRP_EXPECTED_CONV_BN_PAIRS
        ok &= rel <= th.LRP_CANONIZER_REL_LOGIT_TOL
    c.measured = max(measured.values())
    c.detail = (
        "SequentialMergeBatchNorm pairs leaves in assignment order; the merged count is "
        "read from the registered canonizer and compared with the conv+BN pairs traced in "
        "a forward pass. The input batch norm is never merged (Pass: relevance is that of "
        "the normalised input). zennit resets merged batch norms but keeps eps = 1e-5, so "
        "each scales by (1 + 1e-5)^-1/2 and logits shift slightly; tolerance relative to "
        "the largest test logit (thresholds.LRP_CANONIZER_REL_LOGIT_TOL)."
    )
    c.table(rows, "Batch-norm merging per model (test split)")
    assert ok, rows


@pytest.mark.parametrize("rule", RULES, ids=[f"lrp.reference_match.{r}" for r in RULES])
def test_lrp_reference_match(rule, trained_models, test_inputs, explanations, claim):
    c = claim(
        f"lrp.reference_match.{rule}",
        title=f"zennit LRP ({rule}) equals a matrix-form float64 re-implementation",
        threshold=th.LRP_REFERENCE_MAX_REL_ERR,
        paper=None,
        unit="max over examples of max|R_zennit - R_ref| / max|R_ref| (float64)",
    )
    model = trained_models["s1s2"].model
    x_all = test_inputs["s1s2"]
    idx = _spread(len(x_all), th.LRP_REFERENCE_N_EXAMPLES)
    x = x_all[idx]
    target = explanations[rule].target[idx]
    e64 = lrp.explain(model, x, rule, target=target, dtype=torch.float64)
    r = ref.reference_lrp(model, x.cpu(), rule, target=target)
    err = np.abs(e64.relevance - r.relevance).max((1, 2)) / np.abs(r.relevance).max((1, 2))
    rel32 = explanations[rule].relevance[idx]
    err32 = np.abs(rel32 - r.relevance).max((1, 2)) / np.abs(r.relevance).max((1, 2))
    c.measured = float(err.max())
    c.detail = (
        f"{len(idx)} test examples evenly spaced over the split, explained class = the "
        f"suite's explanation target, top = logit. Reference: numpy float64, batch norms "
        f"merged by hand as zennit does (kept eps factor), convolutions as unfolded matrix "
        f"products. Median error {np.median(err):.2g}. For information, the suite's float32 "
        f"explanations differ from the reference by at most {err32.max():.2g} (median "
        f"{np.median(err32):.2g}) of each example's largest relevance."
    )
    assert c.measured <= th.LRP_REFERENCE_MAX_REL_ERR


@pytest.mark.parametrize("rule", RULES, ids=[f"lrp.conservation.{r}" for r in RULES])
def test_lrp_conservation(rule, trained_models, test_inputs, explanations, claim):
    c = claim(
        f"lrp.conservation.{rule}",
        title=f"LRP ({rule}) conserves relevance layer by layer once absorption is counted",
        threshold=th.LRP_CONSERVATION_MAX_REL_RESIDUAL,
        paper=None,
        unit="worst |R_in + absorbed - R_out| / (L1 scale of the layer's terms)",
    )
    model = trained_models["s1s2"].model
    x_all = test_inputs["s1s2"]
    idx = _spread(len(x_all), th.LRP_CONSERVATION_N_EXAMPLES)
    target = explanations[rule].target[idx]
    r = ref.reference_lrp(model, x_all[idx].cpu(), rule, target=target)
    top = r.top_relevance
    worst = max(float(b.relative_residual.max()) for b in r.budgets)
    rows = []
    for b in r.budgets:
        if not (np.any(b.absorbed_bias) or np.any(b.absorbed_stabilizer)):
            continue  # Pass layers (ReLU, dropout, merged BN, input norm) absorb nothing
        rows.append(
            {
                "layer": b.name,
                "bias share (mean)": f"{np.mean(b.absorbed_bias / top):+.4f}",
                "stabiliser share (mean)": f"{np.mean(b.absorbed_stabilizer / top):+.2e}",
                "absorbed share (mean)": f"{np.mean(b.absorbed / top):+.4f}",
                "worst relative residual": f"{b.relative_residual.max():.2g}",
            }
        )
    share = r.relevance.sum((1, 2)) / top
    rows.append(
        {
            "layer": "reaches the input",
            "bias share (mean)": "",
            "stabiliser share (mean)": "",
            "absorbed share (mean)": (
                f"{share.mean():+.4f} (median {np.median(share):+.4f}, "
                f"range {share.min():+.3f} to {share.max():+.3f})"
            ),
            "worst relative residual": "",
        }
    )
    c.measured = worst
    c.detail = (
        f"{len(idx)} test examples, s1s2 model, top = explained logit, float64 reference. "
        "Absorbed = sum_j R_j b_j / (z_j + eps sign z_j) (b+ and z+ for z+) plus the "
        "epsilon-stabiliser term sum_j R_j eps sign z_j / (z_j + eps sign z_j); merged "
        "batch norms act as conv biases. Shares are of the top relevance; a median of "
        f"{np.median(share):.3f} of it reaches the input (method.md: 0.10-0.15 on its own "
        "trained re-implementation)."
    )
    c.table(rows, f"Relevance absorbed per layer ({rule}), share of the explained logit")
    assert worst <= th.LRP_CONSERVATION_MAX_REL_RESIDUAL
