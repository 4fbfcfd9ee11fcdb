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
from pmt_core.infra.checks import (
    CheckError,
    check_int,
    check_scattering_config,
    check_unique,
    scattering_path_counts,
)
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


class CheckpointError(CheckError):
    """A checkpoint is missing, unreadable, inconsistent, or not what the caller expects."""


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


def expected_paths(config: ScatteringConfig, input_kind: str) -> int:
    """Return the input path count of a model on ``config``'s features (S1, or S1+S2)."""
    n_first, n_total = scattering_path_counts(config)
    return n_first if input_kind == "s1" else n_total


def _check_class_names(class_names) -> tuple[str, ...]:
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)):
        raise CheckError(f"class names must be a list of strings, got {class_names!r}")
    if not all(isinstance(name, str) and name.strip() for name in class_names):
        raise CheckError(f"class names must be non-empty strings, got {list(class_names)}")
    # They are printed and rendered: a control character could drive the terminal.
    unprintable = [name for name in class_names if not name.isprintable()]
    if unprintable:
        raise CheckError(f"class names must be printable text, got {unprintable!r}")
    # Repeated names would map two outputs to one key: probabilities collapse.
    return tuple(check_unique(class_names, "class names"))


def _check_compression(compression: LogCompression, n_paths: int) -> None:
    if compression.mu is None:
        raise CheckError("compression is not fitted: a checkpoint needs its per-path means")
    mu = np.asarray(compression.mu, dtype=float)
    if mu.ndim != 1 or len(mu) != n_paths:
        raise CheckError(f"compression has {mu.size} paths, the model {n_paths}")
    bad = np.flatnonzero(~(np.isfinite(mu) & (mu > 0)))
    if bad.size:
        # log1p(S / (c * mu)) with mu <= 0 or NaN gives NaN or inf features.
        raise CheckError(f"compression means must be finite and positive; {bad.size} are not "
                         f"(paths {bad[:5].tolist()}, values {mu[bad[:3]].tolist()})")
    if not (np.isfinite(compression.c) and compression.c > 0):
        raise CheckError(f"compression c must be finite and positive, got {compression.c}")
    if not (np.isfinite(compression.eps) and compression.eps >= 0):
        raise CheckError(f"compression eps must be finite and 0 or more, got {compression.eps}")


def _check_state(state_dict: dict) -> None:
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckError(f"state dict entry {name} is a {type(tensor).__name__}, not a tensor")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise CheckError(f"weights are not finite: {name} holds {count} NaN or inf values "
                             "(a diverged training run?)")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise CheckError(f"batch-norm variance {name} has negative values")


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
    CheckpointError
        A ``ValueError``: on inconsistent arguments (class count, repeated class
        names, unfitted, mis-sized, non-finite or non-positive compression means,
        non-finite weights, a path count other than the config's, unknown input
        kind) or metadata that is not JSON-serialisable. Nothing is written then.
    """
    try:
        class_names = list(_check_class_names([str(name) for name in class_names]))
    except CheckError as exc:
        raise CheckpointError(f"not saving {path}: {exc}") from exc
    if input_kind not in INPUT_KINDS:
        raise CheckpointError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")
    if len(class_names) != model.n_classes:
        raise CheckpointError(
            f"{len(class_names)} class names for a model with {model.n_classes} outputs"
        )
    try:
        _check_compression(compression, model.n_paths)
        _check_state(model.state_dict())
    except CheckError as exc:
        raise CheckpointError(f"not saving {path}: {exc}") from exc
    expected = expected_paths(scattering_config, input_kind)
    if model.n_paths != expected:
        raise CheckpointError(
            f"not saving {path}: the model has {model.n_paths} input paths but "
            f"{input_kind} features of its scattering config have {expected}")
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
        raise CheckpointError(f"checkpoint metadata is not JSON-serialisable: {exc}") from exc
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
        (the message names the differing fields); if the stored data contradict
        each other: repeated or empty class names, an invalid scattering config,
        ``n_paths`` other than the config's path count for the input kind, a
        compression of another size or with non-finite or non-positive means,
        non-finite weights or negative batch-norm variances, or a state dict that
        does not fit ``n_paths`` / ``n_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        # torch's messages run to paragraphs: the first line says what went wrong
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"cannot read checkpoint {path} (corrupt, truncated or not a checkpoint): "
            f"{type(exc).__name__}: {reason}"
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
        if not isinstance(metadata["scattering_config"], dict):
            raise TypeError("scattering_config is not a mapping")
        # checked before ScatteringConfig() sees it: T=0 would divide by zero there
        check_scattering_config(metadata["scattering_config"])
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
    try:
        class_names = _check_class_names(metadata["class_names"])
    except CheckError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if expected_classes is not None and class_names != tuple(expected_classes):
        raise CheckpointError(
            f"checkpoint {path} has classes {list(class_names)}, expected {list(expected_classes)}"
        )
    input_kind = metadata["input_kind"]
    if input_kind not in INPUT_KINDS:
        raise CheckpointError(f"checkpoint {path} has unknown input kind {input_kind!r}")

    try:
        n_paths = check_int(metadata["n_paths"], "n_paths", minimum=8)
        n_classes = check_int(metadata["n_classes"], "n_classes", minimum=2)
    except CheckError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if len(class_names) != n_classes:
        raise CheckpointError(
            f"checkpoint {path} lists {len(class_names)} classes for {n_classes} outputs"
        )
    # Before building the network: a forged n_paths could ask for gigabytes.
    expected = expected_paths(config, input_kind)
    if n_paths != expected:
        raise CheckpointError(
            f"checkpoint {path}: n_paths={n_paths}, but {input_kind} features of its "
            f"scattering config have {expected} paths; the file was altered or is broken"
        )
    try:
        _check_compression(compression, n_paths)
    except CheckError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    if not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"checkpoint {path}: state_dict is not a mapping")
    try:
        _check_state(payload["state_dict"])
    except CheckError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
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
