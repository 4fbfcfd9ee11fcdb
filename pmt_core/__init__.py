"""Validation of LRP explanations of playing-technique classification over scattering.

The public API, re-exported here; each concern lives in its own module, and the
sub-packages follow the data flow (``data`` -> ``features`` -> ``model`` ->
``explain`` -> ``run`` -> ``claims`` -> ``report``)::

    from pmt_core import run_stages
    run = run_stages(dataset="synthetic", profile="smoke", seed=0)
    run.models.replicates["s1s2"][0].model
"""

# First, before numpy and torch load their kernels: the same arithmetic on every
# x86 CPU, so that a seed gives the same figures on Intel and AMD (infra/arithmetic.py).
from pmt_core.infra import arithmetic as _arithmetic
from pmt_core.infra.lazy import lazy_names

_arithmetic.pin()

#: Public name -> the module that defines it. Loaded on first use (PEP 562), so that
#: importing a light part of the package (the pytest plugin while pytest parses its
#: options, in every pytest run of the environment) does not load torch.
_PUBLIC = {
    "load_dataset": "pmt_core.data.datasets",
    "LogCompression": "pmt_core.features.compression",
    "CarrierModulationGrid": "pmt_core.features.grid",
    "PathTable": "pmt_core.features.scattering",
    "ScatteringConfig": "pmt_core.features.scattering",
    "ScatteringResult": "pmt_core.features.scattering",
    "path_table": "pmt_core.features.scattering",
    "scatter": "pmt_core.features.scattering",
    "select_device": "pmt_core.infra.device",
    "PMTConvNet": "pmt_core.model.network",
    "Run": "pmt_core.run",
    "RunSettings": "pmt_core.run",
    "run_stages": "pmt_core.run",
    "MODULATION_BAND_HZ": "pmt_core.techniques",
    "TECHNIQUES": "pmt_core.techniques",
}


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)


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
