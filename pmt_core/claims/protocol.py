"""How the claims measure: protocol parameters (not bars; those are in thresholds.py).

Each constant says what it sets and why; changing one changes a claim's
definition, so it changes the figures a baseline stores.
"""

from __future__ import annotations

from pmt_core.explain import perturbation

# --- relevance ------------------------------------------------------------------
#: A lambda2 is "at" a rate within this many octaves: half an octave is one
#: second-order filter spacing (Q2 = 2; centres 1.33, 2.67, 3.77, 5.33, 7.54 ...
#: Hz), so any rate has its nearest filter and one neighbour within reach.
RATE_TOL_OCTAVES = 0.5
#: Positions per example of the class aggregates (paper Eq. 13, n = 5).
AGGREGATE_TOP_N = 5
#: Random permutations of the true rates within each class (the localisation
#: claim's rate-specific null): the Monte Carlo error of its mean is ~0.003.
RATE_PERMUTATIONS = 200
#: f0 groups within each class (quantiles) of the pitch claim.
PITCH_N_GROUPS = 3
#: Random splits into groups of the f0 groups' sizes, per bootstrap draw.
PITCH_N_RANDOM_SPLITS = 50
#: Bootstrap draws of the pitch claim's similarity ratio (per class).
PITCH_N_BOOTSTRAP = 200
#: Fewest correctly classified examples with a known f0 for a class to enter the
#: pitch claim (three per f0 group).
PITCH_MIN_EXAMPLES_PER_CLASS = 9
#: The pitch claim reads lambda2 only below this fraction of each example's f0:
#: harmonics closer than a first-order bandwidth beat at lambda2 ~ f0 (audit M6),
#: a transform effect that follows pitch whatever the explanation does.
PITCH_MAX_LAMBDA2_OVER_F0 = 0.5
#: A lambda2 counts as "at the distractor" within this many octaves of its rate.
DISTRACTOR_TOL_OCTAVES = 0.25

# --- sanity -----------------------------------------------------------------------
#: Deletion: paths removed per step and steps (10 x 20 = the top 200 of 1,200
#: paths), defined with the deletion curves (:mod:`pmt_core.explain.perturbation`)
#: since the run's sanity stage computes them.
DELETION_STEPS = perturbation.DELETION_STEPS
DELETION_PER_STEP = perturbation.DELETION_PER_STEP

# --- LRP mechanics ------------------------------------------------------------------
# Test examples of the reference, Captum and conservation checks: the run's LRP
# mechanics stage (pmt_core.run.lrp_checks) holds them.
