"""Saving and loading trained networks with everything needed to use them again.

A checkpoint is a ``torch.save`` of a plain dict: the state dict (CPU tensors) and
JSON data (model shape, class names, input kind, scattering config and its
fingerprint, fitted compression, training config, library versions). Plain data
lets :func:`load_checkpoint` use ``torch.load(weights_only=True)``, which never
runs pickled code. Writes are atomic: a reader sees the old file or the new one,
never a partial one.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pmt_core.features.compression import LogCompression
from pmt_core.features.scattering import ScatteringConfig
from pmt_core.infra.atomic import atomic_path
from pmt_core.infra.device import select_device
from pmt_core.model.network import PMTConvNet

FORMAT = "pmt-checkpoint"
FORMAT_VERSION = 1
INPUT_KINDS = ("s1", "s1s2")
_REQUIRED_TOP = ("format", "format_version", "state_dict", "metadata")
_REQUIRED_METADATA = (
    "n_paths",
    "n_classes",
    "dropout",
    "class_names",
    "input_kind",
    "scattering_config",
    "scattering_fingerprint",
    "compression",
)


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match what the caller expects."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : PMTConvNet
        The network in eval mode, on the requested device.
    scattering_config : ScatteringConfig
        Settings of the features the network was trained on.
    class_names : tuple of str
        Output classes in logit order.
    compression : LogCompression
        The fitted compression to apply to raw scattering coefficients.
    input_kind : str
        ``"s1"`` (first-order paths only) or ``"s1s2"``.
    metadata : dict
        Everything else that was stored (versions, training config, extra, ...).
    """

    model: PMTConvNet
    scattering_config: ScatteringConfig
    class_names: tuple[str, ...]
    compression: LogCompression
    input_kind: str
    metadata: dict


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def save_checkpoint(
    path,
    model: PMTConvNet,
    *,
    scattering_config: ScatteringConfig,
    class_names: Sequence[str],
    compression: LogCompression,
    input_kind: str,
    training_config=None,
    extra: dict | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
    model : PMTConvNet
    scattering_config : ScatteringConfig
        Settings of the features the model was trained on.
    class_names : sequence of str
        Output classes in logit order (one per output).
    compression : LogCompression
        The fitted compression (its ``mu`` has one value per input path).
    input_kind : {"s1", "s1s2"}
    training_config : TrainingConfig or dict, optional
        Stored for provenance.
    extra : dict, optional
        Any further JSON-serialisable provenance (data set, seeds, scores, ...).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        On inconsistent arguments (class count, unfitted or mis-sized compression,
        unknown input kind) or metadata that is not JSON-serialisable.
    """
    class_names = [str(name) for name in class_names]
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    if len(class_names) != model.n_classes:
        raise ValueError(
            f"{len(class_names)} class names for a model with {model.n_classes} outputs"
        )
    if compression.mu is None:
        raise ValueError("compression is not fitted: a checkpoint needs its per-path means")
    if len(compression.mu) != model.n_paths:
        raise ValueError(f"compression has {len(compression.mu)} paths, the model {model.n_paths}")
    if training_config is not None and not isinstance(training_config, dict):
        training_config = training_config.to_dict()
    metadata = {
        "n_paths": model.n_paths,
        "n_classes": model.n_classes,
        "dropout": float(model.dropout.p),
        "class_names": class_names,
        "input_kind": input_kind,
        "scattering_config": scattering_config.to_dict(),
        "scattering_fingerprint": scattering_config.fingerprint(),
        "compression": compression.to_dict(),
        "training_config": training_config,
        "versions": {
            "torch": torch.__version__,
            "kymatio": _version("kymatio"),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "extra": extra or {},
    }
    try:
        # A JSON round trip keeps only plain data, which weights_only loading accepts.
        metadata = json.loads(json.dumps(metadata, allow_nan=True))
    except TypeError as exc:
        raise ValueError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _config_differences(stored: ScatteringConfig, expected: ScatteringConfig) -> list[str]:
    stored_fields, expected_fields = stored.to_dict(), expected.to_dict()
    return [
        f"{name}: checkpoint {stored_fields.get(name)!r}, expected {expected_fields[name]!r}"
        for name in expected_fields
        if stored_fields.get(name) != expected_fields[name]
    ]


def load_checkpoint(
    path,
    *,
    expected_config: ScatteringConfig | None = None,
    expected_classes: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` and check it.

    Parameters
    ----------
    path : str or os.PathLike
    expected_config : ScatteringConfig, optional
        Refuse a checkpoint trained on other scattering settings.
    expected_classes : sequence of str, optional
        Refuse a checkpoint whose classes (or their order) differ.
    device : str or torch.device, optional
        Where to put the model (default: CUDA when available, else the CPU).

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, corrupt or truncated; if keys are
        missing; if the scattering config or classes differ from the expected ones
        (the message names the differing fields); if the state dict does not fit
        the stored ``n_paths`` / ``n_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(
            f"cannot read checkpoint {path} (corrupt, truncated or not a checkpoint): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a checkpoint dict")
    missing = [key for key in _REQUIRED_TOP if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}")
    if payload["format"] != FORMAT or payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format {payload['format']!r} version {payload['format_version']!r}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    metadata = payload["metadata"]
    if not isinstance(metadata, dict):
        raise CheckpointError(f"checkpoint {path} has metadata of type {type(metadata).__name__}")
    missing = [key for key in _REQUIRED_METADATA if key not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks metadata keys {missing}")

    try:
        config = ScatteringConfig.from_dict(metadata["scattering_config"])
        compression = LogCompression.from_dict(metadata["compression"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {exc}") from exc
    if config.fingerprint() != metadata["scattering_fingerprint"]:
        raise CheckpointError(
            f"checkpoint {path}: stored scattering fingerprint "
            f"{metadata['scattering_fingerprint']} does not match its config "
            f"({config.fingerprint()}); the file was altered or written by other code"
        )
    if expected_config is not None:
        differences = _config_differences(config, expected_config)
        if differences:
            raise CheckpointError(
                f"checkpoint {path} was trained on other scattering settings: "
                + "; ".join(differences)
            )
    class_names = tuple(metadata["class_names"])
    if expected_classes is not None and class_names != tuple(expected_classes):
        raise CheckpointError(
            f"checkpoint {path} has classes {list(class_names)}, expected {list(expected_classes)}"
        )
    input_kind = metadata["input_kind"]
    if input_kind not in INPUT_KINDS:
        raise CheckpointError(f"checkpoint {path} has unknown input kind {input_kind!r}")

    n_paths, n_classes = metadata["n_paths"], metadata["n_classes"]
    if len(class_names) != n_classes:
        raise CheckpointError(
            f"checkpoint {path} lists {len(class_names)} classes for {n_classes} outputs"
        )
    try:
        model = PMTConvNet(n_paths=n_paths, n_classes=n_classes, dropout=metadata["dropout"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: state dict does not fit a network with n_paths={n_paths}, "
            f"n_classes={n_classes}: {exc}"
        ) from exc
    model.to(select_device(device)).eval()
    return Checkpoint(
        model=model,
        scattering_config=config,
        class_names=class_names,
        compression=compression,
        input_kind=input_kind,
        metadata=metadata,
    )
