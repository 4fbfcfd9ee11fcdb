"""The explanations: every explainer's maps of the S1+S2 replicates, and the mechanism check.

Every explainer call of a run goes through :meth:`pmt_core.run.Run.explain`;
:func:`explainer_inputs` builds what an explainer reads (the test rows by
default, or a subset, other inputs, another model).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from pmt_core.run.models import mechanism_inputs

__all__ = ["ExplanationStage", "MechanismStage", "compute_class_profiles",
           "compute_explanations", "compute_mechanism", "explainer_inputs"]


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


def compute_class_profiles(run) -> np.ndarray:
    """Fit the class-constant null's maps on the training split only."""
    from pmt_core.explain.explainers import fit_class_profiles

    train = run.data.index("training")
    values = run.features.result.values
    energy = values[train].mean(axis=-1, dtype=np.float64)
    ref = run.reference_mean
    return fit_class_profiles(
        run.data.labels[train], len(run.data.class_names), run.compression.paths,
        rates_hz=run.rates.of("training"),
        energy_norm=energy / np.where(ref > 0, ref, np.inf))


def explainer_inputs(run, replicate: int, *, x=None, target=None, energy=None, model=None,
                     index=None):
    """:class:`~pmt_core.explain.explainers.ExplainerInputs` of one S1+S2 replicate.

    Defaults: the test rows, the replicate's predictions, its model; ``index``
    selects test rows (x, energy and the rows' metadata follow it unless given).
    """
    from pmt_core.explain.explainers import ExplainerInputs

    trained = run.models.replicates["s1s2"][replicate]
    rows = run.data.frame.iloc[run.data.index("test")].reset_index(drop=True)
    pick = slice(None) if index is None else np.asarray(index)
    if index is not None:
        rows = rows.iloc[pick].reset_index(drop=True)
    return ExplainerInputs(
        model=trained.model if model is None else model,
        x=run.test_inputs("s1s2")[pick] if x is None else x,
        target=trained.test_pred[pick] if target is None else np.asarray(target),
        energy=run.test_energy[pick] if energy is None else energy, rows=rows,
        reference_mean=run.reference_mean, class_profiles=run.class_profiles,
        paths=run.compression.paths, seed=run.seed_of(replicate), device=run.device,
        input_mean=run.input_statistics[0], input_std=run.input_statistics[1])


def compute_explanations(run) -> ExplanationStage:
    """Every explainer's maps for every S1+S2 replicate's test predictions."""
    from pmt_core.explain.explainers import EXPLAINERS

    maps, sums, seconds = {}, {}, {}
    targets = [m.test_pred for m in run.models.replicates["s1s2"]]
    with run.timed("explanations"), run.arithmetic():
        for name in EXPLAINERS:
            start = time.perf_counter()
            maps[name], sums[name] = [], []
            for k in range(run.models.n_replicates):
                out = run.explain(name, run.explainer_inputs(k))
                maps[name].append(out.maps)
                sums[name].append(out.input_sums)
            seconds[name] = time.perf_counter() - start
    run.timings.update({f"explain_{k}": v for k, v in seconds.items()})
    return ExplanationStage(maps, sums, targets, seconds)


def compute_mechanism(run) -> MechanismStage | None:
    """Model B, trained on tagged inputs with random labels, and both models' maps.

    None where the transform has too few lambda2 bands above the techniques'
    for one tag per class (:mod:`pmt_core.explain.mechanism`).
    """
    from pmt_core.explain import mechanism as mech
    from pmt_core.explain.explainers import EXPLAINERS
    from pmt_core.model.training import predict_logits

    inputs = mechanism_inputs(run)
    if inputs is None:
        return None
    tags, labels, tagged = inputs["tags"], inputs["labels"], inputs
    n = min(run.profile.mechanism_models, run.n_replicates)
    x, std = run.compression.inputs["s1s2"], run.input_statistics[1]
    val, test = run.data.index("validation"), run.data.index("test")
    truth = run.data.labels[test]
    test_inputs = mech.add_tag(x[test], truth, inputs["bands"], tags, std)
    models_a = [m.model for m in run.models.replicates["s1s2"][:n]]
    with run.timed("training_mechanism_b"):
        results = run.train_call("mechanism")
    models_b = [r.model for r in results]
    with run.timed("explain_mechanism"), run.arithmetic(), warnings.catch_warnings():
        pred = {side: np.stack([predict_logits(m, test_inputs, device=run.device)
                                .argmax(axis=1) for m in models])
                for side, models in (("a", models_a), ("b", models_b))}
        val_acc = [float(np.mean(predict_logits(m, tagged["validation"], device=run.device)
                                 .argmax(axis=1) == labels[val])) for m in models_b]
        maps = {"a": {}, "b": {}}
        # The tag lifts its band past the training range, which is the z-box
        # reading's box: that its root point is then outside the data is known
        # (the family's detail says so), not news at every call.
        warnings.filterwarnings("ignore", message=".*outside the z-box.*")
        for name in EXPLAINERS:
            for side, models in (("a", models_a), ("b", models_b)):
                maps[side][name] = [run.explain(name, run.explainer_inputs(
                    k, x=test_inputs, target=pred[side][k], model=models[k])).maps
                    for k in range(n)]
    return MechanismStage(tags, test_inputs, pred["a"], pred["b"], maps["a"], maps["b"],
                          val_acc)


def explanation_cache(run):
    """Return the explanation store (the feature cache's folder), or None when disabled."""
    from pmt_core.explain.cache import explanation_namespace
    from pmt_core.infra.cache import FeatureCache, resolve_cache_dir

    if not run.settings.use_cache:
        return None
    root = resolve_cache_dir(run.settings.cache_dir)
    return None if root is None else FeatureCache(root, explanation_namespace(run.device))
