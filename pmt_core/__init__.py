"""Validation of LRP explanations of playing-technique classification over scattering.

The public API is re-exported here; each concern lives in its own module.
"""

from .compression import LogCompression
from .device import select_device
from .grid import CarrierModulationGrid
from .model import PMTConvNet
from .scattering import PathTable, ScatteringConfig, ScatteringResult, path_table, scatter
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
