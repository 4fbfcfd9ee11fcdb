"""What a claim measures from: a run's products, typed and read-only.

A claim reads an :class:`Evidence` and calls statistics; it never trains,
explains, reads audio or stores anything on the run. The run computes the stages
(:mod:`pmt_core.run`); :func:`evidence_of` hands them to the claims, each computed
on first read, so evaluating a claim computes only the stages it reads.

A notebook evaluates the claims on its own products by building one::

    from pmt_core.claims.catalogue import all_cases
    from pmt_core.claims.core import evaluate
    from pmt_core.claims.evidence import Evidence, lazy

    ev = Evidence(seed=0, dataset="mine", profile="ci", data=my_data,
                  models=lazy(lambda: my_models), ...)
    evaluate(all_cases("accuracy")[0], ev)

A claim that reads a field the evidence was built without raises
:class:`MissingEvidence` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:  # type-only: the claims never import the run to compute with it
    import numpy as np
    import pandas as pd
    import torch

    from pmt_core.features.scattering import ScatteringConfig
    from pmt_core.run.data import DataStage, RateStage
    from pmt_core.run.explanations import ExplanationStage, MechanismStage
    from pmt_core.run.inputs import CompressionStage
    from pmt_core.run.lrp_checks import LrpChecks
    from pmt_core.run.models import ModelStage
    from pmt_core.run.sanity import (
        BandOcclusion,
        DataRandomisationStage,
        DeletionStage,
        ModelRandomisationStage,
    )
    from pmt_core.run.side import TheoryStage, TwinStage

__all__ = ["Evidence", "MissingEvidence", "evidence_of", "lazy"]

T = TypeVar("T")


class MissingEvidence(LookupError):
    """A claim read a field its :class:`Evidence` was built without."""


class lazy:  # noqa: N801 - reads as a marker: ``models=lazy(train)``
    """A field's value computed on first read.

    Parameters
    ----------
    compute : callable
        ``() -> value``.
    ready : callable, optional
        ``() -> bool``: whether the value is at hand without computing
        (:meth:`Evidence.has`); default: only once read.
    """

    __slots__ = ("compute", "ready")

    def __init__(self, compute: Callable[[], Any], ready: Callable[[], bool] | None = None):
        self.compute = compute
        self.ready = ready


class Field(Generic[T]):
    """One item of evidence, read through its :class:`Evidence`'s sources."""

    def __init__(self, doc: str):
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, ev: None, owner: type) -> Field[T]: ...

    @overload
    def __get__(self, ev: Evidence, owner: type) -> T: ...

    def __get__(self, ev, owner=None):
        if ev is None:
            return self
        return ev.read(self.name)


