"""The data set's parameters: one manifest row per example, and ablated twins.

:func:`synthetic_manifest` draws every example's technique, instrument, pitch,
modulation and nuisance (stratified rates, every nuisance from one
distribution for all classes); :func:`ablated_twin` switches a row's
modulation off and keeps everything else, seed included. Rendering a row is
:func:`pmt_core.data.synth.render.synthesize`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pmt_core.data.synth.instruments import families_for, instruments_for
from pmt_core.data.synth.modulators import TECHNIQUE_SPECS, rate_curve
from pmt_core.data.synth.params import (
    DECAY_FACTOR_OCT,
    DISTRACTOR_DEPTH,
    DISTRACTOR_KIND,
    DISTRACTOR_RATE_HZ,
    DOUBLING_DB_RANGE,
    DOUBLING_DETUNE_CENTS,
    DOUBLING_PROBABILITY,
    DYNAMICS,
    FLOOR_DB_RANGE,
    LEVEL_DRIFT_DB_RANGE,
    MODULATION_COLUMNS,
    MUTE_PROBABILITY,
    NOISE_DB_RANGE,
    RATE_RANGE_HZ,
    TILT_RANGE_DB_PER_OCT,
    WANDER_CENTS_RANGE,
)
from pmt_core.techniques import TECHNIQUES


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def synthetic_manifest(
    class_sizes: Mapping[str, int], seed: int = 0, transition_fraction: float = 0.0
) -> pd.DataFrame:
    """Draw the parameters of a synthetic data set, one row per example.

    Parameters
    ----------
    class_sizes : mapping of str to int
        Number of examples per technique (any subset of the five techniques).
    seed : int
        Seed of the whole manifest (parameters and per-example seeds).
    transition_fraction : float
        Fraction of the examples (drawn at random, every class alike) whose
        technique starts part-way through the note after an ordinario segment.
        0 (the default): none.

    Returns
    -------
    pandas.DataFrame
        One row per example, in shuffled order. Columns: ``path`` (empty:
        synthetic), ``example_id`` (row number), ``technique``, ``instrument``,
        ``family``, ``f0_hz``; the modulation: ``modulation_rate_hz`` (realised
        mean rate), ``modulation_rate_min_hz``, ``modulation_rate_max_hz`` and
        ``modulation_drift_oct`` (the jitter-free rate curve),
        ``modulation_depth``, ``transition_s`` (technique start after the onset,
        NaN: with the note); the distractor: ``distractor_kind`` ("brightness"),
        ``distractor_rate_hz``, ``distractor_depth`` (fraction of the upper partials),
        ``level_drift_db``; the nuisance: ``dynamics``, ``mute``, ``mute_type``,
        ``onset_s``, ``duration_s``, ``noise_db``, ``tilt_db_per_oct``,
        ``decay_s`` (NaN unless plucked), ``doubled``,
        ``doubling_detune_cents`` and ``doubling_db`` (NaN unless doubled);
        ``ablated`` (False) and ``twin_of`` (-1; see :func:`ablated_twin`);
        ``seed``. No split (:func:`pmt_core.data.split.assign_split` makes one).
        ``attrs["source"] == "synthetic"``.
    """
    if not 0.0 <= transition_fraction <= 1.0:
        raise ValueError(f"transition_fraction must lie in [0, 1], got {transition_fraction}")
    rng = np.random.default_rng(seed)
    dynamics = list(DYNAMICS)
    rows = []
    for technique in TECHNIQUES:  # canonical order: the manifest does not depend on dict order
        n = int(class_sizes.get(technique, 0))
        if n <= 0:
            continue
        spec = TECHNIQUE_SPECS[technique]
        families = families_for(technique)
        # Mean rates log-uniform over the class's range, stratified (one draw per
        # 1/n of the log range, in random order): even a class of 45 covers its
        # two octaves evenly, so no lambda2 catches more of it by chance.
        lo, hi = RATE_RANGE_HZ[technique]
        position = (rng.permutation(n) + rng.random(n)) / n
        for rate in lo * (hi / lo) ** position:
            rows.append(_draw_row(rng, technique, spec, families, dynamics, transition_fraction,
                                  float(rate)))
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        df.insert(1, "example_id", np.arange(len(df), dtype=np.int64))
    df.attrs["source"] = "synthetic"  # split by pmt_core.data.split.assign_split
    return df


def _draw_row(rng, technique, spec, families, dynamics, transition_fraction, rate) -> dict:
    """One manifest row.

    Every parameter is drawn for every row, used or not (a transition time without
    a transition, a decay for a wind): switching transitions on changes
    ``transition_s`` only, and the rows of one class do not shift another's draws
    differently from a row of any other class.
    """
    family = families[rng.integers(len(families))]
    candidates = [ins for ins in instruments_for(technique) if ins.family == family]
    ins = candidates[rng.integers(len(candidates))]
    lo, hi = ins.f0_range_hz
    f0 = _log_uniform(rng, lo, hi)
    drift = float(rng.uniform(-spec.drift_max_oct, spec.drift_max_oct))
    start_rate, end_rate = rate_curve(rate, drift)
    depth_draw = rng.uniform(*spec.depth_range)
    interval = float(100.0 * rng.integers(1, 3))  # trill: semitone or tone
    depth = interval if technique == "trill" else float(depth_draw)
    muted = bool(rng.random() < MUTE_PROBABILITY) and bool(ins.mutes)
    mute_draw = rng.random()
    mute_type = ins.mutes[int(mute_draw * len(ins.mutes))] if ins.mutes else ""
    onset = float(rng.uniform(0.0, 0.3))  # SOL notes start near the file start
    duration = float(rng.uniform(2.5, 5.5))  # ... and last most of it
    with_transition = bool(rng.random() < transition_fraction)
    transition = float(rng.uniform(0.4, 0.5 * duration))  # the technique lasts >= half the note
    # One uniform draw is kept from the former AM-or-FM choice, so that a seed draws
    # every other parameter as before and data sets differ in the distractor only.
    rng.random()
    distractor_rate = _log_uniform(rng, *DISTRACTOR_RATE_HZ)
    distractor_depth = _log_uniform(rng, *DISTRACTOR_DEPTH)
    decay_factor = 2.0 ** rng.uniform(-DECAY_FACTOR_OCT, DECAY_FACTOR_OCT)  # drawn for every row
    decay = ins.decay_s * decay_factor if ins.plucked else np.nan
    doubled = bool(rng.random() < DOUBLING_PROBABILITY)
    detune = rng.choice((-1.0, 1.0)) * rng.uniform(*DOUBLING_DETUNE_CENTS)
    doubling_db = rng.uniform(*DOUBLING_DB_RANGE)
    return {
        "path": "",
        "technique": technique,
        "instrument": ins.name,
        "family": ins.family,
        "f0_hz": f0,
        "modulation_rate_hz": rate,
        "modulation_rate_min_hz": min(start_rate, end_rate),
        "modulation_rate_max_hz": max(start_rate, end_rate),
        "modulation_drift_oct": drift,
        "modulation_depth": depth,
        "transition_s": transition if with_transition else np.nan,
        "distractor_kind": DISTRACTOR_KIND,
        "distractor_rate_hz": distractor_rate,
        "distractor_depth": distractor_depth,
        "level_drift_db": float(rng.uniform(*LEVEL_DRIFT_DB_RANGE)),
        "dynamics": dynamics[rng.integers(len(dynamics))],
        "mute": muted,
        "mute_type": mute_type if muted else "",
        "onset_s": onset,
        "duration_s": duration,
        "noise_db": float(rng.uniform(*NOISE_DB_RANGE)),
        "floor_db": float(rng.uniform(*FLOOR_DB_RANGE)),
        "tilt_db_per_oct": float(rng.uniform(*TILT_RANGE_DB_PER_OCT)),
        "pitch_wander_cents": _log_uniform(rng, *WANDER_CENTS_RANGE),
        "decay_s": float(decay),
        "doubled": doubled,
        "doubling_detune_cents": float(detune) if doubled else np.nan,
        "doubling_db": float(doubling_db) if doubled else np.nan,
        "ablated": False,
        "twin_of": -1,
        "seed": int(rng.integers(2**31 - 1)),
    }


def ablated_twin(row) -> pd.Series:
    """Return the modulation-ablated twin of a manifest row.

    The twin keeps every other column, the ``seed`` included, so it renders the
    same instrument, pitch, dynamics, noise, distractor, level drift, doubling and
    seed-derived randomness as its source, with the technique's modulation off
    (:attr:`~pmt_core.data.synth.modulators.TechniqueSpec.ablated`; the docstring
    of :mod:`pmt_core.data.synth`). Its ``technique`` stays the source's: a model
    at chance on twins predicts it no better than chance.

    Parameters
    ----------
    row : pandas.Series or mapping
        A row of :func:`synthetic_manifest` (a twin gives an equal twin).

    Returns
    -------
    pandas.Series
        The row with ``ablated = True``, ``twin_of`` = the source's
        ``example_id`` (its index label when it has none) and the
        :data:`~pmt_core.data.synth.params.MODULATION_COLUMNS` set to NaN.
    """
    source = pd.Series(row)
    twin = source.copy()
    if not bool(source.get("ablated", False)):
        twin["twin_of"] = int(source["example_id"]) if "example_id" in source else source.name
    twin["ablated"] = True
    for column in MODULATION_COLUMNS:
        twin[column] = np.nan
    return twin


def ablated_twins(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the ablated twin of every row of a manifest (same order and index)."""
    twins = pd.DataFrame([ablated_twin(row) for _, row in frame.iterrows()], index=frame.index)
    twins = twins.astype({c: frame[c].dtype for c in frame.columns
                          if c not in MODULATION_COLUMNS + ("ablated", "twin_of")})
    twins = twins.astype({c: np.float64 for c in MODULATION_COLUMNS if c in twins})
    twins["ablated"] = twins["ablated"].astype(bool)
    twins["twin_of"] = twins["twin_of"].astype(np.int64)
    twins.attrs = dict(frame.attrs)
    return twins
