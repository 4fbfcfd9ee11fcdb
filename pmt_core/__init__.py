"""Validation of LRP explanations of playing-technique classification over scattering.

The public API, re-exported here; each concern lives in its own module, and the
sub-packages follow the data flow (``data`` -> ``features`` -> ``model`` ->
``explain`` -> ``stages`` -> ``claims`` -> ``report``)::

    from pmt_core import run_stages
    run = run_stages(dataset="synthetic", profile="smoke", seed=0)
    run.models.replicates["s1s2"][0].model
"""

# First, before numpy and torch load their kernels: the same arithmetic on every
# x86 CPU, so that a seed gives the same figures on Intel and AMD (infra/arithmetic.py).
from pmt_core.infra import arithmetic as _arithmetic

_arithmetic.pin()

from pmt_core.data.datasets import load_dataset
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
from pmt_core.stages import Run, RunSettings, run_stages
from pmt_core.techniques import MODULATION_BAND_HZ, TECHNIQUES

__all__ = [
    "MODULATION_BAND_HZ",
    "TECHNIQUES",
    "CarrierModulationGrid",
    "LogCompression",
    "PMTConvNet",
    "PathTable",
    "Run",
    "RunSettings",
    "ScatteringConfig",
    "ScatteringResult",
    "load_dataset",
    "path_table",
    "run_stages",
    "scatter",
    "select_device",
]