class Evidence:
    """A run's products, as the claims read them: typed, read-only, each read once.

    Parameters
    ----------
    **sources
        Field name -> its value, or a :class:`lazy` computing it on first read.
        Fields not given raise :class:`MissingEvidence` when a claim reads them.
    """

    # what identifies the run
    seed: Field[int] = Field("The run seed (claims seed their resampling with it).")
    dataset: Field[str] = Field('The data set as given: "synthetic" or a path.')
    profile: Field[str] = Field("The profile's name.")
    # data and inputs
    scattering_config: Field[ScatteringConfig] = Field("The scattering setting.")
    data: Field[DataStage] = Field("The data set with its split.")
    features: Field[Any] = Field("Raw scattering coefficients and descriptors of every row.")
    rates: Field[RateStage] = Field("Each row's modulation rate, recorded or estimated.")
    compression: Field[CompressionStage] = Field("The compression and every network input.")
    test_energy: Field[np.ndarray] = Field(
        "(n_test, paths) float64 time-averaged raw coefficients of the test rows.")
    input_statistics: Field[tuple[np.ndarray, np.ndarray]] = Field(
        "Per-path mean and sd of the compressed S1+S2 training inputs.")
    test_clip: Field[Callable[[int], np.ndarray]] = Field(
        "Audio of one test row, by test position (for figures): synthesised or read.")
    # models and explanations
    models: Field[ModelStage] = Field("Every replicate of both input kinds.")
    explanations: Field[ExplanationStage] = Field(
        "Every explainer's maps for every S1+S2 replicate's test predictions.")
    mechanism: Field[MechanismStage | None] = Field(
        "Model B and both models' maps (None where the transform has too few bands).")
    lrp_checks: Field[LrpChecks] = Field("The LRP mechanics checks.")
    # sanity and model use
    sanity_deletion: Field[DeletionStage] = Field("Deletion curves of every explainer.")
    sanity_randomisation: Field[ModelRandomisationStage] = Field(
        "Maps of cascade-randomised copies of every S1+S2 replicate.")
    sanity_data_randomisation: Field[DataRandomisationStage] = Field(
        "Maps of the shuffled-label models.")
    band_occlusion: Field[BandOcclusion] = Field(
        "Band-occlusion drops of every S1+S2 replicate on the test split and the twins.")
    # side inputs
    theory: Field[TheoryStage] = Field("Time-averaged scattering of the AM/FM test tones.")
    twins: Field[TwinStage | None] = Field("The test clips' modulation-ablated twins.")
    twin_descriptors: Field[tuple[pd.DataFrame, pd.DataFrame] | None] = Field(
        "Every example and its twin, described.")

    def __init__(self, **sources):
        unknown = sorted(set(sources) - set(self.fields()))
        if unknown:
            raise TypeError(f"Evidence has no field {', '.join(map(repr, unknown))}; "
                            f"its fields: {', '.join(self.fields())}")
        object.__setattr__(self, "_sources", dict(sources))
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_derived", {})

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """Names of every field, in declaration order."""
        return tuple(k for k, v in vars(cls).items() if isinstance(v, Field))

    def read(self, name: str):
        """Return one field's value, computing it on first read."""
        if name in self._values:
            return self._values[name]
        if name not in self._sources:
            if name not in self.fields():
                raise AttributeError(f"Evidence has no field {name!r}")
            raise MissingEvidence(f"this evidence was built without {name!r} "
                                  f"({getattr(type(self), name).__doc__})")
        source = self._sources[name]
        value = source.compute() if isinstance(source, lazy) else source
        self._values[name] = value
        return value

    def has(self, name: str) -> bool:
        """Whether a field is at hand without computing anything (given, read or ready)."""
        source = self._sources.get(name)
        if name in self._values or (name in self._sources and not isinstance(source, lazy)):
            return True
        return isinstance(source, lazy) and source.ready is not None and bool(source.ready())

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Return a quantity derived from the evidence, computed once (claims share it)."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def test_inputs(self, kind: str = "s1s2") -> torch.Tensor:
        """Compressed network inputs of the test rows."""
        return self.compression.inputs[kind][self.data.index("test")]

    def __setattr__(self, name, value):
        raise AttributeError(f"Evidence is read-only (tried to set {name!r})")

    def __delattr__(self, name):
        raise AttributeError(f"Evidence is read-only (tried to delete {name!r})")

    def __repr__(self) -> str:
        read = [n for n in self.fields() if n in self._values]
        return f"Evidence({len(self._sources)} fields, read: {', '.join(read) or 'none'})"


def evidence_of(run) -> Evidence:
    """Return the :class:`Evidence` of a :class:`pmt_core.run.Run` (one per run).

    Every field but the run's identity (seed, data set, profile) and its test audio
    reads the run's stage of the same name, computed on first read.
    """
    if isinstance(run, Evidence):
        return run
    # kept by the run, so that what claims derive from it is derived once per run
    return run.memo("evidence", lambda: _build(run))


def _build(run) -> Evidence:
    def stage(name: str) -> lazy:
        return lazy(lambda: getattr(run, name), ready=lambda: run.computed(name))

    # every other field is the run's stage of the same name
    given = {"seed": run.settings.seed, "dataset": run.settings.dataset,
             "profile": run.profile.name, "test_clip": lazy(lambda: run.test_clip)}
    return Evidence(**given, **{name: stage(name) for name in Evidence.fields()
                                if name not in given})
