"""The LRP mechanics stage: what the ``lrp.*`` claims measure, computed once per composite.

Each check explains test examples of every S1+S2 replicate in another way than the
explanation stage (float64, a float64 matrix-form reference, Captum, the per-layer
budget of zennit's backward pass, the bias-free network, the logit as top
relevance), so it lives here, with the run's other computations, and goes through
the run's store (:meth:`pmt_core.run.Run.stored`): a rerun after a claim or report
change loads it, one after an LRP change recomputes it. The claims
(:mod:`pmt_core.claims.lrp`) read the arrays and compute their figures.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

__all__ = ["LRP_CHECK_CODE", "LRP_CONSERVATION_N_EXAMPLES", "LRP_REFERENCE_N_EXAMPLES",
           "LrpChecks", "spread"]

#: Test examples compared with the float64 reference and with Captum (evenly spaced).
LRP_REFERENCE_N_EXAMPLES = 16
#: Test examples whose per-layer relevance budget is computed.
LRP_CONSERVATION_N_EXAMPLES = 64
#: The code the checks run: zennit's side, both independent implementations, the network.
LRP_CHECK_CODE = ("pmt_core.explain.lrp", "pmt_core.explain.lrp_reference",
                  "pmt_core.explain.lrp_captum", "pmt_core.model.network",
                  "pmt_core.run.lrp_checks")


def spread(n_total: int, n: int) -> np.ndarray:
    """Evenly spaced example indices (the split may be ordered by class)."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int))


