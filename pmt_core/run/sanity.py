"""The sanity stage: what the sanity and model-use claims measure, computed once per run.

* Deletion curves (Samek et al. 2017): the explained logit as the paths each map
  ranks first (MoRF) or last (LeRF) are removed, per explainer and replicate.
* Model randomisation (Adebayo et al. 2018): maps of a copy of each replicate
  whose layers are re-initialised in cascade, output first (every stage for the
  LRP readings of replicate 0; every explainer after the last stage).
* Data randomisation (Adebayo et al. 2018): maps of the models trained on
  shuffled labels.
* Band occlusion (:mod:`pmt_core.explain.occlusion`): the logit drop when each
  lambda2 band is replaced by its training mean, on the test split and on the
  modulation-ablated twins.

All but band occlusion on the run's sanity examples (:func:`sanity_subset`), for
every S1+S2 replicate, with each replicate's predicted class as target. The
claims (:mod:`pmt_core.claims.sanity`, :mod:`pmt_core.claims.model`) compute
their statistics and figures from these stages; they compute no stage.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

__all__ = ["BandOcclusion", "DataRandomisationStage", "DeletionStage",
           "ModelRandomisationStage", "compute_band_occlusion",
           "compute_data_randomisation", "compute_deletion", "compute_model_randomisation",
           "sanity_index", "sanity_subset"]


def sanity_index(run) -> np.ndarray:
    """Test positions of the sanity checks: stratified, seeded, sorted."""
    true = run.data.labels[run.data.index("test")]
    n_max = run.profile.sanity_examples
    if len(true) <= n_max:
        return np.arange(len(true))
    rng = np.random.default_rng([run.settings.seed, 29])
    picked = []
    for k in np.unique(true):
        idx = np.flatnonzero(true == k)
        take = max(1, round(n_max * idx.size / len(true)))
        picked.append(rng.choice(idx, size=min(take, idx.size), replace=False))
    return np.sort(np.concatenate(picked))[:n_max]


def sanity_subset(run) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """Return the sanity examples' test positions, S1+S2 inputs and time-averaged energy."""
    idx = run.sanity_index()
    x = run.test_inputs("s1s2")[idx]
    return idx, x, run.test_energy[idx]


def _explain_all(run, r, model, idx, x, energy, names) -> dict:
    """Explain ``model`` with ``names`` on the sanity examples, replicate r's targets."""
    target = run.models.replicates["s1s2"][r].test_pred[idx]
    inputs = run.explainer_inputs(r, x=x, target=target, energy=energy, model=model,
                                  index=idx)
    return {n: run.explain(n, inputs).maps for n in names}


# -------------------------------------------------------------------- deletion --
@dataclass
class DeletionStage:
    """Deletion curves of every explainer's maps, per S1+S2 replicate.

    Attributes
    ----------
    index : numpy.ndarray of int
        Test positions of the sanity examples.
    steps, per_step : int
        Deletion steps and paths removed per step.
    morf, lerf : dict
        ``morf[explainer][replicate]``: (examples, steps + 1) logits of the
        replicate's predicted class as the paths are removed most (least)
        relevant first (:func:`pmt_core.explain.perturbation.deletion_logits`).
    """

    index: np.ndarray
    steps: int
    per_step: int
    morf: dict
    lerf: dict


#: The code the deletion curves and band occlusion run (the network and their module).
DELETION_CODE = ("pmt_core.explain.perturbation", "pmt_core.model.network")
OCCLUSION_CODE = ("pmt_core.explain.occlusion", "pmt_core.model.network")


def _occlusion_drops(run, model, x, target, bands, fill) -> np.ndarray:
    """:func:`~pmt_core.explain.occlusion.band_occlusion_drops` through the run's store."""
    from pmt_core.explain import occlusion as occ

    def compute():
        return {"drops": occ.band_occlusion_drops(model, x, target, bands, fill)}

    return run.stored("band_occlusion", OCCLUSION_CODE,
                      (model, x, np.asarray(target), np.asarray(fill), bands.hz,
                       *[np.asarray(m) for m in bands.members]), compute)["drops"]


