"""The trained models: every replicate of both input kinds, and the run's other models.

Every training call of a run has a name (:func:`training_calls`): the replicates
of each input kind, the shuffled-label models (data randomisation) and model B of
the mechanism check. :func:`training_call` gives each call's arguments, so a
scheduler (:mod:`pmt_core.scale`) can make the same calls elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pmt_core.profiles import training_budget
from pmt_core.run.settings import INPUT_KINDS, replicate_seeds

__all__ = ["ModelStage", "TrainedModel", "compute_models", "compute_shuffled_label_models",
           "compute_training_config", "mechanism_inputs", "model_cache", "train_call",
           "train_kind", "train_replicates", "training_call", "training_calls"]


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


def compute_training_config(run):
    """Return the training settings of every model of the run (``seed``: replicate 0's)."""
    from pmt_core.model.training import TrainingConfig

    batch_size = TrainingConfig().batch_size
    max_epochs, patience = training_budget(run.profile, len(run.data.index("training")),
                                           batch_size)
    return TrainingConfig(max_epochs=max_epochs, patience=patience,
                          batch_size=batch_size, seed=run.seed_of(0))


def compute_models(run) -> ModelStage:
    """Every replicate of both input kinds, trained on the same split."""
    replicates = {kind: train_kind(run, kind) for kind in INPUT_KINDS}
    return ModelStage(replicates, run.training_config)


def model_cache(run):
    """Return the trained-model store (the feature cache's folder), or None when disabled."""
    from pmt_core.infra.cache import FeatureCache, resolve_cache_dir
    from pmt_core.model.cache import model_namespace

    if not run.settings.use_cache:
        return None
    root = resolve_cache_dir(run.settings.cache_dir)
    return None if root is None else FeatureCache(root, model_namespace(run.device))


def train_replicates(run, x_train, y_train, x_val, y_val, *, config, seeds, desc):
    """Train one model per seed on the run's classes, or load them from the model cache.

    The one place a run trains (:func:`pmt_core.model.cache.train_cached`).
    """
    from pmt_core.model.cache import train_cached

    return train_cached(run.model_cache, x_train, y_train, x_val, y_val,
                        run.data.class_names, config=config, seeds=seeds,
                        device=run.device, progress=run.progress, desc=desc,
                        perturb=run.settings.perturb)


def training_calls(run) -> list[str]:
    """Name every training call the run makes (:func:`training_call`), in order.

    ``"models s1"``, ``"models s1s2"`` (every replicate of an input kind in one
    call: they may train jointly, as one ensemble), ``"shuffled K"`` (the
    shuffled-label models) and ``"mechanism"`` (model B). A scheduler that trains
    them elsewhere (:mod:`pmt_core.scale`) makes these calls, so the model cache
    holds exactly the entries the run looks up.
    """
    n_shuffled = min(run.profile.shuffled_label_models, run.n_replicates)
    return ([f"models {kind}" for kind in INPUT_KINDS]
            + [f"shuffled {k}" for k in range(n_shuffled)] + ["mechanism"])


def training_call(run, name: str) -> dict | None:
    """Arguments of one training call of the run (:func:`train_replicates`).

    Returns
    -------
    dict or None
        Keyword arguments of :func:`train_replicates`; None for model B where
        the transform has too few bands for the tags (no model B is trained).

    Raises
    ------
    ValueError
        For a name that is not one of :func:`training_calls`.
    """
    what, _, arg = name.partition(" ")
    y = run.data.labels
    train, val = run.data.index("training"), run.data.index("validation")
    config = run.training_config
    if what == "models" and arg in INPUT_KINDS:
        x = run.compression.inputs[arg]
        return dict(x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val],
                    config=config, seeds=replicate_seeds(run.settings.seed,
                                                         run.n_replicates),
                    desc=f"train {arg}")
    if what == "shuffled" and arg.isdigit():
        k = int(arg)
        x = run.compression.inputs["s1s2"]
        rng = np.random.default_rng([run.settings.seed, k, 23])
        return dict(x_train=x[train], y_train=rng.permutation(y[train]), x_val=x[val],
                    y_val=rng.permutation(y[val]), config=config, seeds=[run.seed_of(k)],
                    desc=f"train s1s2 on shuffled labels ({k})")
    if what == "mechanism" and not arg:
        inputs = mechanism_inputs(run)
        if inputs is None:
            return None
        n = min(run.profile.mechanism_models, run.n_replicates)
        return dict(x_train=inputs["training"], y_train=inputs["labels"][train],
                    x_val=inputs["validation"], y_val=inputs["labels"][val],
                    config=config, seeds=[run.seed_of(k) for k in range(n)],
                    desc="train s1s2 on tag-only labels")
    raise ValueError(f"unknown training call {name!r}; expected one of "
                     f"{training_calls(run)}")


