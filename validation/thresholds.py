"""Every threshold and tolerance of the validation claims, with its provenance.

Each constant says what it bounds, how it was calibrated (seeds, profile, measured
spread) and the margin taken. Never loosen one silently: change it in a commit
that says why, with the new measurements.
"""

# --- scattering (theory checks; method.md section 5) -------------------------
# Theory (Anden & Mallat 2014) puts the S2 peak of an AM/FM tone inside its
# validity domain at the path nearest (w1, w2): it predicts a hit rate of 1. The
# tolerance of a hit is one filter spacing per axis (1/Q octave, the local spacing
# in kymatio's linearly spaced low band), stated in pmt_core.features.theory.check_s2_peak.
# Measured (24 AM + 24 FM Latin-hypercube cases per seed, w1 200-8000 Hz,
# w2 2 Hz-min(w1/16, 250 Hz), seeds 0, 1, 2): 72/72 AM and 72/72 FM hits.
# Margin: one miss in twenty is tolerated before the claim fails.
AM_PEAK_MIN_HIT_RATE = 0.95
FM_PEAK_MIN_HIT_RATE = 0.95

# S2/S1 at the AM peak against (m/2)|psi^_l2(w2)|, relative error |meas/pred - 1|.
# Measured median over the 24 cases: 0.031 (seed 0), 0.026 (seed 1); the worst
# single cases (0.37-0.42) sit at the domain edge w1 ~ 18 w2, where the first-order
# filter already attenuates the sidebands. Threshold on the median: 3x the worst
# measured median. Without undoing kymatio 0.3.0's scale the error is 0.99+.
AM_RATIO_MAX_MEDIAN_REL_ERROR = 0.10

# Paper's feature shape (method.md section 1).
EXPECTED_FIRST_ORDER_PATHS = 74
EXPECTED_PATHS = 1200
EXPECTED_FRAMES = 32

# --- data (synthetic stand-in) ------------------------------------------------
# data.no_shortcut: balanced accuracy of the best of two nuisance-only classifiers
# (logistic regression, depth-3 tree; 5-fold stratified CV on rms dB, log f0, log
# spectral centroid, family one-hot) may exceed chance (1 / n_classes) by at most
# this margin. Measured on synthetic_manifest(CI_CLASS_SIZES, seed), 595 examples,
# chance 0.200, seeds 0-4: 0.178, 0.244, 0.253, 0.222, 0.270 (excess -0.022 to
# +0.070). The residual excess is structural, not noise: no string instrument plays
# flatterzunge, so family alone reaches 0.20-0.28. Margin: worst excess + 0.05
# (about two null standard errors of a balanced accuracy at ~600 examples).
DATA_SHORTCUT_MARGIN = 0.12

# data.modulation_present: an example's recorded modulation_rate_hz counts as
# recovered when |log2(measured / recorded)| <= this (0.15 octave = 11%), measured
# by pitch_rate_hz (vibrato, trill) or envelope_rate_hz (tremolo, bisbigliando,
# flatterzunge). Recovery errors are either small (median 0.01-0.05 octave) or gross
# (octave or unrelated peaks); 0.15 separates them and keeps jittered flatterzunge
# (rate sigma 18%) from failing on peak spread alone.
DATA_RATE_TOLERANCE_OCT = 0.15
# Lowest fraction recovered per class. Measured, same manifests, seeds 0-4, worst
# class in each (always flatterzunge): 0.920, 0.940, 0.900, 0.953, 0.880; every
# other class 0.964-1.000. Flatterzunge misses (7-18 per seed) come from its
# irregular flutter (rate sigma 18%, depth sigma 35%), which spreads and splits the
# envelope peak, and from notes under 50 Hz, where a 20-40 Hz flutter sits next to
# the pitch period. Median errors: 0.04-0.05 octave (flatterzunge), 0.01-0.02
# octave (the other classes). Threshold: worst measured 0.88 minus 0.08 (about
# 3.5 binomial standard errors at 150 examples).
DATA_MODULATION_PRESENT_MIN_FRACTION = 0.80

