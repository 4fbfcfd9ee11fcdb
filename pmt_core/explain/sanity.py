"""Model randomisation of explanations (Adebayo et al. 2018).

Cascading model-parameter randomisation ("Sanity checks for saliency maps",
NeurIPS): re-initialise the layers from the top down and watch the maps. Maps
that barely change explain the input, not the model. (Deletion curves, the other
sanity check, are in :mod:`pmt_core.explain.perturbation`; which layers are
re-drawn, and how, is :mod:`pmt_core.model.randomisation`.)

It works in the network's input domain, the log-compressed scattering features
(``pmt_core.features.compression``), and take the explanation method as a callable
``explain_fn(model, features, rule, target=...)`` returning an object with a
``relevance`` array (n, paths, frames), such as :func:`pmt_core.explain.lrp.explain`, or
that array itself; it defaults to :func:`pmt_core.explain.lrp.explain`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pmt_core.explain.relevance import local_maps, rowwise_spearman
from pmt_core.model.randomisation import cascade_layers, reinitialise

__all__ = ["RandomisationResult", "cascading_randomisation", "predicted_target"]

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
