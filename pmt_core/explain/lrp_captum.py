"""Captum's LRP as a second, independent implementation of the suite's LRP composites.

zennit computes every LRP map the claims read; :mod:`pmt_core.explain.lrp_reference`
re-derives them in numpy. This module asks a third party: Captum's ``LRP``
(``captum.attr.LRP``), which propagates relevance with its own forward and backward
hooks, from its own rule classes. Captum ships rules for 2-D layers only, so each
layer of the 1-D network gets its rule explicitly (Captum's documented route for
other layer types, ``layer.rule = ...``):

* ``epsilon``: Captum's ``EpsilonRule(eps)``, the same z + eps sign(z) stabiliser
  (sign(0) = +1 in both);
* ``zplus``: :class:`ZPlusRule`, a Captum ``PropagationRule`` that keeps the positive
  weights and biases, which is zennit's ``ZPlus`` where every input of the layer is
  non-negative (ReLU and pool outputs; compressed features, which are log1p of a
  non-negative value). :func:`captum_lrp` refuses a negative input rather than
  compare a rule Captum cannot express (zennit's a^- w^- term);
* the average pools: ``EpsilonRule`` with the pools' stabiliser, as zennit's layer map;
* flatten, identity and the activations pass relevance through.

z-box (``zbox_zplus_epsilon``) has no Captum counterpart and is not covered.

Two networks are compared (:func:`captum_lrp`'s ``canonize``):

* ``canonize=True``: the network zennit's canonizers produce (input norm folded into
  conv1, batch norms merged), with the composite's own epsilon. Only the propagation
  differs, so the maps agree to float64 rounding;
* ``canonize=False``: the network as trained, each batch norm its own layer with the
  epsilon rule, at vanishing epsilon. LRP-0 is unchanged by merging affine layers,
  so the maps agree to rounding once zennit's kept batch-norm eps is modelled: a
  merged norm still divides by sqrt(1 + eps), so each norm that follows a
  convolution is scaled by that factor here (without it the maps differ by 1.5e-5
  on typical inputs and by up to 1e-3 where the explained logit is small). A check
  of the canonizers as well, with no zennit code on Captum's side.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule, PropagationRule
from torch import nn

from pmt_core.explain import lrp

#: The composites Captum can express (their layer rules are epsilon and z+).
CAPTUM_COMPOSITES = tuple(
    name for name, spec in lrp.COMPOSITES.items()
    if {spec.first_layer_rule, spec.conv_rule, spec.dense_rule} <= {"epsilon", "zplus"}
)  # fmt: skip

#: Stabiliser for the layers that only reshape (flatten, the folded input norm's
#: identity): R = x R / (x + tiny), exact in float64 wherever x is not 0, and 0 where
#: x is 0, as every rule here gives.
_PASS_THROUGH = 1e-300


class ZPlusRule(PropagationRule):
    """Captum propagation rule for z+ on non-negative inputs: w+ and b+ only."""

    def __init__(self, stabilizer: float) -> None:
        self.STABILITY_FACTOR = stabilizer

    def _manipulate_weights(self, module, inputs, outputs) -> None:
        for name in ("weight", "bias"):
            param = getattr(module, name, None)
            if param is not None:
                param.data = param.data.clamp(min=0)


def _layer_rule(rule: str, params: Mapping) -> PropagationRule:
    if rule == "epsilon":
        return EpsilonRule(params["epsilon"])
    if rule == "zplus":
        return ZPlusRule(params["stabilizer"])
    raise ValueError(f"Captum has no counterpart of the layer rule {rule!r}")


def _attach_rules(model: nn.Module, spec: lrp.CompositeSpec, params: Mapping,
                  first_conv: nn.Module, canonized: bool) -> None:
    """Give each leaf its rule, as zennit's layer map does (module docstring)."""
    for layer in model.modules():
        if next(layer.children(), None) is not None or isinstance(layer, (nn.ReLU, nn.Dropout)):
            continue
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            # Merged norms are identities with the kept eps: zennit gives them Pass.
            layer.rule = (IdentityRule() if canonized
                          else EpsilonRule(params["epsilon"]))
        elif isinstance(layer, (nn.AvgPool1d, nn.AdaptiveAvgPool1d)):
            layer.rule = EpsilonRule(params["stabilizer"])
        elif isinstance(layer, (nn.Flatten, nn.Identity)):
            layer.rule = EpsilonRule(_PASS_THROUGH)
        elif isinstance(layer, nn.Conv1d):
            layer.rule = _layer_rule(spec.first_layer_rule if layer is first_conv
                                     else spec.conv_rule, params)
        elif isinstance(layer, nn.Linear):
            layer.rule = _layer_rule(spec.dense_rule, params)
        else:
            raise TypeError(f"no LRP rule for a {type(layer).__name__} layer")


def _keep_merge_eps(model: nn.Module) -> None:
    """Scale each batch norm that follows a convolution by (1 + eps)^-1/2.

    zennit's merge leaves that factor in the merged norm, so the network then
    computes exactly what the canonized one does.
    """
    order = [getattr(model, name) for name in model.FORWARD]
    with torch.no_grad():
        for previous, layer in zip(order[:-1], order[1:], strict=True):
            if isinstance(layer, nn.modules.batchnorm._BatchNorm) and isinstance(
                    previous, nn.Conv1d):
                if layer.weight is None or layer.bias is None:
                    raise ValueError("the kept-eps factor needs affine batch norms")
                factor = (1.0 + layer.eps) ** -0.5
                layer.weight.mul_(factor)
                layer.bias.mul_(factor)


def captum_lrp(model: nn.Module, features, composite: str, target, *,
               canonize: bool = True, params: Mapping | None = None,
               batch_size: int = 32) -> np.ndarray:
    """Relevance of ``target`` over the input, by Captum's LRP, in float64.

    Parameters
    ----------
    model : PMTConvNet
        Never modified: Captum runs on a float64 deep copy in eval mode.
    features : torch.Tensor
        (n, paths, frames) compressed features, non-negative.
    composite : str
        One of :data:`CAPTUM_COMPOSITES`.
    target : array-like of int
        The explained class per example. The top relevance is its logit (Captum's
        convention; :func:`pmt_core.explain.lrp.explain` with ``top="logit"``).
    canonize : bool
        Run on zennit's canonized network (True) or on the network as trained
        (module docstring).
    params : Mapping, optional
        ``epsilon`` and ``stabilizer``; default the composite's.

    Returns
    -------
    numpy.ndarray
        (n, paths, frames) relevance.

    Raises
    ------
    ValueError
        For a composite Captum cannot express, or negative features.
    """
    if composite not in CAPTUM_COMPOSITES:
        raise ValueError(f"Captum covers {CAPTUM_COMPOSITES}, not {composite!r}")
    spec = lrp.COMPOSITES[composite]
    params = {**spec.defaults, **(params or {})}
    x = torch.as_tensor(features).detach().cpu().to(torch.float64)
    if (x < 0).any():
        raise ValueError("Captum's z+ here assumes non-negative features; got negative ones")
    target = torch.as_tensor(np.asarray(target), dtype=torch.long).reshape(-1)
    work = copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()
    if canonize:
        for canonizer in lrp.canonizers("fold"):
            canonizer.apply(work)
    else:
        _keep_merge_eps(work)
    first_conv = getattr(work, work.FORWARD[1])
    _attach_rules(work, spec, params, first_conv, canonized=canonize)
    explainer = LRP(work)
    parts = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].clone().requires_grad_(True)
        parts.append(explainer.attribute(xb, target=target[i:i + batch_size]).detach())
    return torch.cat(parts).numpy()
