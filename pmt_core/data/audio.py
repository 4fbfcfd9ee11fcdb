"""Reading audio files (WAV, FLAC) as float32 mono at a fixed sample rate."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly


class AudioError(ValueError):
    """An audio file is missing, unreadable, empty or holds non-finite samples."""


def load_audio(path: str | os.PathLike, sample_rate: int = 44100) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate``.

    Multichannel files are averaged over channels. Files at another rate are
    resampled with :func:`scipy.signal.resample_poly` (polyphase FIR with a Kaiser
    window, the up/down factors being the reduced ratio of the two rates), which
    band-limits before decimation.

    Parameters
    ----------
    path : str or os.PathLike
        WAV or FLAC file (anything libsndfile reads).
    sample_rate : int
        Sample rate of the returned signal (Hz).

    Returns
    -------
    numpy.ndarray
        float32 signal, shape ``(n_samples,)``.

    Raises
    ------
    AudioError
        If the file is missing, unreadable, empty (0 samples) or holds NaN/inf.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: unreadable audio file ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio file (0 samples)")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio holds non-finite samples (NaN or inf)")
    mono = data.mean(axis=1, dtype=np.float32)
    if file_rate != sample_rate:
        ratio = Fraction(int(sample_rate), int(file_rate))
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def fix_length(x: np.ndarray, n_samples: int) -> np.ndarray:
    """Truncate, or zero-pad at the end, to ``n_samples`` (the authors' rule)."""
    x = np.asarray(x)
    if len(x) >= n_samples:
        return x[:n_samples]
    return np.concatenate([x, np.zeros(n_samples - len(x), dtype=x.dtype)])


def prepare_signals(audio, sample_rate: int, expected_rate: int, n_samples: int) -> np.ndarray:
    """Validate, normalise and fix the length of audio for the transform.

    Parameters
    ----------
    audio : array-like or torch.Tensor
        One signal (samples,) or a batch (examples, samples) of mono signals.
        Multi-channel audio must be averaged first (``pmt_core.data.audio.load_audio``
        does it); a 2-D input is always read as a batch.
    sample_rate : int
        Sample rate of ``audio``; must equal ``expected_rate``.
    expected_rate : int
        The sample rate the transform expects (Hz).
    n_samples : int
        Clip length of the output.

    Returns
    -------
    numpy.ndarray, float32, shape (examples, n_samples)
        Each signal divided by its own standard deviation (the authors' code;
        silence is left at zero), then truncated or zero-padded at the end.

    Raises
    ------
    ValueError
        On a wrong sample rate, an empty signal, NaN or inf, or more than 2 axes.
    """
    if int(sample_rate) != expected_rate:
        raise ValueError(
            f"audio sample rate is {sample_rate} Hz but the transform expects "
            f"{expected_rate} Hz; resample first (pmt_core.data.audio.load_audio does)"
        )
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    signals = np.asarray(audio, dtype=np.float64)
    if signals.ndim == 1:
        signals = signals[None, :]
    if signals.ndim != 2:
        raise ValueError(
            f"expected one signal (samples,) or a batch (examples, samples), got shape "
            f"{signals.shape}; average multi-channel audio to mono first"
        )
    if signals.shape[0] == 0 or signals.shape[1] == 0:
        raise ValueError(f"empty audio: shape {signals.shape}")
    if not np.all(np.isfinite(signals)):
        bad = np.flatnonzero(~np.all(np.isfinite(signals), axis=1)).tolist()
        raise ValueError(f"audio contains NaN or inf (examples {bad[:10]})")
    std = signals.std(axis=1, keepdims=True)
    signals = signals / np.where(std > 0, std, 1.0)
    out = np.zeros((signals.shape[0], n_samples), dtype=np.float32)
    n = min(n_samples, signals.shape[1])
    out[:, :n] = signals[:, :n]
    return out