class LrpChecks:
    """The LRP mechanics of one run, each computed on first use (and stored).

    Parameters
    ----------
    run : pmt_core.run.Run
    """

    def __init__(self, run):
        self.run = run

    @property
    def _models(self):
        return self.run.models.replicates["s1s2"]

    def _stored(self, what: str, composite: str, idx, compute, *extra) -> dict:
        x = self.run.test_inputs("s1s2")[idx]
        parts = (composite, x, *[(m.model, np.asarray(m.test_pred)[idx]) for m in self._models],
                 *extra)
        return self.run.stored(f"lrp {what}", LRP_CHECK_CODE, parts, compute)

    def canonizer(self) -> list[dict]:
        """Per model of both input kinds: conv+BN pairs, batch norms merged, logit shift."""
        from pmt_core.explain import lrp

        rows = []
        for kind, models in self.run.models.replicates.items():
            x = self.run.test_inputs(kind)
            for mm in models:
                rows.append({
                    "input": kind, "replicate": mm.replicate,
                    "pairs": lrp.count_conv_bn_pairs(mm.model),
                    "merged": lrp.explain(mm.model, x[:2], "epsilon").n_merged_batchnorms,
                    "shift": lrp.merged_logit_shift(mm.model, x, relative=True)})
        return rows

    @cache  # noqa: B019 - one LrpChecks per run, held by the run
    def reference_errors(self, composite: str) -> np.ndarray:
        """Per example and replicate: max|R_zennit - R_ref| / max|R_ref| (float64)."""
        from pmt_core.explain import lrp
        from pmt_core.explain import lrp_reference as ref

        x_all = self.run.test_inputs("s1s2")
        idx = spread(len(x_all), LRP_REFERENCE_N_EXAMPLES)

        def compute():
            errors = []
            for mm in self._models:
                target = mm.test_pred[idx]
                e64 = lrp.explain(mm.model, x_all[idx], composite, target=target,
                                  dtype=torch.float64)
                r = ref.reference_lrp(mm.model, x_all[idx].cpu(), composite, target=target)
                scale = np.abs(r.relevance).max((1, 2))
                errors.append(np.abs(e64.relevance - r.relevance).max((1, 2)) / scale)
            return {"errors": np.concatenate(errors)}

        return self._stored("reference", composite, idx, compute)["errors"]

    @cache  # noqa: B019
    def captum_errors(self, composite: str, as_trained: bool) -> np.ndarray:
        """Per example and replicate: zennit against Captum, max|a - b| / max|a|.

        ``as_trained``: Captum on the network as trained (no canonizer), both at
        epsilon and stabiliser -> 0; else on zennit's canonized network at the
        composite's epsilon.
        """
        from pmt_core.explain import lrp
        from pmt_core.explain import lrp_captum as cap

        x_all = self.run.test_inputs("s1s2")
        idx = spread(len(x_all), LRP_REFERENCE_N_EXAMPLES)
        params = ({"epsilon": lrp.VANISHING_EPSILON, "stabilizer": lrp.VANISHING_EPSILON}
                  if as_trained else None)

        def compute():
            errors = []
            for mm in self._models:
                x, target = x_all[idx].cpu(), mm.test_pred[idx]
                z = lrp.explain(mm.model, x, composite, target=target, dtype=torch.float64,
                                params=params, device="cpu").relevance
                c = cap.captum_lrp(mm.model, x, composite, target, canonize=not as_trained,
                                   params=params)
                errors.append(np.abs(z - c).max((1, 2)) / np.abs(z).max((1, 2)))
            return {"errors": np.concatenate(errors)}

        return self._stored("captum", composite, idx, compute, params,
                            {"as_trained": as_trained})["errors"]

    @cache  # noqa: B019
    def conservation(self, composite: str) -> dict:
        """Worst relative residual over replicates, and replicate 0's absorbing layers.

        Returns
        -------
        dict
            ``worst`` (0-d), ``n`` (examples per replicate), and per absorbing
            layer of replicate 0 (a layer whose absorbed term is not all zero):
            ``layer``, ``rule``, ``absorbed_share`` (mean absorbed / top relevance)
            and ``residual`` (worst relative).
        """
        from pmt_core.explain import lrp

        x_all = self.run.test_inputs("s1s2")
        idx = spread(len(x_all), LRP_CONSERVATION_N_EXAMPLES)

        def compute():
            worst, rows = 0.0, []
            for mm in self._models:
                result = lrp.conservation(mm.model, x_all[idx], composite,
                                          target=mm.test_pred[idx], device=self.run.device)
                worst = max(worst, result.worst_relative_residual)
                if mm.replicate == 0:
                    top = result.top_relevance
                    rows = [(b.name, b.rule, float(np.mean(b.absorbed / top)),
                             float(np.max(b.relative_residual)))
                            for b in result.budgets if np.any(b.absorbed != 0)]
            return {"worst": np.float64(worst), "n": np.int64(len(idx)),
                    "layer": np.array([r[0] for r in rows], dtype=str),
                    "rule": np.array([r[1] for r in rows], dtype=str),
                    "absorbed_share": np.array([r[2] for r in rows], dtype=np.float64),
                    "residual": np.array([r[3] for r in rows], dtype=np.float64)}

        return self._stored("conservation", composite, idx, compute,
                            {"device": self.run.device.type})

    @cache  # noqa: B019
    def conservation_exact_errors(self, composite: str) -> np.ndarray:
        """Per example and replicate: |sum R_in / R_top - 1| on the bias-free network."""
        from pmt_core.explain import lrp

        x_all = self.run.test_inputs("s1s2")
        idx = spread(len(x_all), LRP_CONSERVATION_N_EXAMPLES)
        eps = {"epsilon": lrp.VANISHING_EPSILON, "stabilizer": lrp.VANISHING_EPSILON}

        def compute():
            errors = []
            for mm in self._models:
                free = lrp.bias_free_copy(mm.model)
                e = lrp.explain(free, x_all[idx], composite, target=mm.test_pred[idx],
                                dtype=torch.float64, params=eps, device=self.run.device)
                errors.append(np.abs(e.input_share - 1.0))
            return {"errors": np.concatenate(errors)}

        return self._stored("conservation exact", composite, idx, compute, eps)["errors"]

    @cache  # noqa: B019
    def input_shares(self, composite: str) -> np.ndarray:
        """(replicates, test examples): sum R_in / R_top with the logit as top relevance."""
        from pmt_core.explain import lrp

        x = self.run.test_inputs("s1s2")
        idx = np.arange(len(x))

        def compute():
            return {"shares": np.array([
                lrp.explain(mm.model, x, composite, target=mm.test_pred, top="logit",
                            device=self.run.device).input_share for mm in self._models])}

        return self._stored("input share", composite, idx, compute)["shares"]
