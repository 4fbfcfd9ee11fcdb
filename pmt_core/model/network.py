"""The authors' convnet over scattering paths (method.md section 2).

Input: compressed scattering features, examples x paths x frames (1,200 x 32 for
S1+S2, 74 x 32 for S1 alone). The paper says "3 convolutional layers and one
dense layer"; the authors' code, reproduced here, has an input batch norm, three
conv blocks, global average pooling, dropout and two Linear layers.

Modules are assigned in forward order on purpose: zennit's
``SequentialMergeBatchNorm`` pairs leaves in assignment order (method.md section
3), so this order is what lets it merge each conv's batch norm.
"""

from __future__ import annotations

import torch
from torch import nn


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
    With r = C // 4: Conv1d(C, r/2, 7) -> BN -> ReLU -> AvgPool(2);
    Conv1d(r/2, r, 5) -> BN -> ReLU -> AvgPool(2); Conv1d(r, 2r, 3) -> BN -> ReLU
    -> mean over time; Dropout -> Linear(2r, 64) -> ReLU -> Linear(64, n_classes).
    Convolutions use ``padding='same'`` and no bias. The forward pass returns
    logits; softmax lives in the loss and in :meth:`predict_proba`.
    """

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
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(widths[2], 64)
        self.relu4 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled convolutional embedding (examples x 2r)."""
        if x.ndim != 3 or x.shape[1] != self.n_paths:
            raise ValueError(
                f"expected input of shape (examples, {self.n_paths}, frames), "
                f"got {tuple(x.shape)}"
            )
        x = self.input_norm(x)
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.bn3(self.conv3(x)))
        return x.mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (examples x n_classes)."""
        x = self.dropout(self.features(x))
        return self.fc2(self.relu4(self.fc1(x)))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Return class probabilities (softmax of the logits)."""
        return torch.softmax(self.forward(x), dim=-1)


def count_trainable_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
