"""The run: settings plus lazily computed, cached, timed stages.

:class:`Run` computes each stage once, on first access, and records its wall time
(``run.timings``); each stage's code lives in its stage module (``data``,
``inputs``, ``models``, ``explanations``, ``sanity``, ``side``), a function of the
run. Every explainer call of the run goes through :meth:`Run.explain`.
"""

from __future__ import annotations

import contextlib
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pmt_core.features.scattering import ScatteringConfig
from pmt_core.profiles import get_profile
from pmt_core.run import data as _data
from pmt_core.run import explanations as _explanations
from pmt_core.run import inputs as _inputs
from pmt_core.run import models as _models
from pmt_core.run import sanity as _sanity
from pmt_core.run import side as _side
from pmt_core.run.data import DataStage, RateStage
from pmt_core.run.explanations import ExplanationStage, MechanismStage
from pmt_core.run.inputs import CompressionStage
from pmt_core.run.models import ModelStage
from pmt_core.run.sanity import (
    BandOcclusion,
    DataRandomisationStage,
    DeletionStage,
    ModelRandomisationStage,
)
from pmt_core.run.settings import RunSettings, replicate_seeds
from pmt_core.run.side import TheoryStage, TwinStage

__all__ = ["Run", "run_stages"]


class Run:
    """A validation run: settings plus lazily computed, cached stages.

    Parameters
    ----------
    settings : RunSettings
    progress : bool
        Show progress bars on long stages.
    around_stage : callable, optional
        A context-manager factory entered around every stage (pytest passes one
        that lifts its output capture, so the progress bars show).
    dataset_frame : pandas.DataFrame, optional
        ``settings.dataset`` as :func:`pmt_core.data.datasets.load_dataset` already
        returned it (the pytest plugin loads it to check it), so it is read once.
    """

    def __init__(self, settings: RunSettings, progress: bool = True, around_stage=None,
                 dataset_frame: pd.DataFrame | None = None):
        self.settings = settings
        self.dataset_frame = dataset_frame
        self.progress = progress
        self.around_stage = around_stage
        self.profile = get_profile(settings.profile)
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()
        # The code a run starts with is the code that made its figures: a commit
        # read when the report is written could be a later one.
        from pmt_core.infra.provenance import git_state

        self.code_state = git_state()

    # -- infrastructure --
    @contextlib.contextmanager
    def timed(self, name: str):
        """Add the wall time of the block to ``timings[name]``, exclusive of nested stages.

        Stages compute lazily, so one stage may trigger another (the twins need the
        models): the inner stage's time is its own, and the outer one's excludes it.
        """
        stack = self.__dict__.setdefault("_timer_stack", [])
        start = time.perf_counter()
        stack.append(0.0)  # time spent in nested timed blocks
        nested = bool(len(stack) > 1)
        around = (self.around_stage() if self.around_stage is not None and not nested
                  else contextlib.nullcontext())
        try:
            with around:
                yield
        finally:
            elapsed = time.perf_counter() - start
            inner = stack.pop()
            self.timings[name] = self.timings.get(name, 0.0) + elapsed - inner
            if stack:
                stack[-1] += elapsed

    @contextlib.contextmanager
    def arithmetic(self):
        """Enter the arithmetic of training and explanations (``"threads"``: one thread)."""
        if self.settings.perturb != "threads":
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @cached_property
    def device(self) -> torch.device:
        """The compute device (the one place it is chosen: pmt_core.infra.device)."""
        from pmt_core.infra.device import select_device

        return select_device(self.settings.device)

    @property
    def device_name(self) -> str:
        """The device in words, for the report."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return str(self.device)

    @cached_property
    def scattering_config(self) -> ScatteringConfig:
        """The profile's scattering setting (the paper's unless the profile says)."""
        return ScatteringConfig(**self.profile.scattering)

    @cached_property
    def report_dir(self) -> Path:
        """Folder of the split and the checkpoints (created)."""
        path = Path(self.settings.report_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def cache(self):
        """The feature cache, or None when disabled."""
        return _inputs.feature_cache(self)

    def computed(self, stage: str) -> bool:
        """Whether a stage (a cached property: ``"data"``, ``"models"`` ...) has run.

        What reports read to describe a run without computing what no claim asked for.
        """
        if not isinstance(getattr(type(self), stage, None), cached_property):
            raise ValueError(f"{stage!r} is not a stage of the run")
        return stage in self.__dict__

    def memo(self, key: str, compute):
        """Return a derived quantity several claims share, computed once per run."""
        store = self.__dict__.setdefault("_memo", {})
        if key not in store:
            store[key] = compute()
        return store[key]

    def context(self) -> dict:
        """Return what identifies the run (profile, seed, data, device, perturbation)."""
        return {"profile": self.profile.name, "seed": self.settings.seed,
                "dataset": self.settings.dataset, "perturb": self.settings.perturb,
                "replicates": self.n_replicates}

    # -- data and inputs --
    @cached_property
    def data(self) -> DataStage:
        """The data set with its split (written to ``report_dir/split.csv``)."""
        return _data.compute_data(self)

    def test_clip(self, position: int) -> np.ndarray:
        """Audio of one test row, by test position (:func:`pmt_core.run.data.test_clip`)."""
        return _data.test_clip(self, position)

    @cached_property
    def features(self):
        """Raw scattering coefficients and descriptors of every example."""
        return _inputs.compute_features(self)

    @cached_property
    def rates(self) -> RateStage:
        """Each example's modulation rate, recorded or estimated (written to ``rates.csv``)."""
        return _data.compute_rates(self)

    @cached_property
    def compression(self) -> CompressionStage:
        """The compression fitted on the training split, and every network input."""
        return _inputs.compute_compression(self)

    def test_inputs(self, kind: str = "s1s2") -> torch.Tensor:
        """Compressed network inputs of the test rows."""
        return self.compression.inputs[kind][self.data.index("test")]

    @cached_property
    def test_energy(self) -> np.ndarray:
        """(n_test, paths) float64 time-averaged raw coefficients of the test rows."""
        return _inputs.compute_test_energy(self)

    @property
    def reference_mean(self) -> np.ndarray:
        """Per-path training mean of the time-averaged raw coefficients (mu)."""
        return np.asarray(self.compression.compression.mu, dtype=np.float64)

    @cached_property
    def input_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-path mean and sd of the compressed S1+S2 training inputs (examples, frames)."""
        return _inputs.compute_input_statistics(self)

    # -- models --
    @property
    def n_replicates(self) -> int:
        """Replicates per input kind."""
        return int(self.settings.replicates or self.profile.replicates)

    def seed_of(self, replicate: int) -> int:
        """Training seed of one replicate."""
        return replicate_seeds(self.settings.seed, replicate + 1)[replicate]

    @cached_property
    def training_config(self):
        """The training settings of every model of the run (``seed``: replicate 0's)."""
        return _models.compute_training_config(self)

    @cached_property
    def models(self) -> ModelStage:
        """Every replicate of both input kinds, trained on the same split."""
        return _models.compute_models(self)

    @cached_property
    def model_cache(self):
        """The trained-model store (the feature cache's folder), or None when disabled."""
        return _models.model_cache(self)

    def train_replicates(self, x_train, y_train, x_val, y_val, *, config, seeds, desc):
        """Train one model per seed on the run's classes, or load them from the model cache.

        The one place a run trains (:func:`pmt_core.run.models.train_replicates`).
        """
        return _models.train_replicates(self, x_train, y_train, x_val, y_val, config=config,
                                        seeds=seeds, desc=desc)

    def training_calls(self) -> list[str]:
        """Name every training call the run makes (:func:`pmt_core.run.models.training_calls`)."""
        return _models.training_calls(self)

    def training_call(self, name: str) -> dict | None:
        """Arguments of one training call (:func:`pmt_core.run.models.training_call`)."""
        return _models.training_call(self, name)

    def train_call(self, name: str) -> list | None:
        """Make one training call of the run (:meth:`training_call`) in its arithmetic."""
        return _models.train_call(self, name)

    @cached_property
    def shuffled_label_models(self) -> list:
        """S1+S2 models on shuffled labels (:func:`.models.compute_shuffled_label_models`)."""
        return _models.compute_shuffled_label_models(self)

    # -- explanations --
    @cached_property
    def class_profiles(self) -> np.ndarray:
        """The class-constant null's maps, fitted on the training split only."""
        return _explanations.compute_class_profiles(self)

    def explainer_inputs(self, replicate: int, *, x=None, target=None, energy=None,
                         model=None, index=None):
        """:class:`~pmt_core.explain.explainers.ExplainerInputs` of one S1+S2 replicate.

        Defaults: the test rows, the replicate's predictions, its model; ``index``
        selects test rows (x, energy and the rows' metadata follow it unless given).
        """
        return _explanations.explainer_inputs(self, replicate, x=x, target=target,
                                              energy=energy, model=model, index=index)

    def explain(self, name: str, inputs):
        """Run one registered explainer: every explainer call of the run goes through here.

        Parameters
        ----------
        name : str
            A key of :data:`pmt_core.explain.explainers.EXPLAINERS`.
        inputs : pmt_core.explain.explainers.ExplainerInputs

        Returns
        -------
        pmt_core.explain.explainers.ExplainerOutput
        """
        from pmt_core.explain.cache import explain_cached
        from pmt_core.explain.explainers import EXPLAINERS

        return explain_cached(self.explanation_cache, EXPLAINERS[name], inputs,
                              perturb=self.settings.perturb)

    @cached_property
    def explanation_cache(self):
        """The store of explanations and of what is computed from models and maps.

        In the feature cache's folder (:mod:`pmt_core.explain.cache`); None when
        the cache is off.
        """
        return _explanations.explanation_cache(self)

    def stored(self, what: str, code: tuple, parts: tuple, compute, *, valid=None) -> dict:
        """Arrays of a computation over models and arrays, computed once across runs.

        Parameters
        ----------
        what : str
            Names the computation.
        code : tuple of str
            Modules whose source decides the arrays (beyond ``parts``).
        parts : tuple
            Everything else they depend on, by content
            (:func:`pmt_core.infra.cache.content_key`: models, arrays, settings).
        compute : callable
            ``() -> dict of str to array``.
        valid : callable, optional
            Rejects an ill-shaped entry (recomputed).

        Returns
        -------
        dict of str to numpy.ndarray
            Computed now or loaded from :attr:`explanation_cache`: the same arrays.
        """
        from pmt_core.infra.cache import content_key, source_digest, stored_arrays

        key = content_key({"what": what, "code": source_digest(code),
                           "device": self.device.type, "threads": torch.get_num_threads(),
                           "perturb": self.settings.perturb}, *parts)
        return stored_arrays(self.explanation_cache, key, compute, valid=valid)

    @cached_property
    def explanations(self) -> ExplanationStage:
        """Every explainer's maps for every S1+S2 replicate's test predictions."""
        return _explanations.compute_explanations(self)

    @cached_property
    def mechanism(self) -> MechanismStage | None:
        """Model B, trained on tagged inputs with random labels, and both models' maps.

        None where the transform has too few lambda2 bands above the techniques'
        for one tag per class (:mod:`pmt_core.explain.mechanism`).
        """
        return _explanations.compute_mechanism(self)

    # -- sanity --
    def sanity_index(self) -> np.ndarray:
        """Test positions of the sanity checks: stratified, seeded, sorted."""
        return _sanity.sanity_index(self)

    @cached_property
    def sanity_deletion(self) -> DeletionStage:
        """Deletion curves of every explainer for every S1+S2 replicate (sanity examples)."""
        return _sanity.compute_deletion(self)

    @cached_property
    def sanity_randomisation(self) -> ModelRandomisationStage:
        """Maps of cascade-randomised copies of every S1+S2 replicate (sanity examples)."""
        return _sanity.compute_model_randomisation(self)

    @cached_property
    def sanity_data_randomisation(self) -> DataRandomisationStage:
        """Maps of the shuffled-label models (sanity examples)."""
        return _sanity.compute_data_randomisation(self)

    @cached_property
    def band_occlusion(self) -> BandOcclusion:
        """Band-occlusion drops of every S1+S2 replicate on the test split and the twins."""
        return _sanity.compute_band_occlusion(self)

    @cached_property
    def lrp_checks(self):
        """The LRP mechanics checks (:class:`pmt_core.run.lrp_checks.LrpChecks`), lazily."""
        from pmt_core.run.lrp_checks import LrpChecks

        return LrpChecks(self)

    # -- side inputs --
    @cached_property
    def theory(self) -> TheoryStage:
        """Time-averaged scattering of the AM/FM test tones (through the cache)."""
        return _side.compute_theory(self)

    def twin_frame(self) -> pd.DataFrame | None:
        """Manifest rows of the test clips' twins (None for data without twins)."""
        return _side.twin_frame(self)

    @cached_property
    def twins(self) -> TwinStage | None:
        """The test clips' modulation-ablated twins (:func:`pmt_core.run.side.compute_twins`)."""
        return _side.compute_twins(self)

    @cached_property
    def twin_descriptors(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """Every example's twin, described (:func:`pmt_core.run.side.compute_twin_descriptors`)."""
        return _side.compute_twin_descriptors(self)


def run_stages(dataset: str = "synthetic", profile: str = "ci", seed: int = 0, *,
               eager: bool = False, **settings) -> Run:
    """Return a :class:`Run`; its stages compute on first access (all now if ``eager``).

    Parameters
    ----------
    dataset, profile, seed
        See :class:`RunSettings`.
    eager : bool
        Compute data, features, compression and models before returning.
    **settings
        Further :class:`RunSettings` fields (``device``, ``cache_dir``, ...).
    """
    run = Run(RunSettings(dataset=dataset, profile=profile, seed=seed, **settings))
    if eager:
        _ = run.data, run.features, run.compression, run.models
    return run
