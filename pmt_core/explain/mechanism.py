"""Two models, two known mechanisms, the same inputs: a test no model-free map can pass.

Model A is the trained network: it reads the technique's modulation. Model B is
trained on the same compressed inputs carrying a *tag*, an offset on every path
of one lambda2 band chosen per class, an octave and more above every technique's
rate band, while its labels are drawn at random, independently of the technique:
the tag is its only cue, and its mechanism is known by construction. On test
inputs that carry both cues (the technique's modulation and the tag of the same
class), a faithful explainer puts more of model A's relevance at the technique's
rate than model B's, and more of model B's at the tag than model A's. A map that
ignores the model (the input, its energy, a class profile) is the same for both
and scores 0 by construction of the test, not of a bar.

The tag lives in the representation the network reads rather than in the audio:
its mechanism is then exact (one band, known), it costs no scattering, and it
cannot leak into other bands through the transform.
"""

from __future__ import annotations

import numpy as np
import torch

from pmt_core.explain.occlusion import Bands
from pmt_core.techniques import MODULATION_BAND_HZ

#: The tag sits on bands at least this many octaves above every technique's band.
TAG_OCTAVES_ABOVE = 1.0
#: Tag size, in training standard deviations of each tagged path.
TAG_SD = 3.0


def tag_bands(bands: Bands, n_classes: int) -> np.ndarray | None:
    """Band index of each class's tag: the lowest bands far enough above the techniques.

    Returns None when there are fewer such bands than classes.
    """
    floor = max(hi for _, hi in MODULATION_BAND_HZ.values()) * 2**TAG_OCTAVES_ABOVE
    free = np.flatnonzero(bands.hz >= floor)
    if free.size < n_classes:
        return None
    return free[:n_classes]


def add_tag(x: torch.Tensor, labels, bands: Bands, tags: np.ndarray, input_std) -> torch.Tensor:
    """Return a copy of ``x`` (examples, paths, frames) with each example's class tag.

    The tag adds ``TAG_SD`` training standard deviations to every path of the
    band ``tags[label]``, in every frame.
    """
    out = x.clone()
    std = torch.as_tensor(np.asarray(input_std), dtype=x.dtype)
    for k, band in enumerate(tags):
        rows = torch.as_tensor(np.flatnonzero(np.asarray(labels) == k))
        if rows.numel() == 0:
            continue
        idx = torch.as_tensor(bands.members[band])
        out[rows[:, None], idx[None, :], :] += TAG_SD * std[idx][None, :, None]
    return out


def mechanism_contrast(shares_a, shares_b, near_rate, tag_band) -> np.ndarray:
    """Per example: how much better each model's map shows its own mechanism.

    ``(a at the rate - b at the rate) + (b at the tag - a at the tag)``, where
    "at the rate" is the mean share of the bands near the example's rate.

    Parameters
    ----------
    shares_a, shares_b : array-like, (examples, bands)
        Band shares (:func:`pmt_core.explain.occlusion.band_shares`) of model A's and
        model B's maps of the same inputs.
    near_rate : array-like of bool, (examples, bands)
    tag_band : array-like of int, (examples,)
        The tag's band of each example.

    Returns
    -------
    numpy.ndarray, (examples,)
        NaN where the rate is near no band. Identical maps give exactly 0; a map
        at each model's own mechanism gives about 2.
    """
    a = np.asarray(shares_a, dtype=np.float64)
    b = np.asarray(shares_b, dtype=np.float64)
    near = np.asarray(near_rate, dtype=bool)
    rows = np.arange(len(a))
    counts = near.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        at_rate = ((a - b) * near).sum(axis=1) / np.where(counts > 0, counts, np.nan)
    tag = np.asarray(tag_band, dtype=int)
    return at_rate + (b[rows, tag] - a[rows, tag])
