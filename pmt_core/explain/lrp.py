"""Layer-wise relevance propagation for :class:`~pmt_core.model.network.PMTConvNet` (zennit).

Composites
----------
zennit calls a set of per-layer rules plus its canonizers a *composite*; so does
this module. :data:`COMPOSITES` holds one :class:`CompositeSpec` per reading of the
method (method.md section 3). In this module "rule" only ever means a per-layer
zennit rule (``Epsilon``, ``ZPlus``, ``ZBox``); a composite assigns one to the
first layer (``conv1``), one to the other convolutions and one to the Linear
layers, always with ``Pass`` on activations and batch norms and an
epsilon-type stabiliser on the average pools (zennit's ``layer_map_base``).

``epsilon`` (authors' code)
    The authors' "LRP-eps": ``Epsilon(1e-6)`` on convolutions, Linear layers and
    average pools (Bach et al. 2015; Montavon et al. 2019).
``epsilon_zplus`` (paper text)
    The paper's TEXT for "LRP-[eps, z+]": epsilon on the convolutions, z+ on the
    dense layers, whose inputs are ReLU outputs >= 0, as z+ requires (Montavon et
    al. 2017).
``zplus_epsilon`` (authors' code)
    The authors' CODE for "LRP-[eps, z+]": zennit's ``EpsilonPlus`` unchanged, z+
    on every convolution and epsilon on the Linear layers -- the reverse of the
    text.
``zbox_zplus_epsilon`` (variant)
    ``zplus_epsilon`` with DTD's z-box rule on the first layer (zennit ``ZBox``,
    box ``[0, ZBOX_HIGH]`` on the compressed features), see below.

Every factory takes its parameters as zennit's composites do (``epsilon=`` for the
Epsilon rules, ``stabilizer=`` for z+, z-box and the pools; ``low=``/``high=`` for
the box), so "epsilon 1e-6 -> 1e-2" is ``explain(..., params={"epsilon": 1e-2})``.

Input relevance: the input batch norm is folded into ``conv1``
----------------------------------------------------------------------
The network's first layer is a batch norm, x0 = gamma (x - mu) / sigma + beta, of
the compressed features x = log1p(S / (c mu_train + 1e-8)) >= 0. In the authors'
code it gets ``Pass`` (nothing precedes it, so ``SequentialMergeBatchNorm`` never
merges it): relevance is then that of x0, a signed deviation from a learned
reference point, and a positive R on a path whose x0 < 0 reads "less of this
than usual" (audit M8). **This module departs from the authors' code** and by
default (``input_norm="fold"``) folds the input batch norm into ``conv1``
exactly, with the :class:`InputNormFold` canonizer: ``conv1`` becomes a
:class:`FoldedConv1d` with weights W' = W s (s = gamma / sigma per input path) that
reads x itself, and the input norm becomes an identity. ``conv1`` pads with zeros
*in the x0 domain*, so its constant part t = beta - mu s reaches the border frames
only partly; the fold carries that exactly as a position-dependent bias
B(tau) = sum_{c, j valid at tau} W[o, c, j] t_c (interior frames get the full sum,
the first and last (k - 1) / 2 frames the partial ones). B is a bias like any
other: every rule treats it as such (absorbed by epsilon, b+ in the z+
denominator) and :func:`conservation` accounts for it. Logits are unchanged up to
rounding (:func:`fold_logit_shift`). Every composite's maps then live on the
compressed features x that the network is given. ``input_norm="pass"`` restores
the authors' behaviour for the paper-vs-code comparison.

The first layer of z+-type composites
--------------------------------------
zennit's ``ZPlus`` docstring notes that DTD's z+ rule (Montavon et al. 2017)
"only considers positive inputs"; zennit's version is alpha=1, beta=0 with
negative inputs allowed, so a negative input on a negative weight counts as
positive evidence. Under ``"pass"`` the first layer's input is the signed x0, so
``zplus_epsilon`` on ``conv1`` is improper there: below-average paths become
evidence for the class. After the fold the input is x >= 0, in the domain z+
assumes, and bounded. DTD derives the z-box (zB) rule for inputs in a box [l, h]
(Montavon et al. 2017, the "constrained input space"; Montavon et al. 2019 use it
on the input layer), and zennit's ``ZBox`` is "intended for boxed input pixel space
... the lowest and highest *possible* values". Here l = 0 exactly (S >= 0) and
h = :data:`ZBOX_HIGH` = log1p(1e4), a coefficient 1,000 times its path's training
mean (30 synthetic clips measured here: at most 8.5, i.e. 490 times); inputs
outside the box make :func:`explain` warn. With l = 0 each zB term,
x w^+ + (x - h) w^-, is >= 0 for x in the box, so positive relevance stays
positive. zennit's other first-layer rule, flat (``EpsilonPlusFlat``), was
rejected: it spreads each ``conv1`` unit's relevance uniformly over its inputs, and
its inputs are the 1,200 paths, so the map would be the same on every path -- it
erases the axis this paper explains (a test pins it). Under ``"pass"`` the box is
mapped through the input norm, [t + min(0, s h), t + max(0, s h)] per path; the
zB rule is equivariant to that map, so both modes give the same zB maps (tested).

Canonizers
----------
Every composite merges each convolution's batch norm into it with zennit's
``SequentialMergeBatchNorm``, after the fold. That canonizer pairs leaves in the
order modules were *assigned* in ``__init__``, not in the forward graph, so
:func:`explain` counts what was merged and compares it with the conv+BN pairs in a
traced forward pass; any mismatch raises :class:`CanonizerError` instead of
explaining a half-canonized network. zennit resets a merged batch norm but keeps
its eps, so logits move slightly (:func:`merged_logit_shift`).

The global time average is the model's own ``time_pool`` module
(``AdaptiveAvgPool1d(1)``), which every composite treats as an average pool
(relevance in proportion to each frame's activation), as the authors' network did.

The top relevance and its sign
------------------------------
``top="logit"`` injects the explained logit (paper: R_M = f(Sx)); ``"onehot"``
injects 1 (authors' code); ``"abs_logit"`` injects |logit|. The backward pass is
linear in the top relevance, so the three maps differ by a per-example factor: the
ratios and kurtosis of |R| are the same. But when the winning logit is negative
``"logit"`` FLIPS the map: argmax, top-n and deletion orders reverse. Ranking
statistics should use ``"onehot"`` or ``"abs_logit"`` (audit m2).

Conservation
------------
:func:`conservation` runs zennit's backward pass, captures the relevance at every
layer boundary and checks each layer's budget R_in + absorbed - R_out against
absorbed terms computed analytically from the forward pass (audit M2): a wrong
backward pass shows up as a residual. :func:`bias_free_copy` gives the network on
which LRP with epsilon -> 0 must conserve exactly.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from zennit.canonizers import Canonizer, MergeBatchNorm, SequentialMergeBatchNorm
from zennit.composites import EpsilonPlus, LayerMapComposite, SpecialFirstLayerMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon, Pass, ZBox, ZPlus
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

__all__ = [
    "COMPOSITES",
    "CanonizerError",
    "CompositeSpec",
    "Conservation",
    "EPSILON",
    "Explanation",
    "FoldedConv1d",
    "INPUT_NORM_MODES",
    "InputNormFold",
    "LAYER_RULES",
    "LayerBudget",
    "POOL_STABILIZER",
    "READINGS",
    "RULES",
    "TOPS",
    "VANISHING_EPSILON",
    "ZBOX_HIGH",
    "ZBOX_LOW",
    "ZPLUS_STABILIZER",
    "bias_free_copy",
    "conservation",
    "count_conv_bn_pairs",
    "explain",
    "fold_logit_shift",
    "merged_logit_shift",
    "register_composite",
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
#: Accepted top-relevance conventions (see :func:`explain`).
TOPS = ("logit", "abs_logit", "onehot")
#: How the input batch norm is explained: folded into conv1 (default) or ``Pass``
#: (the authors' code).
INPUT_NORM_MODES = ("fold", "pass")
#: Per-layer rules a composite may declare.
LAYER_RULES = ("epsilon", "zplus", "zbox")
#: Where a composite's reading comes from.
READINGS = ("paper text", "authors' code", "variant")


class CanonizerError(RuntimeError):
    """The canonizers did not produce the network the composite assumes.

    Raised when ``SequentialMergeBatchNorm`` did not merge exactly the conv+BN
    pairs of the forward pass, when the input-norm fold was requested but could
    not be applied, or when the first-layer rule would land on a module other than
    the first layer of the forward pass.
    """


# --- the input-norm fold ----------------------------------------------------------------


class FoldedConv1d(nn.Conv1d):
    """A stride-1 ``'same'`` Conv1d with a per-channel affine input map folded in, exactly.

    ``FoldedConv1d(conv, scale, shift)(x) == conv(scale * x + shift)`` for inputs of at
    least ``kernel - 1`` frames, including the border frames where ``conv`` pads
    ``scale * x + shift`` with zeros: the constant part becomes a position-dependent
    bias (module docstring).

    Parameters
    ----------
    conv : torch.nn.Conv1d
        Stride 1, dilation 1, groups 1, odd kernel, zero ``'same'`` padding.
    scale, shift : torch.Tensor
        (in_channels,) affine map applied to the input before ``conv``.

    Attributes
    ----------
    weight : torch.nn.Parameter
        (out, in, k): ``conv.weight * scale`` per input channel.
    bias : torch.nn.Parameter
        (k, out), compact and time-major: rows ``0 .. (k-1)/2 - 1`` are the first
        frames, row ``(k-1)/2`` every interior frame, the rest the last frames. Time-major
        so that zennit's ``MergeBatchNorm``, which combines the bias with
        per-output-channel vectors by broadcasting, merges ``bn1`` into it unchanged;
        elementwise rule modifications (b+ of z+) commute with the expansion.
    """

    def __init__(self, conv: nn.Conv1d, scale: torch.Tensor, shift: torch.Tensor):
        k = conv.kernel_size[0]
        padding = conv.padding if isinstance(conv.padding, str) else conv.padding[0]
        if (
            conv.stride != (1,) or conv.dilation != (1,) or conv.groups != 1 or k % 2 != 1
            or padding not in ("same", (k - 1) // 2) or conv.padding_mode != "zeros"
        ):  # fmt: skip
            raise ValueError("the fold needs a stride-1, odd-kernel, zero 'same' Conv1d")
        w = conv.weight.detach()
        super().__init__(
            conv.in_channels, conv.out_channels, k, padding="same", bias=True,
            device=w.device, dtype=w.dtype,
        )  # fmt: skip
        scale = scale.detach().to(w)
        shift = shift.detach().to(w)
        with torch.no_grad():
            self.weight.copy_(w * scale[None, :, None])
            # The constant map `shift` through the original conv over k frames gives
            # exactly the (k-1)/2 left-border values, one interior value and the
            # (k-1)/2 right-border values (the borders do not overlap for T >= k-1).
            ones = shift[None, :, None].expand(1, -1, k)
            b = conv.bias.detach() if conv.bias is not None else None
            compact = F.conv1d(ones, w, b, padding="same")[0].T.contiguous()
        self.bias = nn.Parameter(compact)

    def bias_map(self, frames: int) -> torch.Tensor:
        """Return the full (out, frames) bias for an input of ``frames`` frames."""
        k = self.kernel_size[0]
        left = (k - 1) // 2
        if frames < k - 1:
            raise ValueError(f"the fold needs at least {k - 1} frames, got {frames}")
        b = self.bias
        full = torch.cat([b[:left], b[left : left + 1].expand(frames - (k - 1), -1), b[left + 1 :]])
        return full.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.conv1d(x, self.weight, None, 1, "same") + self.bias_map(x.shape[-1])[None]


class InputNormFold(Canonizer):
    """zennit canonizer: fold a model's input batch norm into its first convolution.

    Replaces (temporarily, until :meth:`remove`) the batch norm by ``nn.Identity``
    and the convolution by a :class:`FoldedConv1d` reading the un-normalised input,
    with the norm's eval-mode affine map (running statistics). Apply it before
    ``SequentialMergeBatchNorm`` so that the first conv's own batch norm merges into
    the folded layer.

    Parameters
    ----------
    norm, conv : str, optional
        Attribute names on the root module; default the first two entries of the
        root's ``FORWARD`` declaration (``input_norm``, ``conv1`` for
        :class:`~pmt_core.model.network.PMTConvNet`).
    """

    def __init__(self, norm: str | None = None, conv: str | None = None):
        super().__init__()
        self.norm_name, self.conv_name = norm, conv
        self.root = self.norm = self.conv = None

    def names(self, root: nn.Module) -> tuple[str, str] | None:
        """(norm, conv) attribute names on ``root``, or None where there is nothing to fold."""
        norm, conv = self.norm_name, self.conv_name
        forward = getattr(root, "FORWARD", None)
        if (norm is None or conv is None) and forward is not None and len(forward) >= 2:
            norm, conv = norm or forward[0], conv or forward[1]
        if norm is None or conv is None:
            return None
        if not isinstance(getattr(root, norm, None), nn.modules.batchnorm._BatchNorm):
            return None
        if not isinstance(getattr(root, conv, None), nn.Conv1d):
            return None
        return norm, conv

    def apply(self, root_module: nn.Module) -> list[InputNormFold]:
        """Fold on ``root_module``; return ``[instance]``, or ``[]`` where nothing fits."""
        names = self.names(root_module)
        if names is None:
            return []
        instance = self.copy()
        instance.register(root_module, *names)
        return [instance]

    def register(self, root: nn.Module, norm: str, conv: str) -> None:  # noqa: D102
        bn, cv = getattr(root, norm), getattr(root, conv)
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError("the fold needs a batch norm with running statistics")
        scale = torch.rsqrt(bn.running_var.detach() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach()
        shift = -bn.running_mean.detach() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach()
        self.root, self.norm_name, self.conv_name, self.norm, self.conv = root, norm, conv, bn, cv
        setattr(root, conv, FoldedConv1d(cv, scale, shift))
        setattr(root, norm, nn.Identity())

    def remove(self) -> None:  # noqa: D102
        if self.root is not None:
            setattr(self.root, self.norm_name, self.norm)
            setattr(self.root, self.conv_name, self.conv)
            self.root = None

    def copy(self) -> InputNormFold:  # noqa: D102
        return self.__class__(self.norm_name, self.conv_name)


def canonizers(input_norm: str) -> list[Canonizer]:
    """Fresh canonizers of every pass: the input-norm fold (``"fold"``), then the merge."""
    if input_norm not in INPUT_NORM_MODES:
        raise ValueError(f"input_norm must be one of {INPUT_NORM_MODES}, got {input_norm!r}")
    # The fold first: bn1 must then merge into the folded conv1.
    fold = [InputNormFold()] if input_norm == "fold" else []
    return fold + [SequentialMergeBatchNorm()]


# --- the composite registry ----------------------------------------------------------


@dataclass(frozen=True)
class CompositeSpec:
    """A registered LRP composite (per-layer rules plus canonizers) and what it stands for.

    Attributes
    ----------
    name : str
        Registry key.
    label : str
        Short display label (figure panels, tables).
    reading : str
        One of :data:`READINGS`: ``"paper text"``, ``"authors' code"`` or ``"variant"``.
    first_layer_rule, conv_rule, dense_rule : str
        Rule (one of :data:`LAYER_RULES`) on the first layer (``conv1``), on the other
        convolutions and on the Linear layers. Average pools always get an epsilon
        stabiliser (``stabilizer``), activations and batch norms ``Pass``. Read by
        :func:`conservation` and the independent reference
        (:mod:`pmt_core.explain.lrp_reference`), so a factory that does something
        else is caught there.
    provenance : str
        Where this reading comes from.
    factory : callable
        ``factory(*, canonizers, **params) -> zennit.core.Composite``.
    defaults : Mapping[str, object]
        The factory's parameters and their default values.
    """

    name: str
    label: str
    reading: str
    first_layer_rule: str
    conv_rule: str
    dense_rule: str
    provenance: str
    factory: Callable[..., Composite]
    defaults: Mapping[str, object]

    def parameters(self, **params) -> dict:
        """Return the defaults updated with ``params``; unknown names raise TypeError."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(
                f"composite {self.name!r} takes {sorted(self.defaults)}, not {sorted(unknown)}"
            )
        return {**self.defaults, **params}

    def rule_parameters(
        self, model: nn.Module | None = None, input_norm: str = "fold", **params
    ) -> dict:
        """Return the parameters the factory gets for ``model`` under ``input_norm``.

        The same as :meth:`parameters`, except for a z-box first layer: its bounds
        ``low``/``high`` (floats, stated on the compressed features x) become float64
        tensors, and under ``input_norm="pass"``, where conv1 reads x0 = s x + t,
        they are mapped through the model's input norm per path,
        [t + min(s low, s high), t + max(s low, s high)].

        Raises
        ------
        ValueError
            For a z-box composite under ``"pass"`` without a model.
        """
        resolved = self.parameters(**params)
        if self.first_layer_rule != "zbox":
            return resolved
        # As float64 tensors: zennit's ZBox turns a Python float into a float32 tensor
        # before casting it to the input's dtype, which rounds log1p(1e4) by ~1e-8 even in
        # a float64 pass.
        low, high = (
            torch.as_tensor(float(resolved[k]), dtype=torch.float64) for k in ("low", "high")
        )
        if input_norm == "pass":
            if model is None:
                raise ValueError(
                    f"{self.name} under input_norm='pass' needs the model: its "
                    "box is mapped through the model's input batch norm"
                )
            s, t = (v.detach().to(torch.float64) for v in _input_affine(model))
            a, b = s.cpu() * low + t.cpu(), s.cpu() * high + t.cpu()
            low, high = torch.minimum(a, b)[None, :, None], torch.maximum(a, b)[None, :, None]
        if model is not None:
            device = _model_device_dtype(model)[0]
            low, high = low.to(device), high.to(device)
        resolved["low"], resolved["high"] = low, high
        return resolved

    def composite(
        self, *, input_norm: str = "fold", model: nn.Module | None = None, **params
    ) -> Composite:
        """Return a fresh zennit composite with its canonizers (one per registration).

        Parameters
        ----------
        input_norm : {"fold", "pass"}
            Fold the input batch norm into conv1 (default) or leave it to ``Pass``.
            :func:`explain` checks that the fold happened; on a model without a
            foldable first layer (no ``FORWARD`` declaration) the fold does nothing.
        model : torch.nn.Module, optional
            The model it will explain; needed only to map a z-box under ``"pass"``
            (:meth:`rule_parameters`).
        **params
            The factory's parameters (:attr:`defaults`), e.g. ``epsilon=1e-2``.
        """
        rule_params = self.rule_parameters(model, input_norm, **params)
        return self.factory(canonizers=canonizers(input_norm), **rule_params)


