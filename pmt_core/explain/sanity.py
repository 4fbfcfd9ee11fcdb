"""Model randomisation of explanations (Adebayo et al. 2018).

Cascading model-parameter randomisation ("Sanity checks for saliency maps",
NeurIPS): re-initialise the layers from the top down and watch the maps. Maps
that barely change explain the input, not the model. (Deletion curves, the other
sanity check, are in :mod:`pmt_core.explain.perturbation`.)

It works in the network's input domain, the log-compressed scattering features
(``pmt_core.features.compression``), and take the explanation method as a callable
``explain_fn(model, features, rule, target=...)`` returning an object with a
``relevance`` array (n, paths, frames), such as :func:`pmt_core.explain.lrp.explain`, or
that array itself; it defaults to :func:`pmt_core.explain.lrp.explain`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pmt_core.explain.relevance import local_maps, rowwise_spearman
from pmt_core.model.network import PMTConvNet

__all__ = [
    "CASCADE_LAYERS",
    "RandomisationResult",
    "cascade_layers",
    "cascading_randomisation",
    "predicted_target",
    "reinitialise",
]

#: Every layer of :class:`~pmt_core.model.network.PMTConvNet` with learned parameters, output
#: side first: the order of Adebayo et al.'s cascading randomisation. Read from the model's
#: own declaration (``PMTConvNet.PARAMETER_LAYERS``), so a change of the architecture
#: cannot leave a learned layer out of the check; the batch norms are included
#: (``bn3`` before ``conv3``: it comes after it in the forward pass), the input batch norm
#: last.
CASCADE_LAYERS: tuple[str, ...] = tuple(reversed(PMTConvNet.PARAMETER_LAYERS))


def _default_explain() -> Callable:
    # Imported lazily: pmt_core.explain.lrp needs zennit, and the sanity maths does not.
    from pmt_core.explain.lrp import explain

    return explain


def _relevance(result) -> np.ndarray:
    """Relevance array of an explain_fn result (an Explanation or the array itself)."""
    rel = getattr(result, "relevance", result)
    if hasattr(rel, "detach"):
        rel = rel.detach().cpu().numpy()
    return np.asarray(rel)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _as_tensor(features, device: torch.device) -> torch.Tensor:
    x = torch.as_tensor(features)
    if x.ndim != 3:
        raise ValueError(f"expected features (examples, paths, frames), got {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32)


@torch.no_grad()
def predicted_target(model: nn.Module, features, batch_size: int = 64) -> np.ndarray:
    """Return the model's predicted class per example (argmax of the logits, eval mode).

    Parameters
    ----------
    model : torch.nn.Module
        Left untouched (a deep copy is put in eval mode).
    features : torch.Tensor or numpy.ndarray, shape (n, paths, frames)
    batch_size : int

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
    """
    work = copy.deepcopy(model).eval()
    x = _as_tensor(features, _model_device(work))
    parts = [work(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).cpu().numpy().astype(np.int64) if parts else np.zeros(0, np.int64)


# --- cascading model-parameter randomisation -------------------------------------


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


@dataclass(frozen=True)
class RandomisationResult:
    """Outcome of :func:`cascading_randomisation`.

    Attributes
    ----------
    layers : tuple of str
        Stage k has ``layers[: k + 1]`` re-initialised (cumulative, top first);
        every stage is reported.
    rank_correlation : numpy.ndarray, shape (stages, n)
        Per example, Spearman's rho between the time-averaged map of the randomised
        model and that of the trained model (NaN where a map is constant).
    abs_rank_correlation : numpy.ndarray, shape (stages, n)
        The same on absolute values (Adebayo et al. report both, since a sign flip
        alone would read as "changed").
    target : numpy.ndarray, shape (n,)
        Explained class: the trained model's prediction, kept for every stage.
    rule : str
    """

    layers: tuple[str, ...]
    rank_correlation: np.ndarray
    abs_rank_correlation: np.ndarray
    target: np.ndarray
    rule: str

    @property
    def mean(self) -> np.ndarray:
        """Mean rho per stage over examples with a defined correlation."""
        return _nanmean_rows(self.rank_correlation)

    @property
    def abs_mean(self) -> np.ndarray:
        """Mean rho of the absolute maps per stage."""
        return _nanmean_rows(self.abs_rank_correlation)

    @property
    def n_undefined(self) -> np.ndarray:
        """Examples per stage whose correlation is undefined (a constant map)."""
        return np.isnan(self.rank_correlation).sum(axis=1)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Readable stage labels: "fc2", "+fc1", "+bn3", "+conv3", ..."""
        return tuple(name if k == 0 else "+" + name for k, name in enumerate(self.layers))


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    out = np.full(a.shape[0], np.nan)
    for k, row in enumerate(a):
        row = row[np.isfinite(row)]
        if row.size:
            out[k] = row.mean()
    return out


