"""The per-layer LRP rules, one :class:`LayerRule` object each.

In this package "rule" only ever means a per-layer rule (zennit's ``Epsilon``,
``ZPlus``, ``ZBox``); a *composite* (:mod:`pmt_core.explain.lrp.composites`) assigns
one to the first layer, one to the other convolutions and one to the Linear layers.

Everything the package knows about a rule lives in its :class:`LayerRule`: the zennit
rule it builds, the relevance it absorbs (bias and stabiliser shares, for the
conservation account of :mod:`pmt_core.explain.lrp.conservation`), its parameters
and their defaults, whether it may sit only on the first layer, and how its
parameters are bound to the model's input (the z-box). A new rule is one more entry
of :data:`LAYER_RULE_SPECS`; the independent float64 oracle
(:mod:`pmt_core.explain.lrp_reference`) and the Captum comparison
(:mod:`pmt_core.explain.lrp_captum`) state their rules on their own, on purpose.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torch.func import functional_call
from zennit.core import BasicHook
from zennit.rules import Epsilon, ZBox, ZPlus

from pmt_core.explain.lrp.canonize import input_affine, model_device_dtype

__all__ = [
    "EPSILON",
    "LAYER_RULES",
    "LAYER_RULE_SPECS",
    "LayerRule",
    "POOL_STABILIZER",
    "VANISHING_EPSILON",
    "ZBOX_HIGH",
    "ZBOX_LOW",
    "ZPLUS_STABILIZER",
    "layer_rule",
]

#: Epsilon of the LRP-epsilon rule on convolutions and Linear layers: the authors'
#: ``Epsilon(1e-6)`` and zennit 0.5's ``EpsilonPlus(epsilon=1e-6)`` default.
EPSILON = 1e-6
#: Stabiliser of the z+ and z-box denominators: zennit's ``stabilizer=1e-6`` default.
ZPLUS_STABILIZER = 1e-6
#: Stabiliser of the average pools (and the time pool): the authors' ``Epsilon(1e-6)``
#: on AvgPool, identical to zennit's ``Norm(1e-6)`` for a layer without parameters.
#: It is the factories' ``stabilizer`` parameter, as in zennit (``layer_map_base``).
POOL_STABILIZER = 1e-6
#: Lower bound of the z-box: compressed features log1p(S / ...) are >= 0 exactly.
ZBOX_LOW = 0.0
#: Upper bound of the z-box: log1p(1e4), i.e. S = 1,000 x the path's training mean
#: (with c = 0.1). Measured here: at most 8.5 on 30 synthetic clips.
ZBOX_HIGH = math.log1p(1e4)
#: An epsilon that is "0" for every non-zero float64 denominator (z + 1e-300 == z for
#: |z| > 1e-284) but keeps 0 / 0 away where a dead unit has z = 0 and no relevance:
#: the epsilon -> 0 limit, for exact-conservation checks in float64 only.
VANISHING_EPSILON = 1e-300


class LayerForward:
    """The forward map of one (canonized) layer, with its parameters swapped at will.

    What a rule's :attr:`LayerRule.budget` recomputes its denominator with,
    independently of the zennit hooks that produced the relevance.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.weights = dict(module.named_parameters(recurse=False))

    def __call__(self, mod_params: Mapping, inp: torch.Tensor) -> torch.Tensor:
        """Run the layer on ``inp`` with ``mod_params`` in place of its own parameters."""
        return functional_call(self.module, {**self.weights, **mod_params}, (inp,))

    def clamp(self, lo=None, hi=None, zero_bias=False) -> dict:
        """Return the parameters clamped to [lo, hi], the bias zeroed if ``zero_bias``."""
        return {
            k: (torch.zeros_like(v) if zero_bias and k == "bias" else v.clamp(min=lo, max=hi))
            for k, v in self.weights.items()
        }


#: ``budget(layer, a, z, p) -> (d, bias, eps)``: the rule's denominator ``d`` on the
#: layer's input ``a`` and output ``z``, the bias part of it, and the stabiliser.
Budget = Callable[[LayerForward, torch.Tensor, torch.Tensor, Mapping], tuple]


@dataclass(frozen=True)
class LayerRule:
    """One per-layer LRP rule and everything the package needs to know about it.

    Attributes
    ----------
    name : str
        The name composites declare it by (an entry of :data:`LAYER_RULES`).
    defaults : Mapping[str, object]
        Its parameters and their default values; a composite's defaults are those of
        its rules (:func:`~pmt_core.explain.lrp.composites.composite_defaults`).
    zennit : callable
        ``zennit(params) -> zennit rule`` from the composite's resolved parameters.
    budget : callable
        ``budget(layer, a, z, params) -> (d, bias, eps)``: the rule's denominator d
        recomputed from the forward pass (a :class:`LayerForward`, its input ``a`` and
        output ``z``), its bias part and its stabiliser; the conservation account
        absorbs R b / (d + eps sign d) and R eps sign d / (d + eps sign d).
    first_layer_only : str or None
        Why the rule may only sit on the first layer, or None where it may sit anywhere.
    bind_input : callable or None
        ``bind_input(params, model, input_norm, composite) -> params``: for a
        first-layer rule whose parameters are stated on the model's input (the z-box
        bounds), the parameters the zennit rule gets.
    check_input : callable or None
        ``check_input(composite, x, params)``: for a first-layer rule, warn about inputs
        outside its domain (called from the pass itself, so its warnings point at
        ``explain``/``conservation``).
    """

    name: str
    defaults: Mapping[str, object]
    zennit: Callable[[Mapping], BasicHook]
    budget: Budget
    first_layer_only: str | None = None
    bind_input: Callable[..., dict] | None = None
    check_input: Callable[[str, torch.Tensor, Mapping], None] | None = None