def compute_deletion(run) -> DeletionStage:
    """Compute the deletion curves (MoRF, LeRF) of every explainer and S1+S2 replicate."""
    from pmt_core.explain.perturbation import (
        DELETION_PER_STEP,
        DELETION_STEPS,
        deletion_logits,
    )

    idx, x, _ = sanity_subset(run)
    models = run.models.replicates["s1s2"]
    morf_logits, lerf_logits = {}, {}
    with run.timed("sanity_deletion"):
        for name, per_rep in run.explanations.maps.items():
            morf_logits[name], lerf_logits[name] = [], []
            for r, mm in enumerate(models):
                target, ranking = mm.test_pred[idx], per_rep[r][idx]
                kwargs = dict(steps=DELETION_STEPS, per_step=DELETION_PER_STEP,
                              target=target, device=run.device)

                def curves(model=mm.model, ranking=ranking, kwargs=kwargs):
                    return {order: deletion_logits(model, x, ranking, order=order, **kwargs)
                            for order in ("morf", "lerf")}

                out = run.stored("deletion", DELETION_CODE, (
                    mm.model, x, ranking, target, [DELETION_STEPS, DELETION_PER_STEP]), curves)
                morf_logits[name].append(out["morf"])
                lerf_logits[name].append(out["lerf"])
    return DeletionStage(idx, DELETION_STEPS, DELETION_PER_STEP, morf_logits, lerf_logits)


# ------------------------------------------------------------- randomisation --
@dataclass
class ModelRandomisationStage:
    """Maps of cascade-randomised copies of the S1+S2 replicates.

    Attributes
    ----------
    index : numpy.ndarray of int
        Test positions of the sanity examples.
    layers : tuple of str
        The cascade order (:func:`pmt_core.model.randomisation.cascade_layers`): the
        layers re-initialised cumulatively, output first.
    cascade : dict
        ``cascade[composite][stage]``: (examples, paths) maps of replicate 0's
        copy after the layers up to ``layers[stage]`` are re-initialised, for
        every LRP reading.
    randomised : dict
        ``randomised[explainer][replicate]``: (examples, paths) maps of each
        replicate's copy with every layer re-initialised.
    """

    index: np.ndarray
    layers: tuple
    cascade: dict
    randomised: dict


def compute_model_randomisation(run) -> ModelRandomisationStage:
    """Explain cascade-randomised copies of every S1+S2 replicate.

    On a copy of each replicate, the layers are re-initialised cumulatively
    (:func:`pmt_core.model.randomisation.reinitialise`, seeded by the replicate's
    seed and the stage); the LRP readings are explained after every stage for
    replicate 0, every explainer of every replicate after the last, with the
    trained replicate's predictions as targets.
    """
    from pmt_core.explain.explainers import lrp_explainer_names
    from pmt_core.model import randomisation as R

    composites = lrp_explainer_names()
    idx, x, energy = sanity_subset(run)
    models = run.models.replicates["s1s2"]
    layers = R.cascade_layers(models[0].model)
    names = list(run.explanations.maps)
    cascade = {n: [] for n in composites}
    randomised = {n: [] for n in names}
    with run.timed("sanity_randomisation"):
        for r, mm in enumerate(models):
            work = copy.deepcopy(mm.model).eval()
            for k, layer in enumerate(layers):
                R.reinitialise(getattr(work, layer), int(run.seed_of(r)) * 1000 + k)
                last = k == len(layers) - 1
                if not (last or r == 0):
                    continue  # every stage for replicate 0; the others, the last stage
                maps = _explain_all(run, r, work, idx, x, energy, names if last else composites)
                if r == 0:
                    for n in composites:
                        cascade[n].append(maps[n])
                if last:
                    for n in names:
                        randomised[n].append(maps[n])
    return ModelRandomisationStage(idx, layers, cascade, randomised)


