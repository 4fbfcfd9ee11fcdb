"""Band occlusion: what the model uses, from interventions on its input, no explainer.

For each distinct modulation frequency lambda2 (a *band*: every S2 path with that
lambda2, across carriers), the band's compressed inputs are replaced by their
training mean (per path, constant over frames) and the drop of the explained
logit is recorded. The mean carries no information about the example, so the
drop is what the model loses when it can no longer see the example's modulation
at that rate: its own ground truth of use (Zeiler & Fergus 2014's occlusion,
applied to the scattering axes that carry the physics). The relevance claims
ask where an explanation lands; ``model.uses_rate`` asks this instead, and
``relevance.agreement_with_use`` whether an explanation shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pmt_core.features.scattering import PathTable


@dataclass(frozen=True)
class Bands:
    """The S2 bands of a path table.

    Attributes
    ----------
    hz : numpy.ndarray, (bands,)
        lambda2 of each band, ascending.
    members : list of numpy.ndarray
        Path indices of each band.
    """

    hz: np.ndarray
    members: list

    def profile(self, maps) -> np.ndarray:
        """Sum ``maps`` (examples, paths) over each band's paths: (examples, bands)."""
        maps = np.asarray(maps, dtype=np.float64)
        return np.stack([maps[:, idx].sum(axis=1) for idx in self.members], axis=1)

    def nearest(self, target_hz) -> np.ndarray:
        """(examples,) index of the band nearest each target in octaves; -1 if unknown."""
        target = np.asarray(target_hz, dtype=np.float64)
        known = np.isfinite(target) & (target > 0)
        distance = np.abs(np.log2(np.where(known, target, 1.0))[:, None]
                          - np.log2(self.hz)[None, :])
        return np.where(known, distance.argmin(axis=1), -1)

    def near(self, rate_hz, tol_octaves: float) -> np.ndarray:
        """(examples, bands) bool: the band lies within ``tol_octaves`` of the rate.

        An unknown rate (NaN or not positive) is near no band.
        """
        rate = np.asarray(rate_hz, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_rate = np.where(rate > 0, np.log2(np.where(rate > 0, rate, 1.0)), np.nan)
        distance = np.abs(log_rate[:, None] - np.log2(self.hz)[None, :])
        return np.nan_to_num(distance, nan=np.inf) <= tol_octaves + 1e-9


def s2_bands(paths: PathTable) -> Bands:
    """Group the second-order paths by their lambda2."""
    s2 = np.flatnonzero(np.asarray(paths.second_order))
    lam2 = np.asarray(paths.modulation_hz, dtype=np.float64)[s2]
    hz = np.unique(lam2)
    return Bands(hz, [s2[lam2 == f] for f in hz])


def band_occlusion_drops(model: torch.nn.Module, x, target, bands: Bands, fill,
                         batch_size: int = 256) -> np.ndarray:
    """Drop of the target logit when each band is replaced by its training mean.

    Parameters
    ----------
    model : torch.nn.Module
        The network (eval mode is set and restored).
    x : torch.Tensor, (examples, paths, frames)
        Compressed inputs.
    target : array-like of int, (examples,)
        The class whose logit is explained (the prediction, as for the maps).
    bands : Bands
    fill : array-like, (paths,)
        Per-path training mean of the compressed inputs.
    batch_size : int

    Returns
    -------
    numpy.ndarray, float64, (examples, bands)
        ``logit(x) - logit(x with the band at its mean)``: positive where the
        model loses evidence for the target.
    """
    from pmt_core.model.training import predict_logits

    x = torch.as_tensor(x)
    target = np.asarray(target, dtype=int)
    fill = torch.as_tensor(np.asarray(fill), dtype=x.dtype)
    rows = np.arange(len(target))
    base = predict_logits(model, x, batch_size=batch_size).astype(np.float64)[rows, target]
    drops = np.empty((len(target), len(bands.members)))
    for b, idx in enumerate(bands.members):
        occluded = x.clone()
        occluded[:, idx, :] = fill[idx][None, :, None]
        logits = predict_logits(model, occluded, batch_size=batch_size).astype(np.float64)
        drops[:, b] = base - logits[rows, target]
    return drops


def band_shares(values) -> np.ndarray:
    """Each band's value over the example's total absolute value (NaN where all are 0).

    For occlusion drops and for a map's band profile (:meth:`Bands.profile`) alike.
    """
    values = np.asarray(values, dtype=np.float64)
    total = np.abs(values).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, values / np.where(total > 0, total, 1.0), np.nan)


def rate_lift(shares, near, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share at each example's rate minus its expectation under within-class permutation.

    Parameters
    ----------
    shares : array-like, (examples, bands)
        A per-band score per example (occlusion shares, a map's band profile).
    near : array-like of bool, (examples, bands)
        :meth:`Bands.near` of each example's true rate.
    classes : array-like, (examples,)

    Returns
    -------
    lift, at_rate, expected : numpy.ndarray, (examples,)
        ``at_rate``: mean score over the bands near the example's rate (NaN when
        none is); ``expected``: the same with the rate of a uniformly drawn member
        of its class (itself included, as in
        :func:`pmt_core.explain.relevance.expected_permuted_hits`), so a score that
        knows only the class has lift 0. NaN for a class with fewer than two
        examples near a band (no permutation to compare with).
    """
    shares = np.asarray(shares, dtype=np.float64)
    near = np.asarray(near, dtype=bool)
    classes = np.asarray(classes)
    counts = near.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_rate = np.where(counts > 0, (shares * near).sum(axis=1) / counts, np.nan)
    expected = np.full(len(classes), np.nan)
    for c in np.unique(classes):
        members = np.flatnonzero((classes == c) & (counts > 0))
        if members.size < 2:
            continue  # one rate: nothing to permute, the lift would be 0 by construction
        # (i, j): example i's score averaged over the bands near member j's rate
        weights = near[members].astype(float) / counts[members][:, None]
        expected[members] = (shares[members] @ weights.T).mean(axis=1)
    return at_rate - expected, at_rate, expected

