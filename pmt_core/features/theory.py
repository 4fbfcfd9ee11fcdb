"""Sinusoidal AM and FM test signals and what scattering theory predicts for them.

For ``x(t) = (1 + m cos(w2 t)) cos(w1 t)`` with ``w2`` inside the bandwidth of the
first-order wavelet at ``w1``, the envelope of ``x * psi_l1`` is about
``|psi^_l1(w1)| (1 + m cos(w2 t))``, so ``S2`` peaks at the path nearest
``(w1, w2)`` and there ``S2 / S1 ~ (m / 2) |psi^_l2(w2)|`` (Anden and Mallat,
"Deep scattering spectrum", IEEE TSP 2014). For FM,
``x(t) = cos(w1 t + (dw / w2) sin(w2 t))``, the first-order envelopes on the flanks
of the band ``[w1 - dw, w1 + dw]`` oscillate at ``w2``: ``S2`` peaks at
``lambda2 ~ w2`` with ``lambda1`` inside that band widened by half a filter
bandwidth (method.md section 5).

Both predictions hold only where ``w2`` lies inside the second-order filter bank's
range and well below the first-order bandwidth at ``w1`` (about ``w1 >= 16 w2`` at
``Q1 = 8``): :func:`in_theory_domain` states the domain used by the claims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmt_core.features.scattering import PathTable, ScatteringConfig, filter_gain

#: ``w1 / w2`` above which the AM sidebands fall inside one first-order filter
#: (its bandwidth is about ``w1 / Q1``; half of it must exceed ``w2``, so
#: ``w1 >= 2 Q1 w2`` = 16 w2 at Q1 = 8).
MIN_CARRIER_TO_MODULATION = 16.0


def am_tone(carrier_hz: float, modulation_hz: float, depth: float, config: ScatteringConfig):
    """Return ``(1 + m cos(w2 t)) cos(w1 t)`` sampled over one clip (float64)."""
    if not 0 <= depth < 1:
        raise ValueError(f"AM depth must be in [0, 1), got {depth}")
    t = np.arange(config.n_samples) / config.sample_rate
    return (1 + depth * np.cos(2 * np.pi * modulation_hz * t)) * np.cos(2 * np.pi * carrier_hz * t)


def fm_tone(carrier_hz: float, modulation_hz: float, deviation_hz: float, config):
    """Return ``cos(w1 t + (dw / w2) sin(w2 t))`` sampled over one clip (float64)."""
    t = np.arange(config.n_samples) / config.sample_rate
    index = deviation_hz / modulation_hz
    return np.cos(2 * np.pi * carrier_hz * t + index * np.sin(2 * np.pi * modulation_hz * t))


def in_theory_domain(carrier_hz: float, modulation_hz: float, paths: PathTable) -> bool:
    """Whether ``(w1, w2)`` lies where the first-order theory applies.

    ``w2`` must lie within the centres of the second-order filter bank, ``w1``
    within the first-order carriers, and ``w1 >= 16 w2``.
    """
    modulations = paths.modulation_hz[paths.second_order]
    return bool(
        modulations.min() <= modulation_hz <= modulations.max()
        and paths.carrier_hz.min() <= carrier_hz <= paths.carrier_hz.max()
        and carrier_hz >= MIN_CARRIER_TO_MODULATION * modulation_hz
    )


def local_spacing_octaves(centres_hz: np.ndarray, freq_hz: float) -> float:
    """Log2 distance between the two filter centres that bracket ``freq_hz``."""
    centres = np.unique(centres_hz)
    i = int(np.clip(np.searchsorted(centres, freq_hz), 1, len(centres) - 1))
    return float(np.log2(centres[i] / centres[i - 1]))


@dataclass(frozen=True)
class PeakCheck:
    """Where S2 peaks for one test tone, against where theory puts it."""

    carrier_hz: float
    modulation_hz: float
    peak_carrier_hz: float
    peak_modulation_hz: float
    carrier_error_octaves: float
    modulation_error_octaves: float
    carrier_tolerance_octaves: float
    modulation_tolerance_octaves: float
    peak_path: int

    @property
    def hit(self) -> bool:
        """Both coordinates of the peak within tolerance."""
        return (
            self.carrier_error_octaves <= self.carrier_tolerance_octaves
            and self.modulation_error_octaves <= self.modulation_tolerance_octaves
        )


def check_s2_peak(
    time_averaged: np.ndarray,
    paths: PathTable,
    carrier_hz: float,
    modulation_hz: float,
    carrier_band_hz: tuple[float, float] | None = None,
) -> PeakCheck:
    """Locate the S2 peak of one example and compare it with ``(w1, w2)``.

    Tolerances are one filter spacing around the target in each axis (the peak
    falls on the nearest filter or, where two filters straddle the target, on
    its neighbour): ``1 / Q`` octave in the constant-Q region, the local spacing
    below it. For FM, ``carrier_band_hz`` replaces ``w1`` by a band: the carrier
    error is the distance in octaves to that band (0 inside).
    """
    s2 = np.flatnonzero(paths.second_order)
    peak = int(s2[np.argmax(time_averaged[s2])])
    peak_carrier = float(paths.carrier_hz[peak])
    peak_modulation = float(paths.modulation_hz[peak])
    carrier_tol = local_spacing_octaves(paths.carrier_hz, carrier_hz)
    modulation_tol = local_spacing_octaves(paths.modulation_hz[s2], modulation_hz)
    if carrier_band_hz is None:
        carrier_error = abs(np.log2(peak_carrier / carrier_hz))
    else:
        low, high = carrier_band_hz
        carrier_error = max(0.0, np.log2(low / peak_carrier), np.log2(peak_carrier / high))
    return PeakCheck(
        carrier_hz=carrier_hz,
        modulation_hz=modulation_hz,
        peak_carrier_hz=peak_carrier,
        peak_modulation_hz=peak_modulation,
        carrier_error_octaves=float(carrier_error),
        modulation_error_octaves=float(abs(np.log2(peak_modulation / modulation_hz))),
        carrier_tolerance_octaves=carrier_tol,
        modulation_tolerance_octaves=modulation_tol,
        peak_path=peak,
    )


def fm_carrier_band(carrier_hz: float, deviation_hz: float, q1: int) -> tuple[float, float]:
    """Return the FM band ``[w1 - dw, w1 + dw]`` widened by half a first-order bandwidth.

    The bandwidth of a first-order wavelet at ``f`` is about ``f / Q1``.
    """
    low, high = carrier_hz - deviation_hz, carrier_hz + deviation_hz
    return low * (1 - 0.5 / q1), high * (1 + 0.5 / q1)


def am_ratio_prediction(
    paths: PathTable, config: ScatteringConfig, path: int, modulation_hz: float, depth: float
) -> float:
    """First-order theory of S2 / S1 at an AM peak: ``(m / 2) |psi^_l2(w2)|``."""
    n2 = int(paths.n[path, 1])
    return float(depth / 2 * filter_gain(config, 2, n2, modulation_hz))


def am_ratio_measured(time_averaged: np.ndarray, paths: PathTable, path: int) -> float:
    """Measured S2 / S1 at second-order path ``path`` (S1 of the same carrier)."""
    s1 = np.flatnonzero(paths.first_order & (paths.carrier_hz == paths.carrier_hz[path]))
    return float(time_averaged[path] / time_averaged[s1[0]])


#: Domain of the claims' test tones (inside :func:`in_theory_domain` at the
#: paper's setting): carriers, modulations, AM depths, FM deviation / carrier.
CARRIER_RANGE_HZ = (200.0, 8000.0)
MODULATION_RANGE_HZ = (2.0, 250.0)
AM_DEPTH_RANGE = (0.3, 0.9)
FM_DEVIATION_FRACTION = (0.01, 0.04)
#: A documented limit: w1 = 8 w2 violates w1 >= 16 w2 (the sidebands are resolved by S1).
OUTSIDE_DOMAIN_CASE = (300.0, 37.5, 0.8)


@dataclass(frozen=True)
class ToneDesign:
    """The AM/FM test tones of one run (a seeded Latin hypercube over the domain).

    Attributes
    ----------
    carrier_hz, modulation_hz, depth, deviation_hz : numpy.ndarray, (n,)
        Tone k: AM ``(carrier, modulation, depth)`` and FM ``(carrier,
        modulation, deviation)``.
    """

    carrier_hz: np.ndarray
    modulation_hz: np.ndarray
    depth: np.ndarray
    deviation_hz: np.ndarray

    def __len__(self) -> int:
        return len(self.carrier_hz)


def _log_uniform(unit, low, high):
    return np.exp(np.log(low) + unit * (np.log(high) - np.log(low)))


def tone_design(n: int, seed: int, paths: PathTable) -> ToneDesign:
    """``n`` AM and ``n`` FM tones on a Latin hypercube (scipy.stats.qmc), seeded.

    A hit *rate* needs a fixed design of cases, so the sampling is quasi-random.
    The ranges are clipped to what the path table can resolve (a small
    scattering setting has fewer filters); none left: an empty design.
    """
    from scipy.stats import qmc

    s2 = paths.modulation_hz[paths.second_order]
    mod_lo = max(MODULATION_RANGE_HZ[0], float(s2.min()) if s2.size else np.inf)
    mod_hi = min(MODULATION_RANGE_HZ[1], float(s2.max()) if s2.size else 0.0)
    car_lo = max(CARRIER_RANGE_HZ[0], float(paths.carrier_hz.min()),
                 MIN_CARRIER_TO_MODULATION * mod_lo)
    car_hi = min(CARRIER_RANGE_HZ[1], float(paths.carrier_hz.max()))
    if n < 1 or not (mod_lo < mod_hi and car_lo < car_hi):
        empty = np.zeros(0)
        return ToneDesign(empty, empty, empty, empty)
    unit = qmc.LatinHypercube(d=3, seed=seed).random(n)
    carrier = _log_uniform(unit[:, 0], car_lo, car_hi)
    high = np.minimum(carrier / MIN_CARRIER_TO_MODULATION, mod_hi)
    modulation = _log_uniform(unit[:, 1], mod_lo, high)
    depth = AM_DEPTH_RANGE[0] + unit[:, 2] * (AM_DEPTH_RANGE[1] - AM_DEPTH_RANGE[0])
    deviation = carrier * _log_uniform(unit[:, 2], *FM_DEVIATION_FRACTION)
    return ToneDesign(carrier, modulation, depth, deviation)