#: Registry of composites, filled by :func:`register_composite`.
COMPOSITES: dict[str, CompositeSpec] = {}
#: Former name of :data:`COMPOSITES`, kept for its callers.
RULES = COMPOSITES


def register_composite(
    name: str,
    *,
    label: str,
    reading: str,
    first_layer_rule: str,
    conv_rule: str,
    dense_rule: str,
    provenance: str,
    defaults: Mapping[str, object],
):
    """Register a composite factory in :data:`COMPOSITES` (like zennit's ``register_composite``).

    Parameters
    ----------
    name : str
        Registry key; must be new.
    label, reading, first_layer_rule, conv_rule, dense_rule, provenance, defaults
        See :class:`CompositeSpec`.

    Returns
    -------
    callable
        A decorator that registers the factory and returns it unchanged.
    """
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    for rule in (first_layer_rule, conv_rule, dense_rule):
        if rule not in LAYER_RULES:
            raise ValueError(f"unknown layer rule {rule!r}; known: {LAYER_RULES}")
    if dense_rule == "zbox" or conv_rule == "zbox":
        raise ValueError("the z-box rule needs the input box: first layer only")

    def wrapped(factory: Callable[..., Composite]) -> Callable[..., Composite]:
        if name in COMPOSITES:
            raise ValueError(f"composite {name!r} is already registered")
        COMPOSITES[name] = CompositeSpec(
            name, label, reading, first_layer_rule, conv_rule, dense_rule, provenance,
            factory, MappingProxyType(dict(defaults)),
        )  # fmt: skip
        return factory

    return wrapped


