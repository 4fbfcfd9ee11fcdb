"""The stages of a validation run, as plain functions returning dataclasses.

data -> features -> compression -> trained models -> explanations, plus the two
side inputs the claims need (AM/FM test tones, modulation-ablated twins). Each
stage is a function of the stages before it, so a notebook, the command line or
a GPU script composes them without pytest::

    from pmt_core import run_stages
    run = run_stages(dataset="synthetic", profile="smoke", seed=0)
    run.models.replicates["s1s2"][0].model      # computed on first access

:class:`Run` computes each stage once, on first access, and records its wall time
(``run.timings``); the pytest fixtures of ``validation/conftest.py`` are thin
wrappers around it.

Seeds. The run seed draws the synthetic manifest, the split (every source: see
:func:`pmt_core.data.split.assign_split`) and, through :func:`replicate_seeds`,
one training seed per replicate.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pmt_core.data.split import SUBSETS, assign_split, write_split_csv
from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import PathTable, ScatteringConfig, ScatteringResult
from pmt_core.infra.atomic import atomic_path
from pmt_core.profiles import Profile, get_profile, training_budget
from pmt_core.techniques import present_techniques

__all__ = [
    "INPUT_KINDS",
    "CompressionStage",
    "DataStage",
    "ExplanationStage",
    "ModelStage",
    "Run",
    "RunSettings",
    "TrainedModel",
    "load_data",
    "replicate_seeds",
    "run_stages",
]

#: The two inputs of Table 1: first-order paths only, and all kept paths.
INPUT_KINDS = ("s1", "s1s2")

#: Perturbations of the arithmetic that must not change any verdict (see
#: :class:`RunSettings`).
PERTURBATIONS = ("none", "threads", "ulp")
#: Per-example rates (recorded, estimated, used) in the report folder.
RATES_CSV = "rates.csv"


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked to do (the command line's options, as data).

    Attributes
    ----------
    dataset : str
        ``"synthetic"`` or a path understood by :func:`pmt_core.data.datasets.load_dataset`.
    profile : str
        ``"smoke"``, ``"ci"`` or ``"paper"`` (:mod:`pmt_core.profiles`).
    seed : int
        Seed of the synthetic data, the split and the replicates' training seeds.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    cache_dir : str or None
        Feature cache folder; None: ``$PMT_CACHE_DIR`` or the default.
    use_cache : bool
        False: neither read nor write the feature cache.
    report_dir : str
        Where the split and the checkpoints are written.
    replicates : int or None
        Models per input kind; None: the profile's.
    perturb : {"none", "threads", "ulp"}
        Change the arithmetic, not the method, to show that verdicts do not depend
        on rounding: ``threads`` trains and explains with one torch thread (the
        default uses what torch picks); ``ulp`` multiplies the compressed features
        by ``1 + k * 2**-23`` with k drawn from {-4..4} per value (a few float32
        ulps), seeded.
    """

    dataset: str = "synthetic"
    profile: str = "ci"
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None
    use_cache: bool = True
    report_dir: str = "reports"
    replicates: int | None = None
    perturb: str = "none"

    def __post_init__(self):
        if self.perturb not in PERTURBATIONS:
            raise ValueError(f"perturb must be one of {PERTURBATIONS}, got {self.perturb!r}")
        if not 0 <= int(self.seed) < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32), got {self.seed}")
        if self.replicates is not None and int(self.replicates) < 1:
            raise ValueError(f"replicates must be at least 1, got {self.replicates}")


def replicate_seeds(seed: int, n: int) -> list[int]:
    """Training seed of each of ``n`` replicates of a run with seed ``seed``.

    Replicate 0 trains with the run seed itself (a one-replicate run is the
    single model of earlier versions); replicate k > 0 with a seed drawn from
    ``numpy.random.SeedSequence([seed, k])``, so that it does not depend on how
    many replicates there are.
    """
    return [int(seed) if k == 0 else
            int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0] % 2**31)
            for k in range(int(n))]


