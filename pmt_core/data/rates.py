"""Each clip's modulation rate measured from its audio, for data that record none.

The rate claims ask where relevance sits relative to each example's modulation
rate. The synthetic data record it; real recordings (the authors' SOL-PMT, a
user's folder) do not. This module estimates it from the signal alone, without
the scattering coefficients the network sees (otherwise the energy null would
localise the estimate by construction), from the tracks that
:mod:`pmt_core.data.descriptors` computes once per clip in the feature stage:

- ``pitch``: the instantaneous frequency of one isolated harmonic, for the
  techniques that modulate frequency (vibrato, trill);
- ``amplitude``: the power of that harmonic, for those that modulate amplitude
  (tremolo, bisbigliando, flatterzunge). A timbral pulsing of the upper partials
  (the synthetic distractor, a brightness change) leaves it alone.

The cue follows the technique's mechanism
(:data:`pmt_core.data.synth.RATE_DESCRIPTOR`), so a labelled data set is enough.
Each track's rate is the fundamental of its periodicity in 2-64 Hz
(:func:`pmt_core.data.descriptors._dominant_rate`) with a salience (power at the
rate over the band's median power). The estimator abstains when

- the salience is below :data:`MIN_SALIENCE`: what a track of white noise
  reaches once in a thousand (simulated, ``tests/test_rates.py``), so a weak or
  absent periodicity is not reported as a rate;
- the rate lies more than :data:`BAND_MARGIN_OCTAVES` outside the technique's
  published band (:data:`pmt_core.techniques.MODULATION_BAND_HZ`): players go past
  the textbook bands, but not by an octave, while the slow wander of a breath or
  a bow (2-4 Hz) is what a tracker reports when the modulation is irregular.

What the estimator gets right is measured, not assumed: the claim
``data.rate_estimate`` checks it against the recorded rates wherever a data set
has them (coverage and accuracy per technique).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pmt_core.data.synth import RATE_DESCRIPTOR
from pmt_core.techniques import MODULATION_BAND_HZ

#: A track's periodicity counts when its salience reaches this. White-noise tracks
#: of 1-4 s at the descriptors' 1 kHz control rate, detrended as the real ones,
#: reach 14-17 in 1 % and 18-20 in 0.1 % of draws (tests/test_rates.py simulates it).
MIN_SALIENCE = 20.0
#: An estimate may lie this far (octaves) outside its technique's published band.
BAND_MARGIN_OCTAVES = 1.0

#: The cue's name for each descriptor the estimator reads.
CUE_OF_DESCRIPTOR = {"pitch_rate_hz": "pitch", "partial_envelope_rate_hz": "amplitude"}

#: How a claim's detail begins to say that its rates are estimates (the scoreboard
#: repeats it beside the statement).
ESTIMATED_NOTE = "Rates estimated from the audio"


def estimate_rates(descriptors: pd.DataFrame, techniques) -> pd.DataFrame:
    """Estimate every clip's modulation rate from its descriptors.

    Parameters
    ----------
    descriptors : pandas.DataFrame
        One row per clip, with the columns of :data:`RATE_DESCRIPTOR`'s values and
        their ``*_salience`` (:func:`pmt_core.data.descriptors.describe`).
    techniques : sequence of str
        Each clip's technique (one of :data:`pmt_core.techniques.TECHNIQUES`).

    Returns
    -------
    pandas.DataFrame
        Same index as ``descriptors``; ``rate_estimate_hz`` (the cue's rate, 0 when
        the track had none), ``rate_salience``, ``rate_cue`` (``pitch`` or
        ``amplitude``), ``rate_confident`` (bool) and ``rate_abstained`` (why not:
        ``""``, ``"no periodicity"``, ``"weak periodicity"`` or
        ``"outside the technique's band"``).
    """
    techniques = np.asarray(techniques, dtype=object)
    if len(techniques) != len(descriptors):
        raise ValueError(f"{len(techniques)} techniques for {len(descriptors)} clips")
    unknown = sorted(set(techniques) - set(RATE_DESCRIPTOR))
    if unknown:
        raise ValueError(f"no rate cue for technique(s) {unknown}; "
                         f"known: {sorted(RATE_DESCRIPTOR)}")
    missing = sorted({c for d in RATE_DESCRIPTOR.values()
                      for c in (d, salience_column(d))} - set(descriptors.columns))
    if missing:
        raise ValueError(f"descriptors lack {missing}")

    n = len(descriptors)
    rate, salience = np.zeros(n), np.zeros(n)
    cue = np.empty(n, dtype=object)
    low, high = np.zeros(n), np.zeros(n)
    for technique, column in RATE_DESCRIPTOR.items():
        rows = techniques == technique
        rate[rows] = descriptors[column].to_numpy(dtype=float)[rows]
        salience[rows] = descriptors[salience_column(column)].to_numpy(dtype=float)[rows]
        cue[rows] = CUE_OF_DESCRIPTOR[column]
        band = MODULATION_BAND_HZ[technique]
        low[rows] = band[0] * 2.0**-BAND_MARGIN_OCTAVES
        high[rows] = band[1] * 2.0**BAND_MARGIN_OCTAVES
    rate = np.where(np.isfinite(rate), rate, 0.0)
    salience = np.where(np.isfinite(salience), salience, 0.0)

    why = np.full(n, "", dtype=object)
    why[(rate < low) | (rate > high)] = "outside the technique's band"
    why[salience < MIN_SALIENCE] = "weak periodicity"
    why[rate <= 0] = "no periodicity"
    return pd.DataFrame({
        "rate_estimate_hz": rate,
        "rate_salience": salience,
        "rate_cue": cue,
        "rate_confident": why == "",
        "rate_abstained": why,
    }, index=descriptors.index)


def salience_column(descriptor: str) -> str:
    """Return the salience column of a rate descriptor (``pitch_rate_hz`` -> ``..._salience``)."""
    return descriptor.removesuffix("_hz") + "_salience"
