"""Independent matrix-form float64 LRP for :class:`~pmt_core.model.network.PMTConvNet`.

This module re-implements, in plain numpy float64 and without zennit or autograd,
the three rule sets of :data:`pmt_core.explain.lrp.RULES`, in the style of zennit's own
``tests/unit/test_rules.py`` (chr5tphr/zennit): each layer is written as
z_j = sum_i a_i w_ij + b_j (a convolution as a matrix product over unfolded
patches), and relevance is redistributed by

* LRP-epsilon (Bach et al. 2015): R_i = sum_j a_i w_ij R_j / (z_j + eps sign z_j);
* LRP-z+ (Montavon et al. 2017), zennit's ``ZPlus`` (alpha=1, beta=0 with negative
  inputs allowed): R_i = sum_j (a_i^+ w_ij^+ + a_i^- w_ij^-) R_j / (z_j^+ + eps
  sign z_j^+), z_j^+ = sum_i (a_i^+ w_ij^+ + a_i^- w_ij^-) + b_j^+;

with sign(0) = +1 as in zennit's ``stabilize``. Because every rule is linear in
R_j, the relevance a layer does not pass down is known in closed form,
sum_j R_j (b_j + eps sign z_j) / (z_j + eps sign z_j) (b^+ and z^+ for z+): the
bias (merged batch norm) share and the stabiliser share. :class:`LayerBudget`
records both, so that relevance_in + absorbed == relevance_out holds to float64
rounding, layer by layer (Montavon et al. 2019 discuss absorption by biases).

Batch norms are merged here in float64 from the model's parameters, exactly as
zennit's ``MergeBatchNorm`` does: W' = W gamma / sqrt(var + eps),
b' = (b - mean) gamma / sqrt(var + eps) + beta (b = 0: the convolutions have no
bias); zennit then resets the batch norm to mean 0, variance 1, weight 1, bias 0
but KEEPS its eps (1e-5), so in the canonized network each merged batch norm
still multiplies its input by 1 / sqrt(1 + eps). This module reproduces that
factor in the forward pass; in the backward pass the reset batch norm gets Pass
(relevance unchanged), as in zennit. The input batch norm is applied as a plain
affine map and gets Pass: input relevance is relevance of the normalised input.
The global time average is an average pool with the pools' epsilon (see
:mod:`pmt_core.explain.lrp`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "LayerBudget",
    "REF_EPSILON",
    "REF_POOL_STABILIZER",
    "REF_ZPLUS_STABILIZER",
    "RULE_LAYERS",
    "ReferenceLRP",
    "merged_parameters",
    "reference_forward",
    "reference_lrp",
]

#: Epsilon on convolutions / Linear layers (stated independently of pmt_core.explain.lrp;
#: a test checks that both agree).
REF_EPSILON = 1e-6
#: Stabiliser of the z+ denominator.
REF_ZPLUS_STABILIZER = 1e-6
#: Stabiliser of the average pools and of the time average.
REF_POOL_STABILIZER = 1e-6
#: (rule on convolutions, rule on Linear layers) per rule set.
RULE_LAYERS = {
    "epsilon": ("epsilon", "epsilon"),
    "epsilon_zplus": ("epsilon", "zplus"),
    "zplus_epsilon": ("zplus", "epsilon"),
}


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
        sum_j R_j b_j / (z_j + eps sign z_j) (b^+ over the z+ denominator for z+).
    absorbed_stabilizer : numpy.ndarray
        sum_j R_j eps sign z_j / (z_j + eps sign z_j).
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
        (n, paths, frames) float64 input relevance.
    logits : numpy.ndarray
        (n, classes) logits of the merged (canonized) network, float64.
    target : numpy.ndarray
        (n,) explained classes.
    top_relevance : numpy.ndarray
        (n,) relevance injected at the output.
    budgets : tuple of LayerBudget
        One per layer, from the output (fc2) down to the input norm.
    """

    relevance: np.ndarray
    logits: np.ndarray
    target: np.ndarray
    top_relevance: np.ndarray
    budgets: tuple[LayerBudget, ...]


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().to(torch.float64).numpy()


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
        ``conv1..3``: (W', b', c, kernel) with c = 1 / sqrt(1 + eps) the reset batch
        norm's residual factor; ``fc1``, ``fc2``: (W, b).
    """
    bn = model.input_norm
    in_scale = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    in_shift = _np(bn.bias) - _np(bn.running_mean) * in_scale
    params = {"input_norm": (in_scale, in_shift)}
    for k in (1, 2, 3):
        conv, norm = getattr(model, f"conv{k}"), getattr(model, f"bn{k}")
        if conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1:
            raise ValueError("reference supports stride 1, dilation 1, groups 1 only")
        if conv.kernel_size[0] % 2 != 1 or conv.padding != "same":
            raise ValueError("reference supports odd kernels with padding='same' only")
        scale = _np(norm.weight) / np.sqrt(_np(norm.running_var) + norm.eps)
        bias = _np(conv.bias) if conv.bias is not None else 0.0
        w = _np(conv.weight) * scale[:, None, None]
        b = (bias - _np(norm.running_mean)) * scale + _np(norm.bias)
        params[f"conv{k}"] = (w, b, 1.0 / np.sqrt(1.0 + norm.eps))
    for name in ("fc1", "fc2"):
        lin = getattr(model, name)
        params[name] = (_np(lin.weight), _np(lin.bias))
    return params


def _sign(z: np.ndarray) -> np.ndarray:
    # zennit's stabilize: sign with sign(0) = +1.
    return np.where(z >= 0, 1.0, -1.0)


def _patches(a: np.ndarray, k: int) -> np.ndarray:
    """Unfold (B, C, T) into (B, T, C*k) patches for a 'same' stride-1 convolution."""
    pad = (k - 1) // 2
    ap = np.pad(a, ((0, 0), (0, 0), (pad, k - 1 - pad)))
    t = a.shape[2]
    p = np.stack([ap[:, :, j : j + t] for j in range(k)], axis=-1)  # (B, C, T, k)
    return p.transpose(0, 2, 1, 3).reshape(a.shape[0], t, -1)


def _fold(r: np.ndarray, c: int, k: int) -> np.ndarray:
    """Adjoint of :func:`_patches`: sum (B, T, C*k) patch relevance onto (B, C, T)."""
    b, t, _ = r.shape
    pad = (k - 1) // 2
    r = r.reshape(b, t, c, k).transpose(0, 2, 1, 3)
    out = np.zeros((b, c, t + k - 1))
    for j in range(k):
        out[:, :, j : j + t] += r[..., j]
    return out[:, :, pad : pad + t]


def _linear_rule(a, w, b, r, rule, eps):
    """LRP through z = a @ w.T + b with a (B, ..., I), w (O, I), r (B, ..., O).

    Returns (relevance_in, absorbed_bias, absorbed_stabilizer, abs_scale), sums per
    example.
    """
    if rule == "epsilon":
        z = a @ w.T + b
        bias = np.broadcast_to(b, z.shape)
        den = z + eps * _sign(z)
        s = r / den
        r_in = a * (s @ w)
    elif rule == "zplus":
        ap, an = np.clip(a, 0, None), np.clip(a, None, 0)
        wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
        bias = np.broadcast_to(np.clip(b, 0, None), r.shape)
        z = ap @ wp.T + an @ wn.T + bias
        den = z + eps * _sign(z)
        s = r / den
        r_in = ap * (s @ wp) + an * (s @ wn)
    else:
        raise ValueError(f"unknown layer rule {rule!r}")
    axes = tuple(range(1, r.ndim))
    ab = (s * bias).sum(axes)
    ast = (s * eps * _sign(z)).sum(axes)
    scale = np.abs(r).sum(axes) + np.abs(r_in).sum(tuple(range(1, r_in.ndim)))
    scale = scale + np.abs(s * bias).sum(axes) + np.abs(s * eps).sum(axes)
    return r_in, ab, ast, scale


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
    ast = (s * eps * _sign(z)).sum((1, 2))
    scale = np.abs(r).sum((1, 2)) + np.abs(r_in).sum((1, 2)) + np.abs(s * eps).sum((1, 2))
    return r_in, np.zeros(bsz), ast, scale


def reference_forward(params: dict, x: np.ndarray) -> dict:
    """Forward pass of the merged network in float64; returns every activation.

    Parameters
    ----------
    params : dict
        From :func:`merged_parameters`.
    x : numpy.ndarray
        (B, paths, frames).

    Returns
    -------
    dict
        Activations keyed by the layer that produced them (``x0`` normalised input,
        ``z1``/``a1``/``p1`` conv output, ReLU output, pool output, ..., ``m`` time
        average, ``h`` fc1 output, ``a4``, ``out`` logits) and the patches ``P1..3``.
    """
    s, t = params["input_norm"]
    act = {"x0": x * s[None, :, None] + t[None, :, None]}
    inp = act["x0"]
    for k in (1, 2, 3):
        w, b, c = params[f"conv{k}"]
        p = _patches(inp, w.shape[2])
        z = (p @ w.reshape(w.shape[0], -1).T + b).transpose(0, 2, 1)  # (B, O, T)
        a = np.maximum(c * z, 0.0)
        act[f"P{k}"], act[f"z{k}"], act[f"a{k}"] = p, z, a
        if k < 3:
            n_out = a.shape[2] // 2
            inp = a[:, :, : 2 * n_out].reshape(a.shape[0], a.shape[1], n_out, 2).mean(-1)
            act[f"p{k}"] = inp
    act["m"] = act["a3"].mean(-1)
    w1, b1 = params["fc1"]
    act["h"] = act["m"] @ w1.T + b1
    act["a4"] = np.maximum(act["h"], 0.0)
    w2, b2 = params["fc2"]
    act["out"] = act["a4"] @ w2.T + b2
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


def _explain_batch(params, x, rule, target, top):
    conv_rule, dense_rule = RULE_LAYERS[rule]
    act = reference_forward(params, x)
    out = act["out"]
    tgt = out.argmax(1) if target is None else target
    n = len(x)
    r = np.zeros_like(out)
    r[np.arange(n), tgt] = out[np.arange(n), tgt] if top == "logit" else 1.0
    top_rel = r.sum(1)
    budgets = []

    w2, b2 = params["fc2"]
    res = _linear_rule(act["a4"], w2, b2, r, dense_rule, REF_EPSILON)
    budgets.append(_budget("fc2", r, res))
    r = res[0]
    budgets.append(_passthrough("relu4", r))
    w1, b1 = params["fc1"]
    res = _linear_rule(act["m"], w1, b1, r, dense_rule, REF_EPSILON)
    budgets.append(_budget("fc1", r, res))
    r = res[0]
    budgets.append(_passthrough("dropout", r))
    a3 = act["a3"]
    res = _pool_rule(a3, r[:, :, None], a3.shape[2], REF_POOL_STABILIZER)
    budgets.append(_budget("time_mean", r, res))
    r = res[0]
    for k in (3, 2, 1):
        budgets.append(_passthrough(f"relu{k}", r))
        budgets.append(_passthrough(f"bn{k} (merged, Pass)", r))
        w, b, _ = params[f"conv{k}"]
        c_in, ker = w.shape[1], w.shape[2]
        r_pos = r.transpose(0, 2, 1)  # (B, T, O)
        rp, ab, ast, scale = _linear_rule(
            act[f"P{k}"], w.reshape(w.shape[0], -1), b, r_pos, conv_rule, REF_EPSILON
        )
        r_in = _fold(rp, c_in, ker)
        # Patch relevance already sums to the folded one; the scale uses the patches.
        budgets.append(_budget(f"conv{k}+bn{k}", r, (r_in, ab, ast, scale)))
        r = r_in
        if k > 1:
            res = _pool_rule(act[f"a{k - 1}"], r, 2, REF_POOL_STABILIZER)
            budgets.append(_budget(f"pool{k - 1}", r, res))
            r = res[0]
    budgets.append(_passthrough("input_norm (Pass)", r))
    return r, out, tgt, top_rel, budgets


def reference_lrp(
    model: nn.Module, features, rule: str, target=None, *, top: str = "logit", batch_size: int = 16
) -> ReferenceLRP:
    """Matrix-form float64 LRP of the merged network, independent of zennit's hooks.

    Parameters
    ----------
    model : PMTConvNet
        Read only (parameters and running statistics are copied to float64).
    features : torch.Tensor or numpy.ndarray
        (n, paths, frames).
    rule : str
        Key of :data:`RULE_LAYERS`.
    target : None, int or array-like
        Explained class; ``None`` for the argmax of the merged network's logits.
    top : {"logit", "onehot"}
        Top relevance convention, as in :func:`pmt_core.explain.lrp.explain`.
    batch_size : int
        Examples per chunk (memory: conv1 patches are batch x frames x paths x 7
        float64, 34 MB for 16 examples at 1,200 paths).

    Returns
    -------
    ReferenceLRP
    """
    if rule not in RULE_LAYERS:
        raise KeyError(f"unknown rule {rule!r}")
    if top not in ("logit", "onehot"):
        raise ValueError(f"unknown top {top!r}")
    x = features.detach().cpu().double().numpy() if torch.is_tensor(features) else features
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if x.ndim != 3 or n == 0:
        raise ValueError(f"features must be examples x paths x frames, got shape {x.shape}")
    if target is not None:
        target = np.broadcast_to(np.asarray(target, dtype=np.int64).reshape(-1), (n,))
    params = merged_parameters(model)
    parts = [
        _explain_batch(
            params,
            x[i : i + batch_size],
            rule,
            None if target is None else target[i : i + batch_size],
            top,
        )
        for i in range(0, n, batch_size)
    ]
    budgets = tuple(
        LayerBudget(
            b0.name,
            *(
                np.concatenate([p[4][j].__dict__[f] for p in parts])
                for f in (
                    "relevance_out",
                    "relevance_in",
                    "absorbed_bias",
                    "absorbed_stabilizer",
                    "abs_scale",
                )
            ),
        )
        for j, b0 in enumerate(parts[0][4])
    )
    return ReferenceLRP(
        relevance=np.concatenate([p[0] for p in parts]),
        logits=np.concatenate([p[1] for p in parts]),
        target=np.concatenate([p[2] for p in parts]).astype(np.int64),
        top_relevance=np.concatenate([p[3] for p in parts]),
        budgets=budgets,
    )