#: Modules whose code decides the cached features (audio, synthesis, descriptors,
#: the transform, the test tones): their source text joins the cache namespace, so
#: an edit to any of them is a cache miss, never a stale hit.
FEATURE_MODULES = (
    "pmt_core.data.audio",
    "pmt_core.data.descriptors",
    "pmt_core.data.sources",
    "pmt_core.data.synth",
    "pmt_core.features.batched",
    "pmt_core.features.extraction",
    "pmt_core.features.scattering",
    "pmt_core.features.theory",
)


def feature_code_digest(modules=FEATURE_MODULES) -> str:
    """SHA-256 (first 16 hex digits) of the source text of ``modules``, in order."""
    from pmt_core.infra.cache import source_digest

    return source_digest(modules)


def feature_recipe(device: torch.device) -> dict:
    """How cached features are computed: the code's digest, engine, device, threads.

    :func:`pmt_core.features.extraction.feature_recipe` says what decides a clip's
    bits (the batch size and the number of workers do not); the digest of
    :data:`FEATURE_MODULES` adds the code that made them.
    """
    from pmt_core.features import extraction

    return {**extraction.feature_recipe(device), "code": feature_code_digest()}


# ---------------------------------------------------------------------- data --
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


def load_data(dataset: str, profile: Profile, seed: int) -> DataStage:
    """Load (or synthesise the manifest of) a data set and split it with ``seed``.

    Parameters
    ----------
    dataset : str
        ``"synthetic"`` (drawn with :func:`pmt_core.data.synth.synthetic_manifest`
        at the profile's class sizes) or a path for
        :func:`pmt_core.data.datasets.load_dataset`.
    profile : Profile
    seed : int
    """
    if dataset == "synthetic":
        from pmt_core.data.synth import synthetic_manifest

        frame, path = synthetic_manifest(profile.class_sizes, seed=seed), None
    else:
        from pmt_core.data.datasets import load_dataset

        frame = load_dataset(dataset)
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


# ------------------------------------------------------------- compression --
@dataclass
class CompressionStage:
    """The log compression fitted on the training split, and the network inputs.

    Attributes
    ----------
    compression : LogCompression
        Fitted on the training rows' raw coefficients (all kept paths).
    inputs : dict
        ``{"s1": (n, 74, frames), "s1s2": (n, 1200, frames)}`` float32 tensors of
        every row, compressed.
    paths : PathTable
    """

    compression: LogCompression
    inputs: dict
    paths: PathTable

    def for_kind(self, kind: str) -> LogCompression:
        """Return the compression of the paths one input kind reads."""
        return self.compression if kind == "s1s2" else self.compression.subset(
            self.paths.first_order)


def compress(features: ScatteringResult, train_index: np.ndarray, perturb: str = "none",
             seed: int = 0) -> CompressionStage:
    """Fit the compression on ``train_index`` and compress every example."""
    fitted = LogCompression().fit(features.values[train_index])
    compressed = fitted.transform(features.values)
    if perturb == "ulp":
        rng = np.random.default_rng([int(seed), 7])
        compressed = compressed * (1 + rng.integers(-4, 5, compressed.shape) * 2.0**-23
                                   ).astype(np.float32)
    full = torch.from_numpy(np.ascontiguousarray(compressed, dtype=np.float32))
    first = torch.from_numpy(features.paths.first_order)
    return CompressionStage(fitted, {"s1": full[:, first].contiguous(), "s1s2": full},
                            features.paths)


