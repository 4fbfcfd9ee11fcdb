"""Reading audio files (WAV, FLAC) as float32 mono at a fixed sample rate."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import soundfile as sf
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