def cascading_randomisation(
    model: nn.Module,
    features,
    rule: str,
    seed: int = 0,
    *,
    explain_fn: Callable | None = None,
    layers: Sequence[str] | None = None,
    reference=None,
    target=None,
    **explain_kwargs,
) -> RandomisationResult:
    """Cascading layer randomisation from the top (Adebayo et al. 2018).

    On a deep copy of ``model``, the layers in ``layers`` are re-initialised one
    after the other (cumulatively, output side first, :func:`reinitialise`), and
    after each the inputs are explained again with the same rule and the trained
    model's predicted class as target. Each stage's time-averaged maps are compared
    with the trained model's by per-example Spearman rank correlation, signed and
    absolute.

    By default every layer with learned parameters is randomised, the batch norms
    included (:data:`CASCADE_LAYERS`): the input batch norm last, so that at the
    final stage no learned reference point (its running mean and offset) survives
    in the maps (audit m5). ``model`` itself is never modified.

    Parameters
    ----------
    model : torch.nn.Module
        Trained network (a :class:`~pmt_core.model.network.PMTConvNet`).
    features : torch.Tensor or numpy.ndarray, shape (n, paths, frames)
        Compressed input features.
    rule : str
        Rule name passed to ``explain_fn``.
    seed : int
        Seeds the re-initialisation (stage k uses a seed derived from (seed, k)).
    explain_fn : callable, optional
        ``explain_fn(model, features, rule, target=..., **explain_kwargs)``;
        default :func:`pmt_core.explain.lrp.explain`.
    layers : sequence of str, optional
        Attribute names of the layers to randomise, in order; default
        :func:`cascade_layers` of the model (:data:`CASCADE_LAYERS` for a
        ``PMTConvNet``).
    reference : Explanation or array, optional
        Trained model's explanation of ``features`` (n, paths, frames) for the
        same targets, to save one pass; computed when omitted.
    target : array-like of int, optional
        Classes to explain; default the trained model's predictions.
    **explain_kwargs
        Passed to ``explain_fn`` (e.g. ``batch_size``, ``device``).

    Returns
    -------
    RandomisationResult
    """
    explain_fn = explain_fn or _default_explain()
    work = copy.deepcopy(model).eval()
    layers = cascade_layers(work) if layers is None else tuple(layers)
    for name in layers:
        if not isinstance(getattr(work, name, None), nn.Module):
            raise ValueError(f"model has no layer {name!r}")
    if target is None:
        target = predicted_target(work, features)
    target = np.asarray(target, dtype=np.int64).ravel()
    if reference is None:
        reference = explain_fn(work, features, rule, target=target, **explain_kwargs)
    ref_target = getattr(reference, "target", None)
    if ref_target is not None and not np.array_equal(np.asarray(ref_target), target):
        raise ValueError("the reference explanation explains other targets")
    ref_maps = local_maps(_relevance(reference))
    if ref_maps.shape[0] != target.shape[0]:
        raise ValueError(f"reference has {ref_maps.shape[0]} maps for {target.shape[0]} inputs")

    signed, absolute = [], []
    for k, name in enumerate(layers):
        stage_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        reinitialise(getattr(work, name), stage_seed)
        maps = local_maps(
            _relevance(explain_fn(work, features, rule, target=target, **explain_kwargs))
        )
        signed.append(rowwise_spearman(maps, ref_maps))
        absolute.append(rowwise_spearman(np.abs(maps), np.abs(ref_maps)))
    return RandomisationResult(
        layers=tuple(layers),
        rank_correlation=np.array(signed).reshape(len(layers), -1),
        abs_rank_correlation=np.array(absolute).reshape(len(layers), -1),
        target=target,
        rule=rule,
    )
