"""The carrier (lambda1) x modulation (lambda2) grid on which every map is drawn.

Rows are the first-order carriers (ascending Hz); column 0 holds the first-order
path S1 of each carrier, the other columns the second-order modulation
frequencies (ascending Hz). Cells with no scattering path (lambda2 too close to
or above lambda1's bandwidth) are masked, never zero, so they cannot be mistaken
for "no relevance".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmt_core.features.scattering import PathTable


@dataclass(frozen=True)
class CarrierModulationGrid:
    """Index of each scattering path on the carrier x modulation grid.

    Attributes
    ----------
    carrier_hz : numpy.ndarray
        Row centres (Hz), ascending.
    modulation_hz : numpy.ndarray
        Centres (Hz) of columns 1..M, ascending; column 0 is S1.
    row, col : numpy.ndarray of int
        Grid cell of each path, in path order.
    """

    carrier_hz: np.ndarray
    modulation_hz: np.ndarray
    row: np.ndarray
    col: np.ndarray

    @classmethod
    def from_paths(cls, paths: PathTable) -> CarrierModulationGrid:
        """Build the grid of a :class:`~pmt_core.features.scattering.PathTable`."""
        carriers = np.unique(paths.carrier_hz)
        modulations = np.unique(paths.modulation_hz[paths.second_order])
        row = np.searchsorted(carriers, paths.carrier_hz)
        col = np.where(
            paths.second_order,
            np.searchsorted(modulations, np.nan_to_num(paths.modulation_hz)) + 1,
            0,
        )
        return cls(carrier_hz=carriers, modulation_hz=modulations, row=row, col=col)

    @property
    def shape(self) -> tuple[int, int]:
        """(carriers, 1 + modulations)."""
        return len(self.carrier_hz), len(self.modulation_hz) + 1

    def lay(self, per_path: np.ndarray) -> np.ma.MaskedArray:
        """Lay per-path values on the grid.

        Parameters
        ----------
        per_path : numpy.ndarray, shape (..., paths)
            Any per-path quantity (energy, relevance, counts); leading axes are
            kept (for example examples x paths gives examples x rows x columns).

        Returns
        -------
        numpy.ma.MaskedArray, shape (..., carriers, 1 + modulations)
            Masked where no path exists.
        """
        per_path = np.asarray(per_path, dtype=float)
        if per_path.shape[-1] != len(self.row):
            raise ValueError(
                f"expected {len(self.row)} values per example (one per path), "
                f"got {per_path.shape[-1]}"
            )
        lead = per_path.shape[:-1]
        data = np.zeros(lead + self.shape)
        mask = np.ones(lead + self.shape, dtype=bool)
        data[..., self.row, self.col] = per_path
        mask[..., self.row, self.col] = False
        return np.ma.MaskedArray(data, mask=mask)
