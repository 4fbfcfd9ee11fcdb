"""The suite's statistics: intervals, equivalence, multiplicity, power, their calibration.

Pure numpy and scipy (nothing here knows about runs or models), so that every
method can be simulated in the layouts the suite really has
(:mod:`pmt_core.stats.coverage`) and tested against known answers.
"""
