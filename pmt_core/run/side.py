"""The side inputs of the claims: AM/FM test tones and modulation-ablated twins.

Neither is on the path data -> models -> explanations: the theory claims read
the tones' scattering, the shortcut and occlusion claims the twins.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pmt_core.features.scattering import PathTable

__all__ = ["TheoryStage", "TwinStage", "compute_theory", "compute_twin_descriptors",
           "compute_twins", "twin_frame"]


@dataclass
class TheoryStage:
    """Time-averaged scattering (tones x paths) of the AM and FM test tones.

    Attributes
    ----------
    design : pmt_core.features.theory.ToneDesign
    am, fm : numpy.ndarray, (n, paths)
    outside : numpy.ndarray, (paths,)
        The documented out-of-domain AM case.
    paths : PathTable
    """

    design: object
    am: np.ndarray
    fm: np.ndarray
    outside: np.ndarray
    paths: PathTable


@dataclass
class TwinStage:
    """The test clips' modulation-ablated twins.

    Attributes
    ----------
    frame : pandas.DataFrame
        The twins' manifest rows (``technique`` is the source's).
    descriptors : pandas.DataFrame
    labels : numpy.ndarray of int
        The source's class.
    predictions : numpy.ndarray of int, (replicates, n)
        Each S1+S2 replicate's prediction on each twin.
    inputs : torch.Tensor or None, (n, paths, frames)
        The twins' compressed S1+S2 inputs (band occlusion reuses them).
    """

    frame: pd.DataFrame
    descriptors: pd.DataFrame
    labels: np.ndarray
    predictions: np.ndarray
    inputs: torch.Tensor | None = None


def compute_theory(run) -> TheoryStage:
    """Time-averaged scattering of the AM/FM test tones (through the cache)."""
    from pmt_core.features import theory
    from pmt_core.features.extraction import scatter_cached

    cfg = run.scattering_config
    with run.timed("theory_tones"):
        from pmt_core.features.scattering import path_table

        design = theory.tone_design(run.profile.theory_cases, run.settings.seed,
                                    path_table(cfg))
        n = len(design)
        cases = list(zip(design.carrier_hz, design.modulation_hz, design.depth,
                         design.deviation_hz, strict=True))
        signals = [theory.am_tone(a, b, m, cfg) for a, b, m, _ in cases]
        signals += [theory.fm_tone(a, b, d, cfg) for a, b, _, d in cases]
        identities = ([{"am_tone": [a, b, m]} for a, b, m, _ in cases]
                      + [{"fm_tone": [a, b, d]} for a, b, _, d in cases])
        outside = theory.OUTSIDE_DOMAIN_CASE
        signals.append(theory.am_tone(*outside, cfg))
        identities.append({"am_tone": list(outside)})
        result = scatter_cached(np.stack(signals), identities, cfg, run.device, run.cache)
        averaged = result.time_averaged()
    return TheoryStage(design, averaged[:n], averaged[n:2 * n], averaged[2 * n],
                       result.paths)


def twin_frame(run) -> pd.DataFrame | None:
    """Manifest rows of the test clips' twins (None for data without twins)."""
    if run.data.source != "synthetic":
        return None
    from pmt_core.data.synth import ablated_twins

    return ablated_twins(run.data.frame.iloc[run.data.index("test")]).reset_index(drop=True)


def compute_twins(run) -> TwinStage | None:
    """Modulation-ablated twins of the test clips, scattered, compressed, predicted.

    Synthetic data only (None otherwise): each twin keeps its source's nuisance
    (instrument, pitch, noise, distractor, seed) with the technique's modulation
    switched off (:func:`pmt_core.data.synth.ablated_twin`).
    """
    frame = run.twin_frame()
    if frame is None:
        return None
    from pmt_core.features.extraction import extract_features
    from pmt_core.model.training import predict_logits

    _ = run.compression, run.models  # stages of their own, timed apart
    with run.timed("twins"):
        stage = extract_features(frame, run.scattering_config, run.device,
                                 cache=run.cache, progress=run.progress)
        compressed = torch.from_numpy(run.compression.compression.transform(
            stage.result.values))
        with run.arithmetic():
            preds = [predict_logits(m.model, compressed, device=run.device).argmax(1)
                     for m in run.models.replicates["s1s2"]]
    labels = np.array([run.data.class_names.index(t) for t in frame["technique"]])
    return TwinStage(frame, stage.descriptors, labels, np.stack(preds), compressed)


def compute_twin_descriptors(run) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Twins of every example and their descriptors (no scattering): the guard's data.

    The shortcut guard only needs descriptors, so every row's twin is
    synthesised and described (threads: both release the GIL in numpy), and
    the guard's figure rests on the whole data set, not the test split alone.
    None for data without twins (recordings).
    """
    if run.data.source != "synthetic":
        return None
    from concurrent.futures import ThreadPoolExecutor

    from pmt_core.data.descriptors import describe
    from pmt_core.data.sources import example_audio, example_identity
    from pmt_core.data.synth import ablated_twins
    from pmt_core.run.inputs import FEATURE_MODULES

    frame = ablated_twins(run.data.frame).reset_index(drop=True)
    cfg = run.scattering_config

    def one(row):
        return describe(example_audio(row, cfg.sample_rate, cfg.n_samples), cfg.sample_rate)

    def compute():
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        with ThreadPoolExecutor(workers) as pool:
            table = pd.DataFrame(list(pool.map(one, (row for _, row in frame.iterrows()))))
        return {"columns": np.array(table.columns, dtype=str),
                **{f"column {k}": table[c].to_numpy() for k, c in enumerate(table.columns)}}

    identities = [example_identity(row) for _, row in frame.iterrows()]
    with run.timed("twin_descriptors"):
        # synthesis and description only: the feature modules are their code
        stored = run.stored("twin descriptors", FEATURE_MODULES,
                            (identities, [cfg.sample_rate, cfg.n_samples]), compute)
    columns = [str(c) for c in stored["columns"]]
    return frame, pd.DataFrame({c: stored[f"column {k}"] for k, c in enumerate(columns)},
                               columns=columns)
