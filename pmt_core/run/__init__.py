"""The stages of a validation run, as plain functions of the run returning dataclasses.

data -> features -> compression -> trained models -> explanations, plus the
sanity stage (deletion curves, randomised models' maps, band occlusion) and the
two side inputs the claims need (AM/FM test tones, modulation-ablated twins).
Each stage is a function of the stages before it, so a notebook, the command line
or a GPU script composes them without pytest::

    from pmt_core import run_stages
    run = run_stages(dataset="synthetic", profile="smoke", seed=0)
    run.models.replicates["s1s2"][0].model      # computed on first access

:class:`Run` (:mod:`pmt_core.run.run`) computes each stage once, on first access,
and records its wall time (``run.timings``); the pytest fixtures of
``validation/conftest.py`` are thin wrappers around it. The modules:

* :mod:`~pmt_core.run.settings`: :class:`RunSettings`, input kinds, perturbations, seeds;
* :mod:`~pmt_core.run.data`: the data set with its split, the rates;
* :mod:`~pmt_core.run.inputs`: features (through the cache) and their compression;
* :mod:`~pmt_core.run.models`: the trained replicates and every other training call;
* :mod:`~pmt_core.run.explanations`: every explainer's maps, the mechanism check;
* :mod:`~pmt_core.run.sanity`: what the sanity and model-use claims measure;
* :mod:`~pmt_core.run.side`: AM/FM test tones, modulation-ablated twins.

Seeds. The run seed draws the synthetic manifest, the split (every source: see
:func:`pmt_core.data.split.assign_split`) and, through :func:`replicate_seeds`,
one training seed per replicate.

The public names load on first use (PEP 562): the pytest plugin reads
:mod:`pmt_core.run.settings` while pytest parses its options, without torch.
"""

#: Public name -> the module that defines it.
from pmt_core.infra.lazy import lazy_names

_PUBLIC = {
    "INPUT_KINDS": "pmt_core.run.settings",
    "PERTURBATIONS": "pmt_core.run.settings",
    "RunSettings": "pmt_core.run.settings",
    "replicate_seeds": "pmt_core.run.settings",
    "DataStage": "pmt_core.run.data",
    "RateStage": "pmt_core.run.data",
    "load_data": "pmt_core.run.data",
    "rate_stage": "pmt_core.run.data",
    "CompressionStage": "pmt_core.run.inputs",
    "compress": "pmt_core.run.inputs",
    "feature_code_digest": "pmt_core.run.inputs",
    "feature_recipe": "pmt_core.run.inputs",
    "ModelStage": "pmt_core.run.models",
    "TrainedModel": "pmt_core.run.models",
    "ExplanationStage": "pmt_core.run.explanations",
    "MechanismStage": "pmt_core.run.explanations",
    "BandOcclusion": "pmt_core.run.sanity",
    "DataRandomisationStage": "pmt_core.run.sanity",
    "DeletionStage": "pmt_core.run.sanity",
    "ModelRandomisationStage": "pmt_core.run.sanity",
    "TheoryStage": "pmt_core.run.side",
    "TwinStage": "pmt_core.run.side",
    "Run": "pmt_core.run.run",
    "run_stages": "pmt_core.run.run",
}


__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)


__all__ = sorted(_PUBLIC)