@dataclass
class DataRandomisationStage:
    """Maps of the S1+S2 models trained on shuffled labels.

    Attributes
    ----------
    index : numpy.ndarray of int
        Test positions of the sanity examples.
    maps : dict
        ``maps[explainer][k]``: (examples, paths) maps of shuffled-label model k
        (:attr:`pmt_core.run.Run.shuffled_label_models`) for trained replicate
        k's predicted class.
    """

    index: np.ndarray
    maps: dict

    @property
    def n_models(self) -> int:
        """Shuffled-label models explained."""
        return len(next(iter(self.maps.values()), []))


def compute_data_randomisation(run) -> DataRandomisationStage:
    """Explain every shuffled-label model on the sanity examples."""
    idx, x, energy = sanity_subset(run)
    shuffled = run.shuffled_label_models
    names = list(run.explanations.maps)
    maps = {n: [] for n in names}
    with run.timed("sanity_data_randomisation"):
        for r, model in enumerate(shuffled):
            out = _explain_all(run, r, model, idx, x, energy, names)
            for n in names:
                maps[n].append(out[n])
    return DataRandomisationStage(idx, maps)


# ------------------------------------------------------------- band occlusion --
@dataclass
class BandOcclusion:
    """Band-occlusion drops of every S1+S2 replicate on the test split.

    Attributes
    ----------
    bands : pmt_core.explain.occlusion.Bands
        The lambda2 bands (:func:`pmt_core.explain.occlusion.s2_bands`).
    class_names : tuple of str
    fill : numpy.ndarray
        Per-path training mean of the compressed inputs (what a band becomes).
    true : numpy.ndarray of int, (examples,)
    pred : numpy.ndarray of int, (replicates, examples)
    correct : numpy.ndarray of bool, (replicates, examples)
    drops : numpy.ndarray, (replicates, examples, bands)
        Logit drop of the replicate's prediction.
    rate : numpy.ndarray or None, (examples,)
        The test examples' rates (:attr:`pmt_core.run.Run.rates`).
    rate_note : str
        Appended to the detail of every claim that reads the rates.
    twin_drops : numpy.ndarray or None, (replicates, examples, bands)
        The same on each example's modulation-ablated twin (None without twins),
        for the class predicted on the original.
    """

    bands: object
    class_names: tuple
    fill: np.ndarray
    true: np.ndarray
    pred: np.ndarray
    correct: np.ndarray
    drops: np.ndarray
    rate: np.ndarray | None
    rate_note: str
    twin_drops: np.ndarray | None

    @cached_property
    def shares(self) -> np.ndarray:
        """(replicates, examples, bands) drops over each example's total |drop|."""
        from pmt_core.explain import occlusion as occ

        return occ.band_shares(self.drops)

    def near_rate(self, tol_octaves: float) -> np.ndarray:
        """(examples, bands): bands within ``tol_octaves`` of each example's rate."""
        rate = np.full(len(self.true), np.nan) if self.rate is None else self.rate
        return self.bands.near(rate, tol_octaves)


def compute_band_occlusion(run) -> BandOcclusion:
    """Band-occlusion drops of every S1+S2 replicate, on the test split and the twins."""
    from pmt_core.explain import occlusion as occ

    with run.timed("band_occlusion"):
        models = run.models.replicates["s1s2"]
        bands = occ.s2_bands(run.compression.paths)
        class_names = tuple(run.data.class_names)
        fill = run.input_statistics[0]
        true = np.asarray(models[0].test_true, dtype=int)
        pred = np.stack([np.asarray(m.test_pred, dtype=int) for m in models])
        correct = pred == true[None, :]
        x = run.test_inputs("s1s2")
        drops = np.stack([_occlusion_drops(run, m.result.model, x, pred[r], bands, fill)
                          for r, m in enumerate(models)])
        rate = run.rates.of("test")
        rate_note = run.rates.note("test")
        twins = run.twins
        twin_drops = None if twins is None or twins.inputs is None else np.stack([
            _occlusion_drops(run, m.result.model, twins.inputs, pred[r], bands, fill)
            for r, m in enumerate(models)])
    return BandOcclusion(bands, class_names, fill, true, pred, correct, drops, rate,
                         rate_note, twin_drops)
