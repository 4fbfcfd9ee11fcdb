"""What the relevance claims read: the test split's maps, labels and ground truth.

One :class:`View` per run (memoised) holds, for the S1+S2 replicates, the
predictions, the explainers' time-averaged maps, the rates (recorded or
estimated), f0 and the distractor's rate, and adds the planted controls (maps
built from the ground truth) that the power claims hold each criterion to.
"""

from __future__ import annotations

import numpy as np

from pmt_core.claims.families import class_macro
from pmt_core.explain.explainers import EXPLAINERS, lrp_explainer_names
from pmt_core.stats.intervals import Estimate, per_replicate_estimate

COMPOSITES = lrp_explainer_names()
#: The composite the paper's text describes (its figures are attached to its claims).
PAPER_TEXT_READING = next((n for n in COMPOSITES if EXPLAINERS[n].reading == "paper text"),
                          COMPOSITES[0])


class View:
    """Test-split arrays the relevance families share (one per run, memoised)."""

    def __init__(self, ev):
        models = ev.models.replicates["s1s2"]
        self.paths = ev.compression.paths
        self.class_names = tuple(ev.data.class_names)
        self.true = np.asarray(models[0].test_true, dtype=int)
        self.pred = np.stack([np.asarray(m.test_pred, dtype=int) for m in models])
        self.correct = self.pred == self.true[None, :]
        self.n_rep, self.n = self.pred.shape
        self.classes = np.broadcast_to(self.true, self.pred.shape).astype(float)
        self.rate = ev.rates.of("test")
        #: appended to the detail of every claim that reads the rates
        self.rate_note = ev.rates.note("test")
        #: the rates are the estimator's (the data record none)
        self.rates_estimated = ev.rates.source == "estimated"
        self.f0 = ev.data.column("f0_hz", "test")
        self.distractor = ev.data.column("distractor_rate_hz", "test")
        # the explainers' maps, and the planted controls of the power claims
        self.maps = {**ev.explanations.maps, **planted_controls(self, ev.seed)}
        self.energy = ev.test_energy
        # time-averaged compressed inputs and their training mean: peak presence
        self.inputs = ev.test_inputs("s1s2").double().mean(dim=-1).numpy()
        self.input_mean = ev.input_statistics[0]

    def known(self, column) -> np.ndarray:
        """(n,) bool: the column is finite and positive."""
        if column is None:
            return np.zeros(self.n, bool)
        with np.errstate(invalid="ignore"):
            return np.isfinite(column) & (column > 0)

    def class_rows(self):
        """(index, name) of the classes present in the test split."""
        return [(k, n) for k, n in enumerate(self.class_names) if np.any(self.true == k)]


def view(ev) -> View:
    """Return the run's :class:`View` (computed once)."""
    return ev.memo("relevance_view", lambda: View(ev))


def planted_map(v: View, target_hz) -> np.ndarray:
    """Return maps (n, paths) whose S2 peak sits at the lambda2 nearest each example's target.

    Every carrier at that lambda2 gets 1, everything else a faint seeded noise
    (1e-3) that breaks ties; an example without a target (NaN) gets the noise only.
    """
    lam2 = np.log2(np.where(v.paths.second_order, v.paths.modulation_hz, 1.0))
    s2 = np.asarray(v.paths.second_order)
    maps = 1e-3 * np.random.default_rng(0).random((v.n, len(v.paths)))
    for i, t in enumerate(np.asarray(target_hz, dtype=float)):
        if np.isfinite(t) and t > 0:
            d = np.where(s2, np.abs(lam2 - np.log2(t)), np.inf)
            maps[i, d <= d.min() + 1e-9] += 1.0
    return maps


def planted_controls(v: View, seed: int) -> dict:
    """Return the planted oracle and adversaries (:data:`families.PLANTED_LABELS`).

    Each is one map per example, the same for every replicate (a control does not
    depend on training); those whose ground truth the data lack are left out.
    """
    out = {}
    if v.known(v.rate).any():
        rate = np.where(v.known(v.rate), v.rate, np.nan)
        out["oracle_rate"] = planted_map(v, rate)
        # another example's rate of the same class: right class, wrong example
        rng = np.random.default_rng([seed, 23])
        other = np.full(v.n, np.nan)
        for k in np.unique(v.true):
            members = np.flatnonzero((v.true == k) & v.known(v.rate))
            if members.size > 1:
                shift = rng.integers(1, members.size)
                other[members] = rate[np.roll(members, shift)]
        out["adversary_permuted"] = planted_map(v, other)
    if v.known(v.distractor).any():
        out["adversary_distractor"] = planted_map(
            v, np.where(v.known(v.distractor), v.distractor, np.nan))
    if v.known(v.f0).any():
        # below the f0 / 2 limit of the pitch claim, and moving with pitch
        out["adversary_pitch"] = planted_map(v, np.where(v.known(v.f0), v.f0 / 8, np.nan))
    return {name: [maps] * v.n_rep for name, maps in out.items()}


def per_replicate_macro(values: np.ndarray, classes: np.ndarray) -> Estimate:
    """Class-macro mean per replicate row of ``values`` (R, n), then over replicates."""
    return per_replicate_estimate([class_macro(values[r:r + 1], classes[r:r + 1])
                                   for r in range(values.shape[0])])