def _rule(rule: str, *, epsilon, stabilizer, low=None, high=None):
    if rule == "epsilon":
        return Epsilon(epsilon=epsilon)
    if rule == "zplus":
        return ZPlus(stabilizer=stabilizer)
    if rule == "zbox":
        return ZBox(low=low, high=high, stabilizer=stabilizer)
    raise ValueError(f"unknown layer rule {rule!r}")


def _layer_map_composite(first: str, conv: str, dense: str, *, canonizers, **params) -> Composite:
    """Build a zennit (special-first-)layer-map composite from the three declared rules."""
    layer_map = [
        # Pass on activations and batch norms (merged ones are identities; the input
        # norm is folded away or gets Pass, module docstring); epsilon on the pools.
        (Activation, Pass()),
        (BatchNorm, Pass()),
        (AvgPool, Epsilon(epsilon=params["stabilizer"])),
        (Convolution, _rule(conv, **params)),
        (nn.Linear, _rule(dense, **params)),
    ]
    if first == conv:
        return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)
    # zennit gives first_map to the first matching module in assignment order;
    # explain() checks that this is the first convolution of the forward pass.
    return SpecialFirstLayerMapComposite(
        layer_map=layer_map, first_map=[(Convolution, _rule(first, **params))],
        canonizers=canonizers,
    )  # fmt: skip


