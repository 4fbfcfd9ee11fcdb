"""The authors' convnet over scattering paths (method.md section 2).

Input: compressed scattering features, examples x paths x frames (1,200 x 32 for
S1+S2, 74 x 32 for S1 alone). The paper says "3 convolutional layers and one
dense layer"; the authors' code, reproduced here, has an input batch norm, three
conv blocks, global average pooling, dropout and two Linear layers.

One home for the architecture
-----------------------------
:attr:`PMTConvNet.FORWARD` lists the submodules in forward order and
:meth:`PMTConvNet.forward` runs exactly that list, so the order is written down
once. Everything that needs the layer order reads it from there: the layers with
learned parameters (:attr:`PMTConvNet.PARAMETER_LAYERS`, checked against the
modules in ``__init__``), the cascading randomisation of
:mod:`pmt_core.explain.sanity`, the input-norm fold of :mod:`pmt_core.explain.lrp`.

The modules are also *assigned* in forward order, on purpose: zennit's
``SequentialMergeBatchNorm`` pairs leaves in assignment order (method.md section
3), so this order is what lets it merge each conv's batch norm. The global time
average is a module (``nn.AdaptiveAvgPool1d(1)``, assigned after ``relu3``), not a
functional ``x.mean(-1)``: zennit can only give a rule to a module, and the
authors' network pools with that module too. It has no parameters, so checkpoints
(``state_dict``) written before it existed load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PMTConvNet", "count_trainable_parameters"]


class PMTConvNet(nn.Module):
    """Convnet classifying periodic modulation techniques from scattering paths.

    Parameters
    ----------
    n_paths : int
        Number of input scattering paths C (channels of the 1-D convolutions).
    n_classes : int
        Number of output classes (5 for SOL-PMT; fewer for data sets with fewer
        techniques).
    dropout : float
        Dropout probability before the dense layers (0.5 in the authors' code).

    Notes
    -----
    With r = C // 4: BatchNorm(C) -> Conv1d(C, r/2, 7) -> BN -> ReLU -> AvgPool(2);
    Conv1d(r/2, r, 5) -> BN -> ReLU -> AvgPool(2); Conv1d(r, 2r, 3) -> BN -> ReLU
    -> AdaptiveAvgPool1d(1) (mean over time) -> flatten; Dropout -> Linear(2r, 64)
    -> ReLU -> Linear(64, n_classes). Convolutions use ``padding='same'`` and no
    bias. The forward pass returns logits; softmax lives in the loss and in
    :meth:`predict_proba`.
    """

    #: Submodules in forward order; :meth:`forward` runs exactly this sequence.
    FORWARD: tuple[str, ...] = (
        "input_norm",
        "conv1", "bn1", "relu1", "pool1",
        "conv2", "bn2", "relu2", "pool2",
        "conv3", "bn3", "relu3", "time_pool", "flatten",
        "dropout", "fc1", "relu4", "fc2",
    )  # fmt: skip
    #: The entries of :attr:`FORWARD` with learned parameters, in forward order
    #: (``__init__`` checks it against the modules, so it cannot drift).
    PARAMETER_LAYERS: tuple[str, ...] = (
        "input_norm", "conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "fc1", "fc2",
    )  # fmt: skip
    #: Where :meth:`features` stops: the pooled convolutional embedding.
    EMBEDDING: str = "flatten"

    def __init__(self, n_paths: int, n_classes: int = 5, dropout: float = 0.5):
        super().__init__()
        if n_paths < 8:
            raise ValueError(f"n_paths must be at least 8, got {n_paths}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {n_classes}")
        self.n_paths = n_paths
        self.n_classes = n_classes
        r = n_paths // 4
        widths = (r // 2, r, 2 * r)
        # Assigned in forward order (zennit's canonizer pairs by assignment order).
        self.input_norm = nn.BatchNorm1d(n_paths)
        self.conv1 = nn.Conv1d(n_paths, widths[0], 7, padding="same", bias=False)
        self.bn1 = nn.BatchNorm1d(widths[0])
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AvgPool1d(2)
        self.conv2 = nn.Conv1d(widths[0], widths[1], 5, padding="same", bias=False)
        self.bn2 = nn.BatchNorm1d(widths[1])
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool1d(2)
        self.conv3 = nn.Conv1d(widths[1], widths[2], 3, padding="same", bias=False)
        self.bn3 = nn.BatchNorm1d(widths[2])
        self.relu3 = nn.ReLU()
        self.time_pool = nn.AdaptiveAvgPool1d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(widths[2], 64)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)
        self._check_declaration()

    def _check_declaration(self) -> None:
        # The declarations are the single home of the layer order: fail at
        # construction if a module is added, renamed or re-ordered without them.
        if tuple(self._modules) != self.FORWARD:
            raise RuntimeError(
                f"modules assigned as {tuple(self._modules)}, but FORWARD declares "
                f"{self.FORWARD}; keep them identical (zennit pairs in assignment order)"
            )
        with_params = tuple(
            name for name in self.FORWARD if any(True for _ in self._modules[name].parameters())
        )
        if with_params != self.PARAMETER_LAYERS:
            raise RuntimeError(
                f"layers with parameters are {with_params}, PARAMETER_LAYERS declares "
                f"{self.PARAMETER_LAYERS}"
            )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_paths:
            raise ValueError(
                f"expected input of shape (examples, {self.n_paths}, frames), got {tuple(x.shape)}"
            )

    def _run(self, x: torch.Tensor, stop: str | None = None) -> torch.Tensor:
        for name in self.FORWARD:
            x = self._modules[name](x)
            if name == stop:
                break
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled convolutional embedding (examples x 2r), before dropout."""
        self._check_input(x)
        return self._run(x, stop=self.EMBEDDING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (examples x n_classes)."""
        self._check_input(x)
        return self._run(x)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Return class probabilities (softmax of the logits)."""
        return torch.softmax(self.forward(x), dim=-1)


def count_trainable_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