def train_call(run, name: str) -> list | None:
    """Make one training call of the run (:func:`training_call`) in its arithmetic."""
    call = run.training_call(name)
    if call is None:
        return None
    with run.arithmetic():
        return run.train_replicates(**call)


def mechanism_inputs(run) -> dict | None:
    """Model B's tags, labels and tagged inputs (None: too few bands for the tags)."""
    def compute():
        from pmt_core.explain import mechanism as mech
        from pmt_core.explain.occlusion import s2_bands

        bands = s2_bands(run.compression.paths)
        n_classes = len(run.data.class_names)
        tags = mech.tag_bands(bands, n_classes)
        if tags is None:
            return None
        x, std = run.compression.inputs["s1s2"], run.input_statistics[1]
        # B's labels ignore the technique: the tag is its only cue
        labels = np.random.default_rng([run.settings.seed, 31]).integers(
            0, n_classes, len(run.data.labels))
        tagged = {part: mech.add_tag(x[idx], labels[idx], bands, tags, std)
                  for part, idx in (("training", run.data.index("training")),
                                    ("validation", run.data.index("validation")))}
        return {"bands": bands, "tags": tags, "labels": labels, **tagged}

    return run.memo("mechanism_inputs", lambda: compute() or False) or None


def train_kind(run, kind: str) -> list[TrainedModel]:
    """Train (or load) every replicate of one input kind; save their checkpoints."""
    from pmt_core.model.checkpoint import save_checkpoint
    from pmt_core.model.training import predict_logits

    x = run.compression.inputs[kind]
    y = run.data.labels
    test = run.data.index("test")
    seeds = replicate_seeds(run.settings.seed, run.n_replicates)
    with run.timed(f"training_{kind}"):
        results = run.train_call(f"models {kind}")
    out = []
    for k, (seed, result) in enumerate(zip(seeds, results, strict=True)):
        with run.arithmetic():
            logits = predict_logits(result.model, x[test], device=run.device)
        out.append(TrainedModel(kind, k, seed, result, run.data.class_names, y[test],
                                logits.argmax(axis=1), logits))
        name = f"{kind}.pt" if k == 0 else f"{kind}-r{k}.pt"
        save_checkpoint(run.report_dir / "models" / name, result.model,
                        scattering_config=run.scattering_config,
                        class_names=run.data.class_names,
                        compression=run.compression.for_kind(kind), input_kind=kind,
                        training_config=result.config,
                        extra={"replicate": k, "seed": seed,
                               "run_seed": run.settings.seed,
                               "dataset": run.data.source,
                               "training": result.summary()})
    return out


def compute_shuffled_label_models(run) -> list:
    """S1+S2 models trained on shuffled training labels (data randomisation).

    Adebayo et al. (2018): an explanation of a model that learned nothing
    about the labels must differ from the trained model's. Model k keeps
    replicate k's training seed (same initialisation and batch order) and
    permutes the training labels with a seed of its own; validation labels
    are permuted too, so early stopping sees no real signal either.
    """
    n = min(run.profile.shuffled_label_models, run.n_replicates)
    out = []
    with run.timed("training_shuffled_labels"):
        for k in range(n):
            (result,) = run.train_call(f"shuffled {k}")
            out.append(result.model)
    return out