# ------------------------------------------------------------------- models --
@dataclass
class TrainedModel:
    """One trained replicate with its test-split predictions.

    Attributes
    ----------
    input_kind : str
        ``"s1"`` or ``"s1s2"``.
    replicate : int
        Index of the replicate in the run.
    seed : int
        Its training seed.
    result : pmt_core.model.training.TrainResult
    class_names : tuple of str
    test_true, test_pred : numpy.ndarray of int
        Labels and predictions for every test example (none dropped).
    test_logits : numpy.ndarray
    """

    input_kind: str
    replicate: int
    seed: int
    result: object
    class_names: tuple
    test_true: np.ndarray
    test_pred: np.ndarray
    test_logits: np.ndarray

    @property
    def model(self) -> torch.nn.Module:
        """The trained network (eval mode, best validation weights)."""
        return self.result.model

    @property
    def seconds(self) -> float:
        """Training time of this replicate."""
        return float(self.result.seconds)


@dataclass
class ModelStage:
    """Every trained replicate, per input kind.

    Attributes
    ----------
    replicates : dict
        ``{"s1": [TrainedModel, ...], "s1s2": [...]}``, replicate order.
    training_config : pmt_core.model.training.TrainingConfig
        The settings shared by every replicate (its ``seed`` is replicate 0's).
    """

    replicates: dict
    training_config: object

    @property
    def n_replicates(self) -> int:
        """Replicates per input kind."""
        return len(next(iter(self.replicates.values())))


# ------------------------------------------------------------- explanations --
@dataclass
class ExplanationStage:
    """Time-averaged maps of every explainer for every S1+S2 replicate.

    Attributes
    ----------
    maps : dict
        ``maps[explainer][replicate]``: (n_test, paths) float64 time-averaged
        relevance for the replicate's predicted class.
    input_sums : dict
        ``input_sums[explainer][replicate]``: (n_test,) sum of the relevance
        over every input cell (what reaches the input).
    target : list of numpy.ndarray
        Explained class per replicate (its prediction).
    seconds : dict
        Explainer -> total seconds over replicates.
    """

    maps: dict
    input_sums: dict
    target: list
    seconds: dict = field(default_factory=dict)


@dataclass
class MechanismStage:
    """Model A (the trained replicates) and model B (tag-only) on inputs with both cues.

    Attributes
    ----------
    tags : numpy.ndarray of int
        Band index (:func:`pmt_core.explain.occlusion.s2_bands`) of each class's tag.
    test_inputs : torch.Tensor
        The test inputs with the tag of their true class added.
    pred_a, pred_b : numpy.ndarray of int, (models, n_test)
        Predictions of model A's and model B's replicates on them.
    maps_a, maps_b : dict
        ``maps[explainer][k]``: (n_test, paths) maps of replicate k of each model
        for its own prediction.
    b_validation_accuracy : list of float
        Model B's validation accuracy on its (tag-only) labels: did it learn the tag?
    """

    tags: np.ndarray
    test_inputs: torch.Tensor
    pred_a: np.ndarray
    pred_b: np.ndarray
    maps_a: dict
    maps_b: dict
    b_validation_accuracy: list


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


