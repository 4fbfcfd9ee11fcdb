"""The carrier x modulation grid and its plot."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pmt_core.features.grid import CarrierModulationGrid
from pmt_core.features.scattering import path_table
from pmt_core.figures.plots import figure_to_png, plot_grid


@pytest.fixture(scope="module")
def paths():
    return path_table()


@pytest.fixture(scope="module")
def grid(paths):
    return CarrierModulationGrid.from_paths(paths)


def test_every_path_has_its_own_cell(grid, paths):
    cells = set(zip(grid.row.tolist(), grid.col.tolist(), strict=True))
    assert len(cells) == len(paths) == 1200
    assert grid.shape == (74, 24)


def test_axes_are_ascending_hz_and_s1_is_column_zero(grid, paths):
    assert np.all(np.diff(grid.carrier_hz) > 0)
    assert np.all(np.diff(grid.modulation_hz) > 0)
    assert np.all(grid.col[paths.first_order] == 0)
    assert np.all(grid.col[paths.second_order] >= 1)
    np.testing.assert_allclose(grid.carrier_hz[grid.row], paths.carrier_hz)
    s2 = paths.second_order
    np.testing.assert_allclose(grid.modulation_hz[grid.col[s2] - 1], paths.modulation_hz[s2])


def test_cells_without_a_path_are_masked_not_zero(grid):
    laid = grid.lay(np.ones(1200))
    assert laid.count() == 1200
    assert laid.mask.sum() == 74 * 24 - 1200
    assert np.all(laid.compressed() == 1)


@settings(max_examples=25, deadline=None)
@given(values=arrays(np.float64, (3, 1200), elements=st.floats(-1e6, 1e6)))
def test_lay_is_a_lossless_relabelling(grid, values):
    laid = grid.lay(values)
    assert laid.shape == (3, 74, 24)
    np.testing.assert_array_equal(laid[:, grid.row, grid.col], values)


def test_wrong_length_is_refused(grid):
    with pytest.raises(ValueError, match="one per path"):
        grid.lay(np.ones(1199))


@pytest.mark.parametrize("scale", ["linear", "log", "signed"])
def test_plot_grid_labels_axes_in_hz(grid, scale, rng):
    values = grid.lay(rng.standard_normal(1200) + (3 if scale == "log" else 0))
    fig = plot_grid(values, grid, title="t", label="relevance", marks=[(440.0, 8.0),
                                                                         (440.0, np.nan)],
                    scale=scale)
    ax_s1, ax_s2 = fig.axes[:2]
    assert "Hz" in ax_s1.get_ylabel() and "Hz" in ax_s2.get_xlabel()
    assert ax_s2.get_xscale() == "log" and ax_s1.get_yscale() == "log"
    assert figure_to_png(fig)[:4] == b"\x89PNG"
