"""Rates estimated from the audio: the abstention rule's null, the cue, the fallback."""

import numpy as np
import pandas as pd
import pytest

from pmt_core.data import rates as rt
from pmt_core.data.descriptors import _detrend, _dominant_rate, describe
from pmt_core.data.synth.manifest import synthetic_manifest
from pmt_core.data.synth.modulators import RATE_DESCRIPTOR
from pmt_core.data.synth.render import synthesize
from pmt_core.run import DataStage, rate_stage
from pmt_core.techniques import MODULATION_BAND_HZ, TECHNIQUES

CONTROL_RATE = 1000.0  # the descriptors' track rate


@pytest.mark.parametrize("seconds", [1.0, 4.0])
def test_white_noise_tracks_rarely_reach_the_salience_floor(seconds):
    # MIN_SALIENCE's provenance: a detrended white-noise track (no periodicity)
    # reaches it in about one draw in a thousand; 1 % would be 3 in 300.
    rng = np.random.default_rng(0)
    saliences = [_dominant_rate(_detrend(rng.standard_normal(int(seconds * CONTROL_RATE)),
                                         CONTROL_RATE), CONTROL_RATE)[1] for _ in range(300)]
    assert np.mean(np.asarray(saliences) >= rt.MIN_SALIENCE) <= 0.01
    # ... and the floor is not far above the noise's own tail (it can be reached)
    assert np.quantile(saliences, 0.95) > rt.MIN_SALIENCE / 3


def _descriptors(technique, rate, salience):
    row = {c: 0.0 for d in RATE_DESCRIPTOR.values() for c in (d, rt.salience_column(d))}
    column = RATE_DESCRIPTOR[technique]
    row[column], row[rt.salience_column(column)] = rate, salience
    return row


def test_the_cue_follows_the_technique_and_the_estimator_abstains_with_its_reason():
    cases = [  # technique, rate, salience, confident, reason
        ("vibrato", 6.0, 500.0, True, ""),
        ("trill", 7.0, 25.0, True, ""),
        ("tremolo", 12.0, 5.0, False, "weak periodicity"),
        ("flatterzunge", 3.0, 400.0, False, "outside the technique's band"),
        ("flatterzunge", 75.0, 400.0, True, ""),  # within an octave of 20-40 Hz
        ("bisbigliando", 0.0, 0.0, False, "no periodicity"),
    ]
    frame = pd.DataFrame([_descriptors(t, r, s) for t, r, s, _, _ in cases])
    out = rt.estimate_rates(frame, [c[0] for c in cases])
    assert list(out["rate_cue"]) == ["pitch", "pitch", "amplitude", "amplitude", "amplitude",
                                     "amplitude"]
    assert list(out["rate_confident"]) == [c[3] for c in cases]
    assert list(out["rate_abstained"]) == [c[4] for c in cases]
    assert list(out["rate_estimate_hz"]) == [c[1] for c in cases]


def test_bad_input_is_refused_by_name():
    frame = pd.DataFrame([_descriptors("vibrato", 6.0, 100.0)])
    with pytest.raises(ValueError, match="no rate cue for technique"):
        rt.estimate_rates(frame, ["ordinario"])
    with pytest.raises(ValueError, match="1 techniques for 2 clips"):
        rt.estimate_rates(pd.concat([frame, frame]), ["vibrato"])
    with pytest.raises(ValueError, match="descriptors lack"):
        rt.estimate_rates(frame.drop(columns=["pitch_rate_salience"]), ["vibrato"])


def test_synthetic_clips_of_every_technique_are_estimated_at_their_rate():
    # One clip per technique at a rate inside its band, with the distractor and
    # drift the generator draws: the estimate is confident and within a quarter octave.
    manifest = synthetic_manifest({t: 3 for t in TECHNIQUES}, seed=3)
    rows = []
    for _, row in manifest.iterrows():
        rows.append(describe(synthesize(row)))
    out = rt.estimate_rates(pd.DataFrame(rows), manifest["technique"])
    truth = manifest["modulation_rate_hz"].to_numpy(dtype=float)
    error = np.abs(np.log2(np.maximum(out["rate_estimate_hz"], 1e-9) / truth))
    confident = out["rate_confident"].to_numpy()
    assert confident.mean() >= 0.7
    assert np.mean(error[confident] <= 0.25) >= 0.8, (manifest["technique"], truth,
                                                       out["rate_estimate_hz"])


def _data_stage(frame):
    names = tuple(t for t in TECHNIQUES if t in set(frame["technique"]))
    labels = np.array([names.index(t) for t in frame["technique"]])
    return DataStage(frame, names, labels, "manifest", None)


def test_recorded_rates_are_used_where_the_data_have_them_else_the_confident_estimates():
    techniques = ["vibrato", "tremolo", "flatterzunge"]
    descriptors = pd.DataFrame([_descriptors("vibrato", 6.0, 500.0),
                                _descriptors("tremolo", 11.0, 300.0),
                                _descriptors("flatterzunge", 3.0, 300.0)])
    frame = pd.DataFrame({"technique": techniques, "subset": ["test"] * 3,
                          "modulation_rate_hz": [5.5, 10.0, 30.0]})
    stage = rate_stage(_data_stage(frame), descriptors)
    assert stage.source == "recorded" and stage.note() == ""
    np.testing.assert_array_equal(stage.of("test"), [5.5, 10.0, 30.0])

    stage = rate_stage(_data_stage(frame.drop(columns=["modulation_rate_hz"])), descriptors)
    assert stage.source == "estimated"
    np.testing.assert_array_equal(stage.of("test"), [6.0, 11.0, np.nan])
    assert "2 of 3 test examples" in stage.note()

    # a rate column that is all missing counts as no rates
    blank = frame.assign(modulation_rate_hz=np.nan)
    assert rate_stage(_data_stage(blank), descriptors).source == "estimated"


def test_every_technique_has_a_band_and_a_cue():
    assert set(RATE_DESCRIPTOR) == set(TECHNIQUES) == set(MODULATION_BAND_HZ)
    assert set(RATE_DESCRIPTOR.values()) <= set(rt.CUE_OF_DESCRIPTOR)
