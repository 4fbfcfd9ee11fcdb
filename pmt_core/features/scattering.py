"""Scattering features with their path metadata in Hz (method.md section 1).

The paper's setting is kymatio 0.3.0 ``Scattering1D(J=13, shape=2**18, Q=(8, 2),
T=2**13)``: 1,286 paths x 32 frames, of which the order-1 and order-2 paths whose
first-order centre frequency is at least 32 Hz are kept (74 + 1,126 = 1,200).

Three departures from stock kymatio, all deliberate and documented:

* :func:`scatter` does not run kymatio's ``scattering1d`` loop but a batched forward
  pass over kymatio's own filter bank (:mod:`pmt_core.features.batched`): the same
  algorithm, grouped by subsampling level, only on the kept paths, with real-input
  FFTs; about 4x faster on one CPU thread and kymatio's result to float32 rounding
  (``tests/test_batched.py``). :func:`scatter_with_kymatio` runs kymatio's loop.
* ``from kymatio.torch import Scattering1D`` fails with scipy >= 1.17 (the import
  chain reaches the 3-D transform, which needs the removed ``scipy.special.sph_harm``);
  the 1-D torch frontend is imported directly instead.
* kymatio 0.3.0 normalises twice in its Fourier-domain subsampling (kymatio pull
  request #736, closed unmerged), so a raw order-1 coefficient comes out divided by
  ``2**j1`` and an order-2 one by ``2**(j1 + j2)``, where ``j1``, ``j2`` are the
  filters' ``j``. :func:`scatter` multiplies that scale back by default, so that
  energies compare across paths and match a direct computation with the same
  filters (pinned in ``tests/test_scattering.py``). The network is insensitive to it:
  its log compression divides by a per-path mean.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from pmt_core.data.audio import prepare_signals
from pmt_core.features.batched import BatchedScattering1D
from pmt_core.infra.checks import check_batch_size, check_scattering_config
from pmt_core.infra.device import select_device


def _scattering_frontend():
    """Return kymatio's 1-D torch frontend class without importing ``kymatio.torch``.

    ``kymatio.torch`` imports the 3-D transform, whose import of
    ``scipy.special.sph_harm`` fails with scipy >= 1.17. The 1-D frontend does not
    need it. ``tests/test_scattering.py`` pins this workaround.
    """
    from kymatio.scattering1d.frontend.torch_frontend import ScatteringTorch1D

    return ScatteringTorch1D


@functools.cache
def _scattering_backend():
    """Return kymatio's 1-D torch backend with a faster product by real filters.

    kymatio 0.3.0 multiplies a spectrum stored as (..., N, 2) floats by a real filter
    stored as (N, 1) (``cdgmm``), a broadcast that torch runs at a third of the speed
    of the same product on a complex view. Each float is multiplied by the same real
    either way, so the result is bit for bit the same (pinned in
    ``tests/test_scattering.py``); measured here (2 cores, 1 thread, paper setting)
    it makes a whole transform 1.5-1.8x faster. Anything else goes to kymatio.
    """
    from kymatio.scattering1d.backend.torch_backend import TorchBackend1D

    class FastRealFilterBackend1D(TorchBackend1D):
        @classmethod
        def cdgmm(cls, A, B):
            if (cls._is_real(B) and B.shape[-1] == 1 and A.shape[-1] == 2
                    and A.is_contiguous() and A.dtype is B.dtype and A.device == B.device
                    and A.shape[-len(B.shape):-1] == B.shape[:-1]):
                return torch.view_as_real(torch.view_as_complex(A) * B[..., 0])
            return super().cdgmm(A, B)

    return FastRealFilterBackend1D


@dataclass(frozen=True)
class ScatteringConfig:
    """Settings of the scattering transform; defaults are the paper's.

    Parameters
    ----------
    sample_rate : int
        Expected sample rate of the audio (Hz). Audio at another rate is refused:
        resample it when loading (``pmt_core.data.audio.load_audio`` does).
    n_samples : int
        Clip length N; audio is truncated or zero-padded at the end to N samples
        (2**18 = 5.94 s at 44.1 kHz, the paper's "around 6 seconds").
    J : int
        Maximum log2 scale of the wavelets.
    Q : tuple of int
        Wavelets per octave at orders 1 and 2.
    T : int
        Averaging window in samples (2**13 = 186 ms); frames = N / T.
    min_carrier_hz : float
        Order-1 and order-2 paths whose first-order centre frequency is below this
        are dropped (32 Hz keeps the paper's 1,200 paths).
    undo_kymatio_scaling : bool
        Multiply kymatio 0.3.0's per-path subsampling scale back (see module notes).
    """

    sample_rate: int = 44100
    n_samples: int = 2**18
    J: int = 13
    Q: tuple[int, int] = (8, 2)
    T: int = 2**13
    min_carrier_hz: float = 32.0
    undo_kymatio_scaling: bool = True

    def __post_init__(self):
        # One-line errors naming the field (T=0, a config that keeps no path, ...)
        # before any filter bank is built.
        check_scattering_config(self)
        if self.n_samples <= 0 or self.n_samples & (self.n_samples - 1):
            raise ValueError(f"n_samples must be a power of two, got {self.n_samples}")
        if self.T > self.n_samples or self.n_samples % self.T:
            raise ValueError(f"T={self.T} must divide n_samples={self.n_samples}")
        object.__setattr__(self, "Q", tuple(int(q) for q in self.Q))

    @property
    def n_frames(self) -> int:
        """Number of time frames per example."""
        return self.n_samples // self.T

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict (for checkpoints, caches and reports)."""
        data = dataclasses.asdict(self)
        data["Q"] = list(self.Q)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ScatteringConfig:
        """Rebuild a config from :meth:`to_dict` output."""
        data = dict(data)
        data["Q"] = tuple(data["Q"])
        return cls(**data)

    def fingerprint(self) -> str:
        """Return a short stable hash of the settings (cache keys, checkpoints)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PathTable:
    """Metadata of the kept scattering paths, one entry per path.

    Attributes
    ----------
    order : numpy.ndarray of int
        1 or 2.
    carrier_hz : numpy.ndarray of float
        First-order centre frequency lambda1 in Hz.
    modulation_hz : numpy.ndarray of float
        Second-order centre frequency lambda2 in Hz; NaN for first order.
    j : numpy.ndarray of float, shape (paths, 2)
        kymatio's filter scales (j1, j2); NaN where not applicable.
    n : numpy.ndarray of float, shape (paths, 2)
        Indices (n1, n2) of the paths' filters in kymatio's ``psi1_f`` / ``psi2_f``.
    kymatio_index : numpy.ndarray of int
        Index of the path in kymatio's full output (order 0 included).
    """

    order: np.ndarray
    carrier_hz: np.ndarray
    modulation_hz: np.ndarray
    j: np.ndarray
    n: np.ndarray
    kymatio_index: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    @property
    def first_order(self) -> np.ndarray:
        """Boolean mask of the order-1 (S1) paths."""
        return self.order == 1

    @property
    def second_order(self) -> np.ndarray:
        """Boolean mask of the order-2 (S2) paths."""
        return self.order == 2

    def kymatio_scale(self) -> np.ndarray:
        """Return the factor kymatio 0.3.0 divided each kept path by (2**j1 or 2**(j1+j2))."""
        exponent = np.where(self.order == 1, self.j[:, 0], self.j[:, 0] + self.j[:, 1])
        return np.exp2(exponent)


@dataclass(frozen=True)
class ScatteringResult:
    """Scattering coefficients of one or more examples with their path metadata.

    Attributes
    ----------
    values : numpy.ndarray, float32, shape (examples, paths, frames)
        Scattering coefficients (kymatio's scale undone unless the config says
        otherwise). Order 0 is not included.
    paths : PathTable
        One entry per path (axis 1 of ``values``).
    config : ScatteringConfig
        The settings the coefficients were made with.
    """

    values: np.ndarray
    paths: PathTable
    config: ScatteringConfig

    @property
    def carrier_hz(self) -> np.ndarray:
        """lambda1 of each path (Hz)."""
        return self.paths.carrier_hz

    @property
    def modulation_hz(self) -> np.ndarray:
        """lambda2 of each path (Hz); NaN for first order."""
        return self.paths.modulation_hz

    @property
    def order(self) -> np.ndarray:
        """Scattering order (1 or 2) of each path."""
        return self.paths.order

    def time_averaged(self) -> np.ndarray:
        """Return coefficients averaged over frames (examples x paths)."""
        return self.values.mean(axis=-1)


class _Transform:
    """kymatio's filter bank, the batched pass on it and the kept paths' metadata.

    Built once per config and device. ``__call__`` runs the batched pass
    (:class:`pmt_core.features.batched.BatchedScattering1D`), :meth:`kymatio` runs
    kymatio's own ``scattering1d`` on the same filters (for comparisons); both return
    the kept paths with kymatio's scale undone as the config says.
    """

    def __init__(self, config: ScatteringConfig, device: torch.device):
        frontend = _scattering_frontend()
        self.module = frontend(J=config.J, shape=config.n_samples, Q=config.Q, T=config.T)
        self.module.backend = _scattering_backend()
        self.device = device
        meta = self.module.meta()
        order = np.asarray(meta["order"])
        carrier = np.asarray(meta["xi"])[:, 0] * config.sample_rate
        keep = (order >= 1) & (carrier >= config.min_carrier_hz)
        index = np.flatnonzero(keep)
        self.paths = PathTable(
            order=order[index].astype(int),
            carrier_hz=carrier[index],
            modulation_hz=np.where(
                order[index] == 2, np.asarray(meta["xi"])[index, 1] * config.sample_rate, np.nan
            ),
            j=np.asarray(meta["j"], dtype=float)[index],
            n=np.asarray(meta["n"], dtype=float)[index],
            kymatio_index=index,
        )
        # The kept paths are the kept carriers' order-1 paths and all their children.
        first = self.paths.n[self.paths.first_order, 0].astype(int)
        self.batched = BatchedScattering1D(self.module, n1=first).to(device)
        if not np.array_equal(self.batched.kymatio_index, index):
            raise RuntimeError("the batched pass's paths are not the kept kymatio paths")
        scale = self.paths.kymatio_scale() if config.undo_kymatio_scaling else np.ones(len(index))
        self.index = torch.as_tensor(index, device=device)
        self.scale = torch.as_tensor(scale, dtype=torch.float32, device=device)[:, None]
        self._module_device = torch.device("cpu")

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.batched(batch) * self.scale

    def kymatio(self, batch: torch.Tensor) -> torch.Tensor:
        """Run kymatio's own ``scattering1d`` on the same filters: kept paths, same scale."""
        if self._module_device != self.device:  # moved on first use only (~300 MiB)
            self.module.to(self.device)
            self._module_device = self.device
        return self.module(batch).index_select(-2, self.index) * self.scale


@functools.lru_cache(maxsize=4)
def _transform(config: ScatteringConfig, device: torch.device) -> _Transform:
    # Building the filter bank takes seconds and ~300 MiB: build once per process.
    return _Transform(config, device)


def path_table(config: ScatteringConfig | None = None) -> PathTable:
    """Return the metadata of the paths kept under ``config`` (no audio needed)."""
    return _transform(config or ScatteringConfig(), torch.device("cpu")).paths


def filter_gain(config: ScatteringConfig, order: int, n: int, freq_hz) -> np.ndarray:
    """Return the modulus of a kymatio wavelet's frequency response at ``freq_hz``.

    Parameters
    ----------
    config : ScatteringConfig
    order : {1, 2}
        Filter bank (``psi1_f`` or ``psi2_f``).
    n : int
        Index of the filter in that bank (``PathTable.n``).
    freq_hz : float or array-like
        Frequencies (Hz) at which to read the response (nearest FFT bin).
    """
    module = _transform(config, torch.device("cpu")).module
    bank = module.psi1_f if order == 1 else module.psi2_f
    response = np.abs(np.asarray(bank[int(n)]["levels"][0]).ravel())
    bins = np.rint(np.asarray(freq_hz, dtype=float) / config.sample_rate * len(response))
    return response[bins.astype(int) % len(response)]


def prepare_audio(audio, sample_rate: int, config: ScatteringConfig) -> np.ndarray:
    """Validate, normalise and fix the length of audio for the transform.

    :func:`pmt_core.data.audio.prepare_signals` with the config's sample rate and
    clip length: each signal divided by its own standard deviation (the authors'
    code), then truncated or zero-padded at the end to ``config.n_samples``.

    Returns
    -------
    numpy.ndarray, float32, shape (examples, config.n_samples)
    """
    return prepare_signals(audio, sample_rate, config.sample_rate, config.n_samples)


def scatter(
    audio,
    sr: int = 44100,
    config: ScatteringConfig | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> ScatteringResult:
    """Scattering transform of one signal or a batch, with path metadata in Hz.

    Runs the batched forward pass (:mod:`pmt_core.features.batched`) on kymatio's
    filter bank: kymatio's result to float32 rounding, computing only the kept paths.
    On the CPU each clip's bits depend neither on ``batch_size`` nor on the number of
    torch threads (1 or 2, measured; ``tests/test_batched.py``).

    Parameters
    ----------
    audio : array-like or torch.Tensor
        One mono signal (samples,) or a batch (examples, samples); see
        :func:`prepare_audio` for normalisation and length.
    sr : int
        Sample rate of ``audio`` in Hz; must match ``config.sample_rate``.
    config : ScatteringConfig, optional
        Defaults to the paper's setting.
    device : str or torch.device, optional
        Where to compute (default: CUDA when available, else CPU).
    batch_size : int
        Examples per transform call (working memory grows with it:
        ``_transform(config, device).batched.bytes_per_example()`` each, about
        0.2 GiB at the paper's setting).
    progress : bool
        Show a progress bar.

    Returns
    -------
    ScatteringResult
        ``values`` of shape (examples, paths, frames), float32, on the CPU.
    """
    return _scatter(audio, sr, config, device, batch_size, progress, kymatio=False)


def scatter_with_kymatio(
    audio,
    sr: int = 44100,
    config: ScatteringConfig | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    progress: bool = False,
) -> ScatteringResult:
    """:func:`scatter` through kymatio's own ``scattering1d`` (the reference, slower).

    Same filters, same path selection and scale correction; kymatio walks the
    scattering tree one path at a time and computes every path, order 0 included,
    before the kept ones are selected. For comparisons and benchmarks.
    """
    return _scatter(audio, sr, config, device, batch_size, progress, kymatio=True)


def _scatter(audio, sr, config, device, batch_size, progress, kymatio: bool) -> ScatteringResult:
    config = config or ScatteringConfig()
    batch_size = check_batch_size(batch_size)
    signals = prepare_audio(audio, sr, config)
    device = select_device(device)
    transform = _transform(config, device)
    run = transform.kymatio if kymatio else transform
    chunks = []
    starts = range(0, len(signals), batch_size)
    for start in tqdm(starts, desc="scattering", unit="batch", disable=not progress):
        batch = torch.from_numpy(signals[start : start + batch_size]).to(device)
        with torch.no_grad():
            chunks.append(run(batch).cpu().numpy())
    values = np.concatenate(chunks, axis=0).astype(np.float32, copy=False)
    return ScatteringResult(values=values, paths=transform.paths, config=config)
