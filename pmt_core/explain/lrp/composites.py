"""The composite registry: :class:`CompositeSpec`, :data:`COMPOSITES`, :func:`register_composite`.

zennit calls a set of per-layer rules plus its canonizers a *composite*; so does this
package. A composite assigns one :class:`~pmt_core.explain.lrp.rules.LayerRule` to the
first layer (``conv1``), one to the other convolutions and one to the Linear layers,
always with ``Pass`` on activations and batch norms and an epsilon-type stabiliser on
the average pools (zennit's ``layer_map_base``); its canonizers are those of
:func:`~pmt_core.explain.lrp.canonize.canonizers`. The readings registered here are
described in the package docstring (:mod:`pmt_core.explain.lrp`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from torch import nn
from zennit.composites import EpsilonPlus, LayerMapComposite, SpecialFirstLayerMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon, Pass
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

from pmt_core.explain.lrp.canonize import canonizers
from pmt_core.explain.lrp.rules import (
    EPSILON,
    LAYER_RULE_SPECS,
    LAYER_RULES,
    POOL_STABILIZER,
    layer_rule,
)

__all__ = [
    "COMPOSITES",
    "CompositeSpec",
    "READINGS",
    "RULES",
    "composite_defaults",
    "register_composite",
]

#: Where a composite's reading comes from.
READINGS = ("paper text", "authors' code", "variant")


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
        Rule (one of :data:`~pmt_core.explain.lrp.rules.LAYER_RULES`) on the first
        layer (``conv1``), on the other convolutions and on the Linear layers. Average
        pools always get an epsilon stabiliser (``stabilizer``), activations and batch
        norms ``Pass``. Read by :func:`~pmt_core.explain.lrp.conservation` and the
        independent reference (:mod:`pmt_core.explain.lrp_reference`), so a factory
        that does something else is caught there.
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

        The same as :meth:`parameters`, except where the first-layer rule binds its
        parameters to the input (:attr:`~pmt_core.explain.lrp.rules.LayerRule.bind_input`):
        for a z-box first layer, its bounds ``low``/``high`` (floats, stated on the
        compressed features x) become float64 tensors, and under
        ``input_norm="pass"``, where conv1 reads x0 = s x + t, they are mapped through
        the model's input norm per path,
        [t + min(s low, s high), t + max(s low, s high)].

        Raises
        ------
        ValueError
            For a z-box composite under ``"pass"`` without a model.
        """
        resolved = self.parameters(**params)
        first = LAYER_RULE_SPECS.get(self.first_layer_rule)
        if first is None or first.bind_input is None:
            return resolved
        return first.bind_input(resolved, model, input_norm, self.name)

    def composite(
        self, *, input_norm: str = "fold", model: nn.Module | None = None, **params
    ) -> Composite:
        """Return a fresh zennit composite with its canonizers (one per registration).

        Parameters
        ----------
        input_norm : {"fold", "pass"}
            Fold the input batch norm into conv1 (default) or leave it to ``Pass``.
            :func:`~pmt_core.explain.lrp.explain` checks that the fold happened; on a
            model without a foldable first layer (no ``FORWARD`` declaration) the fold
            does nothing.
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


def composite_defaults(*rules: str) -> dict:
    """Default parameters of a composite whose layers get ``rules``.

    Every factory takes ``epsilon`` (:data:`~pmt_core.explain.lrp.rules.EPSILON`)
    and the pools' ``stabilizer`` (:data:`~pmt_core.explain.lrp.rules.POOL_STABILIZER`);
    each rule adds its own defaults (:attr:`~pmt_core.explain.lrp.rules.LayerRule.defaults`),
    in the order given.
    """
    defaults = {"epsilon": EPSILON, "stabilizer": POOL_STABILIZER}
    for name in rules:
        defaults.update(layer_rule(name).defaults)
    return defaults


def register_composite(
    name: str,
    *,
    label: str,
    reading: str,
    first_layer_rule: str,
    conv_rule: str,
    dense_rule: str,
    provenance: str,
    defaults: Mapping[str, object] | None = None,
):
    """Register a composite factory in :data:`COMPOSITES` (like zennit's ``register_composite``).

    Parameters
    ----------
    name : str
        Registry key; must be new.
    label, reading, first_layer_rule, conv_rule, dense_rule, provenance, defaults
        See :class:`CompositeSpec`. ``defaults`` left out: those of the three rules
        (:func:`composite_defaults`).

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
    for rule in (dense_rule, conv_rule):
        why = LAYER_RULE_SPECS[rule].first_layer_only
        if why is not None:
            raise ValueError(f"{why}: first layer only")
    if defaults is None:
        defaults = composite_defaults(first_layer_rule, conv_rule, dense_rule)

    def wrapped(factory: Callable[..., Composite]) -> Callable[..., Composite]:
        if name in COMPOSITES:
            raise ValueError(f"composite {name!r} is already registered")
        COMPOSITES[name] = CompositeSpec(
            name, label, reading, first_layer_rule, conv_rule, dense_rule, provenance,
            factory, MappingProxyType(dict(defaults)),
        )  # fmt: skip
        return factory

    return wrapped


def _layer_map_composite(first: str, conv: str, dense: str, *, canonizers, **params) -> Composite:
    """Build a zennit (special-first-)layer-map composite from the three declared rules."""
    layer_map = [
        # Pass on activations and batch norms (merged ones are identities; the input
        # norm is folded away or gets Pass, package docstring); epsilon on the pools.
        (Activation, Pass()),
        (BatchNorm, Pass()),
        (AvgPool, Epsilon(epsilon=params["stabilizer"])),
        (Convolution, layer_rule(conv).zennit(params)),
        (nn.Linear, layer_rule(dense).zennit(params)),
    ]
    if first == conv:
        return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)
    # zennit gives first_map to the first matching module in assignment order;
    # explain() checks that this is the first convolution of the forward pass.
    return SpecialFirstLayerMapComposite(
        layer_map=layer_map, first_map=[(Convolution, layer_rule(first).zennit(params))],
        canonizers=canonizers,
    )  # fmt: skip


# --- the registered readings (package docstring) ------------------------------------------


@register_composite(
    "epsilon",
    label="LRP-ε",
    reading="authors' code",
    first_layer_rule="epsilon",
    conv_rule="epsilon",
    dense_rule="epsilon",
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


def resolve(composite) -> CompositeSpec:
    """Return the :class:`CompositeSpec` of a key (or the spec itself); KeyError if unknown."""
    if isinstance(composite, CompositeSpec):
        return composite
    if composite not in COMPOSITES:
        raise KeyError(f"unknown composite {composite!r}; registered: {sorted(COMPOSITES)}")
    return COMPOSITES[composite]