# --- accuracy (Table 1) -------------------------------------------------------
# "ci" values measured with `pytest validation --profile ci --seed N` for seeds 0, 1
# and 2 (595 synthetic clips, 119 test files: 9 vibrato, 22 trill, 48 tremolo,
# 10 bisbigliando, 30 flatterzunge). The "paper" values are set from the paper's
# Table 1 and await a paper-profile run on a GPU (none was lent so far).

# The paper's Table 1 (method.md section 4, checked against the authors' saved test
# predictions): per-class test accuracy as fractions, and the test counts per class.
PAPER_TABLE1_ACCURACY = {
    "s1": {"vibrato": 0.7250, "trill": 0.7033, "tremolo": 0.9223,
           "bisbigliando": 0.8833, "flatterzunge": 0.7961},
    "s1s2": {"vibrato": 0.9750, "trill": 0.9856, "tremolo": 0.9980,
             "bisbigliando": 0.9833, "flatterzunge": 1.0000},
}
PAPER_TABLE1_MACRO = {"s1": 0.8060, "s1s2": 0.9884}
PAPER_TEST_COUNTS = {"vibrato": 40, "trill": 209, "tremolo": 502, "bisbigliando": 60,
                     "flatterzunge": 309}

# accuracy.<s1|s1s2>.per_class: lowest acceptable test accuracy per class, per
# profile. "paper" (SOL-PMT at paper scale): the paper's value minus
# max(3 binomial standard errors at the paper's test counts, 0.02), minus a further
# 0.05 for S1 (one published run of a weaker, less stable model), rounded down to
# 0.01. Not yet measured over seeds (needs SOL-PMT or a paper-profile GPU run).
# "ci" (synthetic data, small split), both set before any measurement and kept:
# S1+S2 0.80 per class, because the synthetic techniques differ by their
# modulation, which S2 resolves. Measured per-class recall, seeds 0 / 1 / 2:
# vibrato 0.889 / 1.000 / 1.000, trill 0.955 / 0.909 / 0.864, tremolo 0.979 /
# 0.792 / 0.979, bisbigliando 1.000 / 0.800 / 0.900, flatterzunge 1.000 / 0.967 /
# 1.000 (macro 0.965 / 0.894 / 0.949). Seed 1 falls below on tremolo (38 of 48):
# one seed in three, so the bar has no margin at the ci test size (one miss moves
# vibrato or bisbigliando by 0.10); it is kept, not loosened, and seed 1 is a
# known failure (validation/known_failures.py).
# S1 0.20 = chance for five classes ("S1 alone beats guessing on every class"),
# since 186 ms frames average out modulations above ~3 Hz and the synthetic classes
# share pitch, loudness and timbre. Measured lowest class, seeds 0 / 1 / 2: vibrato
# 0.111 / trill 0.273 / vibrato 0.333 (macro 0.504 / 0.558 / 0.477, paper 0.806):
# vibrato's 4-8 Hz FM is invisible to S1 on seed 0 (1 of 9), a known failure there.
ACCURACY_PER_CLASS_MIN = {
    "ci": {
        "s1s2": {"vibrato": 0.80, "trill": 0.80, "tremolo": 0.80, "bisbigliando": 0.80,
                 "flatterzunge": 0.80},
        "s1": {"vibrato": 0.20, "trill": 0.20, "tremolo": 0.20, "bisbigliando": 0.20,
               "flatterzunge": 0.20},
    },
    "paper": {
        "s1s2": {"vibrato": 0.90, "trill": 0.96, "tremolo": 0.97, "bisbigliando": 0.93,
                 "flatterzunge": 0.98},
        "s1": {"vibrato": 0.46, "trill": 0.55, "tremolo": 0.83, "bisbigliando": 0.70,
               "flatterzunge": 0.67},
    },
}
# accuracy.s2_gain: smallest acceptable macro accuracy (S1+S2) - macro accuracy (S1)
# on the test split. Paper: 0.9884 - 0.8060 = 0.182; the binomial standard error of
# that difference at the paper's test counts is 0.019, so "paper" takes the gain
# minus about 4 standard errors, 0.10. "ci": measured 0.461 / 0.335 / 0.472 (seeds
# 0 / 1 / 2); the first, provisional 0.05 is raised to the paper's 0.10 (a tighter
# bar, still 0.23 below the lowest measured gain: S1 is near blind on synthetic data).
ACCURACY_S2_GAIN_MIN = {"ci": 0.10, "paper": 0.10}

