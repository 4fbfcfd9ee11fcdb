"""Conservation on zennit's own relevances: :func:`conservation`, :func:`bias_free_copy`.

:func:`conservation` runs zennit's backward pass, captures the relevance at every
layer boundary and checks each layer's budget R_in + absorbed - R_out
(:class:`LayerBudget`) against absorbed terms computed analytically from the forward
pass by each layer's rule (:attr:`~pmt_core.explain.lrp.rules.LayerRule.budget`,
audit M2): a wrong backward pass shows up as a residual. :func:`bias_free_copy` gives
the network on which LRP with epsilon -> 0 must conserve exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

from pmt_core.explain.lrp.attribution import open_pass
from pmt_core.explain.lrp.composites import CompositeSpec
from pmt_core.explain.lrp.rules import LAYER_RULE_SPECS, LayerForward

__all__ = ["Conservation", "LayerBudget", "bias_free_copy", "conservation"]


@dataclass(frozen=True)
class LayerBudget:
    """Relevance budget of one layer of zennit's backward pass, per example (arrays (n,)).

    Attributes
    ----------
    name : str
        Module name (``input_norm`` is the identity left by the fold).
    rule : str
        What the layer's budget assumes: a :data:`~pmt_core.explain.lrp.rules.LAYER_RULES`
        entry, ``"pool"`` (epsilon with the ``stabilizer``), ``"pass"`` (zennit
        ``Pass``) or ``"identity"`` (no hook: flatten, eval dropout, the folded input
        norm).
    relevance_out, relevance_in : numpy.ndarray
        Sum of zennit's relevance at the layer's output and at its input.
    absorbed_bias : numpy.ndarray
        From the forward pass: sum_j R_j b_j / (z_j + eps sign z_j) for epsilon;
        sum_j R_j b+_j / (z+_j + eps sign z+_j) for z+; the (vanishing) bias part
        b - b+ - b- of the z-box denominator. b includes merged batch norms and the
        fold's position-dependent bias.
    absorbed_stabilizer : numpy.ndarray
        sum_j R_j eps sign(d_j) / (d_j + eps sign d_j), d_j the rule's denominator.
    abs_scale : numpy.ndarray
        sum |R_out| + sum |R_in| + the L1 sizes of both absorbed terms.
    """

    name: str
    rule: str
    relevance_out: np.ndarray
    relevance_in: np.ndarray
    absorbed_bias: np.ndarray
    absorbed_stabilizer: np.ndarray
    abs_scale: np.ndarray

    @property
    def absorbed(self) -> np.ndarray:
        """Relevance the layer's rule does not pass down (bias + stabiliser), analytic."""
        return self.absorbed_bias + self.absorbed_stabilizer

    @property
    def residual(self) -> np.ndarray:
        """relevance_in + absorbed - relevance_out: zero up to rounding if the pass is right."""
        return self.relevance_in + self.absorbed - self.relevance_out

    @property
    def relative_residual(self) -> np.ndarray:
        """|residual| / abs_scale."""
        return np.abs(self.residual) / np.maximum(self.abs_scale, np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class Conservation:
    """Result of :func:`conservation`.

    Attributes
    ----------
    composite, input_norm, top : str
    params : Mapping
        The composite's parameters as used.
    budgets : tuple of LayerBudget
        One per leaf module, output side first (fc2 ... input_norm).
    relevance : numpy.ndarray
        (n, paths, frames) input relevance of the same pass.
    top_relevance : numpy.ndarray
        (n,) relevance injected at the output.
    target : numpy.ndarray
        (n,) explained classes.
    """

    composite: str
    input_norm: str
    top: str
    params: Mapping
    budgets: tuple[LayerBudget, ...]
    relevance: np.ndarray
    top_relevance: np.ndarray
    target: np.ndarray

    @property
    def relevance_input(self) -> np.ndarray:
        """(n,) sum of the input relevance."""
        return self.relevance.reshape(len(self.relevance), -1).sum(1)

    @property
    def input_share(self) -> np.ndarray:
        """(n,) share of the top relevance reaching the input, sum R_in / R_top."""
        return self.relevance_input / self.top_relevance

    @property
    def sign_inverted(self) -> np.ndarray:
        """(n,) bool: the input relevance sums to the opposite sign of the top relevance."""
        return np.sign(self.relevance_input) * np.sign(self.top_relevance) < 0

    @property
    def sign_inverted_fraction(self) -> float:
        """Fraction of examples whose map has the opposite sign to what it explains."""
        return float(self.sign_inverted.mean())

    @property
    def absorbed(self) -> np.ndarray:
        """(n,) relevance absorbed over all layers (analytic)."""
        return sum(b.absorbed for b in self.budgets)

    @property
    def total_residual(self) -> np.ndarray:
        """(n,) sum R_in + all absorbed - R_top (the per-layer residuals, summed)."""
        return self.relevance_input + self.absorbed - self.top_relevance

    @property
    def relative_total_residual(self) -> np.ndarray:
        """(n,) |total_residual| / the summed layer scales."""
        scale = sum(b.abs_scale for b in self.budgets)
        return np.abs(self.total_residual) / np.maximum(scale, np.finfo(np.float64).tiny)

    @property
    def worst_relative_residual(self) -> float:
        """Largest relative residual over layers and examples."""
        return max(float(b.relative_residual.max()) for b in self.budgets)

    def budget(self, name: str) -> LayerBudget:
        """Return the budget of the layer called ``name``."""
        return next(b for b in self.budgets if b.name == name)


def _sign(z: torch.Tensor) -> torch.Tensor:
    # zennit's stabilize: sign with sign(0) = +1.
    return (z == 0).to(z) + z.sign()


def _role(module: nn.Module, first_conv: nn.Module, spec: CompositeSpec) -> str:
    if isinstance(module, Convolution):
        return spec.first_layer_rule if module is first_conv else spec.conv_rule
    if isinstance(module, nn.Linear):
        return spec.dense_rule
    if isinstance(module, AvgPool):
        return "pool"
    if isinstance(module, (Activation, BatchNorm)):
        return "pass"
    return "identity"


def _sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).sum(1)


