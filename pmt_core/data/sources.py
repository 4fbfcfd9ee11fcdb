"""Where an example's audio comes from: a file, or the synthesiser.

A data set row with an empty ``path`` is synthetic (its parameters define the
audio); any other row names an audio file. :func:`example_audio` returns the
audio either way and :func:`example_identity` what defines it (the feature
cache's key).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pmt_core.data.audio import fix_length, load_audio
from pmt_core.infra.cache import file_digest

#: Columns of a synthetic manifest row that define its audio (everything else is
#: bookkeeping such as the split).
_NON_IDENTITY_COLUMNS = {"subset", "path"}


def is_synthetic(row) -> bool:
    """Whether a data set row is synthesised (empty or missing ``path``)."""
    path = row["path"] if "path" in row else None
    return path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == ""


def example_identity(row: pd.Series) -> dict:
    """Return what defines an example's audio: its file content or synthesis parameters."""
    if not is_synthetic(row):
        return {"file_sha256": file_digest(row["path"])}
    return {k: row[k] for k in row.index if k not in _NON_IDENTITY_COLUMNS}


def example_audio(row, sample_rate: int = 44100, n_samples: int = 2**18) -> np.ndarray:
    """Return the audio of one data set row, ``n_samples`` long.

    Synthesizes when ``row.path`` is empty (synthetic data set), else reads the file
    with :func:`pmt_core.data.audio.load_audio` and applies
    :func:`pmt_core.data.audio.fix_length`.
    """
    if is_synthetic(row):
        from pmt_core.data.synth.render import synthesize  # scipy filters: imported on use

        return synthesize(row, sample_rate=sample_rate, n_samples=n_samples)
    return fix_length(load_audio(row["path"], sample_rate=sample_rate), n_samples)
