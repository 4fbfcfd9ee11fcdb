"""Canonizing the network for LRP: the input-norm fold and the batch-norm merge.

The input batch norm is folded into ``conv1`` exactly (:class:`InputNormFold`, which
makes ``conv1`` a :class:`FoldedConv1d`); every convolution's batch norm is then merged
into it by zennit's ``SequentialMergeBatchNorm`` (:func:`canonizers`). The merge pairs
leaves in assignment order, so :func:`register_checked` compares what was merged with
the conv+BN pairs of a traced forward pass and raises :class:`CanonizerError` on a
mismatch. :func:`merged_logit_shift` and :func:`fold_logit_shift` measure what the
canonizers do to the logits. Why the fold, and what it means for the maps: the package
docstring (:mod:`pmt_core.explain.lrp`).

This module is the bottom of the package: it imports nothing from it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from zennit.canonizers import Canonizer, MergeBatchNorm, SequentialMergeBatchNorm
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.core import Composite
from zennit.types import BatchNorm, Convolution

__all__ = [
    "CanonizerError",
    "FoldedConv1d",
    "INPUT_NORM_MODES",
    "InputNormFold",
    "canonizers",
    "count_conv_bn_pairs",
    "fold_logit_shift",
    "merged_logit_shift",
]

#: How the input batch norm is explained: folded into conv1 (default) or ``Pass``
#: (the authors' code).
INPUT_NORM_MODES = ("fold", "pass")


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
    bias (package docstring).

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


def input_affine(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) of the model's input batch norm in eval mode."""
    bn = model._modules[model.FORWARD[0]]
    scale = torch.rsqrt(bn.running_var + bn.eps) * bn.weight
    return scale, bn.bias - bn.running_mean * scale


# --- copies and traces of the network ------------------------------------------------------


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's first parameter."""
    p = next(model.parameters())
    return p.device, p.dtype


def trace_leaves(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
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


def probe_input(model: nn.Module, frames: int = 32) -> torch.Tensor:
    """Return a zero input of one example, ``model.n_paths`` paths and ``frames`` frames."""
    device, dtype = model_device_dtype(model)
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
    return len(_conv_bn_pairs(trace_leaves(probe, probe_input(probe, frames))))


def prepare(model: nn.Module, dtype, device) -> tuple[nn.Module, torch.device, torch.dtype]:
    """Deep copy in eval mode on the requested device and dtype (the original stays put)."""
    m_device, m_dtype = model_device_dtype(model)
    device = torch.device(device) if device is not None else m_device
    dtype = dtype if dtype is not None else m_dtype
    work = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work, device, dtype


def as_tensor(features, device, dtype) -> torch.Tensor:
    """``features`` as an (examples, paths, frames) tensor on ``device`` in ``dtype``."""
    x = torch.as_tensor(np.asarray(features)) if not torch.is_tensor(features) else features
    x = x.detach().to(device=device, dtype=dtype)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(
            f"features must be examples x paths x frames with at least one example, got "
            f"shape {tuple(x.shape)}"
        )
    return x


# --- registering a composite, checked -----------------------------------------------------


def register_checked(
    composite: Composite, model: nn.Module, probe: torch.Tensor
) -> tuple[int, int]:
    """Register ``composite`` on ``model``; return (merged, pairs) or raise CanonizerError."""
    folds = [c for c in composite.canonizers if isinstance(c, InputNormFold)]
    if folds:
        # The fold is exact only if conv1 reads the input norm's output directly.
        names = folds[0].names(model)
        before = trace_leaves(model, probe)
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
        order = trace_leaves(model, probe)
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


# --- logit shifts of the canonizers ------------------------------------------------------


def _canonized_shift(model, features, canonizers, dtype, relative) -> float:
    work, device, dtype = prepare(model, dtype, None)
    x = as_tensor(features, device, dtype)
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
    in :func:`~pmt_core.explain.lrp.explain`) is exact and adds only rounding
    (:func:`fold_logit_shift`).

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
        Canonize as :func:`~pmt_core.explain.lrp.explain` does with this option.

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