# --- LRP mechanics --------------------------------------------------------------

# lrp.canonizer: conv+BN pairs of PMTConvNet in forward order (conv1/bn1, conv2/bn2,
# conv3/bn3); zennit's SequentialMergeBatchNorm must merge exactly these.
LRP_EXPECTED_CONV_BN_PAIRS = 3
# lrp.canonizer: max |logit(merged) - logit(original)| / max |logit| over the test
# split. zennit resets a merged batch norm but keeps eps = 1e-5, so each of the 3
# reset norms scales by (1 + 1e-5)^-1/2: about 5e-6 each, 1.5e-5 to first order.
# Measured: 6.6e-7 absolute on a random PMTConvNet(48) (logits ~1); 1.34e-4 absolute
# on a PMTConvNet(1200) trained 40 steps on random data (max |logit| 10.2, i.e.
# 1.3e-5 relative, float32 and float64 alike); method.md: up to 2.6e-4 absolute on
# networks trained there. Tolerance: ~7x the first-order estimate.
LRP_CANONIZER_REL_LOGIT_TOL = 1e-4
# lrp.reference_match.<rule>: test examples compared (evenly spaced over the split).
LRP_REFERENCE_N_EXAMPLES = 16
# lrp.reference_match.<rule>: max over examples of max |R_zennit - R_ref| / max |R_ref|,
# both float64. Measured 4e-16 to 2.3e-15 on random and briefly-trained nets (48 and
# 1,200 paths, all three rules); the bound leaves room for rounding amplified by
# near-zero epsilon denominators (|z| ~ 1e-6 turns 1e-16 into ~1e-10) while
# catching any rule or wiring error (which shows at order 1e-2 or more).
LRP_REFERENCE_MAX_REL_ERR = 1e-6
# lrp.conservation.<rule>: examples whose per-layer budgets are computed.
LRP_CONSERVATION_N_EXAMPLES = 64
# lrp.conservation.<rule>: worst |R_in + absorbed - R_out| / (sum |R_out| + sum |R_in|
# + sum |absorbed terms|) over layers and examples, float64 (absorbed = bias share +
# epsilon-stabiliser share, both analytic). Measured <= 2e-16 (random and
# briefly-trained nets, 48 and 1,200 paths); 1e-10 still means float64 rounding only.
LRP_CONSERVATION_MAX_REL_RESIDUAL = 1e-10

# --- relevance and sanity claims ----------------------------------------------
# These bars state the paper's claims (or a conventional level) and were set before
# any measurement; none was moved after measuring. "Measured" quotes the ci profile,
# seeds 0 / 1 / 2, per rule: epsilon, epsilon_zplus (text), zplus_epsilon (code).

# relevance.kurtosis_contrast: the paper's mean (sd) per-example kurtosis of the
# time-averaged maps (section 4.2; method.md section 4). Reported beside ours, not
# asserted (synthetic data and another training run cannot reproduce the values).
PAPER_KURTOSIS = {"epsilon": (13.82, 8.81), "composite": (19.22, 13.72)}
# relevance.kurtosis_contrast: one-sided paired Wilcoxon signed-rank test (scipy)
# that the code's composite ("zplus_epsilon", zennit EpsilonPlus) gives larger
# kurtosis than "epsilon" on the same test examples. 0.01: a conventional level,
# with n ~ 1,000 test examples the test resolves small shifts. Measured: code
# reading 4.98 / 4.59 / 4.82 vs epsilon 6.68 / 5.70 / 6.86, p = 1.0 on every seed
# (the paper's ordering reverses); text reading 7.04 / 6.84 / 7.28, p 0.009 /
# 1.5e-5 / 0.43. Paper: 19.22 vs 13.82.
KURTOSIS_WILCOXON_ALPHA = 0.01