_EPS_DEFAULTS = {"epsilon": EPSILON, "stabilizer": POOL_STABILIZER}


@register_composite(
    "epsilon",
    label="LRP-ε",
    reading="authors' code",
    first_layer_rule="epsilon",
    conv_rule="epsilon",
    dense_rule="epsilon",
    defaults=_EPS_DEFAULTS,
    provenance=(
        "authors' code 'LRP-eps' (changhongw/examod, zennit 0.5): LayerMapComposite with "
        "Epsilon(1e-6) on Convolution, Linear and AvgPool, Pass on activations and batch "
        "norms, SequentialMergeBatchNorm; paper: LRP-epsilon (Bach et al. 2015)"
    ),
)
def _epsilon(*, canonizers, epsilon, stabilizer) -> Composite:
    return _layer_map_composite(
        "epsilon", "epsilon", "epsilon", canonizers=canonizers, epsilon=epsilon,
        stabilizer=stabilizer,
    )  # fmt: skip


@register_composite(
    "epsilon_zplus",
    label="LRP-[ε, z+] text (ε conv, z+ dense)",
    reading="paper text",
    first_layer_rule="epsilon",
    conv_rule="epsilon",
    dense_rule="zplus",
    defaults={"epsilon": EPSILON, "stabilizer": ZPLUS_STABILIZER},
    provenance=(
        "paper's TEXT for LRP-[eps, z+]: epsilon on convolutions, z+ on the dense layers "
        "(Montavon et al. 2017, 2019); not what the authors' code runs"
    ),
)
def _epsilon_zplus(*, canonizers, epsilon, stabilizer) -> Composite:
    return _layer_map_composite(
        "epsilon", "epsilon", "zplus", canonizers=canonizers, epsilon=epsilon,
        stabilizer=stabilizer,
    )  # fmt: skip


