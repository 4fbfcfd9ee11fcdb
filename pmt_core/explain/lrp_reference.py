"""Independent matrix-form float64 LRP for :class:`~pmt_core.model.network.PMTConvNet`.

This module re-implements, in plain numpy float64 and without zennit or autograd,
the composites of :data:`pmt_core.explain.lrp.COMPOSITES`, in the style of zennit's
own ``tests/unit/test_rules.py`` (chr5tphr/zennit): each layer is written as
z_j = sum_i a_i w_ij + b_j (a convolution as a matrix product over unfolded
patches), and relevance is redistributed by the rules of :data:`LAYER_RULES`, a
small registry filled with :func:`replicates` (one function per zennit rule, as
zennit's tests pair each rule with its matrix form):

* ``epsilon`` (zennit ``Epsilon``; Bach et al. 2015):
  R_i = sum_j a_i w_ij R_j / (z_j + eps sign z_j);
* ``zplus`` (zennit ``ZPlus``, alpha=1, beta=0 with negative inputs allowed;
  Montavon et al. 2017): R_i = sum_j (a_i^+ w_ij^+ + a_i^- w_ij^-) R_j / (z_j^+ +
  eps sign z_j^+), z_j^+ = sum_i (a_i^+ w_ij^+ + a_i^- w_ij^-) + b_j^+;
* ``zbox`` (zennit ``ZBox``; DTD's z^B rule, Montavon et al. 2017):
  R_i = sum_j (a_i w_ij - l_i w_ij^+ - h_i w_ij^-) R_j / (d_j + eps sign d_j),
  d_j = z_j - (l w^+ + b^+)_j - (h w^- + b^-)_j, where the biases cancel;

with sign(0) = +1 as in zennit's ``stabilize``. Because every rule is linear in
R_j, the relevance a layer does not pass down is known in closed form: the bias
(merged batch norm) share and the stabiliser share, recorded per layer in
:class:`LayerBudget`. These budgets are this module's own bookkeeping, an identity
of its algebra (audit M2): they check the reference, not zennit. The check of
zennit's own relevances is :func:`pmt_core.explain.lrp.conservation`.

Canonization is re-done here from the model's parameters, as zennit does:

* batch norms merged into their convolutions, W' = W gamma / sqrt(var + eps),
  b' = (b - mean) gamma / sqrt(var + eps) + beta; zennit then resets the batch
  norm but KEEPS its eps (1e-5), so each merged batch norm still multiplies its
  input by 1 / sqrt(1 + eps): reproduced in the forward pass, ``Pass`` backward;
* ``input_norm="fold"`` (the default of :func:`pmt_core.explain.lrp.explain`): the
  input batch norm x0 = s x + t folded into conv1, which then reads x with
  weights W s and a position-dependent bias B(tau) = sum over the taps that fall
  inside the input of W t (conv1 zero-pads x0, so the border frames see only part
  of t), computed here by unfolding the constant map t like any input;
  ``input_norm="pass"``: the input norm applied as an affine map with ``Pass``
  (the authors' code), and the z-box mapped through it per path;
* the global time pool is an average pool with the pools' stabiliser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "COMPOSITE_RULES",
    "LAYER_RULES",
    "LayerBudget",
    "REF_DEFAULTS",
    "REF_EPSILON",
    "REF_POOL_STABILIZER",
    "REF_ZBOX_HIGH",
    "REF_ZBOX_LOW",
    "REF_ZPLUS_STABILIZER",
    "ReferenceLRP",
    "conv_patches",
    "merged_parameters",
    "reference_forward",
    "reference_lrp",
    "replicates",
]

# Stated independently of pmt_core.explain.lrp; a test checks that both agree.
#: Epsilon on convolutions / Linear layers.
REF_EPSILON = 1e-6
#: Stabiliser of the z+ and z-box denominators.
REF_ZPLUS_STABILIZER = 1e-6
#: Stabiliser of the average pools and of the time pool.
REF_POOL_STABILIZER = 1e-6
#: Box of the z-box rule on the compressed features: log1p(S / ...) >= 0, and
#: log1p(1e4) (a coefficient 1,000 times its training mean).
REF_ZBOX_LOW, REF_ZBOX_HIGH = 0.0, math.log1p(1e4)
#: Default parameters, zennit's names: ``epsilon`` for Epsilon rules, ``stabilizer``
#: for z+, z-box and the pools, ``low``/``high`` for the box.
REF_DEFAULTS = {
    "epsilon": REF_EPSILON,
    "stabilizer": REF_POOL_STABILIZER,
    "low": REF_ZBOX_LOW,
    "high": REF_ZBOX_HIGH,
}
#: (rule on conv1, on the other convolutions, on the Linear layers) per composite.
COMPOSITE_RULES = {
    "epsilon": ("epsilon", "epsilon", "epsilon"),
    "epsilon_zplus": ("epsilon", "epsilon", "zplus"),
    "zplus_epsilon": ("zplus", "zplus", "epsilon"),
    "zbox_zplus_epsilon": ("zbox", "zplus", "epsilon"),
}
_TOPS = ("logit", "abs_logit", "onehot")

#: Matrix-form layer rules, keyed by zennit rule name (filled by :func:`replicates`).
#: Each is ``rule(a, w, b, r, *, eps, low=None, high=None)`` with inputs a (B, ..., I),
#: weights w (O, I), a bias broadcastable to (B, ..., O) and the relevance r at the
#: output (B, ..., O); it returns (relevance_in, absorbed_bias, absorbed_stabilizer,
#: abs_scale), the last three summed per example.
LAYER_RULES: dict[str, Callable] = {}


def replicates(name: str) -> Callable[[Callable], Callable]:
    """Register a matrix-form rule as the replica of zennit's rule ``name``.

    After zennit's ``tests/unit/test_rules.py``, whose ``@replicates`` pairs each
    production rule with a plain re-implementation.

    Parameters
    ----------
    name : str
        Key in :data:`LAYER_RULES`; must be new.

    Returns
    -------
    callable
        Decorator returning the function unchanged.
    """

    def wrapped(fn: Callable) -> Callable:
        if name in LAYER_RULES:
            raise ValueError(f"layer rule {name!r} is already registered")
        LAYER_RULES[name] = fn
        return fn

    return wrapped


@dataclass(frozen=True)
class LayerBudget:
    """Relevance budget of one layer, per example (arrays of shape (n,)).

    Attributes
    ----------
    name : str
        Layer name (backward order).
    relevance_out : numpy.ndarray
        Sum of the relevance at the layer's output.
    relevance_in : numpy.ndarray
        Sum of the relevance at the layer's input.
    absorbed_bias : numpy.ndarray
        sum_j R_j b_j / (z_j + eps sign z_j) (b^+ over the z+ denominator for z+,
        b - b+ - b- = 0 for the z-box).
    absorbed_stabilizer : numpy.ndarray
        sum_j R_j eps sign d_j / (d_j + eps sign d_j), d_j the rule's denominator.
    abs_scale : numpy.ndarray
        sum |R_out| + sum |R_in| + |absorbed terms|: the scale of float rounding.
    """

    name: str
    relevance_out: np.ndarray
    relevance_in: np.ndarray
    absorbed_bias: np.ndarray
    absorbed_stabilizer: np.ndarray
    abs_scale: np.ndarray

    @property
    def absorbed(self) -> np.ndarray:
        """Total relevance the layer does not pass down (bias + stabiliser)."""
        return self.absorbed_bias + self.absorbed_stabilizer

    @property
    def residual(self) -> np.ndarray:
        """relevance_in + absorbed - relevance_out (zero up to rounding)."""
        return self.relevance_in + self.absorbed - self.relevance_out

    @property
    def relative_residual(self) -> np.ndarray:
        """|residual| / abs_scale."""
        return np.abs(self.residual) / np.maximum(self.abs_scale, np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class ReferenceLRP:
    """Result of :func:`reference_lrp`.

    Attributes
    ----------
    relevance : numpy.ndarray
        (n, paths, frames) float64 input relevance (on x for ``"fold"``, on x0 for
        ``"pass"``).
    logits : numpy.ndarray
        (n, classes) logits of the canonized network, float64.
    target : numpy.ndarray
        (n,) explained classes.
    top_relevance : numpy.ndarray
        (n,) relevance injected at the output.
    budgets : tuple of LayerBudget
        One per layer, from the output (fc2) down to the input.
    """

    relevance: np.ndarray
    logits: np.ndarray
    target: np.ndarray
    top_relevance: np.ndarray
    budgets: tuple[LayerBudget, ...]


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().to(torch.float64).numpy()


def _bn_affine(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    scale = 1.0 / np.sqrt(_np(bn.running_var) + bn.eps)
    if bn.weight is not None:
        scale = scale * _np(bn.weight)
    shift = -_np(bn.running_mean) * scale
    if bn.bias is not None:
        shift = shift + _np(bn.bias)
    return scale, shift


def merged_parameters(model: nn.Module) -> dict:
    """Return the canonized network's parameters in float64, merged as zennit does.

    Parameters
    ----------
    model : PMTConvNet
        Read only.

    Returns
    -------
    dict
        ``input_norm``: (scale, shift) of the input batch norm as an affine map;
        ``conv1..3``: (W', b', c) with the conv's batch norm merged and
        c = 1 / sqrt(1 + eps) the reset batch norm's residual factor (conv1
        *before* any input-norm fold, which :func:`reference_forward` applies);
        ``fc1``, ``fc2``: (W, b).
    """
    params = {"input_norm": _bn_affine(model.input_norm)}
    for k in (1, 2, 3):
        conv, norm = getattr(model, f"conv{k}"), getattr(model, f"bn{k}")
        if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1:
            raise ValueError("reference supports stride 1, dilation 1, groups 1 only")
        if conv.kernel_size[0] % 2 != 1 or conv.padding != "same":
            raise ValueError("reference supports odd kernels with padding='same' only")
        scale, shift = _bn_affine(norm)
        bias = _np(conv.bias) if conv.bias is not None else 0.0
        w = _np(conv.weight) * scale[:, None, None]
        b = bias * scale + shift
        params[f"conv{k}"] = (w, b, 1.0 / np.sqrt(1.0 + norm.eps))
    for name in ("fc1", "fc2"):
        lin = getattr(model, name)
        params[name] = (_np(lin.weight), _np(lin.bias))
    return params


def _sign(z: np.ndarray) -> np.ndarray:
    # zennit's stabilize: sign with sign(0) = +1.
    return np.where(z >= 0, 1.0, -1.0)


def conv_patches(a: np.ndarray, k: int) -> np.ndarray:
    """Unfold (B, C, T) into (B, T, C*k) zero-padded patches of a 'same' stride-1 conv.

    Parameters
    ----------
    a : numpy.ndarray
        (B, C, T) input.
    k : int
        Odd kernel size.

    Returns
    -------
    numpy.ndarray
        (B, T, C*k); ``patches @ w.reshape(O, -1).T`` is the convolution.
    """
    pad = (k - 1) // 2
    ap = np.pad(a, ((0, 0), (0, 0), (pad, k - 1 - pad)))
    t = a.shape[2]
    p = np.stack([ap[:, :, j : j + t] for j in range(k)], axis=-1)  # (B, C, T, k)
    return p.transpose(0, 2, 1, 3).reshape(a.shape[0], t, -1)


def _fold(r: np.ndarray, c: int, k: int) -> np.ndarray:
    """Adjoint of :func:`conv_patches`: sum (B, T, C*k) patch relevance onto (B, C, T)."""
    b, t, _ = r.shape
    pad = (k - 1) // 2
    r = r.reshape(b, t, c, k).transpose(0, 2, 1, 3)
    out = np.zeros((b, c, t + k - 1))
    for j in range(k):
        out[:, :, j : j + t] += r[..., j]
    return out[:, :, pad : pad + t]


def _sums(r_out, r_in, bias_terms, stab_terms):
    axes_out = tuple(range(1, r_out.ndim))
    axes_in = tuple(range(1, r_in.ndim))
    ab, ast = bias_terms.sum(axes_out), stab_terms.sum(axes_out)
    scale = np.abs(r_out).sum(axes_out) + np.abs(r_in).sum(axes_in)
    scale = scale + np.abs(bias_terms).sum(axes_out) + np.abs(stab_terms).sum(axes_out)
    return r_in, ab, ast, scale


@replicates("epsilon")
def _epsilon_rule(a, w, b, r, *, eps, low=None, high=None):
    z = a @ w.T + b
    den = z + eps * _sign(z)
    s = r / den
    r_in = a * (s @ w)
    return _sums(r, r_in, s * np.broadcast_to(b, z.shape), s * eps * _sign(z))


@replicates("zplus")
def _zplus_rule(a, w, b, r, *, eps, low=None, high=None):
    ap, an = np.clip(a, 0, None), np.clip(a, None, 0)
    wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
    bp = np.broadcast_to(np.clip(b, 0, None), r.shape)
    z = ap @ wp.T + an @ wn.T + bp
    den = z + eps * _sign(z)
    s = r / den
    r_in = ap * (s @ wp) + an * (s @ wn)
    return _sums(r, r_in, s * bp, s * eps * _sign(z))


@replicates("zbox")
def _zbox_rule(a, w, b, r, *, eps, low, high):
    low = np.broadcast_to(low, a.shape)
    high = np.broadcast_to(high, a.shape)
    wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
    b = np.broadcast_to(b, r.shape)
    bias = b - np.clip(b, 0, None) - np.clip(b, None, 0)  # zennit clamps the bias too: 0
    d = a @ w.T - low @ wp.T - high @ wn.T + bias
    den = d + eps * _sign(d)
    s = r / den
    r_in = a * (s @ w) - low * (s @ wp) - high * (s @ wn)
    return _sums(r, r_in, s * bias, s * eps * _sign(d))


def _pool_rule(a, r, width, eps):
    """Epsilon rule through a non-overlapping average over ``width`` frames.

    a (B, C, T), r (B, C, T // width); frames past the last full window get none.
    """
    bsz, c, t = a.shape
    n_out = t // width
    win = a[:, :, : n_out * width].reshape(bsz, c, n_out, width)
    z = win.mean(-1)
    s = r / (z + eps * _sign(z))
    r_in = np.zeros_like(a)
    r_in[:, :, : n_out * width] = (win / width * s[..., None]).reshape(bsz, c, -1)
    return _sums(r, r_in, np.zeros_like(s), s * eps * _sign(z))


def _conv1_effective(params: dict, x: np.ndarray, input_norm: str):
    """(input, weights, bias) of conv1 as the explained network runs it."""
    s, t = params["input_norm"]
    w, b, _ = params["conv1"]
    if input_norm == "pass":
        return x * s[None, :, None] + t[None, :, None], w, b
    # Fold: conv1(s x + t) = conv1_{W s}(x) + conv1_W(t inside the frames, 0 outside).
    t_map = np.broadcast_to(t[None, :, None], (1, x.shape[1], x.shape[2]))
    border_bias = conv_patches(t_map, w.shape[2]) @ w.reshape(w.shape[0], -1).T  # (1, T, O)
    return x, w * s[None, :, None], b + border_bias


def reference_forward(params: dict, x: np.ndarray, input_norm: str = "fold") -> dict:
    """Forward pass of the canonized network in float64; returns every activation.

    Parameters
    ----------
    params : dict
        From :func:`merged_parameters`.
    x : numpy.ndarray
        (B, paths, frames).
    input_norm : {"fold", "pass"}
        How the input batch norm enters conv1 (module docstring).

    Returns
    -------
    dict
        Activations keyed by the layer that produced them (``x1`` conv1's input,
        ``z1``/``a1``/``p1`` conv output, ReLU output, pool output, ..., ``m`` time
        pool, ``h`` fc1 output, ``a4``, ``out`` logits), the patches ``P1..3``, and
        ``W1``/``b1`` conv1's effective weights and (position-dependent) bias.
    """
    inp, w1, b1 = _conv1_effective(params, x, input_norm)
    act = {"x1": inp, "W1": w1, "b1": b1}
    for k in (1, 2, 3):
        _, b, c = params[f"conv{k}"]
        w = w1 if k == 1 else params[f"conv{k}"][0]
        b = b1 if k == 1 else b
        p = conv_patches(inp, w.shape[2])
        z = (p @ w.reshape(w.shape[0], -1).T + b).transpose(0, 2, 1)  # (B, O, T)
        a = np.maximum(c * z, 0.0)
        act[f"P{k}"], act[f"z{k}"], act[f"a{k}"] = p, z, a
        if k < 3:
            n_out = a.shape[2] // 2
            inp = a[:, :, : 2 * n_out].reshape(a.shape[0], a.shape[1], n_out, 2).mean(-1)
            act[f"p{k}"] = inp
    act["m"] = act["a3"].mean(-1)
    wf1, bf1 = params["fc1"]
    act["h"] = act["m"] @ wf1.T + bf1
    act["a4"] = np.maximum(act["h"], 0.0)
    wf2, bf2 = params["fc2"]
    act["out"] = act["a4"] @ wf2.T + bf2
    return act


def _passthrough(name, r):
    tot = r.reshape(len(r), -1).sum(1)
    zero = np.zeros(len(r))
    return LayerBudget(name, tot, tot, zero, zero.copy(), 2 * np.abs(r).reshape(len(r), -1).sum(1))


def _budget(name, r_out, res):
    r_in, ab, ast, scale = res
    n = len(r_out)
    return LayerBudget(
        name, r_out.reshape(n, -1).sum(1), r_in.reshape(n, -1).sum(1), ab, ast, scale
    )


def _box(params: dict, p: Mapping, x_shape, input_norm: str):
    """Return the z-box (low, high) of conv1's input, broadcastable to (1, C, 1)."""
    low, high = float(p["low"]), float(p["high"])
    if input_norm == "fold":
        return np.full((1, x_shape[1], 1), low), np.full((1, x_shape[1], 1), high)
    s, t = params["input_norm"]
    a, b = s * low + t, s * high + t
    return np.minimum(a, b)[None, :, None], np.maximum(a, b)[None, :, None]


def _explain_batch(params, x, rules, target, top, p, input_norm):
    first_rule, conv_rule, dense_rule = rules
    act = reference_forward(params, x, input_norm)
    out = act["out"]
    tgt = out.argmax(1) if target is None else target
    n = len(x)
    rows = np.arange(n)
    r = np.zeros_like(out)
    r[rows, tgt] = {"logit": out[rows, tgt], "abs_logit": np.abs(out[rows, tgt])}.get(top, 1.0)
    top_rel = r.sum(1)
    budgets = []
    eps, stab = p["epsilon"], p["stabilizer"]

    def dense(name, a, w, b, r):
        rule = LAYER_RULES[dense_rule]
        res = rule(a, w, b, r, eps=eps if dense_rule == "epsilon" else stab)
        budgets.append(_budget(name, r, res))
        return res[0]

    w2, b2 = params["fc2"]
    r = dense("fc2", act["a4"], w2, b2, r)
    budgets.append(_passthrough("relu4", r))
    w1, b1 = params["fc1"]
    r = dense("fc1", act["m"], w1, b1, r)
    budgets.append(_passthrough("dropout", r))
    a3 = act["a3"]
    res = _pool_rule(a3, r[:, :, None], a3.shape[2], stab)
    budgets.append(_budget("time_pool", r, res))
    r = res[0]
    for k in (3, 2, 1):
        budgets.append(_passthrough(f"relu{k}", r))
        budgets.append(_passthrough(f"bn{k} (merged, Pass)", r))
        rule_name = first_rule if k == 1 else conv_rule
        if k == 1:
            w, b = act["W1"], act["b1"]
        else:
            w, b, _ = params[f"conv{k}"]
        c_in, ker = w.shape[1], w.shape[2]
        box = {}
        if rule_name == "zbox":
            if k != 1:
                raise ValueError("the z-box rule is for the first layer only")
            low, high = _box(params, p, x.shape, input_norm)
            full = (len(x), x.shape[1], x.shape[2])
            box = {
                "low": conv_patches(np.broadcast_to(low, full), ker),
                "high": conv_patches(np.broadcast_to(high, full), ker),
            }
        rp, ab, ast, scale = LAYER_RULES[rule_name](
            act[f"P{k}"], w.reshape(w.shape[0], -1), b, r.transpose(0, 2, 1),
            eps=eps if rule_name == "epsilon" else stab, **box,
        )  # fmt: skip
        r_in = _fold(rp, c_in, ker)
        # Patch relevance already sums to the folded one; the scale uses the patches.
        name = f"conv{k}+bn{k}" if k > 1 or input_norm == "pass" else "input_norm+conv1+bn1"
        budgets.append(_budget(name, r, (r_in, ab, ast, scale)))
        r = r_in
        if k > 1:
            res = _pool_rule(act[f"a{k - 1}"], r, 2, stab)
            budgets.append(_budget(f"pool{k - 1}", r, res))
            r = res[0]
    if input_norm == "pass":
        budgets.append(_passthrough("input_norm (Pass)", r))
    return r, out, tgt, top_rel, budgets


def reference_lrp(
    model: nn.Module,
    features,
    composite: str,
    target=None,
    *,
    top: str = "logit",
    batch_size: int = 16,
    params: Mapping | None = None,
    input_norm: str = "fold",
) -> ReferenceLRP:
    """Matrix-form float64 LRP of the canonized network, independent of zennit's hooks.

    Parameters
    ----------
    model : PMTConvNet
        Read only (parameters and running statistics are copied to float64).
    features : torch.Tensor or numpy.ndarray
        (n, paths, frames).
    composite : str
        Key of :data:`COMPOSITE_RULES`.
    target : None, int or array-like
        Explained class; ``None`` for the argmax of the canonized network's logits.
    top : {"logit", "abs_logit", "onehot"}
        Top relevance convention, as in :func:`pmt_core.explain.lrp.explain`.
    batch_size : int
        Examples per chunk (memory: conv1 patches are batch x frames x paths x 7
        float64, 34 MB for 16 examples at 1,200 paths).
    params : Mapping, optional
        Overrides of :data:`REF_DEFAULTS` (``epsilon``, ``stabilizer``, ``low``,
        ``high``).
    input_norm : {"fold", "pass"}
        As in :func:`pmt_core.explain.lrp.explain`.

    Returns
    -------
    ReferenceLRP
    """
    if composite not in COMPOSITE_RULES:
        raise KeyError(f"unknown composite {composite!r}")
    if top not in _TOPS:
        raise ValueError(f"unknown top {top!r}")
    if input_norm not in ("fold", "pass"):
        raise ValueError(f"unknown input_norm {input_norm!r}")
    unknown = set(params or {}) - set(REF_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}")
    p = {**REF_DEFAULTS, **(params or {})}
    x = features.detach().cpu().double().numpy() if torch.is_tensor(features) else features
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if x.ndim != 3 or n == 0:
        raise ValueError(f"features must be examples x paths x frames, got shape {x.shape}")
    if target is not None:
        target = np.broadcast_to(np.asarray(target, dtype=np.int64).reshape(-1), (n,))
    mp = merged_parameters(model)
    rules = COMPOSITE_RULES[composite]
    parts = [
        _explain_batch(
            mp,
            x[i : i + batch_size],
            rules,
            None if target is None else target[i : i + batch_size],
            top,
            p,
            input_norm,
        )
        for i in range(0, n, batch_size)
    ]
    fields = ("relevance_out", "relevance_in", "absorbed_bias", "absorbed_stabilizer", "abs_scale")
    budgets = tuple(
        LayerBudget(
            b0.name, *(np.concatenate([getattr(part[4][j], f) for part in parts]) for f in fields)
        )
        for j, b0 in enumerate(parts[0][4])
    )
    return ReferenceLRP(
        relevance=np.concatenate([part[0] for part in parts]),
        logits=np.concatenate([part[1] for part in parts]),
        target=np.concatenate([part[2] for part in parts]).astype(np.int64),
        top_relevance=np.concatenate([part[3] for part in parts]),
        budgets=budgets,
    )