# relevance.localisation / relevance.peak_modulation: tolerance in octaves around
# the true rate (or the physical band). 0.5 octave = one second-order filter
# spacing (Q2 = 2; lambda2 centres 1.33, 2.66, 3.77, 5.33, 7.54, 10.7 ... Hz): any
# rate then has its nearest filter and one neighbour within reach, and the
# half-octave quantisation of lambda2 alone cannot cause a miss.
LOCALISATION_TOL_OCTAVES = 0.5
# relevance.localisation: macro-average (over classes) share of correctly
# classified test examples whose peak S2 relevance lies within the tolerance of
# the example's true rate. The paper says relevance is "localized around the
# modulation rate"; half the examples is a weak reading of that. Measured macro hit
# rate 0.695 / 0.622 / 0.674 (epsilon), 0.761 / 0.680 / 0.737 (text), 0.738 /
# 0.716 / 0.787 (code); raw energy 0.691 / 0.772 / 0.760, chance 0.128.
LOCALISATION_MIN_HIT_RATE = 0.5
# relevance.localisation: the relevance hit rate must exceed the exact chance rate
# (random map) by at least this factor, macro-averaged. Measured 4.9-6.2.
LOCALISATION_MIN_LIFT_OVER_CHANCE = 2.0
# relevance.peak_modulation: widening (octaves, both sides) of MODULATION_BAND_HZ
# when asking whether a class's median peak lambda2 lies in its physical band;
# same half-octave filter spacing argument as above.
PEAK_BAND_TOL_OCTAVES = 0.5

# relevance.pitch_invariance: f0 groups (quantiles within each class).
PITCH_N_GROUPS = 3
# relevance.pitch_invariance: top-n positions per example for class aggregates
# (paper Eq. 13, n = 5).
AGGREGATE_TOP_N = 5
# relevance.pitch_invariance: random splits of each class's examples into groups of
# the f0 terciles' sizes (pmt_core.explain.relevance.random_split_reference, seeded by
# (run_seed, class index)). 200 puts the smallest attainable p at 1/201 and the
# Monte Carlo error of the random-split mean cosine at 0.011 or less (random-split
# sd 0.010-0.153 per class, ci run, seed 0).
PITCH_N_RANDOM_SPLITS = 200
# relevance.pitch_invariance: the assertion is a permutation test. Per class, the
# mean pairwise cosine of the lambda2 profiles of the f0-tercile top-n aggregates is
# compared with the same statistic over random splits of the same examples into
# groups of the same sizes; one-sided p = (1 + #random <= observed) / (1 + K), combined
# over classes by Fisher's method. Under invariance the f0 split is exchangeable with
# a random one, so the false-alarm rate is alpha by construction (no tuning): the
# claim fails when grouping by pitch makes the aggregates significantly less alike
# (p < alpha). A fixed cosine bar (0.8, tried first) mixed pitch dependence with the
# noise of 3-16 examples per group. The ratio pitch-split / random-split mean is
# reported as the effect size (planted invariant maps, 6 per group, 40 seeds: median
# 1.01, 5th percentile 0.87; a lambda2 peak that moves across terciles: 0.39-0.70).
# Measured, ci, seed 0: combined p 0.014 (epsilon), 0.004 (epsilon_zplus), 0.005
# (zplus_epsilon); mean ratios 0.88 / 0.85 / 0.85; driven by flatterzunge (ratio
# 0.60-0.74, p 0.005-0.010 under every rule). alpha = 0.01, the suite's level for
# every paired/permutation test (KURTOSIS_WILCOXON_ALPHA, DELETION_WILCOXON_ALPHA).
PITCH_PERMUTATION_ALPHA = 0.01
# relevance.pitch_invariance: |within-class Spearman(f0, peak lambda2)| must stay
# below this ("does not follow f0"); with n ~ 1,000 pooled examples the null sd of
# rho is ~0.03, so 0.3 tolerates a weak trend but not tracking. Measured |rho|
# 0.195 / 0.261 / 0.218, 0.063 / 0.056 / 0.203, 0.266 / 0.175 / 0.243.
PITCH_MAX_ABS_RHO_MODULATION = 0.3
# relevance.pitch_invariance: positive control, within-class Spearman(f0, peak
# lambda1) must exceed this (carriers must follow pitch, or the measure could not
# detect dependence at all). Measured 0.180 / 0.498 / 0.444, 0.318 / 0.454 /
# 0.459, 0.601 / 0.631 / 0.550 (epsilon fails it on seed 0).
PITCH_MIN_RHO_CARRIER = 0.3
# relevance.pitch_invariance: fewest examples with a known f0 per class to use it.
PITCH_MIN_EXAMPLES_PER_CLASS = 9