@register_composite(
    "zplus_epsilon",
    label="LRP-[ε, z+] code (z+ conv, ε dense)",
    reading="authors' code",
    first_layer_rule="zplus",
    conv_rule="zplus",
    dense_rule="epsilon",
    defaults={"epsilon": EPSILON, "stabilizer": ZPLUS_STABILIZER},
    provenance=(
        "authors' CODE for LRP-[eps, z+]: zennit's EpsilonPlus (zennit 0.5), z+ on "
        "convolutions, epsilon on Linear, Norm(1e-6) on AvgPool, SequentialMergeBatchNorm"
    ),
)
def _zplus_epsilon(*, canonizers, epsilon, stabilizer) -> Composite:
    # zennit's own composite, unchanged: this is the authors' configuration (it
    # prepends zennit's layer_map_base: Pass, Norm(stabilizer) on AvgPool).
    return EpsilonPlus(epsilon=epsilon, stabilizer=stabilizer, canonizers=canonizers)


@register_composite(
    "zbox_zplus_epsilon",
    label="LRP-[ε, z+] code, zB first layer",
    reading="variant",
    first_layer_rule="zbox",
    conv_rule="zplus",
    dense_rule="epsilon",
    defaults={
        "epsilon": EPSILON,
        "stabilizer": ZPLUS_STABILIZER,
        "low": ZBOX_LOW,
        "high": ZBOX_HIGH,
    },  # fmt: skip
    provenance=(
        "variant of the authors' EpsilonPlus: DTD's z-box rule (Montavon et al. 2017; zennit "
        "ZBox, box [0, log1p(1e4)] on the compressed features) on conv1, whose input is "
        "bounded and >= 0 once the input norm is folded; z+ on conv2-3, epsilon on Linear"
    ),
)
def _zbox_zplus_epsilon(*, canonizers, epsilon, stabilizer, low, high) -> Composite:
    return _layer_map_composite(
        "zbox", "zplus", "epsilon", canonizers=canonizers, epsilon=epsilon,
        stabilizer=stabilizer, low=low, high=high,
    )  # fmt: skip


def _spec(composite) -> CompositeSpec:
    if isinstance(composite, CompositeSpec):
        return composite
    if composite not in COMPOSITES:
        raise KeyError(f"unknown composite {composite!r}; registered: {sorted(COMPOSITES)}")
    return COMPOSITES[composite]


# --- explanations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """Input relevance of a batch of examples, with what it explains.

    Attributes
    ----------
    relevance : numpy.ndarray
        (n, paths, frames): relevance of each cell of the compressed features x
        (``input_norm="fold"``) or of the normalised input x0 (``"pass"``), in the
        dtype of the pass.
    logits : numpy.ndarray
        (n, classes): logits of the original (un-canonized) model, eval mode.
    target : numpy.ndarray
        (n,) int: explained class per example.
    composite : str
        Key in :data:`COMPOSITES`.
    top : str
        One of :data:`TOPS`.
    n_merged_batchnorms : int
        Batch norms the canonizer merged.
    n_conv_bn_pairs : int
        Conv+BN pairs in forward order (they must be equal).
    top_relevance : numpy.ndarray
        (n,): relevance injected at the explained output: the canonized network's
        logit (``"logit"``), its absolute value (``"abs_logit"``) or 1 (``"onehot"``).
    input_norm : str
        ``"fold"`` or ``"pass"`` (module docstring).
    params : Mapping
        The composite's parameters as used (defaults filled in).
    """

    relevance: np.ndarray
    logits: np.ndarray
    target: np.ndarray
    composite: str
    top: str
    n_merged_batchnorms: int
    n_conv_bn_pairs: int
    top_relevance: np.ndarray
    input_norm: str = "fold"
    params: Mapping = field(default_factory=dict, compare=False)

    @property
    def rule(self) -> str:
        """Former name of :attr:`composite`."""
        return self.composite

    @property
    def input_share(self) -> np.ndarray:
        """(n,) share of the top relevance reaching the input: sum R_input / R_top."""
        return self.relevance.reshape(len(self.relevance), -1).sum(1) / self.top_relevance

    def take(self, indices) -> Explanation:
        """Return the explanation of a subset of the examples (same composite and settings)."""
        idx = np.asarray(indices)
        return Explanation(
            relevance=self.relevance[idx], logits=self.logits[idx], target=self.target[idx],
            composite=self.composite, top=self.top,
            n_merged_batchnorms=self.n_merged_batchnorms, n_conv_bn_pairs=self.n_conv_bn_pairs,
            top_relevance=self.top_relevance[idx], input_norm=self.input_norm,
            params=self.params,
        )  # fmt: skip


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _trace_leaves(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Leaf modules in execution order of one no-grad forward pass (hooks removed after)."""
    order: list[nn.Module] = []
    handles = [
        leaf.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for leaf in model.modules()
        if next(leaf.children(), None) is None
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return order


def _conv_bn_pairs(order: Sequence[nn.Module]) -> list[tuple[nn.Module, nn.Module]]:
    return [
        (a, b)
        for a, b in zip(order[:-1], order[1:], strict=True)
        if isinstance(a, (Convolution, nn.Linear)) and isinstance(b, BatchNorm)
    ]


def _probe_input(model: nn.Module, frames: int = 32) -> torch.Tensor:
    device, dtype = _model_device_dtype(model)
    return torch.zeros(1, model.n_paths, frames, device=device, dtype=dtype)


def count_conv_bn_pairs(model: nn.Module, frames: int = 32) -> int:
    """Count conv (or Linear) layers followed directly by a batch norm in forward order.

    The order is traced from an actual forward pass on a copy of ``model`` (eval
    mode, zero input), so it does not depend on the order of assignment that
    zennit's canonizer relies on. 3 for :class:`~pmt_core.model.network.PMTConvNet`.

    Parameters
    ----------
    model : torch.nn.Module
        A network with an ``n_paths`` attribute (input examples x paths x frames).
    frames : int
        Length of the probe input.

    Returns
    -------
    int
    """
    probe = copy.deepcopy(model).eval()
    return len(_conv_bn_pairs(_trace_leaves(probe, _probe_input(probe, frames))))


def _prepare(model: nn.Module, dtype, device) -> tuple[nn.Module, torch.device, torch.dtype]:
    """Deep copy in eval mode on the requested device and dtype (the original stays put)."""
    m_device, m_dtype = _model_device_dtype(model)
    device = torch.device(device) if device is not None else m_device
    dtype = dtype if dtype is not None else m_dtype
    work = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work, device, dtype


def _as_tensor(features, device, dtype) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(features)) if not torch.is_tensor(features) else features
    x = x.detach().to(device=device, dtype=dtype)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(
            f"features must be examples x paths x frames with at least one example, got "
            f"shape {tuple(x.shape)}"
        )
    return x


