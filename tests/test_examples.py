"""Per-example records (examples.csv, maps.npz) and the worst-cases view."""

import numpy as np
import pandas as pd
import pytest

from pmt_core.explain import relevance as R
from pmt_core.report import examples
from pmt_core.run import Run, RunSettings, run_stages


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    run = run_stages(profile="smoke", seed=0, use_cache=False,
                     report_dir=str(tmp_path_factory.mktemp("smoke")), eager=True)
    assert run.explanations.maps  # the records read the maps, never compute them
    return run


def test_one_row_per_test_example_and_replicate(smoke):
    table, maps = examples.example_records(smoke)
    n = len(smoke.data.index("test"))
    n_rep = smoke.models.n_replicates
    assert len(table) == n * n_rep
    assert table.groupby("replicate")["example"].apply(list).map(
        lambda e: e == list(range(n))).all()
    assert (table["subset"] == "test").all()
    assert table["id"].str.startswith("synthetic:").all()  # synthetic clips have no path
    for r, model in enumerate(smoke.models.replicates["s1s2"]):
        rows = table[table["replicate"] == r]
        assert list(rows["predicted"]) == [smoke.data.class_names[k] for k in model.test_pred]
        assert np.array_equal(rows["correct"], model.test_pred == model.test_true)
        assert np.allclose(rows["rate_used_hz"], smoke.rates.of("test"), equal_nan=True)


def test_the_peak_is_the_claims_peak(smoke):
    table, _ = examples.example_records(smoke)
    paths = smoke.compression.paths
    for name in ("epsilon_zplus", "energy_raw"):
        for r in range(smoke.models.n_replicates):
            rows = table[table["replicate"] == r]
            expected = R.peak_modulation_hz(smoke.explanations.maps[name][r], paths)
            assert np.array_equal(rows[f"{name}.peak_lambda2_hz"], expected)
            distance = np.abs(np.log2(expected / smoke.rates.of("test")))
            assert np.allclose(rows[f"{name}.peak_octaves_from_rate"], distance,
                               equal_nan=True)


def test_maps_are_keyed_like_the_table_and_model_free_ones_kept_once(smoke, tmp_path):
    table, maps = examples.example_records(smoke)
    written = examples.write_records(table, maps, tmp_path)
    assert [p.name for p in written] == ["examples.csv", "maps.npz"]
    back = pd.read_csv(tmp_path / "examples.csv")
    assert len(back) == len(table)
    saved = np.load(tmp_path / "maps.npz")
    n, n_paths = len(smoke.data.index("test")), len(smoke.compression.paths)
    assert saved["epsilon_zplus"].shape == (smoke.models.n_replicates, n, n_paths)
    assert saved["energy_raw"].shape == (1, n, n_paths)  # the same for every replicate
    assert "random" not in saved and "gradient" not in saved
    r, e = 1, 3
    assert np.allclose(saved["epsilon_zplus"][r, e],
                       smoke.explanations.maps["epsilon_zplus"][r][e], rtol=1e-6)
    assert list(saved["id"]) == list(table[table["replicate"] == 0]["id"])


def test_a_run_without_maps_leaves_no_stale_maps(smoke, tmp_path):
    table, maps = examples.example_records(smoke)
    examples.write_records(table, maps, tmp_path)
    examples.write_records(table, {}, tmp_path)
    assert not (tmp_path / "maps.npz").exists()
    examples.clear_records(tmp_path)
    assert not (tmp_path / "examples.csv").exists()


def test_no_models_no_records(tmp_path):
    run = Run(RunSettings(profile="smoke", report_dir=str(tmp_path)), progress=False)
    assert examples.example_records(run) is None
    with pytest.raises(ValueError, match="not a stage"):
        run.computed("timed")


def _planted(distances, correct):
    """A table of 3 examples x 2 replicates whose peaks lie ``distances`` octaves off."""
    rows = []
    for r in range(2):
        for e, (d, ok) in enumerate(zip(distances, correct, strict=True)):
            rows.append({"replicate": r, "example": e, "id": f"clip{e}", "technique": "trill",
                         "rate_used_hz": 8.0, "correct": ok,
                         "epsilon.peak_lambda2_hz": 8.0 * 2.0**d,
                         "epsilon.peak_octaves_from_rate": d})
    order = np.array([1, 2, 2, 2])
    maps = {"epsilon": np.random.default_rng(0).random((2, 3, 4)).astype(np.float32),
            "order": order, "carrier_hz": np.array([100.0, 100.0, 200.0, 200.0]),
            "modulation_hz": np.array([np.nan, 4.0, 4.0, 16.0])}
    return pd.DataFrame(rows), maps


def test_worst_cases_rank_correct_examples_by_distance():
    table, maps = _planted([0.2, 3.0, 1.5], [True, True, True])
    rows, figure, _ = examples.worst_cases(table, maps, "epsilon", k=2)
    assert [r["example"] for r in rows] == [1, 2]
    assert rows[0]["octaves from the rate (median)"] == 3.0
    assert len(figure.axes) >= 2


def test_worst_cases_leave_out_misclassified_examples():
    table, maps = _planted([0.2, 3.0, 1.5], [True, False, True])
    rows, _, _ = examples.worst_cases(table, maps, "epsilon", k=3)
    assert [r["example"] for r in rows] == [2, 0]
    table["correct"] = False
    assert examples.worst_cases(table, maps, "epsilon") is None
    assert examples.worst_cases(table, maps, "gradient") is None  # no such maps


def test_worst_cases_go_to_rate_claims_that_do_not_hold(tmp_path):
    table, maps = _planted([0.2, 3.0, 1.5], [True, True, True])
    records = [{"id": "relevance.localisation.epsilon", "verdict": "does not hold"},
               {"id": "relevance.peak_modulation.epsilon", "verdict": "holds"},
               {"id": "relevance.pitch_invariance.epsilon", "verdict": "does not hold"}]
    assert examples.attach_worst_cases(records, table, maps, tmp_path) == 1
    plot = records[0]["plots"][0]
    assert (tmp_path / plot["file"]).is_file()
    assert records[0]["tables"][0]["rows"][0]["example"] == 1
    assert "plots" not in records[1] and "plots" not in records[2]
