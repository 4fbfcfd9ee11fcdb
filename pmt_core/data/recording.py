"""What a recording was before the downmix, and notes that keep its explanation honest.

:func:`~pmt_core.data.audio.load_audio` turns any file into mono at the model's
rate, cut or zero-padded to the model's window. What that hides can make a
confident prediction mean little: a clip far shorter than the window (the model
pools mostly padding), a window of silence, channels that cancel in the mix, a
file resampled from a lower rate. :func:`probe_recording` reads what the file was,
:func:`quiet_fraction` how much of the window is sound, and :func:`recording_notes`
turns both into one sentence per problem. No model is involved.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pmt_core.data.audio import AudioError

#: Below this fraction of the model's window covered by the signal, the zero padding
#: outnumbers the signal three to one in the frames the network pools over: the
#: prediction (and the time-averaged relevance) rests mostly on padding.
SHORT_SIGNAL_FRACTION = 0.25
#: A time frame of the model (``config.T`` samples) this far below the loudest frame
#: of the window counts as silent: 60 dB is the decay that defines reverberation time
#: (RT60), the conventional point at which a sound has died away.
QUIET_DB = -60.0
#: A window more than half of whose frames are silent (or padding) gets a note: the
#: majority of what the network pools over is then not the recording's sound.
QUIET_FRACTION = 0.5
#: A mono mix whose RMS is below this fraction of the channels' mean RMS (-20 dB)
#: means the channels cancel: uncorrelated channels of equal level mix to 1/sqrt(2)
#: (71 %), and two equal channels fall below 10 % only at a correlation below -0.98,
#: i.e. in antiphase (a polarity-inverted channel).
CANCEL_RATIO = 0.1


@dataclass(frozen=True)
class RecordingInfo:
    """What a file was before :func:`~pmt_core.data.audio.load_audio` made it mono.

    Attributes
    ----------
    sample_rate : int
        The file's own rate.
    channels : int
    mix_ratio : float
        RMS of the mono mix over the part the model uses, divided by the mean RMS
        of the channels there: 1 for mono, about 0.71 for uncorrelated channels,
        near 0 when they cancel; NaN when every channel is silent there.
    """

    sample_rate: int
    channels: int
    mix_ratio: float


def probe_recording(path: str | Path, model_rate: int, n_samples: int) -> RecordingInfo:
    """Read a file's rate and channels, and how its channels mix, before the downmix.

    Only the frames that become the model's window are read (``n_samples`` at
    ``model_rate``, in the file's own rate), so a long file costs no more.

    Raises
    ------
    AudioError
        If the file cannot be read.
    """
    try:
        info = sf.info(os.fspath(path))
        rate, channels = int(info.samplerate), int(info.channels)
        if channels < 2:
            return RecordingInfo(rate, channels, 1.0)
        frames = math.ceil(n_samples * rate / model_rate)
        data, _ = sf.read(os.fspath(path), frames=frames, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise AudioError(f"{path}: unreadable audio file ({exc})") from exc
    data = data - data.mean(axis=0)
    channel_rms = float(np.mean(np.sqrt(np.mean(data**2, axis=0))))
    mix_rms = float(np.sqrt(np.mean(data.mean(axis=1) ** 2)))
    ratio = mix_rms / channel_rms if channel_rms > 0 else float("nan")
    return RecordingInfo(rate, channels, ratio)


def quiet_fraction(audio: np.ndarray, n_samples: int, frame: int) -> float:
    """Fraction of the model's frames that are silent or padding.

    Parameters
    ----------
    audio : numpy.ndarray
        The mono signal at the model's rate.
    n_samples : int
        The window (``config.n_samples``): longer audio is cut, shorter zero-padded,
        as the transform does.
    frame : int
        Frame length (``config.T``, the model's time frame); divides ``n_samples``.

    Returns
    -------
    float
        Share of frames whose RMS is more than :data:`QUIET_DB` below the loudest
        frame's.
    """
    window = np.zeros(n_samples)
    used = min(len(audio), n_samples)
    window[:used] = audio[:used]
    rms = np.sqrt(np.mean(window.reshape(-1, frame) ** 2, axis=1))
    loudest = float(rms.max())
    if loudest == 0:
        return 1.0
    return float(np.mean(rms < loudest * 10 ** (QUIET_DB / 20)))


def recording_notes(*, duration_s: float, used_s: float, window_s: float, quiet: float,
                    info: RecordingInfo, model_rate: int) -> list[str]:
    """Return the notes that keep an explanation's figures from misleading.

    Parameters
    ----------
    duration_s, used_s, window_s : float
        The file's length, the part of it the model sees, the model's window.
    quiet : float
        :func:`quiet_fraction` of the window.
    info : RecordingInfo
    model_rate : int

    Returns
    -------
    list of str
        In this order, those that apply: a signal covering under
        :data:`SHORT_SIGNAL_FRACTION` of the window; else a window more than
        :data:`QUIET_FRACTION` silent or padding; channels that cancel (mix below
        :data:`CANCEL_RATIO`); a resampled file; a file longer than the window.
    """
    notes = []
    coverage = used_s / window_s
    if coverage < SHORT_SIGNAL_FRACTION:
        notes.append(f"the signal covers {used_s:.2f} s of the model's {window_s:.2f} s window "
                     f"({100 * coverage:.1f} %); the rest is zero padding, so the prediction "
                     "rests mostly on padding")
    elif quiet > QUIET_FRACTION:
        notes.append(f"{100 * quiet:.0f} % of the model's {window_s:.2f} s window is padding "
                     f"or silence (frames more than {-QUIET_DB:.0f} dB below the loudest); "
                     "the prediction rests mostly on frames without sound")
    if info.channels > 1 and info.mix_ratio < CANCEL_RATIO:
        notes.append(f"the {info.channels} channels cancel in the mono mix (its RMS is "
                     f"{100 * info.mix_ratio:.1f} % of the channels' mean; antiphase?): the "
                     "model hears what is left, not the recording")
    if info.sample_rate != model_rate:
        text = (f"resampled from the file's {info.sample_rate} Hz to the model's "
                f"{model_rate} Hz")
        if info.sample_rate < model_rate:
            text += (f"; carriers above {info.sample_rate / 2:.0f} Hz (the file's Nyquist "
                     "frequency) hold no signal")
        notes.append(text)
    if duration_s > used_s + 1e-9:
        notes.append(f"only the first {used_s:.2f} s of {duration_s:.2f} s are used (the "
                     "model's window)")
    return notes