def _absorbed(
    role: str, module: nn.Module, a: torch.Tensor, z: torch.Tensor, r: torch.Tensor, p: Mapping
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bias share, stabiliser share, L1 size of both) of one layer, from its forward pass.

    ``a`` is the layer's input, ``z`` its output and ``r`` zennit's relevance there.
    The denominators are recomputed by the layer's rule
    (:attr:`~pmt_core.explain.lrp.rules.LayerRule.budget`) with the layer's own
    (canonized) parameters, independently of the hooks that produced ``r``.
    """
    zero = torch.zeros(len(r), dtype=r.dtype, device=r.device)
    if role in ("pass", "identity"):
        return zero, zero, zero
    if role == "pool":
        eps = p["stabilizer"]
        den = z + eps * _sign(z)
        st = r * eps * _sign(z) / den
        return zero, _sum(st), _sum(st.abs())
    if role not in LAYER_RULE_SPECS:
        raise ValueError(f"no budget for rule {role!r}")
    d, bias, eps = LAYER_RULE_SPECS[role].budget(LayerForward(module), a, z, p)
    den = d + eps * _sign(d)
    bs = r * bias / den
    st = r * eps * _sign(d) / den
    return _sum(bs), _sum(st), _sum(bs.abs()) + _sum(st.abs())


def conservation(
    model: nn.Module,
    features,
    composite: str | CompositeSpec,
    target=None,
    *,
    top: str = "logit",
    params: Mapping | None = None,
    input_norm: str = "fold",
    dtype: torch.dtype = torch.float64,
    batch_size: int = 64,
    device=None,
) -> Conservation:
    """Per-layer relevance budgets of zennit's own backward pass (audit M2).

    zennit's hooks replace each hooked layer's gradient by its relevance, so the
    gradient flowing between leaf modules IS the relevance. This runs the same
    pass as :func:`~pmt_core.explain.lrp.explain`, captures that gradient at every
    layer output with tensor hooks (and at the input), and sets each layer's
    captured R_in and R_out against the relevance its declared rule absorbs,
    computed analytically from the forward activations and the canonized
    parameters (:class:`LayerBudget`): bias shares sum_j R_j b_j / (z_j + eps sign z_j)
    (b+ over the z+ denominator for z+), stabiliser shares, merged batch norms as
    conv biases, the fold's border-aware bias. A backward pass that scales
    relevance, uses other activations or another rule than the declared one leaves
    a residual R_in + absorbed - R_out far above rounding.

    Parameters
    ----------
    model, features, composite, target, top, params, input_norm, batch_size, device
        As in :func:`~pmt_core.explain.lrp.explain`.
    dtype : torch.dtype
        Dtype of the pass, float64 by default (residuals at rounding level).

    Returns
    -------
    Conservation
        Per-layer budgets, the share of the top relevance reaching the input and the
        fraction of examples whose input relevance has the opposite sign.

    Notes
    -----
    The model must be a chain of leaf modules (each one's input is the previous
    one's output), as :class:`~pmt_core.model.network.PMTConvNet` is.
    """
    run = open_pass(model, features, composite, target, top=top, dtype=dtype, device=device,
                    params=params, input_norm=input_norm, batch_size=batch_size)
    spec = run.spec
    names = {m: n for n, m in run.work.named_modules()}
    parts: list[dict] = []
    try:
        for i in range(0, len(run.x), batch_size):
            records: list[dict] = []

            def record(module, inputs, output, records=records):
                rec = {"module": module, "input": inputs[0].detach(), "output": output.detach()}
                if output.requires_grad:
                    output.register_hook(lambda g, rec=rec: rec.__setitem__("grad", g.detach()))
                records.append(rec)

            # Registered after the composite: these hooks see the tensors zennit returns.
            handles = [
                m.register_forward_hook(record)
                for m in run.work.modules()
                if next(m.children(), None) is None
            ]
            try:
                x, seed, rel = run.backward_batch(i)
            finally:
                for h in handles:
                    h.remove()
            parts.append(
                _batch_budgets(
                    records, x.detach(), rel.detach(), seed, spec, run.rule_params, names
                )
            )
    finally:
        run.composite.remove()

    budgets = tuple(
        LayerBudget(
            parts[0]["names"][k],
            parts[0]["rules"][k],
            *(np.concatenate([p[f][k] for p in parts]) for f in ("out", "in", "ab", "st", "sc")),
        )  # fmt: skip
        for k in range(len(parts[0]["names"]))
    )
    return Conservation(
        composite=spec.name, input_norm=input_norm, top=top,
        params=dict(run.params), budgets=budgets,
        relevance=np.concatenate([p["relevance"] for p in parts]),
        top_relevance=np.concatenate([p["top"] for p in parts]),
        target=run.target.cpu().numpy().astype(np.int64),
    )  # fmt: skip


def _batch_budgets(records, x, rel, seed, spec, rule_params, names) -> dict:
    """Budgets of one batch from the recorded forward/backward chain (output side first)."""
    first_conv = next((r["module"] for r in records if isinstance(r["module"], Convolution)), None)
    out = {k: [] for k in ("names", "rules", "out", "in", "ab", "st", "sc")}
    for k in reversed(range(len(records))):
        rec = records[k]
        below = records[k - 1]["output"] if k else x
        if below.shape != rec["input"].shape or not torch.equal(below, rec["input"]):
            raise RuntimeError(f"{names[rec['module']]} does not read the previous layer's output")
        r_out = rec.get("grad", torch.zeros_like(rec["output"]))
        r_in = records[k - 1].get("grad", torch.zeros_like(below)) if k else rel
        role = _role(rec["module"], first_conv, spec)
        with torch.no_grad():
            ab, st, sc = _absorbed(
                role, rec["module"], rec["input"], rec["output"], r_out, rule_params
            )
        scale = _sum(r_out.abs()) + _sum(r_in.abs()) + sc
        for key, val in (
            ("out", _sum(r_out)),
            ("in", _sum(r_in)),
            ("ab", ab),
            ("st", st),
            ("sc", scale),
        ):
            out[key].append(val.double().cpu().numpy())
        out["names"].append(names[rec["module"]])
        out["rules"].append(role)
    out["relevance"] = rel.cpu().numpy()
    out["top"] = seed.sum(1).detach().double().cpu().numpy()
    return out


def bias_free_copy(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` with every bias and batch-norm shift zeroed, scales kept.

    Each batch norm keeps its weight and running variance (its scale
    gamma / sqrt(var + eps)) and gets a zero bias and running mean (shift 0); every
    other ``bias`` parameter is zeroed. The network is then piecewise linear with no
    constant term, merged or folded batch norms included, so LRP-0 (epsilon -> 0,
    e.g. :data:`~pmt_core.explain.lrp.rules.VANISHING_EPSILON`) must conserve exactly:
    sum R_input = R_top to float64 rounding (Bach et al. 2015; Montavon et al. 2019 on
    what biases absorb).

    Parameters
    ----------
    model : torch.nn.Module
        Left untouched.

    Returns
    -------
    torch.nn.Module
    """
    work = copy.deepcopy(model)
    with torch.no_grad():
        for m in work.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.running_mean is not None:
                    m.running_mean.zero_()
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(getattr(m, "bias", None), torch.Tensor):
                m.bias.zero_()
    return work
