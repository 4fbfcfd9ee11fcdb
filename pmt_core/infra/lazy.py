"""A package's public names, imported on first use (PEP 562).

What lets ``import pmt_core`` (the pytest plugin's entry point, imported by every
pytest run in the environment) and ``import pmt_core.run`` stay light: torch, scipy
and the rest load when a name that needs them is first read.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["lazy_names"]


def lazy_names(package: str, public: dict):
    """Return ``(__getattr__, __dir__)`` for a package whose public names load on use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    public : dict of str to str
        Public name -> the module that defines it.
    """
    module = sys.modules[package]

    def __getattr__(name: str):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(public[name]), name)
        setattr(module, name, value)  # once loaded, a plain attribute
        return value

    def __dir__():
        return sorted({*vars(module), *public})

    return __getattr__, __dir__
