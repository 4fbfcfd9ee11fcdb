"""Layer-wise relevance propagation for :class:`~pmt_core.model.network.PMTConvNet` (zennit).

Three rule sets are registered in :data:`RULES` (method.md section 3):

``epsilon``
    LRP-epsilon everywhere, the authors' "LRP-eps": ``Epsilon(1e-6)`` on
    convolutions, Linear layers and average pools; ``Pass`` on activations and
    batch norms (Bach et al. 2015; Montavon et al. 2019).
``epsilon_zplus``
    The paper's TEXT for "LRP-[eps, z+]": epsilon on the convolutions, z+ on the
    dense (Linear) layers (Montavon et al. 2017).
``zplus_epsilon``
    The authors' CODE for "LRP-[eps, z+]": zennit's ``EpsilonPlus``, which puts z+
    on the convolutions and epsilon on the Linear layers -- the reverse of the text.

All three merge each convolution's batch norm into it with zennit's
``SequentialMergeBatchNorm``. That canonizer pairs leaves in the order modules were
*assigned* in ``__init__``, not in the forward graph, so :func:`explain` counts what
was merged and compares it with the conv+BN pairs seen in a traced forward pass;
any mismatch raises :class:`CanonizerError` instead of explaining a half-canonized
network.

What "input relevance" means here
---------------------------------
The input batch norm (``input_norm``) has no layer before it, so it is never merged
and gets ``Pass``: relevance crosses it unchanged. The returned relevance is
therefore the relevance of the *normalised* input, laid on the positions (path x
frame) of the compressed features ``log1p(S / (c mu + 1e-8))`` that enter the
model. It is a relevance per input cell of the compressed feature domain, not of
the raw scattering coefficients and not of the audio.

Global average over time
------------------------
``PMTConvNet.features`` averages over time with ``x.mean(-1)``, a functional call
no zennit hook can see: relevance would then follow the *gradient* of the mean,
``R / T`` to every frame, dead ReLU frames included, which is not an LRP rule. The
authors' network uses an ``AdaptiveAvgPool1d`` module, which their composites
treat like every average pool (``Epsilon(1e-6)`` / ``Norm(1e-6)``: relevance in
proportion to each frame's activation). :func:`explain` reproduces that by running
the model's own submodules through a thin view with an ``AdaptiveAvgPool1d(1)`` in
place of the mean, and checks that the view's logits equal the model's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from zennit.canonizers import MergeBatchNorm, SequentialMergeBatchNorm
from zennit.composites import EpsilonPlus, LayerMapComposite
from zennit.core import Composite
from zennit.rules import Epsilon, Pass, ZPlus
from zennit.types import Activation, AvgPool, BatchNorm, Convolution

__all__ = [
    "CanonizerError",
    "EPSILON",
    "Explanation",
    "POOL_STABILIZER",
    "RULES",
    "RuleSpec",
    "TOPS",
    "ZPLUS_STABILIZER",
    "count_conv_bn_pairs",
    "explain",
    "merged_logit_shift",
    "register_rule",
]

#: Epsilon of the LRP-epsilon rule on convolutions and Linear layers: the authors'
#: ``Epsilon(1e-6)`` and zennit 0.5's ``EpsilonPlus(epsilon=1e-6)`` default.
EPSILON = 1e-6
#: Stabiliser of the z+ denominator: zennit's ``ZPlus(stabilizer=1e-6)`` default,
#: as used by ``EpsilonPlus``.
ZPLUS_STABILIZER = 1e-6
#: Stabiliser of the average pools (and the time average): the authors'
#: ``Epsilon(1e-6)`` on AvgPool, identical to zennit's ``Norm(1e-6)`` in
#: ``EpsilonPlus`` for a layer without parameters.
POOL_STABILIZER = 1e-6
#: Accepted top-relevance conventions (see :func:`explain`).
TOPS = ("logit", "onehot")

# Tolerance of the view-versus-model logit check, relative to the logit scale: the
# view runs the same modules; only the time mean (``mean`` vs ``AdaptiveAvgPool1d``)
# may round differently.
_VIEW_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


class CanonizerError(RuntimeError):
    """The batch-norm canonizer did not merge exactly the conv+BN pairs of the net."""


@dataclass(frozen=True)
class RuleSpec:
    """A registered LRP rule set.

    Attributes
    ----------
    name : str
        Registry key.
    conv_rule, dense_rule : str
        Rule on the convolutions and on the Linear layers (``"epsilon"`` or
        ``"zplus"``); average pools always get epsilon with
        :data:`POOL_STABILIZER`, activations and batch norms ``Pass``.
    provenance : str
        Where this reading comes from (paper text or authors' code).
    make_composite : callable
        ``() -> zennit.core.Composite``, a fresh composite with its canonizer.
    """

    name: str
    conv_rule: str
    dense_rule: str
    provenance: str
    make_composite: Callable[[], Composite]

    def composite(self) -> Composite:
        """Return a fresh zennit composite (one per model registration)."""
        return self.make_composite()


#: Registry of rule sets, filled by :func:`register_rule`.
RULES: dict[str, RuleSpec] = {}


def register_rule(name: str, *, conv_rule: str, dense_rule: str, provenance: str):
    """Register a composite factory in :data:`RULES` (like zennit's ``register_composite``).

    Parameters
    ----------
    name : str
        Registry key; must be new.
    conv_rule, dense_rule : {"epsilon", "zplus"}
        Declared rule on convolutions and Linear layers (read by the tests and the
        independent reference, :mod:`pmt_core.explain.lrp_reference`).
    provenance : str
        Where the rule set comes from.
    """
    for rule in (conv_rule, dense_rule):
        if rule not in ("epsilon", "zplus"):
            raise ValueError(f"unknown layer rule {rule!r}")

    def wrapped(factory: Callable[[], Composite]) -> Callable[[], Composite]:
        if name in RULES:
            raise ValueError(f"rule {name!r} is already registered")
        RULES[name] = RuleSpec(name, conv_rule, dense_rule, provenance, factory)
        return factory

    return wrapped


def _base_map() -> list:
    # Pass on activations and batch norms (merged ones are identities; the input
    # norm is documented in the module docstring); epsilon on the pools.
    return [
        (Activation, Pass()),
        (BatchNorm, Pass()),
        (AvgPool, Epsilon(epsilon=POOL_STABILIZER)),
    ]


@register_rule(
    "epsilon",
    conv_rule="epsilon",
    dense_rule="epsilon",
    provenance=(
        "authors' code 'LRP-eps' (changhongw/examod, zennit 0.5): LayerMapComposite with "
        "Epsilon(1e-6) on Convolution, Linear and AvgPool, Pass on activations and batch "
        "norms, SequentialMergeBatchNorm; paper: LRP-epsilon (Bach et al. 2015)"
    ),
)
def _epsilon() -> Composite:
    return LayerMapComposite(
        layer_map=_base_map()
        + [
            (Convolution, Epsilon(epsilon=EPSILON)),
            (nn.Linear, Epsilon(epsilon=EPSILON)),
        ],
        canonizers=[SequentialMergeBatchNorm()],
    )


@register_rule(
    "epsilon_zplus",
    conv_rule="epsilon",
    dense_rule="zplus",
    provenance=(
        "paper's TEXT for LRP-[eps, z+]: epsilon on convolutions, z+ on the dense layers "
        "(Montavon et al. 2017, 2019); not what the authors' code runs"
    ),
)
def _epsilon_zplus() -> Composite:
    return LayerMapComposite(
        layer_map=_base_map()
        + [
            (Convolution, Epsilon(epsilon=EPSILON)),
            (nn.Linear, ZPlus(stabilizer=ZPLUS_STABILIZER)),
        ],
        canonizers=[SequentialMergeBatchNorm()],
    )


@register_rule(
    "zplus_epsilon",
    conv_rule="zplus",
    dense_rule="epsilon",
    provenance=(
        "authors' CODE for LRP-[eps, z+]: zennit's EpsilonPlus (zennit 0.5), z+ on "
        "convolutions, epsilon on Linear, Norm(1e-6) on AvgPool, SequentialMergeBatchNorm"
    ),
)
def _zplus_epsilon() -> Composite:
    # zennit's own composite, unchanged: this is the authors' configuration (it
    # prepends zennit's layer_map_base: Pass, Norm(1e-6) on AvgPool).
    return EpsilonPlus(
        epsilon=EPSILON, stabilizer=ZPLUS_STABILIZER, canonizers=[SequentialMergeBatchNorm()]
    )


@dataclass(frozen=True)
class Explanation:
    """Input relevance of a batch of examples, with what it explains.

    Attributes
    ----------
    relevance : numpy.ndarray
        (n, paths, frames): relevance of each cell of the normalised compressed
        input (see the module docstring), in the dtype of the pass.
    logits : numpy.ndarray
        (n, classes): logits of the original (un-canonized) model, eval mode.
    target : numpy.ndarray
        (n,) int: explained class per example.
    rule : str
        Key in :data:`RULES`.
    top : str
        ``"logit"`` (paper: R_M = f(Sx)) or ``"onehot"`` (authors' code).
    n_merged_batchnorms : int
        Batch norms the canonizer merged.
    n_conv_bn_pairs : int
        Conv+BN pairs in forward order (they must be equal).
    top_relevance : numpy.ndarray
        (n,): relevance injected at the explained output: the canonized network's
        logit for ``top="logit"``, 1 for ``"onehot"``.
    """

    relevance: np.ndarray
    logits: np.ndarray
    target: np.ndarray
    rule: str
    top: str
    n_merged_batchnorms: int
    n_conv_bn_pairs: int
    top_relevance: np.ndarray

    @property
    def input_share(self) -> np.ndarray:
        """(n,) share of the top relevance reaching the input: sum R_input / R_top."""
        return self.relevance.reshape(len(self.relevance), -1).sum(1) / self.top_relevance


class _LRPView(nn.Module):
    """The model's forward, with the time mean as a hookable ``AdaptiveAvgPool1d``.

    ``model`` is assigned first so that zennit's leaf order (hence the batch-norm
    pairing) is exactly the model's own; the pool comes last and pairs with nothing.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.time_pool = nn.AdaptiveAvgPool1d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.input_norm(x)
        x = m.pool1(m.relu1(m.bn1(m.conv1(x))))
        x = m.pool2(m.relu2(m.bn2(m.conv2(x))))
        x = m.relu3(m.bn3(m.conv3(x)))
        x = self.time_pool(x).squeeze(-1)
        x = m.dropout(x)
        return m.fc2(m.relu4(m.fc1(x)))


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _forward_conv_bn_pairs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, nn.Module]]:
    """Trace leaf modules in execution order and return adjacent (conv/Linear, BN) pairs.

    ``model`` must be a throw-away copy in eval mode: hooks are attached to it.
    """
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
    return len(_forward_conv_bn_pairs(probe, _probe_input(probe, frames)))


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


