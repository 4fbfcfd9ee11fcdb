"""Model randomisation: re-drawing a network's learned layers (Adebayo et al. 2018).

What the cascading randomisation check (:mod:`pmt_core.explain.sanity`, the run's
sanity stage) does to a model: which layers, in which order
(:func:`cascade_layers`), and how each is re-drawn (:func:`reinitialise`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pmt_core.model.network import PMTConvNet

__all__ = ["CASCADE_LAYERS", "cascade_layers", "reinitialise"]

#: Every layer of :class:`~pmt_core.model.network.PMTConvNet` with learned parameters, output
#: side first: the order of Adebayo et al.'s cascading randomisation. Read from the model's
#: own declaration (``PMTConvNet.PARAMETER_LAYERS``), so a change of the architecture
#: cannot leave a learned layer out of the check; the batch norms are included
#: (``bn3`` before ``conv3``: it comes after it in the forward pass), the input batch norm
#: last.
CASCADE_LAYERS: tuple[str, ...] = tuple(reversed(PMTConvNet.PARAMETER_LAYERS))


def reinitialise(module: nn.Module, seed: int) -> None:
    """Re-draw a layer's learned parameters (and reset a batch norm's statistics).

    Conv and Linear layers: PyTorch's default ``reset_parameters`` draws weights
    and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (Kaiming uniform with
    a = sqrt(5)); the same distribution is drawn here. Adebayo et al. (2018)
    re-initialise "from the initialisation distribution" as well.

    Batch norms: in eval mode a batch norm is the per-channel affine map
    ``weight * (x - running_mean) / sqrt(running_var + eps) + bias``, and all four
    of those were learned from the training data. "Randomising" it means: the
    running statistics go back to their initial values (mean 0, variance 1, no
    batches tracked), and the affine parameters are re-drawn from the default
    distribution of an affine layer above with fan_in = 1 (each output reads one
    input), U(-1, 1). PyTorch's own initialisation of the affine pair is the
    constant (1, 0): re-drawing "from it" would only reset the layer to a fixed
    identity-like map, and a map that an identity input norm leaves intact is
    exactly what the check must not mistake for learned structure.

    The draw comes from a private CPU generator in float64, then is cast, so the
    result depends on ``seed`` only, not on the global RNG, the device or the
    dtype.

    Parameters
    ----------
    module : torch.nn.Linear, torch.nn.Conv1d or a batch norm
        Modified in place.
    seed : int

    Raises
    ------
    TypeError
        For any other module.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        params, bound = (module.weight, module.bias), 1.0  # fan_in = 1
    elif isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        weight = module.weight
        fan_in = weight[0].numel()  # in_features, or in_channels / groups * kernel size
        params, bound = (weight, module.bias), 1.0 / math.sqrt(fan_in)
    else:
        raise TypeError(f"cannot re-initialise a {type(module).__name__}")
    with torch.no_grad():
        for param in params:
            if param is not None:
                fresh = torch.empty(param.shape, dtype=torch.float64)
                fresh.uniform_(-bound, bound, generator=gen)
                param.copy_(fresh.to(param.dtype))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            module.reset_running_stats()  # mean 0, variance 1, num_batches_tracked 0


def cascade_layers(model: nn.Module) -> tuple[str, ...]:
    """Return the cascade order of ``model``: its declared parameter layers, output first.

    Parameters
    ----------
    model : torch.nn.Module
        A model that declares ``PARAMETER_LAYERS`` (its layers with learned
        parameters in forward order), such as
        :class:`~pmt_core.model.network.PMTConvNet`.

    Returns
    -------
    tuple of str

    Raises
    ------
    ValueError
        If the model declares no such list, or the list misses a module that has
        parameters of its own (the cascade must randomise every learned layer).
    """
    declared = getattr(model, "PARAMETER_LAYERS", None)
    if declared is None:
        raise ValueError(f"{type(model).__name__} declares no PARAMETER_LAYERS; pass layers=")
    learned = {
        name for name, m in model.named_modules()
        if name and any(True for _ in m.parameters(recurse=False))
    }  # fmt: skip
    missing = learned - set(declared)
    if missing:
        raise ValueError(f"PARAMETER_LAYERS leaves out learned layers {sorted(missing)}")
    return tuple(reversed(declared))
