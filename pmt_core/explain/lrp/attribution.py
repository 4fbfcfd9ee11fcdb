"""Input relevance: :func:`explain` and its :class:`Explanation`.

:func:`explain` copies the model, scores it, opens one canonized zennit pass per batch
(:func:`open_pass`, shared with :func:`~pmt_core.explain.lrp.conservation`) and
injects the top relevance (:data:`TOPS`; its sign: package docstring).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from zennit.core import Composite

from pmt_core.explain.lrp.canonize import (
    INPUT_NORM_MODES,
    as_tensor,
    canonizers,
    prepare,
    probe_input,
    register_checked,
)
from pmt_core.explain.lrp.composites import CompositeSpec, resolve
from pmt_core.explain.lrp.rules import LAYER_RULE_SPECS

__all__ = ["Explanation", "TOPS", "explain"]

#: Accepted top-relevance conventions (see :func:`explain`).
TOPS = ("logit", "abs_logit", "onehot")


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
        Key in :data:`~pmt_core.explain.lrp.COMPOSITES`.
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
        ``"fold"`` or ``"pass"`` (package docstring).
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


def seed_relevance(out: torch.Tensor, tgt: torch.Tensor, top: str) -> torch.Tensor:
    """Return the top relevance injected at ``out`` for the classes ``tgt`` (:data:`TOPS`)."""
    onehot = torch.zeros_like(out).scatter_(1, tgt[:, None], 1.0)
    if top == "logit":
        return onehot * out.detach()
    if top == "abs_logit":
        return onehot * out.detach().abs()
    return onehot


@dataclass
class Pass:
    """One validated, canonized pass: the working copy, inputs, scores, composite, options."""

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
    top: str
    batch_size: int

    def backward_batch(self, start: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run zennit's backward pass on the batch of examples from ``start``.

        The one LRP step that :func:`explain` and
        :func:`~pmt_core.explain.lrp.conservation` both run, so that the budgets are
        those of the very pass that gives the maps.

        Parameters
        ----------
        start : int
            Index of the batch's first example (``batch_size`` examples at most).

        Returns
        -------
        x : torch.Tensor
            The batch's input (requires grad).
        seed : torch.Tensor
            The top relevance injected at the output (:func:`seed_relevance`).
        relevance : torch.Tensor
            The input relevance (the gradient zennit's hooks return at ``x``).
        """
        stop = start + self.batch_size
        x = self.x[start:stop].clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.work(x)
            seed = seed_relevance(out, self.target[start:stop], self.top)
            (rel,) = torch.autograd.grad(out, x, grad_outputs=seed)
        return x, seed, rel


def open_pass(
    model, features, composite, target, *, top, dtype, device, params, input_norm, batch_size
) -> Pass:
    """Validate, copy, score and register a composite; the caller must remove it."""
    spec = resolve(composite)
    if top not in TOPS:
        raise ValueError(f"top must be one of {TOPS}, got {top!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if input_norm not in INPUT_NORM_MODES:
        raise ValueError(f"input_norm must be one of {INPUT_NORM_MODES}, got {input_norm!r}")
    params = dict(params or {})
    work, device, dtype = prepare(model, dtype, device)
    x_all = as_tensor(features, device, dtype)
    n = x_all.shape[0]
    with torch.no_grad():
        logits = torch.cat([work(x_all[i : i + batch_size]) for i in range(0, n, batch_size)])
    tgt = _targets(target, logits)
    resolved = spec.parameters(**params)
    rule_params = spec.rule_parameters(work, input_norm, **params)
    first = LAYER_RULE_SPECS.get(spec.first_layer_rule)
    if first is not None and first.check_input is not None:
        # Called from here, so that its warning points at explain() or conservation().
        first.check_input(spec.name, x_all, resolved)  # the box is stated on x in both modes
    comp = spec.factory(canonizers=canonizers(input_norm), **rule_params)
    n_merged, n_pairs = register_checked(comp, work, probe_input(work, x_all.shape[-1]))
    return Pass(work, spec, x_all, logits, tgt, resolved, rule_params, comp, n_merged, n_pairs,
                top, batch_size)


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
        Key in :data:`~pmt_core.explain.lrp.COMPOSITES` (or a spec, e.g. for tests).
        Third positional argument, formerly called ``rule`` (still accepted as a
        keyword).
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
    is defined on the compressed features (package docstring).
    """
    composite = _resolve_name(composite, rule)
    run = open_pass(model, features, composite, target, top=top, dtype=dtype, device=device,
                    params=params, input_norm=input_norm, batch_size=batch_size)
    rel_parts, top_parts = [], []
    try:
        for i in range(0, len(run.x), batch_size):
            _, seed, rel = run.backward_batch(i)
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
