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
has them (coverage and accuracy per technique). Its error distribution, measured
so (:func:`error_table`, kept in :data:`ERROR_TABLE`), tells the rate claims how
much an estimate's error alone lowers their figures (:func:`attenuation`).
"""

from __future__ import annotations

import json
from pathlib import Path

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


# ------------------------------------------------------- the estimator's error --
#: Where the estimator's error distribution is kept (written by
#: ``python -m pmt_core rates errors``; its provenance is inside).
ERROR_TABLE = Path(__file__).with_name("rate_errors.json")
#: Probabilities at which the error table holds its quantiles (1 % steps: the
#: octave errors of bisbigliando, ~8 % of its confident estimates, stay a step).
ERROR_PROBABILITIES = np.linspace(0.0, 1.0, 101)


def error_table(rates: pd.DataFrame, provenance: dict) -> dict:
    """Measure the estimator's error per technique where the true rates are known.

    Parameters
    ----------
    rates : pandas.DataFrame
        A run's ``rates.csv``: ``technique``, ``modulation_rate_hz`` (recorded),
        ``rate_estimate_hz`` and ``rate_confident``.
    provenance : dict
        Where the rates come from (commit, profile, seed, data), stored with them.

    Returns
    -------
    dict
        ``provenance``, ``probabilities`` and, per technique, the quantiles of the
        signed error ``log2(estimate / true rate)`` of the confident estimates
        (``quantiles``) and their count (``n``).

    Raises
    ------
    ValueError
        If the frame lacks a column, or no technique has a confident estimate of a
        recorded rate.
    """
    missing = sorted({"technique", "modulation_rate_hz", "rate_estimate_hz",
                      "rate_confident"} - set(rates.columns))
    if missing:
        raise ValueError(f"the rates table lacks {missing}: write it with a run on data that "
                         "record their modulation rates")
    true = rates["modulation_rate_hz"].to_numpy(dtype=float)
    est = rates["rate_estimate_hz"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        usable = (rates["rate_confident"].astype(bool).to_numpy() & np.isfinite(true)
                  & (true > 0) & np.isfinite(est) & (est > 0))
    quantiles, counts = {}, {}
    for technique in sorted(set(rates["technique"][usable])):
        rows = usable & (rates["technique"] == technique).to_numpy()
        error = np.log2(est[rows] / true[rows])
        quantiles[technique] = [round(float(q), 4)
                                for q in np.quantile(error, ERROR_PROBABILITIES)]
        counts[technique] = int(rows.sum())
    if not quantiles:
        raise ValueError("no confident estimate of a recorded rate: nothing to measure")
    return {"provenance": provenance,
            "probabilities": [round(float(p), 4) for p in ERROR_PROBABILITIES],
            "quantiles": quantiles, "n": counts}


def format_error_table(table: dict) -> str:
    """JSON text of an error table, one line per technique's quantiles (diffs stay readable)."""
    lines = ["{", f' "provenance": {json.dumps(table["provenance"])},',
             f' "probabilities": {json.dumps(table["probabilities"])},',
             f' "n": {json.dumps(table["n"])},', ' "quantiles": {']
    items = list(table["quantiles"].items())
    for k, (technique, quantiles) in enumerate(items):
        comma = "," if k < len(items) - 1 else ""
        lines.append(f"  {json.dumps(technique)}: {json.dumps(quantiles)}{comma}")
    return "\n".join([*lines, " }", "}"]) + "\n"


def load_error_table(path: Path | str = ERROR_TABLE) -> dict:
    """Read the error table (:func:`error_table`'s form)."""
    return json.loads(Path(path).read_text())


def draw_errors(techniques, rng: np.random.Generator, table: dict | None = None) -> np.ndarray:
    """Draw one estimator error (octaves, signed) per clip from its technique's table.

    Inverse-CDF sampling of the measured quantiles (linear between them).

    Raises
    ------
    ValueError
        For a technique the table has not measured.
    """
    table = table or load_error_table()
    techniques = np.asarray(techniques, dtype=object)
    unknown = sorted(set(techniques) - set(table["quantiles"]))
    if unknown:
        raise ValueError(f"the estimator's error was not measured for {unknown} "
                         f"(measured: {sorted(table['quantiles'])})")
    u = rng.random(techniques.size)
    out = np.empty(techniques.size)
    for technique, quantiles in table["quantiles"].items():
        rows = techniques == technique
        out[rows] = np.interp(u[rows], table["probabilities"], quantiles)
    return out


def attenuation(score, rates, techniques, seed: int, draws: int = 200,
                table: dict | None = None) -> tuple[float, float]:
    """How much the estimator's error shrinks a figure that the exact rates would give.

    A planted map knows each example's true rate exactly; the claim sees only the
    estimate. Taking the rates at hand as the truth, each draw moves every rate by
    an error drawn from its technique's measured distribution and scores the map
    against the moved rates.

    Parameters
    ----------
    score : callable
        ``told_rates -> float``: the figure of a map planted at ``rates`` when the
        claim is told ``told_rates`` (finite where ``rates`` is).
    rates : numpy.ndarray
        The rates at hand (Hz; NaN: not scored).
    techniques : sequence of str
        Each example's technique.
    seed : int
    draws : int
    table : dict, optional
        Default: :data:`ERROR_TABLE`.

    Returns
    -------
    (factor, mc_se)
        Mean figure over the draws divided by the exact figure, clipped to [0, 1]
        (1 when the exact figure is not positive: nothing to shrink), and the Monte
        Carlo standard error of that ratio.
    """
    rates = np.asarray(rates, dtype=float)
    exact = float(score(rates))
    if not np.isfinite(exact) or exact <= 0:
        return 1.0, 0.0
    rng = np.random.default_rng([seed, 29])
    table = table or load_error_table()  # read once, not once per draw
    known = np.isfinite(rates)
    known_techniques = np.asarray(techniques, dtype=object)[known]
    moved = []
    for _ in range(draws):
        told = rates.copy()
        told[known] = rates[known] * np.exp2(draw_errors(known_techniques, rng, table))
        moved.append(float(score(told)))
    ratio = np.asarray(moved) / exact
    return (float(np.clip(ratio.mean(), 0.0, 1.0)),
            float(ratio.std(ddof=1) / np.sqrt(draws)))


def attenuation_note(factor: float, se: float, bound_name: str, bar: float) -> str:
    """Return the sentence a rate claim adds to its detail when its rejection bar is lowered."""
    return (f" The estimator's error, measured where rates are known ({ERROR_TABLE.name}, "
            f"per technique), keeps {factor:.2f} of the figure of a model or map at the true "
            f"rates on these examples (Monte Carlo se {se:.3f}); '{bound_name}' therefore "
            f"does not hold only below {bar * factor:.3g}, and holds only above {bar:g}.")
