"""The claims' evidence: typed fields, read-only, each computed once, missing ones named."""

import pytest

from pmt_core.claims.catalogue import get_case
from pmt_core.claims.core import evaluate
from pmt_core.claims.evidence import Evidence, MissingEvidence, evidence_of, lazy


def test_a_lazy_field_is_computed_once_on_first_read():
    calls = []
    ev = Evidence(seed=3, data=lazy(lambda: calls.append(1) or "the data"))
    assert not calls and not ev.has("data") and ev.has("seed")
    assert ev.data == "the data" and ev.data == "the data"
    assert calls == [1] and ev.has("data")


def test_ready_says_a_lazy_field_is_at_hand_without_computing_it():
    ev = Evidence(features=lazy(lambda: 1 / 0, ready=lambda: True))
    assert ev.has("features")  # what a context may read without computing


def test_evidence_is_read_only():
    ev = Evidence(seed=0)
    with pytest.raises(AttributeError, match="read-only"):
        ev.seed = 1
    with pytest.raises(AttributeError, match="read-only"):
        ev.models = object()
    with pytest.raises(AttributeError, match="read-only"):
        del ev.seed


def test_an_unknown_field_is_refused_with_the_list_of_fields():
    with pytest.raises(TypeError, match=r"no field 'modles'.*models"):
        Evidence(modles=1)


def test_a_claim_reading_a_field_the_evidence_lacks_names_it():
    ev = Evidence(seed=0, dataset="synthetic", profile="ci")
    with pytest.raises(MissingEvidence, match="built without 'models'"):
        evaluate(get_case("accuracy.s1s2.per_class"), ev)


def test_memo_computes_a_derived_quantity_once():
    ev, calls = Evidence(), []
    for _ in range(3):
        assert ev.memo("k", lambda: calls.append(1) or 7) == 7
    assert calls == [1]


def test_evidence_of_a_run_is_one_object_reading_its_stages_lazily():
    class FakeRun:
        settings = type("S", (), {"seed": 5, "dataset": "synthetic"})()
        profile = type("P", (), {"name": "smoke"})()
        reads = 0

        def memo(self, key, compute):
            store = self.__dict__.setdefault("_memo", {})
            if key not in store:
                store[key] = compute()
            return store[key]

        def computed(self, stage):
            return stage == "features"

        def test_clip(self, position):
            return position

        @property
        def models(self):
            FakeRun.reads += 1
            return "models"

    run = FakeRun()
    ev = evidence_of(run)
    assert evidence_of(run) is ev and evidence_of(ev) is ev
    assert (ev.seed, ev.dataset, ev.profile) == (5, "synthetic", "smoke")
    assert FakeRun.reads == 0 and ev.has("features") and not ev.has("models")
    assert ev.models == "models" and ev.models == "models" and FakeRun.reads == 1
    assert ev.test_clip(4) == 4


def test_every_field_a_run_fills_from_a_stage_is_a_stage_of_the_run():
    # a field added to Evidence without a run stage of its name would fail at the
    # first claim that reads it; here it fails at once
    from functools import cached_property

    from pmt_core.run import Run

    from_the_run_itself = {"seed", "dataset", "profile", "test_clip"}
    for name in set(Evidence.fields()) - from_the_run_itself:
        assert isinstance(getattr(Run, name, None), cached_property), name
    assert callable(Run.test_clip)
