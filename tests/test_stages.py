"""The stages as a library: the smoke profile end to end, seeds, the split policy."""

import json

import numpy as np
import pytest

from pmt_core.claims.catalogue import all_cases
from pmt_core.claims.core import VERDICTS, evaluate
from pmt_core.report.records import evaluation_record, to_jsonable
from pmt_core.run import Run, RunSettings, replicate_seeds, run_stages


def test_replicate_seeds():
    assert replicate_seeds(7, 3)[0] == 7  # replicate 0 is the run seed's model
    assert replicate_seeds(7, 3) == replicate_seeds(7, 5)[:3]  # k does not depend on R
    assert len(set(replicate_seeds(7, 5))) == 5
    assert replicate_seeds(7, 2) != replicate_seeds(8, 2)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="perturb"):
        RunSettings(perturb="louder")
    with pytest.raises(ValueError, match="seed"):
        RunSettings(seed=-1)
    with pytest.raises(ValueError, match="replicates"):
        RunSettings(replicates=0)


def test_the_seed_reaches_the_split(tmp_path):
    a = run_stages(profile="smoke", seed=0, report_dir=str(tmp_path / "a"))
    b = run_stages(profile="smoke", seed=1, report_dir=str(tmp_path / "b"))
    assert not a.data.frame["subset"].equals(b.data.frame["subset"])
    assert (tmp_path / "a" / "split.csv").is_file()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_stages(profile="smoke", seed=0, use_cache=False,
                      report_dir=str(tmp_path_factory.mktemp("smoke")), eager=True)


@pytest.mark.slow
def test_smoke_chain(smoke):
    run = smoke
    n_test = len(run.data.index("test"))
    assert run.models.n_replicates == 2
    for kind in ("s1", "s1s2"):
        assert [m.replicate for m in run.models.replicates[kind]] == [0, 1]
        assert all(len(m.test_pred) == n_test for m in run.models.replicates[kind])
    maps = run.explanations.maps
    assert {"epsilon", "random", "class_constant"} <= set(maps)
    assert all(m.shape == (n_test, len(run.compression.paths)) for v in maps.values() for m in v)
    assert (run.report_dir / "models" / "s1s2.pt").is_file()
    assert (run.report_dir / "models" / "s1s2-r1.pt").is_file()
    assert set(run.timings) >= {"data", "features", "training_s1", "training_s1s2"}
    # each checkpoint keeps how its training went (steps, stop, curves)
    from pmt_core.model.checkpoint import load_checkpoint

    training = load_checkpoint(run.report_dir / "models" / "s1s2-r1.pt").metadata["extra"][
        "training"]
    assert training["epochs_run"] == len(training["history"]) >= training["best_epoch"] >= 1
    assert training["stopped_by"] in ("patience", "budget")


@pytest.mark.slow
def test_every_claim_evaluates_on_the_smoke_run(smoke, tmp_path):
    seen = set()
    for case in all_cases():
        evaluation = evaluate(case, smoke)
        assert evaluation.verdict in VERDICTS, case.id
        record = evaluation_record(evaluation, tmp_path)
        json.dumps(to_jsonable(record), allow_nan=False)  # the report can hold it
        seen.add(case.spec.group)
    assert seen >= {"data", "accuracy", "scattering", "lrp", "relevance", "sanity", "power"}


@pytest.mark.slow
def test_claims_on_an_evidence_of_plain_values_match_the_run(smoke, tmp_path):
    # what a notebook does with its own products: an Evidence holding values, no run
    from pmt_core.claims.evidence import Evidence, evidence_of

    of_run = evidence_of(smoke)
    values = {name: getattr(of_run, name) for name in Evidence.fields()}
    built = Evidence(**values)
    for case in all_cases():
        if case.spec.group not in ("accuracy", "relevance", "sanity", "lrp"):
            continue
        a, b = evaluate(case, of_run), evaluate(case, built)
        assert a.verdict == b.verdict, case.id
        ra, rb = (to_jsonable(evaluation_record(e, tmp_path)) for e in (a, b))
        assert ra["figures"] == rb["figures"], case.id


@pytest.mark.slow
def test_same_seed_same_figures(smoke, tmp_path):
    again = run_stages(profile="smoke", seed=0, use_cache=False, report_dir=str(tmp_path))
    first = smoke.models.replicates["s1s2"][1]
    second = again.models.replicates["s1s2"][1]
    np.testing.assert_array_equal(first.test_logits, second.test_logits)


