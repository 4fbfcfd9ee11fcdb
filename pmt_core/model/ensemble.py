"""Several replicates of one network run as a single batched model.

:class:`ReplicateEnsemble` stacks the parameters and buffers of R replicate
:class:`~pmt_core.model.network.PMTConvNet` models along a new leading axis and
runs the network's own ``forward`` over them with ``torch.func.vmap`` and
``torch.func.functional_call``. Nothing about the architecture is restated here:
the ensemble reads the module tree, parameter names and shapes from the replicate
models themselves (built by the ordinary constructor), so a change to
``network.py`` that keeps ``forward`` vmap-compatible carries over unchanged.

Per-replicate semantics, and why they hold:

* Batch norm: every replicate reads its own batch (inputs of shape R x B x ...);
  under ``vmap`` the batch statistics are those of replicate r's batch alone, and
  the stacked running statistics (``running_mean``, ``running_var``,
  ``num_batches_tracked``) are updated in place slice by slice.
* Dropout: every ``nn.Dropout`` of the network is replaced, in a private copy of
  the module tree, by a module multiplying by a mask that is passed in with the
  buffers. :meth:`ReplicateEnsemble.draw_dropout_masks` draws replicate r's mask
  from replicate r's own generator exactly as ATen's CPU dropout does
  (``bernoulli_(1 - p)``, then ``/ (1 - p)``), so on the CPU replicate r sees the
  masks :func:`~pmt_core.model.training.train_model` would draw with its seed.
* Gradients: the training loss is the sum of the replicates' losses, so the
  gradient of slice r of a stacked parameter is replicate r's gradient alone;
  :meth:`ReplicateEnsemble.clip_grad_norm_` clips each replicate's total norm
  separately, with ``clip_grad_norm_``'s own formula.
* Optimiser: AdamW is elementwise (its step count is shared, and equal, since all
  replicates start together), so one AdamW over the stacked tensors is R AdamWs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

#: ``torch.nn.utils.clip_grad_norm_`` divides by ``total_norm + 1e-6``; so do we,
#: so that per-replicate clipping scales by exactly the factor it would.
_CLIP_EPS = 1e-6


class _FedDropout(nn.Module):
    """Dropout whose mask is an input (a buffer passed to ``functional_call``).

    ``vmap`` cannot give each replicate its own generator; feeding the mask lets
    :class:`ReplicateEnsemble` draw replicate r's mask from replicate r's generator.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        # A placeholder: the real mask comes with every training call.
        self.register_buffer("mask", torch.empty(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No mask fed (the empty placeholder) means dropout off for this call.
        if not self.training or self.p == 0 or self.mask.numel() == 0:
            return x
        return x * self.mask


class ReplicateEnsemble:
    """R replicates of one network, trained and evaluated as one batched model.

    Parameters
    ----------
    models : sequence of nn.Module
        The replicates (at least one), all of one architecture (same parameter and
        buffer names and shapes), on one device. Their current weights are copied
        into the stacked tensors; the models themselves are left untouched until
        :meth:`load_into`.
    example : torch.Tensor
        A few inputs of one replicate (examples x ...), used once, in eval mode, to
        learn the shape each dropout layer sees.

    Attributes
    ----------
    params : dict of str to torch.Tensor
        Stacked parameters, replicate first (leaf tensors requiring grad: give them
        to the optimiser).
    buffers : dict of str to torch.Tensor
        Stacked buffers (batch-norm running statistics), replicate first.
    size : int
        Number of replicates currently stacked.
    """

    def __init__(self, models: Sequence[nn.Module], example: torch.Tensor):
        if len(models) < 1:
            raise ValueError("ReplicateEnsemble needs at least one replicate model")
        first = models[0]
        names = [name for name, _ in first.named_parameters()]
        buffer_names = [name for name, _ in first.named_buffers()]
        for k, model in enumerate(models[1:], start=1):
            shapes = {n: t.shape for n, t in (*model.named_parameters(), *model.named_buffers())}
            expected = {n: t.shape for n, t in (*first.named_parameters(), *first.named_buffers())}
            if shapes != expected:
                raise ValueError(f"replicate {k} has another architecture than replicate 0")
        with torch.no_grad():
            self.params = {
                n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
                .clone()
                .requires_grad_(True)
                for n in names
            }
            self.buffers = {
                n: torch.stack([dict(m.named_buffers())[n].detach() for m in models]).clone()
                for n in buffer_names
            }
        self.state_names = tuple(first.state_dict().keys())
        self._skeleton, self._dropouts = self._make_skeleton(first, example)
        self.size = len(models)

    # --- construction -------------------------------------------------------------

    @staticmethod
    def _make_skeleton(model: nn.Module, example: torch.Tensor):
        """Return a private copy of ``model`` with fed dropouts, and their mask shapes."""
        skeleton = copy.deepcopy(model)
        dropouts = {
            name: module
            for name, module in skeleton.named_modules()
            # Exactly nn.Dropout: Dropout1d/2d drop whole channels, another mask.
            if type(module) is nn.Dropout
        }
        shapes: dict[str, tuple[int, ...]] = {}
        hooks = [
            module.register_forward_pre_hook(
                lambda _m, args, name=name: shapes.__setitem__(name, tuple(args[0].shape[1:]))
            )
            for name, module in dropouts.items()
        ]
        was_training = skeleton.training
        skeleton.eval()  # no running-statistics update, no random draw
        try:
            with torch.no_grad():
                skeleton(example)
        finally:
            for hook in hooks:
                hook.remove()
            skeleton.train(was_training)
        fed = {}
        for name, module in dropouts.items():
            parent_name, _, child = name.rpartition(".")
            parent = skeleton.get_submodule(parent_name) if parent_name else skeleton
            setattr(parent, child, _FedDropout(module.p))
            fed[f"{name}.mask"] = (module.p, shapes[name])
        return skeleton, fed

    # --- forward ------------------------------------------------------------------

    def _call(self, params, buffers, x):
        return functional_call(self._skeleton, (params, buffers), (x,))

    def forward_train(
        self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Training-mode forward: replicate r reads ``x[r]``; returns R x B x classes.

        Updates the stacked batch-norm running statistics in place, as training
        the replicates alone would. ``masks`` comes from :meth:`draw_dropout_masks`;
        ``None`` turns dropout off for this call.
        """
        if x.shape[0] != self.size:
            raise ValueError(f"expected {self.size} replicate batches, got {x.shape[0]}")
        self._skeleton.train()
        masks = masks or {}
        buffers = {**self.buffers, **masks}
        # Anything random that is not fed (none in PMTConvNet) draws independently
        # per replicate from the global generator.
        return vmap(self._call, randomness="different")(self.params, buffers, x)

    @torch.no_grad()
    def forward_eval(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Eval-mode forward of every replicate on the same inputs: R x N x classes.

        Scores every example (as :func:`~pmt_core.model.training.predict_logits`
        does), ``batch_size`` examples per call.
        """
        self._skeleton.eval()
        run = vmap(self._call, in_dims=(0, 0, None))
        chunks = [
            run(self.params, self.buffers, x[start : start + batch_size])
            for start in range(0, len(x), batch_size)
        ]
        return torch.cat(chunks, dim=1)

    # --- dropout, clipping ----------------------------------------------------------

    def draw_dropout_masks(
        self, generators: Sequence[torch.Generator], batch: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Return the stacked dropout masks of one training step.

        Replicate r's masks are drawn from ``generators[r]`` exactly as ATen's CPU
        dropout draws them: ``empty(shape).bernoulli_(1 - p).div_(1 - p)``, nothing
        drawn for ``p == 0`` and zeros for ``p == 1``. A generator that holds
        ``train_model``'s global CPU state after initialisation therefore
        reproduces its masks bit for bit.
        """
        if len(generators) != self.size:
            raise ValueError(f"{len(generators)} generators for {self.size} replicates")
        masks = {}
        for name, (p, shape) in self._dropouts.items():
            if p == 0:
                continue
            if p == 1:
                masks[name] = torch.zeros((self.size, batch, *shape), device=device)
                continue
            masks[name] = torch.stack(
                [
                    torch.empty((batch, *shape), device=g.device)
                    .bernoulli_(1 - p, generator=g)
                    .div_(1 - p)
                    .to(device)
                    for g in generators
                ]
            )
        return masks

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip each replicate's total gradient norm at ``max_norm``, separately.

        Mirrors ``torch.nn.utils.clip_grad_norm_`` per replicate: the total norm is
        the 2-norm of the per-tensor 2-norms, and gradients are scaled by
        ``min(1, max_norm / (norm + 1e-6))``.

        Returns
        -------
        torch.Tensor
            The replicates' gradient norms before clipping (length R).
        """
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            return torch.zeros(self.size)
        per_tensor = torch.stack(
            [torch.linalg.vector_norm(g.reshape(self.size, -1), dim=1) for g in grads], dim=1
        )
        norms = torch.linalg.vector_norm(per_tensor, dim=1)
        factor = torch.clamp(max_norm / (norms + _CLIP_EPS), max=1.0)
        for g in grads:
            g.mul_(factor.view(-1, *([1] * (g.ndim - 1))))
        return norms

    # --- replicates in and out ------------------------------------------------------

    @torch.no_grad()
    def state_dict_of(self, r: int) -> dict[str, torch.Tensor]:
        """Return a copy of replicate r's state dict (the network's own keys)."""
        tensors = {**self.params, **self.buffers}
        return {name: tensors[name][r].detach().clone() for name in self.state_names}

    def load_into(self, r: int, model: nn.Module) -> nn.Module:
        """Copy replicate r's current weights into ``model`` (an ordinary network)."""
        model.load_state_dict(self.state_dict_of(r))
        return model

    @torch.no_grad()
    def keep(self, indices: Sequence[int], optimizer: torch.optim.Optimizer | None = None):
        """Keep only the replicates at ``indices`` (in that order), in place.

        The narrowed parameters are new leaf tensors (narrowing a leaf's ``.data``
        in place would leave autograd's cached gradient accumulators, kept alive by
        any graph still referenced, expecting the old shape). ``optimizer``, if
        given, is updated to match: its parameter references are swapped and its
        per-parameter state tensors with a replicate axis are narrowed alike, so its
        hyper-parameters and any scheduler attached to it carry on unchanged.
        Gradients must have been cleared.
        """
        index = torch.as_tensor(list(indices), dtype=torch.long)
        if len(index) == self.size and torch.equal(index, torch.arange(self.size)):
            return
        if any(p.grad is not None for p in self.params.values()):
            raise RuntimeError("clear the gradients (zero_grad) before dropping replicates")
        narrowed = {}
        for name, p in self.params.items():
            q = p.detach()[index.to(p.device)].clone().requires_grad_(True)
            narrowed[name] = q
            if optimizer is None:
                continue
            for group in optimizer.param_groups:
                group["params"] = [q if x is p else x for x in group["params"]]
            if p in optimizer.state:
                optimizer.state[q] = {
                    # Moment estimates have the parameter's shape; AdamW's step does not.
                    key: value[index.to(value.device)].clone()
                    if torch.is_tensor(value) and value.shape == p.shape
                    else value
                    for key, value in optimizer.state.pop(p).items()
                }
        self.params = narrowed
        self.buffers = {n: b[index.to(b.device)].clone() for n, b in self.buffers.items()}
        self.size = len(index)
