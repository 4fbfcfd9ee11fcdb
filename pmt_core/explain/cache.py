"""Explanations stored once: a rerun recomputes only the explainers whose code changed.

After the trained-model cache (:mod:`pmt_core.model.cache`), explaining is most
of a warm run's time: every explainer on every replicate, on model B of the
mechanism check, on each stage of the randomisation cascade and on the
shuffled-label models. Most changes are to claim or report code, which leave
every map as it was, or to one explainer's code (an LRP constant), which leaves
the others' maps as they were. :func:`explain_cached` keys each explainer call by
what determines its output and returns the stored maps on a hit:

- the explainer's name and the source of the code it runs
  (:attr:`~pmt_core.explain.explainers.Explainer.cache_code`, by source digest):
  an LRP constant changes the LRP readings' keys, not the gradients';
- the model, byte for byte (every parameter and buffer, so a re-initialised
  layer of the cascade is another model) and its class;
- the inputs, targets, energies, reference statistics and class profiles the
  explainer is given, byte for byte, and its seed;
- the device kind (and the GPU's name), torch's thread count, the CPU's pinned
  arithmetic and the run's arithmetic perturbation, and the library versions
  (torch, zennit, numpy).

Only explainers that declare their code are stored (``cache_code`` not None):
the built-in LRP readings and gradient attributions, and the randomised-model
null; the other nulls cost less than a cache read, and an explainer registered
from a plugin is recomputed unless it declares the modules it depends on (its
maps may read ``rows``, which the key leaves out).

Entries live in the feature cache's folder (their own namespace, the same atomic
writes, corruption handling and ``cache clear``); a damaged or ill-shaped entry is
a miss and is recomputed. A hit returns the arrays the computation stored, in
their dtypes, so every figure is the same as in the run that stored them.
"""

from __future__ import annotations

import torch

from pmt_core.infra.cache import FeatureCache, content_key, source_digest, stored_arrays

__all__ = ["NAMESPACE_PREFIX", "explain_cached", "explanation_key", "explanation_namespace"]

#: Namespace prefix of explanation entries in the cache folder.
NAMESPACE_PREFIX = "explanations"


def explanation_namespace(device: torch.device) -> str:
    """Return the cache namespace of explanations computed on ``device``."""
    import zennit

    from pmt_core.infra import arithmetic

    device = torch.device(device)
    recipe = {"device": device.type, "zennit": getattr(zennit, "__version__", "unknown"),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "arithmetic": arithmetic.fingerprint() if device.type == "cpu" else None}
    return FeatureCache.namespace_for(NAMESPACE_PREFIX, recipe=recipe)


def explanation_key(explainer, inputs, *, perturb: str = "none") -> str:
    """Return the key of one explainer call (module notes).

    Parameters
    ----------
    explainer : pmt_core.explain.explainers.Explainer
        With ``cache_code`` set.
    inputs : pmt_core.explain.explainers.ExplainerInputs
    perturb : str
        The run's arithmetic perturbation.
    """
    return content_key(
        {"explainer": explainer.name, "code": source_digest(explainer.cache_code),
         "seed": int(inputs.seed), "device": torch.device(inputs.device).type,
         "threads": torch.get_num_threads(), "perturb": perturb, "paths": len(inputs.paths)},
        inputs.model, inputs.x, inputs.target, inputs.energy, inputs.reference_mean,
        inputs.class_profiles, inputs.input_mean, inputs.input_std)


def explain_cached(cache: FeatureCache | None, explainer, inputs, *,
                   perturb: str = "none"):
    """Run ``explainer(inputs)`` through the explanation cache (module notes).

    Parameters
    ----------
    cache : FeatureCache or None
        A store in :func:`explanation_namespace` of the inputs' device; None, or an
        explainer without ``cache_code``, computes uncached.
    explainer : pmt_core.explain.explainers.Explainer
    inputs : pmt_core.explain.explainers.ExplainerInputs
    perturb : str
        The run's arithmetic perturbation (part of the key).

    Returns
    -------
    pmt_core.explain.explainers.ExplainerOutput
        Computed now or loaded: the same arrays either way.
    """
    from pmt_core.explain.explainers import ExplainerOutput

    if cache is None or explainer.cache_code is None:
        return explainer(inputs)
    n, n_paths = len(inputs.x), len(inputs.paths)

    def compute():
        # kept in the dtypes computed (maps float64, LRP's input sums in the pass's)
        out = explainer(inputs)
        return {"maps": out.maps} | ({} if out.input_sums is None
                                     else {"input_sums": out.input_sums})

    def valid(arrays):
        sums = arrays.get("input_sums")
        return (arrays.get("maps") is not None and arrays["maps"].shape == (n, n_paths)
                and (sums is None or sums.shape == (n,)))

    arrays = stored_arrays(cache, explanation_key(explainer, inputs, perturb=perturb),
                           compute, valid=valid)
    return ExplainerOutput(arrays["maps"], arrays.get("input_sums"))