# -------------------------------------------------------------------- run --
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
    """

    def __init__(self, settings: RunSettings, progress: bool = True, around_stage=None):
        self.settings = settings
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
    def _arithmetic(self):
        # perturb="threads": one torch thread for training and explanations.
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
        from pmt_core.infra.cache import FeatureCache, resolve_cache_dir

        if not self.settings.use_cache:
            return None
        root = resolve_cache_dir(self.settings.cache_dir)  # "off" disables, ~ expands
        if root is None:
            return None
        return FeatureCache(root, FeatureCache.namespace_for(
            self.scattering_config.fingerprint(), recipe=feature_recipe(self.device)))

    # -- stages --
    @cached_property
    def data(self) -> DataStage:
        """The data set with its split (written to ``report_dir/split.csv``)."""
        with self.timed("data"):
            stage = load_data(self.settings.dataset, self.profile, self.settings.seed)
            write_split_csv(stage.frame, self.report_dir / "split.csv")
        return stage

    @cached_property
    def features(self):
        """Raw scattering coefficients and descriptors of every example."""
        from pmt_core.features.extraction import extract_features

        with self.timed("features"):
            return extract_features(self.data.frame, self.scattering_config, self.device,
                                    cache=self.cache, progress=self.progress)

    @cached_property
    def rates(self) -> RateStage:
        """Each example's modulation rate, recorded or estimated (written to ``rates.csv``)."""
        stage = rate_stage(self.data, self.features.descriptors)
        frame = self.data.frame
        keep = [c for c in ("path", "technique", "subset", "modulation_rate_hz") if c in frame]
        table = pd.concat([frame[keep].reset_index(drop=True), stage.estimates], axis=1)
        table.insert(len(keep), "rate_used_hz", stage.rates)
        with atomic_path(self.report_dir / RATES_CSV) as tmp:
            table.to_csv(tmp, index=False)
        return stage

    @cached_property
    def compression(self) -> CompressionStage:
        """The compression fitted on the training split, and every network input."""
        with self.timed("compression"):
            stage = compress(self.features.result, self.data.index("training"),
                             self.settings.perturb, self.settings.seed)
            stage.compression.save(self.report_dir / "models" / "compression.json")
        return stage

    @property
    def n_replicates(self) -> int:
        """Replicates per input kind."""
        return int(self.settings.replicates or self.profile.replicates)

    @cached_property
    def training_config(self):
        """The training settings of every model of the run (``seed``: replicate 0's)."""
        from pmt_core.model.training import TrainingConfig

        batch_size = TrainingConfig().batch_size
        max_epochs, patience = training_budget(self.profile, len(self.data.index("training")),
                                               batch_size)
        return TrainingConfig(max_epochs=max_epochs, patience=patience,
                              batch_size=batch_size, seed=self.seed_of(0))

    @cached_property
    def models(self) -> ModelStage:
        """Every replicate of both input kinds, trained on the same split."""
        replicates = {kind: self._train(kind) for kind in INPUT_KINDS}
        return ModelStage(replicates, self.training_config)

    def seed_of(self, replicate: int) -> int:
        """Training seed of one replicate."""
        return replicate_seeds(self.settings.seed, replicate + 1)[replicate]

    @cached_property
    def model_cache(self):
        """The trained-model store (the feature cache's folder), or None when disabled."""
        from pmt_core.infra.cache import FeatureCache, resolve_cache_dir
        from pmt_core.model.cache import model_namespace

        if not self.settings.use_cache:
            return None
        root = resolve_cache_dir(self.settings.cache_dir)
        return None if root is None else FeatureCache(root, model_namespace(self.device))

    def train_replicates(self, x_train, y_train, x_val, y_val, *, config, seeds, desc):
        """Train one model per seed on the run's classes, or load them from the model cache.

        The one place a run trains (:func:`pmt_core.model.cache.train_cached`).
        """
        from pmt_core.model.cache import train_cached

        return train_cached(self.model_cache, x_train, y_train, x_val, y_val,
                            self.data.class_names, config=config, seeds=seeds,
                            device=self.device, progress=self.progress, desc=desc,
                            perturb=self.settings.perturb)

    def training_calls(self) -> list[str]:
        """Name every training call the run makes (:meth:`training_call`), in order.

        ``"models s1"``, ``"models s1s2"`` (every replicate of an input kind in one
        call: they may train jointly, as one ensemble), ``"shuffled K"`` (the
        shuffled-label models) and ``"mechanism"`` (model B). A scheduler that trains
        them elsewhere (:mod:`pmt_core.scale`) makes these calls, so the model cache
        holds exactly the entries the run looks up.
        """
        n_shuffled = min(self.profile.shuffled_label_models, self.n_replicates)
        return ([f"models {kind}" for kind in INPUT_KINDS]
                + [f"shuffled {k}" for k in range(n_shuffled)] + ["mechanism"])

    def training_call(self, name: str) -> dict | None:
        """Arguments of one training call of the run (:meth:`train_replicates`).

        Returns
        -------
        dict or None
            Keyword arguments of :meth:`train_replicates`; None for model B where
            the transform has too few bands for the tags (no model B is trained).

        Raises
        ------
        ValueError
            For a name that is not one of :meth:`training_calls`.
        """
        what, _, arg = name.partition(" ")
        y = self.data.labels
        train, val = self.data.index("training"), self.data.index("validation")
        config = self.training_config
        if what == "models" and arg in INPUT_KINDS:
            x = self.compression.inputs[arg]
            return dict(x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val],
                        config=config, seeds=replicate_seeds(self.settings.seed,
                                                             self.n_replicates),
                        desc=f"train {arg}")
        if what == "shuffled" and arg.isdigit():
            k = int(arg)
            x = self.compression.inputs["s1s2"]
            rng = np.random.default_rng([self.settings.seed, k, 23])
            return dict(x_train=x[train], y_train=rng.permutation(y[train]), x_val=x[val],
                        y_val=rng.permutation(y[val]), config=config, seeds=[self.seed_of(k)],
                        desc=f"train s1s2 on shuffled labels ({k})")
        if what == "mechanism" and not arg:
            inputs = self._mechanism_inputs()
            if inputs is None:
                return None
            n = min(self.profile.mechanism_models, self.n_replicates)
            return dict(x_train=inputs["training"], y_train=inputs["labels"][train],
                        x_val=inputs["validation"], y_val=inputs["labels"][val],
                        config=config, seeds=[self.seed_of(k) for k in range(n)],
                        desc="train s1s2 on tag-only labels")
        raise ValueError(f"unknown training call {name!r}; expected one of "
                         f"{self.training_calls()}")

    def train_call(self, name: str) -> list | None:
        """Make one training call of the run (:meth:`training_call`) in its arithmetic."""
        call = self.training_call(name)
        if call is None:
            return None
        with self._arithmetic():
            return self.train_replicates(**call)

    def _mechanism_inputs(self) -> dict | None:
        """Model B's tags, labels and tagged inputs (None: too few bands for the tags)."""
        def compute():
            from pmt_core.explain import mechanism as mech
            from pmt_core.explain.occlusion import s2_bands

            bands = s2_bands(self.compression.paths)
            n_classes = len(self.data.class_names)
            tags = mech.tag_bands(bands, n_classes)
            if tags is None:
                return None
            x, std = self.compression.inputs["s1s2"], self.input_statistics[1]
            # B's labels ignore the technique: the tag is its only cue
            labels = np.random.default_rng([self.settings.seed, 31]).integers(
                0, n_classes, len(self.data.labels))
            tagged = {part: mech.add_tag(x[idx], labels[idx], bands, tags, std)
                      for part, idx in (("training", self.data.index("training")),
                                        ("validation", self.data.index("validation")))}
            return {"bands": bands, "tags": tags, "labels": labels, **tagged}

        return self.memo("mechanism_inputs", lambda: compute() or False) or None

    def _train(self, kind: str) -> list[TrainedModel]:
        from pmt_core.model.checkpoint import save_checkpoint
        from pmt_core.model.training import predict_logits

        x = self.compression.inputs[kind]
        y = self.data.labels
        test = self.data.index("test")
        seeds = replicate_seeds(self.settings.seed, self.n_replicates)
        with self.timed(f"training_{kind}"):
            results = self.train_call(f"models {kind}")
        out = []
        for k, (seed, result) in enumerate(zip(seeds, results, strict=True)):
            with self._arithmetic():
                logits = predict_logits(result.model, x[test], device=self.device)
            out.append(TrainedModel(kind, k, seed, result, self.data.class_names, y[test],
                                    logits.argmax(axis=1), logits))
            name = f"{kind}.pt" if k == 0 else f"{kind}-r{k}.pt"
            save_checkpoint(self.report_dir / "models" / name, result.model,
                            scattering_config=self.scattering_config,
                            class_names=self.data.class_names,
                            compression=self.compression.for_kind(kind), input_kind=kind,
                            training_config=result.config,
                            extra={"replicate": k, "seed": seed,
                                   "run_seed": self.settings.seed,
                                   "dataset": self.data.source,
                                   "training": result.summary()})
        return out

    # -- explanations --
    @cached_property
    def test_energy(self) -> np.ndarray:
        """(n_test, paths) float64 time-averaged raw coefficients of the test rows."""
        values = self.features.result.values
        test = self.data.index("test")
        return np.concatenate([values[test[i : i + 256]].mean(axis=-1, dtype=np.float64)
                               for i in range(0, len(test), 256)] or [np.zeros((0, 0))])

    @property
    def reference_mean(self) -> np.ndarray:
        """Per-path training mean of the time-averaged raw coefficients (mu)."""
        return np.asarray(self.compression.compression.mu, dtype=np.float64)

    @cached_property
    def class_profiles(self) -> np.ndarray:
        """The class-constant null's maps, fitted on the training split only."""
        from pmt_core.explain.explainers import fit_class_profiles

        train = self.data.index("training")
        values = self.features.result.values
        energy = values[train].mean(axis=-1, dtype=np.float64)
        ref = self.reference_mean
        return fit_class_profiles(
            self.data.labels[train], len(self.data.class_names), self.compression.paths,
            rates_hz=self.rates.of("training"),
            energy_norm=energy / np.where(ref > 0, ref, np.inf))

    @cached_property
    def input_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-path mean and sd of the compressed S1+S2 training inputs (examples, frames)."""
        x = self.compression.inputs["s1s2"][self.data.index("training")].double()
        return (x.mean(dim=(0, 2)).numpy(), x.std(dim=(0, 2), unbiased=False).numpy())

    def explainer_inputs(self, replicate: int, *, x=None, target=None, energy=None,
                         model=None, index=None):
        """:class:`~pmt_core.explain.explainers.ExplainerInputs` of one S1+S2 replicate.

        Defaults: the test rows, the replicate's predictions, its model; ``index``
        selects test rows (x, energy and the rows' metadata follow it unless given).
        """
        from pmt_core.explain.explainers import ExplainerInputs

        trained = self.models.replicates["s1s2"][replicate]
        rows = self.data.frame.iloc[self.data.index("test")].reset_index(drop=True)
        pick = slice(None) if index is None else np.asarray(index)
        if index is not None:
            rows = rows.iloc[pick].reset_index(drop=True)
        return ExplainerInputs(
            model=trained.model if model is None else model,
            x=self.test_inputs("s1s2")[pick] if x is None else x,
            target=trained.test_pred[pick] if target is None else np.asarray(target),
            energy=self.test_energy[pick] if energy is None else energy, rows=rows,
            reference_mean=self.reference_mean, class_profiles=self.class_profiles,
            paths=self.compression.paths, seed=self.seed_of(replicate), device=self.device,
            input_mean=self.input_statistics[0], input_std=self.input_statistics[1])

    @cached_property
    def explanations(self) -> ExplanationStage:
        """Every explainer's maps for every S1+S2 replicate's test predictions."""
        from pmt_core.explain.explainers import EXPLAINERS

        maps, sums, seconds = {}, {}, {}
        targets = [m.test_pred for m in self.models.replicates["s1s2"]]
        with self.timed("explanations"), self._arithmetic():
            for name, explainer in EXPLAINERS.items():
                start = time.perf_counter()
                maps[name], sums[name] = [], []
                for k in range(self.models.n_replicates):
                    out = explainer(self.explainer_inputs(k))
                    maps[name].append(out.maps)
                    sums[name].append(out.input_sums)
                seconds[name] = time.perf_counter() - start
        self.timings.update({f"explain_{k}": v for k, v in seconds.items()})
        return ExplanationStage(maps, sums, targets, seconds)

    @cached_property
    def mechanism(self) -> MechanismStage | None:
        """Model B, trained on tagged inputs with random labels, and both models' maps.

        None where the transform has too few lambda2 bands above the techniques'
        for one tag per class (:mod:`pmt_core.explain.mechanism`).
        """
        from pmt_core.explain import mechanism as mech
        from pmt_core.explain.explainers import EXPLAINERS
        from pmt_core.model.training import predict_logits

        inputs = self._mechanism_inputs()
        if inputs is None:
            return None
        tags, labels, tagged = inputs["tags"], inputs["labels"], inputs
        n = min(self.profile.mechanism_models, self.n_replicates)
        x, std = self.compression.inputs["s1s2"], self.input_statistics[1]
        val, test = self.data.index("validation"), self.data.index("test")
        truth = self.data.labels[test]
        test_inputs = mech.add_tag(x[test], truth, inputs["bands"], tags, std)
        models_a = [m.model for m in self.models.replicates["s1s2"][:n]]
        with self.timed("training_mechanism_b"):
            results = self.train_call("mechanism")
        models_b = [r.model for r in results]
        with self.timed("explain_mechanism"), self._arithmetic(), warnings.catch_warnings():
            pred = {side: np.stack([predict_logits(m, test_inputs, device=self.device)
                                    .argmax(axis=1) for m in models])
                    for side, models in (("a", models_a), ("b", models_b))}
            val_acc = [float(np.mean(predict_logits(m, tagged["validation"], device=self.device)
                                     .argmax(axis=1) == labels[val])) for m in models_b]
            maps = {"a": {}, "b": {}}
            # The tag lifts its band past the training range, which is the z-box
            # reading's box: that its root point is then outside the data is known
            # (the family's detail says so), not news at every call.
            warnings.filterwarnings("ignore", message=".*outside the z-box.*")
            for name, explainer in EXPLAINERS.items():
                for side, models in (("a", models_a), ("b", models_b)):
                    maps[side][name] = [explainer(self.explainer_inputs(
                        k, x=test_inputs, target=pred[side][k], model=models[k])).maps
                        for k in range(n)]
        return MechanismStage(tags, test_inputs, pred["a"], pred["b"], maps["a"], maps["b"],
                              val_acc)

    @cached_property
    def theory(self) -> TheoryStage:
        """Time-averaged scattering of the AM/FM test tones (through the cache)."""
        from pmt_core.features import theory
        from pmt_core.features.extraction import scatter_cached

        cfg = self.scattering_config
        with self.timed("theory_tones"):
            from pmt_core.features.scattering import path_table

            design = theory.tone_design(self.profile.theory_cases, self.settings.seed,
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
            result = scatter_cached(np.stack(signals), identities, cfg, self.device, self.cache)
            averaged = result.time_averaged()
        return TheoryStage(design, averaged[:n], averaged[n:2 * n], averaged[2 * n],
                           result.paths)

    def computed(self, stage: str) -> bool:
        """Whether a stage (a cached property: ``"data"``, ``"models"`` ...) has run.

        What reports read to describe a run without computing what no claim asked for.
        """
        if not isinstance(getattr(type(self), stage, None), cached_property):
            raise ValueError(f"{stage!r} is not a stage of the run")
        return stage in self.__dict__

    def memoised(self, key: str):
        """Return what :meth:`memo` computed under ``key``, or None if nothing was."""
        return self.__dict__.get("_memo", {}).get(key)

    def memo(self, key: str, compute):
        """Return a derived quantity several claims share, computed once per run."""
        store = self.__dict__.setdefault("_memo", {})
        if key not in store:
            store[key] = compute()
        return store[key]

    @cached_property
    def shuffled_label_models(self) -> list:
        """S1+S2 models trained on shuffled training labels (data randomisation).

        Adebayo et al. (2018): an explanation of a model that learned nothing
        about the labels must differ from the trained model's. Model k keeps
        replicate k's training seed (same initialisation and batch order) and
        permutes the training labels with a seed of its own; validation labels
        are permuted too, so early stopping sees no real signal either.
        """
        n = min(self.profile.shuffled_label_models, self.n_replicates)
        out = []
        with self.timed("training_shuffled_labels"):
            for k in range(n):
                (result,) = self.train_call(f"shuffled {k}")
                out.append(result.model)
        return out

    @cached_property
    def twins(self) -> TwinStage | None:
        """Modulation-ablated twins of the test clips, scattered, compressed, predicted.

        Synthetic data only (None otherwise): each twin keeps its source's nuisance
        (instrument, pitch, noise, distractor, seed) with the technique's modulation
        switched off (:func:`pmt_core.data.synth.ablated_twin`).
        """
        frame = self.twin_frame()
        if frame is None:
            return None
        from pmt_core.features.extraction import extract_features
        from pmt_core.model.training import predict_logits

        _ = self.compression, self.models  # stages of their own, timed apart
        with self.timed("twins"):
            stage = extract_features(frame, self.scattering_config, self.device,
                                     cache=self.cache, progress=self.progress)
            compressed = torch.from_numpy(self.compression.compression.transform(
                stage.result.values))
            with self._arithmetic():
                preds = [predict_logits(m.model, compressed, device=self.device).argmax(1)
                         for m in self.models.replicates["s1s2"]]
        labels = np.array([self.data.class_names.index(t) for t in frame["technique"]])
        return TwinStage(frame, stage.descriptors, labels, np.stack(preds), compressed)

    def twin_frame(self) -> pd.DataFrame | None:
        """Manifest rows of the test clips' twins (None for data without twins)."""
        if self.data.source != "synthetic":
            return None
        from pmt_core.data.synth import ablated_twins

        return ablated_twins(self.data.frame.iloc[self.data.index("test")]).reset_index(
            drop=True)

    @cached_property
    def twin_descriptors(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """Twins of every example and their descriptors (no scattering): the guard's data.

        The shortcut guard only needs descriptors, so every row's twin is
        synthesised and described (threads: both release the GIL in numpy), and
        the guard's figure rests on the whole data set, not the test split alone.
        None for data without twins (recordings).
        """
        if self.data.source != "synthetic":
            return None
        from concurrent.futures import ThreadPoolExecutor

        from pmt_core.data.descriptors import describe
        from pmt_core.data.sources import example_audio
        from pmt_core.data.synth import ablated_twins

        frame = ablated_twins(self.data.frame).reset_index(drop=True)
        cfg = self.scattering_config

        def one(row):
            return describe(example_audio(row, cfg.sample_rate, cfg.n_samples), cfg.sample_rate)

        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        with self.timed("twin_descriptors"), ThreadPoolExecutor(workers) as pool:
            rows = list(pool.map(one, (row for _, row in frame.iterrows())))
        return frame, pd.DataFrame(rows)

    def sanity_index(self) -> np.ndarray:
        """Test positions of the sanity checks: stratified, seeded, sorted."""
        true = self.data.labels[self.data.index("test")]
        n_max = self.profile.sanity_examples
        if len(true) <= n_max:
            return np.arange(len(true))
        rng = np.random.default_rng([self.settings.seed, 29])
        picked = []
        for k in np.unique(true):
            idx = np.flatnonzero(true == k)
            take = max(1, round(n_max * idx.size / len(true)))
            picked.append(rng.choice(idx, size=min(take, idx.size), replace=False))
        return np.sort(np.concatenate(picked))[:n_max]

    def test_inputs(self, kind: str = "s1s2") -> torch.Tensor:
        """Compressed network inputs of the test rows."""
        return self.compression.inputs[kind][self.data.index("test")]

    def context(self) -> dict:
        """Return what identifies the run (profile, seed, data, device, perturbation)."""
        return {"profile": self.profile.name, "seed": self.settings.seed,
                "dataset": self.settings.dataset, "perturb": self.settings.perturb,
                "replicates": self.n_replicates}


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
