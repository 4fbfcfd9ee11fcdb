"""Validation of LRP explanations of playing-technique classification over scattering.

The public API is re-exported here; each concern lives in its own module.
"""

from pmt_core.features.compression import LogCompression
from pmt_core.features.grid import CarrierModulationGrid
from pmt_core.features.scattering import (
    PathTable,
    ScatteringConfig,
    ScatteringResult,
    path_table,
    scatter,
)
from pmt_core.infra.device import select_device
from pmt_core.model.network import PMTConvNet

from .techniques import MODULATION_BAND_HZ, TECHNIQUES

__all__ = [
    "MODULATION_BAND_HZ",
    "TECHNIQUES",
    "CarrierModulationGrid",
    "LogCompression",
    "PMTConvNet",
    "PathTable",
    "ScatteringConfig",
    "ScatteringResult",
    "path_table",
    "scatter",
    "select_device",
]
