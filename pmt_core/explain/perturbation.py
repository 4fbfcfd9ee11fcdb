"""Deletion curves, most- and least-relevant first, computed incrementally.

Samek et al. (2017, "Evaluating the visualization of what a deep neural network
has learned", IEEE TNNLS): removing the inputs an explanation ranks first (MoRF)
should lower the explained logit fast, removing those it ranks last (LeRF)
slowly. A removed path is set, on all frames, to its training mean in the
compressed domain (the input batch norm's running mean), so after the input
batch norm it carries a zero deviation: no evidence either way.

The network's first convolution is linear in its input, so removing k more
paths changes its output by the convolution of their change alone:
``conv1(x0') = conv1(x0) + conv1(delta)`` with ``delta`` non-zero on the removed
paths only. Each step then costs ``per_step / paths`` of a full first layer
(1/60 at 20 of 1,200 paths) plus the small rest of the network; the unit tests
pin the result against removing the paths and running the whole model.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["DELETION_PER_STEP", "DELETION_STEPS", "aopc_per_example", "deletion_logits"]

#: The sanity checks' deletion protocol (``sanity.deletion``; re-exported by
#: :mod:`pmt_core.claims.protocol`, here because the run's sanity stage reads it):
#: paths removed per step and steps (a removed path is set to its training mean in
#: the compressed domain, all frames). 10 x 20 = the top 200 of 1,200 paths (1/6),
#: where most- and least-relevant-first orders differ most.
DELETION_STEPS = 10
DELETION_PER_STEP = 20


def _rest(model: nn.Module, after: str):
    names = list(model.FORWARD)
    tail = names[names.index(after) + 1:]

    def run(z):
        for name in tail:
            z = model._modules[name](z)
        return z

    return run


@torch.no_grad()
def deletion_logits(model: nn.Module, x, maps, *, order: str = "morf", steps: int = 10,
                    per_step: int = 20, target=None, batch_size: int = 64,
                    device=None) -> np.ndarray:
    """Explained-class logit after each removal step (column 0: the intact input).

    Parameters
    ----------
    model : PMTConvNet
        Left untouched (a copy is put in eval mode).
    x : torch.Tensor or numpy.ndarray, (n, paths, frames)
        Compressed inputs.
    maps : numpy.ndarray, (n, paths)
        Scores ranking the paths (time-averaged relevance, or any map).
    order : {"morf", "lerf"}
        Largest score first (most relevant first) or smallest first.
    steps, per_step : int
        Removal steps and paths removed per step.
    target : array-like of int, optional
        Class whose logit is tracked; default the prediction on the intact input.
    batch_size : int
    device : torch.device, optional

    Returns
    -------
    numpy.ndarray, (n, steps + 1), float64
    """
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    work = copy.deepcopy(model).to(device).eval()
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(device, torch.float32)
    n, n_paths, n_frames = x.shape
    maps = np.asarray(maps, dtype=np.float64)
    if maps.shape != (n, n_paths):
        raise ValueError(f"maps have shape {maps.shape}, expected {(n, n_paths)}")
    if not (steps >= 1 and per_step >= 1 and steps * per_step <= n_paths):
        raise ValueError(f"need 1 <= steps * per_step <= {n_paths}, got {steps} x {per_step}")
    ranking = np.argsort(-maps if order == "morf" else maps, axis=1, kind="stable")
    ranking = torch.as_tensor(ranking[:, : steps * per_step].copy(), device=device)
    norm, conv = work.input_norm, work.conv1
    if conv.bias is not None or conv.stride != (1,) or conv.groups != 1:
        raise ValueError("incremental deletion needs conv1 without bias, stride 1, groups 1")
    weight = conv.weight  # (out, paths, k)
    k = weight.shape[-1]
    pad_left = (k - 1) // 2
    # a removed path's normalised value: the input norm of its running mean = beta
    removed_value = norm(norm.running_mean.view(1, -1, 1).expand(1, n_paths, 1)).view(-1)
    rest = _rest(work, "conv1")
    out = np.empty((n, steps + 1))
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size]
        b = len(xb)
        x0 = norm(xb)
        z1 = conv(x0)
        logits = rest(z1)
        tgt = (logits.argmax(1) if target is None else
               torch.as_tensor(np.asarray(target)[start : start + b], device=device).long())
        out[start : start + b, 0] = logits.gather(1, tgt[:, None]).squeeze(1).double().cpu()
        rows = torch.arange(b, device=device)[:, None]
        for s in range(steps):
            idx = ranking[start : start + b, s * per_step : (s + 1) * per_step]  # (b, p)
            # each path is removed once, so x0 of the newly removed ones is still intact
            delta = removed_value[idx][..., None] - x0[rows, idx]  # (b, p, frames)
            padded = nn.functional.pad(delta, (pad_left, k - 1 - pad_left))
            patches = padded.unfold(-1, k, 1)  # (b, p, frames, k)
            w = weight[:, idx].permute(1, 0, 2, 3)  # (b, out, p, k)
            z1 = z1 + torch.einsum("bopk,bptk->bot", w, patches)
            logits = rest(z1)
            out[start : start + b, s + 1] = logits.gather(1, tgt[:, None]).squeeze(1).double().cpu()
    return out


def aopc_per_example(logits: np.ndarray) -> np.ndarray:
    """Area over the perturbation curve per example (Samek et al. 2017, Eq. 12).

    ``1 / (L + 1) * sum_{k=0}^{L} (f(x^(0)) - f(x^(k)))`` for each row of
    ``logits`` (n, L + 1); its mean over examples is the paper's AOPC.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise ValueError(f"expected logits of shape (n, L + 1), got {logits.shape}")
    return (logits[:, :1] - logits).mean(axis=1)
