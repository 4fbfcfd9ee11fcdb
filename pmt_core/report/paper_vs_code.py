"""Where the authors' public code departs from the paper's text (method.md sections 1-4).

Each row: the topic, what the paper says, what the code does, what this suite
does, what the choice does to the figures, and the claims (id prefixes) that
measure that effect. The report's "paper vs reference code" section is this table.
"""

from __future__ import annotations

#: Where the authors' public code (changhongw/examod) departs from the paper's text,
#: what this suite does about it (method.md sections 1-4), what the choice does to
#: the figures, and the claims (id prefixes) that measure that effect.
PAPER_VS_CODE = [
    {"topic": "LRP-[eps, z+] rule assignment",
     "paper": "epsilon on convolutions, z+ on the dense layers",
     "code": "zennit EpsilonPlus: z+ on convolutions, epsilon on Linear layers (the reverse)",
     "suite": "both: composites epsilon_zplus (text) and zplus_epsilon (code), plus "
              "zbox_zplus_epsilon (the code's composite with a z-box first layer, since z+ "
              "on a signed first-layer input is improper); every relevance claim is run on "
              "each, beside model attributions and null explainers",
     "effect": "z+ on the convolutions keeps only positive contributions through most of "
               "the network: sparser, more contrasted maps (higher kurtosis) whose peaks "
               "may sit elsewhere; every relevance claim is measured for both readings",
     "claims": ["relevance.kurtosis_contrast", "relevance.localisation.",
                "relevance.peak_modulation.", "sanity.model_randomisation."]},
    {"topic": "Input batch norm",
     "paper": "not stated",
     "code": "zennit Pass: relevance of the normalised input, a signed deviation from a "
             "learned reference point",
     "suite": "folded exactly into the first convolution (border frames included), so maps "
              "live on the compressed features the network sees; Pass kept as an option "
              "(explain(input_norm='pass'))",
     "effect": "a positive peak can no longer mean 'less of this modulation than usual' "
               "through the norm's offset; every map differs from the code's",
     "claims": ["lrp.conservation.", "lrp.input_share.", "lrp.reference_match."]},
    {"topic": "One trained model",
     "paper": "one run", "code": "one run, seed 0",
     "suite": "replicates per input kind (different initialisation and batch order) on the "
              "same split; every claim is a statistic over replicates and test examples with "
              "a 95 % interval: holds, does not hold, or inconclusive",
     "effect": "a verdict no longer depends on one machine's rounding of one training run",
     "claims": ["accuracy.", "relevance.", "sanity."]},
    {"topic": "Top relevance",
     "paper": "R_M = f(Sx), the logit", "code": "bare one-hot of the predicted class",
     "suite": "the logit for conservation and the input share (explain(top='logit')); the "
              "one-hot for maps, so that a negative winning logit cannot flip a map's ranks",
     "effect": "LRP is linear in the top relevance: the two differ by the factor logit, which "
               "reverses every ranking when it is negative",
     "claims": ["lrp.conservation.", "lrp.reference_match."]},
    {"topic": "Clip length", "paper": "'around 6 seconds'",
     "code": "2^18 samples (5.94 s at 44.1 kHz), truncated or zero-padded at the end",
     "suite": "2^18 samples, as the code",
     "effect": "fixes 32 frames of 186 ms; short notes are zero-padded, so their frame "
               "average includes silence",
     "claims": ["scattering.shape"]},
    {"topic": "Scattering setting", "paper": "averaging scale 2^12, frame size T = 2^13",
     "code": "kymatio Scattering1D(J=13, shape=2^18, Q=(8, 2), T=2^13), paths >= 32 Hz kept",
     "suite": "the same (1,200 x 32), with kymatio 0.3.0's per-path scale undone "
              "(scattering.am_ratio_theory pins it)",
     "effect": "kymatio 0.3.0 divides each path by 2^j1 (S1) or 2^(j1+j2) (S2): left as "
               "is, S2/S1 ratios miss theory by 99% and raw energy maps lean towards high "
               "carriers and fast modulations (small j); the log compression's per-path mean "
               "cancels it for the network itself",
     "claims": ["scattering.shape", "scattering.am_ratio_theory",
                "relevance.energy_correlation."]},
    {"topic": "Input compression", "paper": "not stated",
     "code": "log1p(S / (0.1 mu + 1e-8)), mu from the training split, then BatchNorm1d",
     "suite": "the same; relevance is defined in this compressed domain",
     "effect": "maps are relevances of compressed, mean-normalised inputs: weak paths can "
               "carry much relevance, so relevance need not follow scattering energy",
     "claims": ["relevance.energy_correlation.", "relevance.s1_share."]},
    {"topic": "Test files scored", "paper": "all 1,151",
     "code": "1,120 (the loader drops the last incomplete batch)",
     "suite": "every test file (accuracy.all_test_scored)",
     "effect": "the code's per-class accuracies omit 31 files that the loader's order "
               "happens to put last; Table 1 here scores every file",
     "claims": ["accuracy.all_test_scored", "accuracy.s1s2.per_class",
                "accuracy.s1.per_class"]},
    {"topic": "Batch-norm merging", "paper": "not stated",
     "code": "SequentialMergeBatchNorm; pairs follow module assignment order, so a model "
             "written batch-norms-first silently merges nothing",
     "suite": "merged count checked against conv+BN pairs (lrp.canonizer)",
     "effect": "unmerged batch norms get Pass: relevance skips their scaling and no longer "
               "follows the network's function; merged ones shift the logits by ~1e-5 "
               "(the kept eps)",
     "claims": ["lrp.canonizer", "lrp.conservation."]},
]