def _register_checked(composite: Composite, view: _LRPView, probe: torch.Tensor) -> tuple[int, int]:
    """Register ``composite`` on ``view``; return (merged, pairs) or raise CanonizerError."""
    pairs = _forward_conv_bn_pairs(view, probe)
    try:
        composite.register(view)
    except Exception as exc:
        composite.remove()
        # e.g. modules assigned convs-first: zennit pairs conv3 with the input batch
        # norm and fails on the shape broadcast (RuntimeError), half-way through.
        raise CanonizerError(
            "zennit's SequentialMergeBatchNorm failed while merging batch norms; the "
            "modules are probably not assigned in forward order "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    merged = [h for h in composite.handles if isinstance(h, MergeBatchNorm)]
    got = {(id(h.linears[0]), id(h.batch_norm)) for h in merged}
    want = {(id(a), id(b)) for a, b in pairs}
    if got != want:
        composite.remove()
        raise CanonizerError(
            f"zennit's SequentialMergeBatchNorm merged {len(merged)} batch norm(s) but the "
            f"forward pass has {len(pairs)} conv+BN pair(s), or paired different modules: it "
            "pairs leaves in the order modules were assigned in __init__ (method.md section "
            "3). Assign modules in forward order."
        )
    return len(merged), len(pairs)


def explain(
    model: nn.Module,
    features,
    rule: str,
    target=None,
    *,
    top: str = "logit",
    dtype: torch.dtype | None = None,
    batch_size: int = 64,
    device=None,
) -> Explanation:
    """Explain predictions of ``model`` with LRP (zennit) over the input paths x frames.

    Parameters
    ----------
    model : PMTConvNet
        The network. It is never modified: the pass runs on a deep copy in eval
        mode (dropout off), with batch norms merged into their convolutions.
    features : torch.Tensor or numpy.ndarray
        (n, paths, frames) compressed features, as fed to the model.
    rule : str
        Key in :data:`RULES`.
    target : None, int or array-like of int
        Class to explain: ``None`` for the predicted class (argmax of the original
        model's logits), an int for every example, or one index per example.
    top : {"logit", "onehot"}
        Top relevance: the explained logit of the canonized network (paper,
        R_M = f(Sx)), or 1 at the explained class (authors' code). The backward
        pass is linear in it, so the two differ exactly by the factor logit.
    dtype : torch.dtype, optional
        Dtype of the pass (``torch.float64`` for reference checks); default the
        model's.
    batch_size : int
        Examples per pass.
    device : str or torch.device, optional
        Default: the model's device.

    Returns
    -------
    Explanation

    Raises
    ------
    CanonizerError
        If the canonizer did not merge exactly the conv+BN pairs of the forward pass.

    Notes
    -----
    LRP after Bach et al. (2015) and Montavon et al. (2017, 2019); input relevance
    is defined on the normalised compressed features (module docstring).
    """
    if rule not in RULES:
        raise KeyError(f"unknown rule {rule!r}; registered: {sorted(RULES)}")
    if top not in TOPS:
        raise ValueError(f"top must be one of {TOPS}, got {top!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    work, device, dtype = _prepare(model, dtype, device)
    x_all = _as_tensor(features, device, dtype)
    n = x_all.shape[0]
    view = _LRPView(work).to(device=device, dtype=dtype).eval()

    with torch.no_grad():
        logits = torch.cat([work(x_all[i : i + batch_size]) for i in range(0, n, batch_size)])
        # The view must be the model's forward (guards against model.py changes).
        v = view(x_all[:batch_size])
        scale = logits[: len(v)].abs().max().clamp(min=1.0)
        if (v - logits[: len(v)]).abs().max() > _VIEW_RTOL.get(dtype, 1e-5) * scale:
            raise RuntimeError("the LRP view's logits differ from the model's forward")

    n_classes = logits.shape[1]
    if target is None:
        tgt = logits.argmax(1)
    else:
        tgt = torch.as_tensor(np.asarray(target), device=device).to(torch.long).reshape(-1)
        if tgt.numel() == 1:
            tgt = tgt.expand(n)
        if tgt.numel() != n:
            raise ValueError(f"target has {tgt.numel()} entries for {n} examples")
        if tgt.min() < 0 or tgt.max() >= n_classes:
            raise ValueError(f"target classes must lie in [0, {n_classes})")

    composite = RULES[rule].composite()
    n_merged, n_pairs = _register_checked(composite, view, _probe_input(work))
    rel_parts, top_parts = [], []
    try:
        for i in range(0, n, batch_size):
            x = x_all[i : i + batch_size].clone().requires_grad_(True)
            t = tgt[i : i + batch_size]
            with torch.enable_grad():
                out = view(x)
                onehot = torch.zeros_like(out).scatter_(1, t[:, None], 1.0)
                seed = onehot * out.detach() if top == "logit" else onehot
                (rel,) = torch.autograd.grad(out, x, grad_outputs=seed)
            rel_parts.append(rel.detach())
            top_parts.append(seed.sum(1))
    finally:
        composite.remove()

    return Explanation(
        relevance=torch.cat(rel_parts).cpu().numpy(),
        logits=logits.cpu().numpy(),
        target=tgt.cpu().numpy().astype(np.int64),
        rule=rule,
        top=top,
        n_merged_batchnorms=n_merged,
        n_conv_bn_pairs=n_pairs,
        top_relevance=torch.cat(top_parts).cpu().numpy(),
    )


def merged_logit_shift(
    model: nn.Module, features, *, dtype: torch.dtype | None = None, relative: bool = False
) -> float:
    """Max abs difference between the logits of ``model`` and of its canonized copy.

    zennit's ``MergeBatchNorm`` folds each batch norm into its convolution and
    resets the batch norm to mean 0, variance 1, weight 1, bias 0, but keeps its
    ``eps`` (1e-5): the reset norm then scales by 1/sqrt(1 + eps), so logits move
    slightly (method.md section 3).

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

    Returns
    -------
    float
    """
    work, device, dtype = _prepare(model, dtype, None)
    x = _as_tensor(features, device, dtype)
    with torch.no_grad():
        before = work(x)
        handles = SequentialMergeBatchNorm().apply(work)
        try:
            after = work(x)
        finally:
            for h in handles:
                h.remove()
    shift = float((before - after).abs().max())
    return shift / float(before.abs().max()) if relative else shift
