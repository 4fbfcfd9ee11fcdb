"""Trained models stored once: a rerun that changes only explanations or claims loads them.

Training is most of a run's time (five replicates x two input kinds, the
shuffled-label models, model B of the mechanism check), and most changes after
the first run are to explanation, claim or report code, which leave the weights
as they were. :func:`train_cached` keys each call of
:func:`~pmt_core.model.replicates.train_replicates` by what determines its weights
and returns the stored results on a hit:

- the training and validation inputs and labels, byte for byte (so the data, the
  split, the feature code and the compression statistics are all in the key
  through what they produce), and the class names;
- the training configuration and the replicates' seeds;
- the code that trains (:data:`MODEL_CODE_MODULES`, by source digest);
- the device kind (and the GPU's name), torch's thread count, the CPU's pinned
  arithmetic (:func:`pmt_core.infra.arithmetic.fingerprint`) and the run's
  arithmetic perturbation.

Entries live in the feature cache's folder (their own namespace, the same atomic
writes, corruption handling and ``cache clear``); a damaged entry is a miss and
is retrained. A hit gives the same weights, curves and stopping epochs as the
training that stored it, so every figure is the same as in that run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import torch

from pmt_core.infra.cache import FeatureCache, array_digest_update, source_digest
from pmt_core.model.config import TrainingConfig, TrainResult
from pmt_core.model.network import PMTConvNet
from pmt_core.model.replicates import train_replicates

#: The code whose change changes trained weights (the model and its training loops).
MODEL_CODE_MODULES = ("pmt_core.model.network", "pmt_core.model.config",
                      "pmt_core.model.metrics", "pmt_core.model.training",
                      "pmt_core.model.replicates", "pmt_core.model.ensemble")
#: Namespace prefix of trained-model entries in the cache folder.
NAMESPACE_PREFIX = "models"


def model_namespace(device: torch.device) -> str:
    """Return the cache namespace of models trained on ``device`` with this code."""
    from pmt_core.infra import arithmetic

    device = torch.device(device)
    recipe = {"code": source_digest(MODEL_CODE_MODULES), "device": device.type,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "arithmetic": arithmetic.fingerprint() if device.type == "cpu" else None}
    return FeatureCache.namespace_for(NAMESPACE_PREFIX, recipe=recipe)


def training_key(x_train, y_train, x_val, y_val, class_names, config: TrainingConfig,
                 seeds, *, perturb: str = "none") -> str:
    """Return the key of one :func:`train_replicates` call (module notes)."""
    digest = hashlib.sha256()
    for array in (x_train, y_train, x_val, y_val):
        array_digest_update(digest, array)
    digest.update(json.dumps({
        "classes": list(class_names), "config": dataclasses.asdict(config),
        "seeds": [int(s) for s in seeds], "threads": torch.get_num_threads(),
        "perturb": perturb}, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _entry(results: list[TrainResult]) -> tuple[dict, dict]:
    arrays, replicates = {}, []
    for k, result in enumerate(results):
        for name, value in result.model.state_dict().items():
            arrays[f"{k}/{name}"] = value.detach().cpu().numpy()
        replicates.append({
            "class_names": list(result.class_names), "history": result.history,
            "best_epoch": result.best_epoch,
            "best_val_macro_accuracy": result.best_val_macro_accuracy,
            "epochs_run": result.epochs_run, "seconds": result.seconds,
            "config": dataclasses.asdict(result.config),
            "steps_per_epoch": result.steps_per_epoch,
            "n_paths": result.model.n_paths, "n_classes": result.model.n_classes})
    return arrays, {"format": "pmt-trained-models", "replicates": replicates}


def _restore(arrays: dict, meta: dict, device: torch.device) -> list[TrainResult] | None:
    """Rebuild the stored results, or None if the entry does not fit (retrain)."""
    out = []
    try:
        for k, rep in enumerate(meta["replicates"]):
            model = PMTConvNet(n_paths=rep["n_paths"], n_classes=rep["n_classes"])
            prefix = f"{k}/"
            state = {name[len(prefix):]: torch.from_numpy(np.array(value))
                     for name, value in arrays.items() if name.startswith(prefix)}
            model.load_state_dict(state, strict=True)
            out.append(TrainResult(
                model=model.to(device).eval(), class_names=tuple(rep["class_names"]),
                history=rep["history"], best_epoch=rep["best_epoch"],
                best_val_macro_accuracy=rep["best_val_macro_accuracy"],
                epochs_run=rep["epochs_run"], seconds=rep["seconds"],
                config=TrainingConfig(**rep["config"]),
                steps_per_epoch=rep["steps_per_epoch"]))
    except (KeyError, TypeError, ValueError, RuntimeError):
        return None
    return out or None


def train_cached(cache: FeatureCache | None, x_train, y_train, x_val, y_val, class_names,
                 *, config: TrainingConfig, seeds, device, progress: bool = True,
                 desc: str = "", perturb: str = "none") -> list[TrainResult]:
    """:func:`train_replicates` through the model cache (module notes).

    Parameters
    ----------
    cache : FeatureCache or None
        A store in :func:`model_namespace` of ``device``; None trains uncached.
    x_train, y_train, x_val, y_val, class_names, config, seeds, device, progress, desc
        As for :func:`train_replicates`.
    perturb : str
        The run's arithmetic perturbation (part of the key).

    Returns
    -------
    list of TrainResult
        One per seed, trained now or loaded.
    """
    def train():
        return train_replicates(x_train, y_train, x_val, y_val, class_names, config=config,
                                seeds=seeds, device=device, progress=progress, desc=desc)

    if cache is None:
        return train()
    key = training_key(x_train, y_train, x_val, y_val, class_names, config, seeds,
                       perturb=perturb)
    found = cache.get_arrays(key)
    if found is not None:
        restored = _restore(*found, torch.device(device))
        if restored is not None and len(restored) == len(seeds):
            return restored
    results = train()
    cache.put_arrays(key, *_entry(results))
    return results
