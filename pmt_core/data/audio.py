"""Reading audio files (WAV, FLAC) as float32 mono at a fixed sample rate."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from pmt_core.infra.checks import CheckError, check_positive_int, check_sample_rate

#: File sample rates accepted by :func:`load_audio`. Outside this range a header is
#: damaged or the file is not a recording (a 1 Hz "recording" resampled to 44.1 kHz
#: would ask for 44,100 output samples per input sample).
FILE_RATE_RANGE = (1000, 768000)
#: Shortest clip a batch row can be (seconds). Any channel count in use (stereo to
#: hundreds of microphones) is fewer samples than this, and no recording of a
#: technique is shorter: a 2-D array whose second axis is shorter and whose first
#: axis is longer is multichannel audio in ``soundfile.read``'s (frames, channels)
#: layout, never a batch of mono clips.
MIN_CLIP_S = 0.01
#: Peak levels outside ``[1 / SAFE_PEAK, SAFE_PEAK]`` are brought to 1 before taking
#: the standard deviation: squaring 1e200 overflows to inf (the clip would become
#: silence), squaring 1e-200 underflows to 0 (same). Within the range the arithmetic
#: is the authors' unchanged, so the features of ordinary audio are bit for bit the
#: same as before this guard.
SAFE_PEAK = 1e100


class AudioError(CheckError):
    """Audio is missing, unreadable, empty, non-finite or not in a usable layout."""


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
        Sample rate of the returned signal (Hz); a whole positive number
        (``44100.7`` is refused, not truncated).

    Returns
    -------
    numpy.ndarray
        float32 signal, shape ``(n_samples,)``.

    Raises
    ------
    AudioError
        If the file is missing, a folder, unreadable, empty (0 samples), holds
        NaN/inf, or declares a sample rate outside :data:`FILE_RATE_RANGE`.
    CheckError
        If ``sample_rate`` is not a positive integer.
    """
    sample_rate = check_sample_rate(sample_rate)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise AudioError(f"{path}: unreadable audio file ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio file (0 samples)")
    if not FILE_RATE_RANGE[0] <= file_rate <= FILE_RATE_RANGE[1]:
        raise AudioError(f"{path}: the file declares a sample rate of {file_rate} Hz, outside "
                         f"{FILE_RATE_RANGE[0]}-{FILE_RATE_RANGE[1]} Hz; the header is damaged "
                         "or this is not a recording")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio holds non-finite samples (NaN or inf)")
    mono = data.mean(axis=1, dtype=np.float32)
    if file_rate != sample_rate:
        ratio = Fraction(int(sample_rate), int(file_rate))
        mono = resample_poly(mono, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def fix_length(x: np.ndarray, n_samples: int) -> np.ndarray:
    """Truncate, or zero-pad at the end, to ``n_samples`` (the authors' rule).

    Raises
    ------
    AudioError
        If ``x`` is not one signal (1-D).
    CheckError
        If ``n_samples`` is not a positive integer.
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    x = np.asarray(x)
    if x.ndim != 1:
        raise AudioError(f"fix_length expects one mono signal (samples,), got shape {x.shape}")
    if len(x) >= n_samples:
        return x[:n_samples]
    return np.concatenate([x, np.zeros(n_samples - len(x), dtype=x.dtype)])


def _as_real_array(audio) -> np.ndarray:
    """Return ``audio`` as a float64 array, refusing what float64 would silently damage."""
    if isinstance(audio, torch.Tensor):
        if audio.is_complex() or audio.dtype == torch.bool:
            raise AudioError(f"audio must be real samples, got a torch tensor of dtype "
                             f"{audio.dtype}; pass the real signal (e.g. x.real or "
                             "x.abs() on purpose)")
        # float64 first: numpy has no bfloat16
        return audio.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(audio)
    except (ValueError, TypeError) as exc:
        raise AudioError(f"audio is not an array of samples ({exc}); pass one signal "
                         "(samples,) or a batch (examples, samples) of equal lengths") from exc
    kind = array.dtype.kind
    if kind == "c":
        raise AudioError("audio must be real samples, got complex values (their imaginary "
                         "part would be dropped); pass x.real or np.abs(x) on purpose")
    if kind == "b":
        raise AudioError("audio must be numeric samples, got booleans")
    if kind not in "iuf":
        raise AudioError(f"audio must be numeric samples, got dtype {array.dtype}; ragged or "
                         "mixed lists give object arrays: pass equal-length float signals")
    if kind == "u":
        # Unsigned PCM is offset binary (8-bit WAV): silence sits at the midpoint, and
        # keeping the offset would add a DC term many times the signal.
        return array.astype(np.float64) - float(2 ** (8 * array.dtype.itemsize - 1))
    return array.astype(np.float64, copy=False)


def prepare_signals(audio, sample_rate: int, expected_rate: int, n_samples: int) -> np.ndarray:
    """Validate, normalise and fix the length of audio for the transform.

    Parameters
    ----------
    audio : array-like or torch.Tensor
        One signal (samples,) or a batch (examples, samples) of mono signals, of a
        real numeric dtype (integer PCM is fine: the normalisation is scale-free).
        Multichannel audio must be averaged first (``load_audio`` does it). A 2-D
        input whose second axis is shorter than :data:`MIN_CLIP_S` of samples
        (any channel count) and whose first axis is longer is ``soundfile.read``'s
        (frames, channels) layout and is refused: read as a batch it would be one
        clip per frame (hours of work for 0.1 s of audio). Average it with
        ``audio.mean(axis=1)``. Unsigned integer samples are offset binary (8-bit
        WAV): their midpoint is removed.
    sample_rate : int
        Sample rate of ``audio``; a whole positive number equal to ``expected_rate``.
    expected_rate : int
        The sample rate the transform expects (Hz).
    n_samples : int
        Clip length of the output.

    Returns
    -------
    numpy.ndarray, float32, shape (examples, n_samples)
        Each signal divided by its own standard deviation (the authors' code;
        silence is left at zero), then truncated or zero-padded at the end. Any
        finite amplitude works: signals peaking above 1e100 or below 1e-100 are
        first brought to a peak of 1, which leaves the result unchanged but keeps
        the standard deviation from overflowing (or underflowing) to silence.

    Raises
    ------
    AudioError
        On a complex, boolean or non-numeric dtype, an empty signal, NaN or inf,
        channels-last or more-than-2-D input.
    CheckError
        On a non-integer or non-positive rate or length, or a rate other than
        ``expected_rate``.
    """
    sample_rate = check_sample_rate(sample_rate, "audio sample rate")
    expected_rate = check_sample_rate(expected_rate, "expected sample rate")
    n_samples = check_positive_int(n_samples, "n_samples")
    if sample_rate != expected_rate:
        raise CheckError(
            f"audio sample rate is {sample_rate} Hz but the transform expects "
            f"{expected_rate} Hz; resample first (pmt_core.data.audio.load_audio does)"
        )
    signals = _as_real_array(audio)
    if signals.ndim == 1:
        signals = signals[None, :]
    if signals.ndim != 2:
        raise AudioError(
            f"expected one signal (samples,) or a batch (examples, samples), got shape "
            f"{signals.shape}; average multi-channel audio to mono first"
        )
    rows, columns = signals.shape
    if 1 <= columns < MIN_CLIP_S * sample_rate and rows > columns:
        raise AudioError(
            f"audio of shape {signals.shape} looks like multi-channel audio in (frames, "
            f"channels) layout, as soundfile.read returns it; average it to mono first "
            f"(audio.mean(axis=1)); a batch is (examples, samples)"
        )
    if rows == 0 or columns == 0:
        raise AudioError(f"empty audio: shape {signals.shape}")
    if not np.all(np.isfinite(signals)):
        bad = np.flatnonzero(~np.all(np.isfinite(signals), axis=1)).tolist()
        raise AudioError(f"audio contains NaN or inf (examples {bad[:10]})")
    peak = np.max(np.abs(signals), axis=1, keepdims=True)
    extreme = (peak > SAFE_PEAK) | ((peak > 0) & (peak < 1 / SAFE_PEAK))
    if extreme.any():
        signals = signals / np.where(extreme, peak, 1.0)
    std = signals.std(axis=1, keepdims=True)
    signals = signals / np.where(std > 0, std, 1.0)
    out = np.zeros((rows, n_samples), dtype=np.float32)
    n = min(n_samples, columns)
    out[:, :n] = signals[:, :n]
    return out