# relevance.s1_share: the median per-example share of |relevance| on S1 paths must
# be at most this multiple of S1's share of paths (74 / 1,200 = 6.2 %): "S1 carries
# little", read as "less than its head count". Measured 0.044 / 0.044 / 0.041,
# 0.045 / 0.043 / 0.042, 0.057 / 0.057 / 0.058 against 0.062.
S1_SHARE_MAX_RATIO_TO_PATH_SHARE = 1.0

# relevance.energy_correlation: median per-example Spearman rho between relevance
# and scattering energy (all 1,200 paths, raw coefficients with kymatio's scale
# undone) must not exceed this: the paper says "not positively correlated"; 0.3 is
# the conventional bound of a weak correlation. Measured 0.029 / 0.019 / 0.043,
# 0.046 / 0.044 / 0.034, 0.347 / 0.392 / 0.400 (the code's z+ reading fails).
ENERGY_MAX_MEDIAN_RHO = 0.3

# sanity.*: test examples used (stratified random subset, seeded by run_seed):
# each stage is a full LRP pass, and deletion runs (steps + 1) forward passes per
# order. 512 keeps the standard error of a mean rho below ~0.02.
SANITY_MAX_EXAMPLES = 512
# sanity.model_randomisation.<rule>: per-example Spearman rho between the trained
# model's maps and the fully randomised model's maps (all of fc2, fc1, conv3, conv2,
# conv1 re-initialised), averaged over examples, on signed maps and on |maps|, as
# Adebayo et al. (2018, "Sanity checks for saliency maps", NeurIPS, section 3) do.
# Both must be small: an input-only "explanation" scores 1.0 on both.
# Signed: |mean rho| below this. The magnitude counts: a strongly negative rho means
# the randomised maps are the trained ones with their signs swapped, still ordered
# by the trained map, so the weights have not been shown to matter. 0.5 fails only
# maps that keep (or mirror) most of their ranking without the learned weights.
# Measured signed mean rho -0.012 / 0.008 / -0.010, -0.001 / -0.000 / 0.011,
# -0.853 / -0.316 / -0.138.
RANDOMISATION_MAX_ABS_MEAN_RHO = 0.5
# |maps|: mean rho of the absolute maps below this. Magnitude is where z+-type rules
# fail the check: their relevance hardly depends on the upper layers' weights (Sixt,
# Granz & Landgraf 2020, "When explanations lie: why many modified BP attributions
# fail", ICML). An LRP map is the input times a weight-dependent factor, so part of
# its magnitude ranking comes from the input alone: ci run (seed 0), fully randomised,
# rho of |maps| 0.286 (epsilon), 0.280 (epsilon_zplus) against 0.923 (zplus_epsilon,
# signed rho -0.733). 0.5, the signed bound kept, lies between that input-driven
# floor and a map that keeps its magnitudes without the weights. Measured 0.285 /
# 0.307 / 0.283, 0.303 / 0.289 / 0.287, 0.882 / 0.928 / 0.916: zplus_epsilon fails
# it on every seed, a finding, not a tuning target.
RANDOMISATION_MAX_MEAN_ABS_MAP_RHO = 0.5
# sanity.deletion.<rule>: removal steps and paths per step. 20 x 10 removes the top
# 200 of 1,200 paths (1/6), the region where MoRF and random orders differ most
# (Samek et al. 2017 use 100 steps of small regions over images).
DELETION_STEPS = 20
DELETION_PER_STEP = 10
# sanity.deletion.<rule>: baseline of a removed path: the input batch norm's
# running mean, i.e. the per-path training mean of the compressed feature (a
# zero normalised deviation after the input batch norm).
DELETION_BASELINE = "running_mean"
# sanity.deletion.<rule>: AOPC(relevance order) / AOPC(random order) must exceed
# this, and the one-sided paired Wilcoxon p (relevance > random) must be below
# DELETION_WILCOXON_ALPHA.
# 1.5: relevance-first removal must hurt 50 % more than random. Measured AOPC
# ratio 22.6 / 22.2 / 13.8 (seed 0), 24.0 / 22.9 / 13.5 (seed 2), p < 1e-16.
DELETION_MIN_AOPC_RATIO = 1.5
DELETION_WILCOXON_ALPHA = 0.01
