"""The data stage (the data set with its split) and the rates stage.

:func:`load_data` and :func:`rate_stage` are plain functions of their inputs;
:func:`compute_data` and :func:`compute_rates` are the :class:`~pmt_core.run.Run`
stages built on them (what they write to the report folder included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pmt_core.data.split import SUBSETS, assign_split, write_split_csv
from pmt_core.infra.atomic import atomic_path
from pmt_core.profiles import Profile
from pmt_core.run.settings import RATES_CSV
from pmt_core.techniques import present_techniques

__all__ = ["DataStage", "RateStage", "compute_data", "compute_rates", "load_data",
           "rate_stage"]


@dataclass
class DataStage:
    """The data set with its split.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per example, ``subset`` filled (:func:`~pmt_core.data.split.assign_split`).
    class_names : tuple of str
        The techniques present, in the authors' label order.
    labels : numpy.ndarray of int
        Index into ``class_names`` of every row.
    source : str
        ``synthetic``, ``manifest``, ``authors_csv`` or ``sol_tree``.
    path : str or None
        The data set's location (None for synthetic data).
    """

    frame: pd.DataFrame
    class_names: tuple[str, ...]
    labels: np.ndarray
    source: str
    path: str | None

    def index(self, subset: str) -> np.ndarray:
        """Positions (0-based) of the rows of one subset."""
        if subset not in SUBSETS:
            raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS}")
        return np.flatnonzero(self.frame["subset"].to_numpy() == subset)

    def column(self, name: str, subset: str | None = None) -> np.ndarray | None:
        """Return a float column (all rows, or one subset); None when the data lack it."""
        if name not in self.frame:
            return None
        values = pd.to_numeric(self.frame[name], errors="coerce").to_numpy(dtype=float)
        return values if subset is None else values[self.index(subset)]

    def summary(self) -> dict:
        """Return what the report shows of the data set."""
        return {
            "source": self.source,
            "path": self.path,
            "n_examples": len(self.frame),
            "per_class": self.frame["technique"].value_counts().to_dict(),
            "per_split": self.frame["subset"].value_counts().to_dict(),
            "n_ignored": self.frame.attrs.get("n_ignored"),
        }


def load_data(dataset: str, profile: Profile, seed: int,
              frame: pd.DataFrame | None = None) -> DataStage:
    """Load (or synthesise the manifest of) a data set and split it with ``seed``.

    Parameters
    ----------
    dataset : str
        ``"synthetic"`` (drawn with :func:`pmt_core.data.synth.synthetic_manifest`
        at the profile's class sizes) or a path for
        :func:`pmt_core.data.datasets.load_dataset`.
    profile : Profile
    seed : int
    frame : pandas.DataFrame, optional
        ``load_dataset(dataset)``, where the caller has it already (not reloaded).
    """
    if dataset == "synthetic":
        from pmt_core.data.synth import synthetic_manifest

        frame, path = synthetic_manifest(profile.class_sizes, seed=seed), None
    else:
        from pmt_core.data.datasets import load_dataset

        frame = load_dataset(dataset) if frame is None else frame
        path = frame.attrs.get("path", str(Path(dataset).resolve()))
    frame = assign_split(frame, seed)
    class_names = present_techniques(frame["technique"])
    labels = np.array([class_names.index(t) for t in frame["technique"]], dtype=np.int64)
    return DataStage(frame, class_names, labels, frame.attrs.get("source", dataset), path)


# ------------------------------------------------------------------- rates --
@dataclass
class RateStage:
    """The modulation rate of every example that the rate claims use.

    Attributes
    ----------
    rates : numpy.ndarray
        (examples,) Hz; NaN where unknown: the recorded rate where the data set
        records any, else the confident estimate from the audio.
    source : {"recorded", "estimated"}
    estimates : pandas.DataFrame
        :func:`pmt_core.data.rates.estimate_rates` of every example, also where the
        data record rates (``data.rate_estimate`` checks it against them).
    index : callable
        Positions of a subset (:meth:`DataStage.index`).
    """

    rates: np.ndarray
    source: str
    estimates: pd.DataFrame
    index: object

    def of(self, subset: str) -> np.ndarray:
        """Return the rates of one subset."""
        return self.rates[self.index(subset)]

    def note(self, subset: str = "test") -> str:
        """Return a sentence for a claim's detail when the rates are estimated, else ``""``."""
        from pmt_core.data.rates import ESTIMATED_NOTE

        if self.source != "estimated":
            return ""
        used = int(np.isfinite(self.of(subset)).sum())
        return (f" {ESTIMATED_NOTE} (pmt_core.data.rates; the data record "
                f"none): {used} of {len(self.index(subset))} {subset} examples have a "
                "confident estimate, the others are left out.")


def rate_stage(data: DataStage, descriptors: pd.DataFrame) -> RateStage:
    """Use the recorded rates where the data have any, else the confident estimates."""
    from pmt_core.data.rates import estimate_rates

    estimates = estimate_rates(descriptors.reset_index(drop=True), data.frame["technique"])
    recorded = data.column("modulation_rate_hz")
    if recorded is not None and np.any(np.isfinite(recorded) & (recorded > 0)):
        return RateStage(recorded, "recorded", estimates, data.index)
    rates = np.where(estimates["rate_confident"], estimates["rate_estimate_hz"], np.nan)
    return RateStage(rates.astype(float), "estimated", estimates, data.index)


def compute_data(run) -> DataStage:
    """Load the data set and split it (written to ``report_dir/split.csv``)."""
    with run.timed("data"):
        stage = load_data(run.settings.dataset, run.profile, run.settings.seed,
                          frame=run.dataset_frame)
        write_split_csv(stage.frame, run.report_dir / "split.csv")
    return stage


def compute_rates(run) -> RateStage:
    """Each example's modulation rate, recorded or estimated (written to ``rates.csv``)."""
    stage = rate_stage(run.data, run.features.descriptors)
    frame = run.data.frame
    keep = [c for c in ("path", "technique", "subset", "modulation_rate_hz") if c in frame]
    table = pd.concat([frame[keep].reset_index(drop=True), stage.estimates], axis=1)
    table.insert(len(keep), "rate_used_hz", stage.rates)
    with atomic_path(run.report_dir / RATES_CSV) as tmp:
        table.to_csv(tmp, index=False)
    return stage


def test_clip(run, position: int) -> np.ndarray:
    """Return the audio of one test row (synthesised, or read from its file), for figures."""
    from pmt_core.data.sources import example_audio

    row = run.data.frame.iloc[run.data.index("test")].iloc[position]
    cfg = run.scattering_config
    return np.asarray(example_audio(row, cfg.sample_rate, cfg.n_samples), dtype=float)
