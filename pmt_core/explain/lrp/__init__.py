"""Layer-wise relevance propagation for :class:`~pmt_core.model.network.PMTConvNet` (zennit).

Composites
----------
zennit calls a set of per-layer rules plus its canonizers a *composite*; so does
this package. :data:`COMPOSITES` holds one :class:`CompositeSpec` per reading of the
method (method.md section 3). In this package "rule" only ever means a per-layer
zennit rule (``Epsilon``, ``ZPlus``, ``ZBox``; one :class:`LayerRule` each); a
composite assigns one to the first layer (``conv1``), one to the other convolutions
and one to the Linear layers, always with ``Pass`` on activations and batch norms
and an epsilon-type stabiliser on the average pools (zennit's ``layer_map_base``).

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
than usual" (audit M8). **This package departs from the authors' code** and by
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

Layout
------
:mod:`~pmt_core.explain.lrp.rules`
    The per-layer rules, one :class:`LayerRule` each (its zennit rule, the relevance
    it absorbs for the conservation account, its defaults, its input domain); the
    constants.
:mod:`~pmt_core.explain.lrp.composites`
    :class:`CompositeSpec`, :data:`COMPOSITES` and the registered readings.
:mod:`~pmt_core.explain.lrp.canonize`
    The input-norm fold, the batch-norm merge and its checks, the logit shifts.
:mod:`~pmt_core.explain.lrp.attribution`
    :func:`explain` and :class:`Explanation`.
:mod:`~pmt_core.explain.lrp.conservation`
    :func:`conservation`, :class:`LayerBudget`, :class:`Conservation`,
    :func:`bias_free_copy`.

The independent float64 oracle is :mod:`pmt_core.explain.lrp_reference`, the Captum
comparison :mod:`pmt_core.explain.lrp_captum`. Everything public is importable from
this package, as it was from the former single module.
"""

from pmt_core.explain.lrp.attribution import TOPS, Explanation, explain
from pmt_core.explain.lrp.canonize import (
    INPUT_NORM_MODES,
    CanonizerError,
    FoldedConv1d,
    InputNormFold,
    canonizers,
    count_conv_bn_pairs,
    fold_logit_shift,
    merged_logit_shift,
)
from pmt_core.explain.lrp.composites import (
    COMPOSITES,
    READINGS,
    RULES,
    CompositeSpec,
    composite_defaults,
    register_composite,
)
from pmt_core.explain.lrp.conservation import (
    Conservation,
    LayerBudget,
    bias_free_copy,
    conservation,
)
from pmt_core.explain.lrp.rules import (
    EPSILON,
    LAYER_RULE_SPECS,
    LAYER_RULES,
    POOL_STABILIZER,
    VANISHING_EPSILON,
    ZBOX_HIGH,
    ZBOX_LOW,
    ZPLUS_STABILIZER,
    LayerRule,
    layer_rule,
)

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
    "LAYER_RULE_SPECS",
    "LayerBudget",
    "LayerRule",
    "POOL_STABILIZER",
    "READINGS",
    "RULES",
    "TOPS",
    "VANISHING_EPSILON",
    "ZBOX_HIGH",
    "ZBOX_LOW",
    "ZPLUS_STABILIZER",
    "bias_free_copy",
    "canonizers",
    "composite_defaults",
    "conservation",
    "count_conv_bn_pairs",
    "explain",
    "fold_logit_shift",
    "layer_rule",
    "merged_logit_shift",
    "register_composite",
]
