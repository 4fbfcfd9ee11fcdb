"""What a run is asked to do: its settings, input kinds, perturbations and seeds.

Light on purpose (numpy only): the pytest plugin reads :data:`PERTURBATIONS` and
builds :class:`RunSettings` while pytest parses its options.

Seeds. The run seed draws the synthetic manifest, the split (every source: see
:func:`pmt_core.data.split.assign_split`) and, through :func:`replicate_seeds`,
one training seed per replicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["INPUT_KINDS", "PERTURBATIONS", "RATES_CSV", "RunSettings", "replicate_seeds"]

#: The two inputs of Table 1: first-order paths only, and all kept paths.
INPUT_KINDS = ("s1", "s1s2")

#: Perturbations of the arithmetic that must not change any verdict (see
#: :class:`RunSettings`).
PERTURBATIONS = ("none", "threads", "ulp")
#: Per-example rates (recorded, estimated, used) in the report folder.
RATES_CSV = "rates.csv"


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked to do (the command line's options, as data).

    Attributes
    ----------
    dataset : str
        ``"synthetic"`` or a path understood by :func:`pmt_core.data.datasets.load_dataset`.
    profile : str
        ``"smoke"``, ``"ci"`` or ``"paper"`` (:mod:`pmt_core.profiles`).
    seed : int
        Seed of the synthetic data, the split and the replicates' training seeds.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    cache_dir : str or None
        Feature cache folder; None: ``$PMT_CACHE_DIR`` or the default.
    use_cache : bool
        False: neither read nor write the feature cache.
    report_dir : str
        Where the split and the checkpoints are written.
    replicates : int or None
        Models per input kind; None: the profile's.
    perturb : {"none", "threads", "ulp"}
        Change the arithmetic, not the method, to show that verdicts do not depend
        on rounding: ``threads`` trains and explains with one torch thread (the
        default uses what torch picks); ``ulp`` multiplies the compressed features
        by ``1 + k * 2**-23`` with k drawn from {-4..4} per value (a few float32
        ulps), seeded.
    """

    dataset: str = "synthetic"
    profile: str = "ci"
    seed: int = 0
    device: str = "auto"
    cache_dir: str | None = None
    use_cache: bool = True
    report_dir: str = "reports"
    replicates: int | None = None
    perturb: str = "none"

    def __post_init__(self):
        if self.perturb not in PERTURBATIONS:
            raise ValueError(f"perturb must be one of {PERTURBATIONS}, got {self.perturb!r}")
        if not 0 <= int(self.seed) < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32), got {self.seed}")
        if self.replicates is not None and int(self.replicates) < 1:
            raise ValueError(f"replicates must be at least 1, got {self.replicates}")


def replicate_seeds(seed: int, n: int) -> list[int]:
    """Training seed of each of ``n`` replicates of a run with seed ``seed``.

    Replicate 0 trains with the run seed itself (a one-replicate run is the
    single model of earlier versions); replicate k > 0 with a seed drawn from
    ``numpy.random.SeedSequence([seed, k])``, so that it does not depend on how
    many replicates there are.
    """
    return [int(seed) if k == 0 else
            int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0] % 2**31)
            for k in range(int(n))]
