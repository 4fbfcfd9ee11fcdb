"""The rate estimator's measured error, and what it does to the rate claims' verdicts.

Where a data set records no rates, the rate claims read the estimator's rates. Its
error (measured where rates are known: ``pmt_core/data/rate_errors.json``) makes a
map that sits exactly at the true rates score lower against the estimates, so a
claim at its bar would be rejected more often than the interval's nominal 2.5 %.
The claims lower their rejection bar by the share of the figure such a map keeps
(:func:`pmt_core.data.rates.attenuation`); this file checks the table, the
sampler and, by simulation in the ci layout, that the lowered bar brings the
false rejection of a map at the bar back to its nominal rate.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pmt_core.__main__ import main
from pmt_core.claims import protocol as pr
from pmt_core.claims.core import AtLeast, Measurement, with_attenuation
from pmt_core.claims.families import class_macro
from pmt_core.claims.thresholds import LOCALISATION_MIN_LIFT
from pmt_core.data import rates as RT
from pmt_core.data.synth.params import RATE_RANGE_HZ
from pmt_core.explain import relevance as R
from pmt_core.features.scattering import ScatteringConfig, path_table
from pmt_core.profiles import PROFILES
from pmt_core.stats.intervals import MacroMean, crossed_t


def test_the_committed_table_covers_every_technique_with_its_provenance():
    table = RT.load_error_table()
    assert set(table["quantiles"]) == set(RATE_RANGE_HZ)
    assert {"source", "commit", "command"} <= set(table["provenance"])
    for quantiles in table["quantiles"].values():
        assert len(quantiles) == len(table["probabilities"])
        assert np.all(np.diff(quantiles) >= 0)


def test_draws_follow_the_table():
    table = RT.load_error_table()
    rng = np.random.default_rng(0)
    for technique, quantiles in table["quantiles"].items():
        draws = RT.draw_errors([technique] * 20000, rng, table)
        # the median and the tails of the measured distribution come back
        for p in (0.1, 0.5, 0.9):
            expected = np.interp(p, table["probabilities"], quantiles)
            assert abs(np.quantile(draws, p) - expected) < 0.02, (technique, p)


def test_draws_refuse_a_technique_never_measured():
    with pytest.raises(ValueError, match="not measured for \\['glissando'\\]"):
        RT.draw_errors(["glissando"], np.random.default_rng(0))


def test_error_table_measures_confident_estimates_of_recorded_rates():
    frame = pd.DataFrame({"technique": ["trill"] * 4 + ["vibrato"],
                          "modulation_rate_hz": [8.0, 8.0, 8.0, np.nan, 5.0],
                          "rate_estimate_hz": [8.0, 16.0, 4.0, 7.0, 5.0],
                          "rate_confident": [True, True, False, True, True]})
    table = RT.error_table(frame, {"source": "test"})
    assert table["n"] == {"trill": 2, "vibrato": 1}
    assert table["quantiles"]["trill"][0] == 0.0 and table["quantiles"]["trill"][-1] == 1.0
    with pytest.raises(ValueError, match="lacks \\['rate_confident'\\]"):
        RT.error_table(frame.drop(columns="rate_confident"), {})
    with pytest.raises(ValueError, match="no confident estimate"):
        RT.error_table(frame.assign(rate_confident=False), {})


def test_the_command_writes_a_table_and_never_over_another_file(tmp_path, capsys):
    frame = pd.DataFrame({"technique": ["trill", "trill"], "modulation_rate_hz": [8.0, 6.0],
                          "rate_estimate_hz": [8.2, 6.0], "rate_confident": [True, True]})
    frame.to_csv(tmp_path / "rates.csv", index=False)
    out = tmp_path / "errors.json"
    assert main(["rates", "errors", str(tmp_path / "rates.csv"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == {"trill": 2}
    assert RT.load_error_table(out)["quantiles"]["trill"][-1] > 0
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    assert main(["rates", "errors", str(tmp_path / "rates.csv"), "--out", str(other)]) == 2
    assert other.read_text() == '{"mine": 1}'
    assert "not overwritten" in capsys.readouterr().err


def test_attenuation_is_one_when_the_figure_ignores_the_rates():
    rates = np.array([5.0, 6.0, 7.0])
    factor, se = RT.attenuation(lambda told: 0.4, rates, ["trill"] * 3, seed=0, draws=20)
    assert (factor, se) == (1.0, 0.0)
    assert RT.attenuation(lambda told: 0.0, rates, ["trill"] * 3, seed=0) == (1.0, 0.0)


def test_the_rejection_bar_moves_and_the_holding_bar_does_not():
    from pmt_core.stats.intervals import Estimate

    bound = AtLeast("lift", 0.15)
    context = with_attenuation({}, Measurement(attenuation={"lift": 0.8}))
    assert bound.rejection_bar(context) == pytest.approx(0.12)
    between = Estimate(0.1, 0.05, 0.13, method="t")
    assert bound.check(between, {}) == "does not hold"
    assert bound.check(between, context) == "inconclusive"
    assert bound.check(Estimate(0.2, 0.14, 0.26, method="t"), context) == "inconclusive"
    assert bound.check(Estimate(0.1, 0.05, 0.11, method="t"), context) == "does not hold"


def test_model_uses_rate_declares_what_the_estimator_costs_a_model_at_the_rate():
    # model.uses_rate on estimated rates: a planted model using the band at each
    # rate, scored against rates moved by the measured error (the ci layout)
    from types import SimpleNamespace

    from pmt_core.claims.evidence import Evidence
    from pmt_core.claims.model import USES_RATE, _declare_estimator_attenuation
    from pmt_core.explain.occlusion import s2_bands

    rng = np.random.default_rng(0)
    cls, _, _, estimated, _ = _data_set(rng, RT.load_error_table())
    bands = s2_bands(path_table(ScatteringConfig()))
    o = SimpleNamespace(rate=estimated, true=cls, class_names=tuple(RATE_RANGE_HZ),
                        bands=bands, drops=np.zeros((5, cls.size, len(bands.hz))))
    m = Measurement()
    _declare_estimator_attenuation(Evidence(seed=0), o, m)
    assert 0.8 < m.attenuation[USES_RATE.figure] < 1.0
    assert f"'{USES_RATE.name}' therefore does not hold only below" in m.detail


# ------------------------------------------------- calibration in the ci layout --
N_SIMULATIONS = 200
REPLICATES = 5
DRAWS = 30


def _nearest_peak(paths, target_hz):
    lam2 = np.asarray(paths.modulation_hz)[paths.second_order]
    grid = np.unique(lam2)
    return grid[np.abs(np.log2(grid[None, :] / target_hz[:, None])).argmin(axis=1)]


def _lift(peak, told, cls):
    tol = pr.RATE_TOL_OCTAVES
    return ((R.octave_distance(peak, told) <= tol)
            - R.expected_permuted_hits(peak, told, cls, tol))


def _data_set(rng, table):
    names = list(RATE_RANGE_HZ)
    counts = [round(PROFILES["ci"].class_sizes[k] * 0.2) for k in names]
    cls = np.repeat(np.arange(len(names)), counts)
    true = np.concatenate([np.exp(rng.uniform(*np.log(RATE_RANGE_HZ[k]), c))
                           for k, c in zip(names, counts, strict=True)])
    techniques = np.asarray(names, dtype=object)[cls]
    estimated = true * np.exp2(RT.draw_errors(techniques, rng, table))
    other = true.copy()
    for k in range(len(names)):
        m = np.flatnonzero(cls == k)
        other[m] = true[np.roll(m, rng.integers(1, m.size))]
    return cls, techniques, true, estimated, other


def _scaled(table, scale):
    return {**table, "quantiles": {k: [q * scale for q in v]
                                   for k, v in table["quantiles"].items()}}


@pytest.mark.slow
@pytest.mark.parametrize("error_scale", [1, 3])
def test_the_lowered_bar_keeps_estimator_error_from_rejecting_a_map_at_the_bar(error_scale):
    # A map whose lift against the TRUE rates equals the bar in expectation: a share
    # of examples peak at their true rate, the others at another same-class rate.
    # Scale 1 is the measured estimator; scale 3 one three times as wrong (real
    # recordings may be). Measured at 200 simulations: exact rates reject 0.05 and
    # 0.045, the plain bar on estimates 0.06 and 0.075, the lowered bar 0.05 and
    # 0.035 (mean factors 0.967 and 0.939).
    table = _scaled(RT.load_error_table(), error_scale)
    paths = path_table(ScatteringConfig())
    rng = np.random.default_rng(error_scale)
    pilot = [_data_set(rng, table) for _ in range(40)]
    oracle = np.mean([class_macro(_lift(_nearest_peak(paths, t), t, c)[None].astype(float),
                                  c[None].astype(float)) for c, _, t, _, _ in pilot])
    share = LOCALISATION_MIN_LIFT / oracle
    rejected = {"exact rates": 0, "estimates, bar": 0, "estimates, lowered bar": 0,
                "chance map, lowered bar": 0}
    factors = []
    for seed in range(N_SIMULATIONS):
        cls, techniques, true, estimated, other = _data_set(rng, table)
        at_rate = rng.random(cls.size) < share
        peak = _nearest_peak(paths, np.where(at_rate, true, other))
        misclassified = rng.random((REPLICATES, cls.size)) > 0.9
        upper = {}
        for told, key, at in ((true, "exact", peak), (estimated, "estimated", peak),
                              (estimated, "chance", _nearest_peak(paths, other))):
            values = np.tile(_lift(at, told, cls), (REPLICATES, 1)).astype(float)
            values[misclassified] = np.nan
            upper[key] = crossed_t((values, np.tile(cls, (REPLICATES, 1)).astype(float)),
                                   MacroMean(), strata=cls, seed=seed).high
        # what the claim computes: a map at the rates it has, scored against them moved
        planted = _nearest_peak(paths, estimated)
        factor, _ = RT.attenuation(
            lambda t, p=planted, c=cls: class_macro(_lift(p, t, c)[None].astype(float),
                                                    c[None].astype(float)),
            estimated, techniques, seed=seed, draws=DRAWS, table=table)
        factors.append(factor)
        rejected["exact rates"] += upper["exact"] < LOCALISATION_MIN_LIFT
        rejected["estimates, bar"] += upper["estimated"] < LOCALISATION_MIN_LIFT
        rejected["estimates, lowered bar"] += upper["estimated"] < LOCALISATION_MIN_LIFT * factor
        rejected["chance map, lowered bar"] += upper["chance"] < LOCALISATION_MIN_LIFT * factor
    rate = {k: v / N_SIMULATIONS for k, v in rejected.items()}
    # The estimator's error adds no false rejection beyond what exact rates give
    # (the same data sets: paired; 200 simulations, Monte Carlo se of the
    # difference ~0.01).
    assert rate["estimates, lowered bar"] <= rate["exact rates"] + 0.02, rate
    assert np.mean(factors) < 1.0
    # ... and the lowered bar still rejects a map that only knows the class (a peak
    # at another same-class example's rate), as the bar does (the power test's 0.9)
    assert rate["chance map, lowered bar"] >= 0.9, rate