# --- epsilon -----------------------------------------------------------------------------


def _epsilon_budget(layer: LayerForward, a, z, p):
    return z, layer({}, torch.zeros_like(a)), p["epsilon"]


EPSILON_RULE = LayerRule(
    "epsilon",
    defaults=MappingProxyType({"epsilon": EPSILON}),
    zennit=lambda p: Epsilon(epsilon=p["epsilon"]),
    budget=_epsilon_budget,
)


# --- z+ ----------------------------------------------------------------------------------


def _zplus_budget(layer: LayerForward, a, z, p):
    pos, neg = layer.clamp(lo=0.0), layer.clamp(hi=0.0, zero_bias=True)
    d = layer(pos, a.clamp(min=0)) + layer(neg, a.clamp(max=0))
    return d, layer(pos, torch.zeros_like(a)), p["stabilizer"]


ZPLUS_RULE = LayerRule(
    "zplus",
    defaults=MappingProxyType({"stabilizer": ZPLUS_STABILIZER}),
    zennit=lambda p: ZPlus(stabilizer=p["stabilizer"]),
    budget=_zplus_budget,
)


# --- z-box -------------------------------------------------------------------------------


def _zbox_budget(layer: LayerForward, a, z, p):
    low = torch.as_tensor(p["low"], dtype=a.dtype, device=a.device).expand_as(a)
    high = torch.as_tensor(p["high"], dtype=a.dtype, device=a.device).expand_as(a)
    pos, neg = layer.clamp(lo=0.0), layer.clamp(hi=0.0)
    d = z - layer(pos, low) - layer(neg, high)
    zeros = torch.zeros_like(a)
    bias = layer({}, zeros) - layer(pos, zeros) - layer(neg, zeros)
    return d, bias, p["stabilizer"]


def _zbox_bind_input(resolved: dict, model, input_norm: str, composite: str) -> dict:
    """Bounds as float64 tensors, mapped through the input norm under ``"pass"``."""
    # As float64 tensors: zennit's ZBox turns a Python float into a float32 tensor
    # before casting it to the input's dtype, which rounds log1p(1e4) by ~1e-8 even in
    # a float64 pass.
    low, high = (torch.as_tensor(float(resolved[k]), dtype=torch.float64) for k in ("low", "high"))
    if input_norm == "pass":
        if model is None:
            raise ValueError(
                f"{composite} under input_norm='pass' needs the model: its "
                "box is mapped through the model's input batch norm"
            )
        s, t = (v.detach().to(torch.float64) for v in input_affine(model))
        a, b = s.cpu() * low + t.cpu(), s.cpu() * high + t.cpu()
        low, high = torch.minimum(a, b)[None, :, None], torch.maximum(a, b)[None, :, None]
    if model is not None:
        device = model_device_dtype(model)[0]
        low, high = low.to(device), high.to(device)
    resolved["low"], resolved["high"] = low, high
    return resolved


def _zbox_check_input(composite: str, x: torch.Tensor, params: Mapping) -> None:
    low, high = float(params["low"]), float(params["high"])
    outside = (x < low) | (x > high)
    if bool(outside.any()):
        warnings.warn(
            f"{composite}: {float(outside.double().mean()):.2%} of the inputs lie outside the "
            f"z-box [{low:g}, {high:g}] (range {float(x.min()):.3g} to {float(x.max()):.3g}); "
            "the rule's root point is then not in the data domain (params low=/high=)",
            stacklevel=3,
        )


ZBOX_RULE = LayerRule(
    "zbox",
    defaults=MappingProxyType({"stabilizer": ZPLUS_STABILIZER, "low": ZBOX_LOW, "high": ZBOX_HIGH}),
    zennit=lambda p: ZBox(low=p["low"], high=p["high"], stabilizer=p["stabilizer"]),
    budget=_zbox_budget,
    first_layer_only="the z-box rule needs the input box",
    bind_input=_zbox_bind_input,
    check_input=_zbox_check_input,
)


# --- the registry ------------------------------------------------------------------------

#: Every per-layer rule, by name: the one place a new rule is added.
LAYER_RULE_SPECS: Mapping[str, LayerRule] = MappingProxyType(
    {rule.name: rule for rule in (EPSILON_RULE, ZPLUS_RULE, ZBOX_RULE)}
)
#: Per-layer rules a composite may declare.
LAYER_RULES = tuple(LAYER_RULE_SPECS)


def layer_rule(name: str) -> LayerRule:
    """Return the :class:`LayerRule` called ``name``; ValueError for an unknown one."""
    if name not in LAYER_RULE_SPECS:
        raise ValueError(f"unknown layer rule {name!r}")
    return LAYER_RULE_SPECS[name]