def _register_checked(
    composite: Composite, model: nn.Module, probe: torch.Tensor
) -> tuple[int, int]:
    """Register ``composite`` on ``model``; return (merged, pairs) or raise CanonizerError."""
    folds = [c for c in composite.canonizers if isinstance(c, InputNormFold)]
    if folds:
        # The fold is exact only if conv1 reads the input norm's output directly.
        names = folds[0].names(model)
        before = _trace_leaves(model, probe)
        if names is None or before[:2] != [getattr(model, n) for n in names]:
            raise CanonizerError(
                "input_norm='fold' needs a model whose first two layers in forward order "
                "are a batch norm and the Conv1d reading it (declared in FORWARD)"
            )
    try:
        composite.register(model)
    except Exception as exc:
        composite.remove()
        # e.g. modules assigned convs-first: zennit pairs conv3 with the input batch
        # norm and fails on the shape broadcast (RuntimeError), half-way through.
        raise CanonizerError(
            "zennit's SequentialMergeBatchNorm failed while merging batch norms; the "
            "modules are probably not assigned in forward order "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        # Traced on the canonized network (no grad: zennit's hooks only record).
        order = _trace_leaves(model, probe)
        pairs = _conv_bn_pairs(order)
        merged = [h for h in composite.handles if isinstance(h, MergeBatchNorm)]
        got = {(id(h.linears[0]), id(h.batch_norm)) for h in merged}
        want = {(id(a), id(b)) for a, b in pairs}
        if got != want:
            raise CanonizerError(
                f"zennit's SequentialMergeBatchNorm merged {len(merged)} batch norm(s) but "
                f"the forward pass has {len(pairs)} conv+BN pair(s), or paired different "
                "modules: it pairs leaves in the order modules were assigned in __init__ "
                "(method.md section 3). Assign modules in forward order."
            )
        if folds and sum(isinstance(h, InputNormFold) for h in composite.handles) != 1:
            raise CanonizerError("input_norm='fold' was requested but nothing was folded")
        if isinstance(composite, SpecialFirstLayerMapComposite):
            first_assigned = next(m for m in model.modules() if isinstance(m, Convolution))
            first_run = next(m for m in order if isinstance(m, Convolution))
            if first_assigned is not first_run:
                raise CanonizerError(
                    "the first-layer rule goes to the first convolution in assignment order, "
                    "which is not the first one of the forward pass"
                )
    except Exception:
        composite.remove()
        raise
    return len(merged), len(pairs)


def _targets(target, logits: torch.Tensor) -> torch.Tensor:
    n, n_classes = logits.shape
    if target is None:
        return logits.argmax(1)
    tgt = torch.as_tensor(np.asarray(target), device=logits.device).to(torch.long).reshape(-1)
    if tgt.numel() == 1:
        tgt = tgt.expand(n)
    if tgt.numel() != n:
        raise ValueError(f"target has {tgt.numel()} entries for {n} examples")
    if tgt.min() < 0 or tgt.max() >= n_classes:
        raise ValueError(f"target classes must lie in [0, {n_classes})")
    return tgt


def _seed(out: torch.Tensor, tgt: torch.Tensor, top: str) -> torch.Tensor:
    onehot = torch.zeros_like(out).scatter_(1, tgt[:, None], 1.0)
    if top == "logit":
        return onehot * out.detach()
    if top == "abs_logit":
        return onehot * out.detach().abs()
    return onehot


def _input_affine(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) of the model's input batch norm in eval mode."""
    bn = model._modules[model.FORWARD[0]]
    scale = torch.rsqrt(bn.running_var + bn.eps) * bn.weight
    return scale, bn.bias - bn.running_mean * scale


def _warn_outside_box(spec: CompositeSpec, x: torch.Tensor, params: Mapping) -> None:
    if spec.first_layer_rule != "zbox":
        return
    low, high = float(params["low"]), float(params["high"])
    outside = (x < low) | (x > high)
    if bool(outside.any()):
        warnings.warn(
            f"{spec.name}: {float(outside.double().mean()):.2%} of the inputs lie outside the "
            f"z-box [{low:g}, {high:g}] (range {float(x.min()):.3g} to {float(x.max()):.3g}); "
            "the rule's root point is then not in the data domain (params low=/high=)",
            stacklevel=3,
        )


@dataclass
class _Pass:
    work: nn.Module
    spec: CompositeSpec
    x: torch.Tensor
    logits: torch.Tensor
    target: torch.Tensor
    params: dict
    rule_params: dict
    composite: Composite
    n_merged: int
    n_pairs: int


def _open_pass(
    model, features, composite, target, *, top, dtype, device, params, input_norm, batch_size
) -> _Pass:
    """Validate, copy, score and register a composite; the caller must remove it."""
    spec = _spec(composite)
    if top not in TOPS:
        raise ValueError(f"top must be one of {TOPS}, got {top!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if input_norm not in INPUT_NORM_MODES:
        raise ValueError(f"input_norm must be one of {INPUT_NORM_MODES}, got {input_norm!r}")
    params = dict(params or {})
    work, device, dtype = _prepare(model, dtype, device)
    x_all = _as_tensor(features, device, dtype)
    n = x_all.shape[0]
    with torch.no_grad():
        logits = torch.cat([work(x_all[i : i + batch_size]) for i in range(0, n, batch_size)])
    tgt = _targets(target, logits)
    resolved = spec.parameters(**params)
    rule_params = spec.rule_parameters(work, input_norm, **params)
    _warn_outside_box(spec, x_all, resolved)  # the box is stated on x in both modes
    comp = spec.factory(canonizers=canonizers(input_norm), **rule_params)
    n_merged, n_pairs = _register_checked(comp, work, _probe_input(work, x_all.shape[-1]))
    return _Pass(work, spec, x_all, logits, tgt, resolved, rule_params, comp, n_merged, n_pairs)


def _resolve_name(composite, rule):
    if rule is not None:
        if composite is not None:
            raise TypeError("pass the composite once (rule= is the former name of composite=)")
        composite = rule
    if composite is None:
        raise TypeError("explain() needs a composite (a key of COMPOSITES)")
    return composite


def explain(
    model: nn.Module,
    features,
    composite: str | CompositeSpec | None = None,
    target=None,
    *,
    top: str = "logit",
    dtype: torch.dtype | None = None,
    batch_size: int = 64,
    device=None,
    params: Mapping | None = None,
    input_norm: str = "fold",
    rule: str | None = None,
) -> Explanation:
    """Explain predictions of ``model`` with LRP (zennit) over the input paths x frames.

    Parameters
    ----------
    model : PMTConvNet
        The network. It is never modified: the pass runs on a deep copy in eval
        mode (dropout off), canonized (input norm folded, batch norms merged).
    features : torch.Tensor or numpy.ndarray
        (n, paths, frames) compressed features, as fed to the model.
    composite : str or CompositeSpec
        Key in :data:`COMPOSITES` (or a spec, e.g. for tests). Third positional
        argument, formerly called ``rule`` (still accepted as a keyword).
    target : None, int or array-like of int
        Class to explain: ``None`` for the predicted class (argmax of the original
        model's logits), an int for every example, or one index per example.
    top : {"logit", "abs_logit", "onehot"}
        Top relevance: the explained logit of the canonized network (paper,
        R_M = f(Sx)), its absolute value, or 1 at the explained class (authors'
        code). The maps differ by a per-example factor, but ``"logit"`` flips the
        sign of a map whose winning logit is negative, which reverses argmax,
        top-n and deletion orders: use ``"onehot"`` or ``"abs_logit"`` for ranks.
    dtype : torch.dtype, optional
        Dtype of the pass (``torch.float64`` for reference checks); default the
        model's.
    batch_size : int
        Examples per pass.
    device : str or torch.device, optional
        Default: the model's device.
    params : Mapping, optional
        The composite's parameters (:attr:`CompositeSpec.defaults`), e.g.
        ``{"epsilon": 1e-2}``.
    input_norm : {"fold", "pass"}
        Fold the input batch norm into conv1, so that relevance is on the
        compressed features (default; a departure from the authors' code), or give
        it ``Pass`` (authors' code: relevance of the normalised input).
    rule : str, optional
        Former name of ``composite``.

    Returns
    -------
    Explanation

    Raises
    ------
    CanonizerError
        If the canonizers did not produce the network the composite assumes.

    Warns
    -----
    UserWarning
        For a z-box composite, when inputs lie outside its box.

    Notes
    -----
    LRP after Bach et al. (2015) and Montavon et al. (2017, 2019); input relevance
    is defined on the compressed features (module docstring).
    """
    composite = _resolve_name(composite, rule)
    run = _open_pass(
        model,
        features,
        composite,
        target,
        top=top,
        dtype=dtype,
        device=device,
        params=params,
        input_norm=input_norm,
        batch_size=batch_size,
    )
    rel_parts, top_parts = [], []
    try:
        for i in range(0, len(run.x), batch_size):
            x = run.x[i : i + batch_size].clone().requires_grad_(True)
            with torch.enable_grad():
                out = run.work(x)
                seed = _seed(out, run.target[i : i + batch_size], top)
                (rel,) = torch.autograd.grad(out, x, grad_outputs=seed)
            rel_parts.append(rel.detach())
            top_parts.append(seed.sum(1))
    finally:
        run.composite.remove()
    return Explanation(
        relevance=torch.cat(rel_parts).cpu().numpy(),
        logits=run.logits.cpu().numpy(),
        target=run.target.cpu().numpy().astype(np.int64),
        composite=run.spec.name,
        top=top,
        n_merged_batchnorms=run.n_merged,
        n_conv_bn_pairs=run.n_pairs,
        top_relevance=torch.cat(top_parts).cpu().numpy(),
        input_norm=input_norm,
        params=dict(run.params),
    )


# --- conservation on zennit's own relevances -------------------------------------------


@dataclass(frozen=True)
class LayerBudget:
    """Relevance budget of one layer of zennit's backward pass, per example (arrays (n,)).

    Attributes
    ----------
    name : str
        Module name (``input_norm`` is the identity left by the fold).
    rule : str
        What the layer's budget assumes: a :data:`LAYER_RULES` entry, ``"pool"``
        (epsilon with the ``stabilizer``), ``"pass"`` (zennit ``Pass``) or
        ``"identity"`` (no hook: flatten, eval dropout, the folded input norm).
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
    The denominators are recomputed here with the layer's own (canonized) parameters,
    independently of the hooks that produced ``r``.
    """
    zero = torch.zeros(len(r), dtype=r.dtype, device=r.device)
    if role in ("pass", "identity"):
        return zero, zero, zero
    if role == "pool":
        eps = p["stabilizer"]
        den = z + eps * _sign(z)
        st = r * eps * _sign(z) / den
        return zero, _sum(st), _sum(st.abs())
    weights = dict(module.named_parameters(recurse=False))

    def call(mod_params, inp):
        return functional_call(module, {**weights, **mod_params}, (inp,))

    def clamp(lo=None, hi=None, zero_bias=False):
        return {
            k: (torch.zeros_like(v) if zero_bias and k == "bias" else v.clamp(min=lo, max=hi))
            for k, v in weights.items()
        }

    if role == "epsilon":
        eps = p["epsilon"]
        bias = call({}, torch.zeros_like(a))
        d = z
    elif role == "zplus":
        eps = p["stabilizer"]
        pos, neg = clamp(lo=0.0), clamp(hi=0.0, zero_bias=True)
        d = call(pos, a.clamp(min=0)) + call(neg, a.clamp(max=0))
        bias = call(pos, torch.zeros_like(a))
    elif role == "zbox":
        eps = p["stabilizer"]
        low = torch.as_tensor(p["low"], dtype=a.dtype, device=a.device).expand_as(a)
        high = torch.as_tensor(p["high"], dtype=a.dtype, device=a.device).expand_as(a)
        pos, neg = clamp(lo=0.0), clamp(hi=0.0)
        d = z - call(pos, low) - call(neg, high)
        zeros = torch.zeros_like(a)
        bias = call({}, zeros) - call(pos, zeros) - call(neg, zeros)
    else:
        raise ValueError(f"no budget for rule {role!r}")
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
    pass as :func:`explain`, captures that gradient at every layer output with
    tensor hooks (and at the input), and sets each layer's captured R_in and R_out
    against the relevance its declared rule absorbs, computed analytically from
    the forward activations and the canonized parameters (:class:`LayerBudget`):
    bias shares sum_j R_j b_j / (z_j + eps sign z_j) (b+ over the z+ denominator
    for z+), stabiliser shares, merged batch norms as conv biases, the fold's
    border-aware bias. A backward pass that scales relevance, uses other
    activations or another rule than the declared one leaves a residual
    R_in + absorbed - R_out far above rounding.

    Parameters
    ----------
    model, features, composite, target, top, params, input_norm, batch_size, device
        As in :func:`explain`.
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
    run = _open_pass(
        model,
        features,
        composite,
        target,
        top=top,
        dtype=dtype,
        device=device,
        params=params,
        input_norm=input_norm,
        batch_size=batch_size,
    )
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
                x = run.x[i : i + batch_size].clone().requires_grad_(True)
                with torch.enable_grad():
                    out = run.work(x)
                    seed = _seed(out, run.target[i : i + batch_size], top)
                    (rel,) = torch.autograd.grad(out, x, grad_outputs=seed)
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
    e.g. :data:`VANISHING_EPSILON`) must conserve exactly: sum R_input = R_top to
    float64 rounding (Bach et al. 2015; Montavon et al. 2019 on what biases absorb).

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


# --- logit shifts of the canonizers ------------------------------------------------------


def _canonized_shift(model, features, canonizers, dtype, relative) -> float:
    work, device, dtype = _prepare(model, dtype, None)
    x = _as_tensor(features, device, dtype)
    with torch.no_grad():
        before = work(x)
        handles = [h for c in canonizers for h in c.apply(work)]
        try:
            after = work(x)
        finally:
            for h in reversed(handles):
                h.remove()
    shift = float((before - after).abs().max())
    return shift / float(before.abs().max()) if relative else shift


def merged_logit_shift(
    model: nn.Module,
    features,
    *,
    dtype: torch.dtype | None = None,
    relative: bool = False,
    input_norm: str = "fold",
) -> float:
    """Max abs difference between the logits of ``model`` and of its canonized copy.

    zennit's ``MergeBatchNorm`` folds each batch norm into its convolution and
    resets the batch norm to mean 0, variance 1, weight 1, bias 0, but keeps its
    ``eps`` (1e-5): the reset norm then scales by 1/sqrt(1 + eps), so logits move
    slightly (method.md section 3). The input-norm fold (``input_norm="fold"``, as
    in :func:`explain`) is exact and adds only rounding (:func:`fold_logit_shift`).

    Parameters
    ----------
    model : torch.nn.Module
        Network (left untouched: a deep copy is canonized).
    features : torch.Tensor or numpy.ndarray
        (n, paths, frames) inputs.
    dtype : torch.dtype, optional
        Dtype of the comparison; default the model's.
    relative : bool
        Divide by the largest absolute original logit (the logit scale).
    input_norm : {"fold", "pass"}
        Canonize as :func:`explain` does with this option.

    Returns
    -------
    float
    """
    return _canonized_shift(model, features, canonizers(input_norm), dtype, relative)


def fold_logit_shift(
    model: nn.Module, features, *, dtype: torch.dtype | None = None, relative: bool = False
) -> float:
    """Max abs logit difference made by the input-norm fold alone (:class:`InputNormFold`).

    The fold is exact algebra, border frames included, so this is rounding: about
    1e-7 of the logit scale in float32, 1e-15 in float64.

    Parameters
    ----------
    model, features, dtype, relative
        As in :func:`merged_logit_shift`.

    Returns
    -------
    float
    """
    return _canonized_shift(model, features, [InputNormFold()], dtype, relative)