def test_editing_feature_code_is_a_cache_miss(tmp_path, monkeypatch):
    # A copy of a feature-producing module, edited after an entry was written: the
    # digest joins the cache namespace, so the edited code cannot read stale bits.
    import shutil
    import sys

    import torch

    from pmt_core.features import scattering
    from pmt_core.infra.cache import FeatureCache
    from pmt_core.run import inputs as run_inputs

    shutil.copy(scattering.__file__, tmp_path / "copied_scattering.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "copied_scattering", raising=False)
    modules = ("pmt_core.data.synth", "copied_scattering")

    def cache():
        recipe = {"code": run_inputs.feature_code_digest(modules)}
        return FeatureCache(tmp_path / "cache", FeatureCache.namespace_for("cfg", recipe))

    values = np.ones((2, 3), dtype=np.float32)
    cache().put("clip", values, {})
    assert cache().get("clip", (2, 3)) is not None  # same code: a hit
    source = tmp_path / "copied_scattering.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    edited = cache()
    assert edited.get("clip", (2, 3)) is None and edited.misses == 1
    # the real run's recipe carries the digest of the real modules
    recipe = run_inputs.feature_recipe(torch.device("cpu"))
    assert recipe["code"] == run_inputs.feature_code_digest()


@pytest.mark.slow
def test_a_registered_explainer_sees_the_rows_it_explains(smoke):
    # ground truth reaches a plugin's explainer: one row per explained example, the
    # same rows for a subset (the sanity checks explain a stratified subset)
    inputs = smoke.explainer_inputs(0)
    assert len(inputs.rows) == inputs.x.shape[0] == len(inputs.target)
    assert {"modulation_rate_hz", "f0_hz", "technique"} <= set(inputs.rows.columns)
    idx = smoke.sanity_index()
    part = smoke.explainer_inputs(0, index=idx)
    assert len(part.rows) == part.x.shape[0] == len(idx)
    np.testing.assert_array_equal(part.rows["modulation_rate_hz"].to_numpy(),
                                  inputs.rows["modulation_rate_hz"].to_numpy()[idx])


def test_a_run_reports_the_commit_it_started_with(monkeypatch, tmp_path):
    from pmt_core.infra import provenance as prov

    monkeypatch.setattr(prov, "git_state", lambda cwd=None: {"git_commit": "start",
                                                             "git_dirty": False})
    run = Run(RunSettings(profile="smoke", report_dir=str(tmp_path)), progress=False)
    # a commit made while the run trains is not the code that made its figures
    monkeypatch.setattr(prov, "git_state", lambda cwd=None: {"git_commit": "later",
                                                             "git_dirty": True})
    recorded = prov.provenance(None, code=run.code_state)
    assert (recorded["git_commit"], recorded["git_dirty"]) == ("start", False)


@pytest.mark.slow
def test_rate_claims_run_on_estimated_rates_and_say_so(tmp_path):
    # A data set without rates: the rate claims read run.rates (here the recorded
    # rates planted as confident estimates, since smoke clips are too short to
    # estimate), score examples, and say in their detail where the rates came from.
    from pmt_core.claims.catalogue import get_case
    from pmt_core.claims.core import NOT_APPLICABLE
    from pmt_core.run import RateStage

    run = Run(RunSettings(profile="smoke", report_dir=str(tmp_path)), progress=False)
    recorded = run.data.column("modulation_rate_hz")
    run.__dict__["rates"] = RateStage(recorded, "estimated", run.rates.estimates,
                                      run.data.index)
    evaluation = evaluate(get_case("relevance.localisation.epsilon"), run)
    assert evaluation.verdict != NOT_APPLICABLE, evaluation.reason
    assert "Rates estimated from the audio" in evaluation.measurement.detail
    assert (tmp_path / "rates.csv").is_file()
    # the estimator's measured error is declared, to lower the rejection bar (its size
    # is simulated in tests/test_rate_error.py: the smoke transform's coarse lambda2
    # grid puts no planted peak within reach of these rates, so nothing shrinks here)
    for claim_id in ("relevance.localisation.epsilon", "relevance.peak_modulation.epsilon"):
        m = evaluate(get_case(claim_id), run).measurement
        factor = m.attenuation[get_case(claim_id).bounds[0].figure]
        assert 0.0 <= factor <= 1.0, (claim_id, factor)
        assert "does not hold only below" in m.detail


@pytest.mark.slow
def test_shortcut_guard_without_twins_is_not_applicable_and_says_why(tmp_path):
    # Recordings have no twins; on the data the descriptors see the modulation too,
    # so a bound read there would fail whatever the data (0.45 on the ci set).
    from pmt_core.claims.catalogue import get_case
    from pmt_core.claims.core import NOT_APPLICABLE

    run = Run(RunSettings(profile="smoke", report_dir=str(tmp_path)), progress=False)
    run.__dict__["twin_descriptors"] = None
    evaluation = evaluate(get_case("data.no_shortcut"), run)
    assert evaluation.verdict == NOT_APPLICABLE
    assert "no modulation-ablated twins" in evaluation.measurement.not_applicable
