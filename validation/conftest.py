"""The validation pipeline as session fixtures, and the claims-report plugin.

``pytest validation`` computes each stage once (data -> features -> models ->
explanations), every test reads the stages it needs and records one claim, and
the session ends by writing ``reports/validation.json`` and
``reports/validation.html``. Run it in one process: the stages are session
fixtures, and pytest-xdist workers would each recompute them.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pmt_core.figures.plots import figure_to_data_uri
from pmt_core.profiles import PROFILE_NAMES, get_profile
from pmt_core.report.render import GROUPS, format_value, to_jsonable, verdict, write_report
from validation.known_failures import known_failure

CLAIM_PROPERTY = "pmt_claim"
#: ``@pytest.mark.claim("id")``: names the claim of a test that fails before recording it.
CLAIM_ID_PROPERTY = "pmt_claim_id"


# ---------------------------------------------------------------- options --
def pytest_addoption(parser):
    group = parser.getgroup("pmt", "PMT explanation validation")
    group.addoption("--profile", default="ci", choices=PROFILE_NAMES,
                    help="run size: 'ci' (CPU runner) or 'paper' (paper scale, GPU). Default ci.")
    group.addoption("--device", default="auto",
                    help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    group.addoption("--report-dir", default="reports", help="where the JSON and HTML go.")
    group.addoption("--seed", type=int, default=0, help="seed of data, split and training.")
    group.addoption("--dataset", default="synthetic",
                    help="'synthetic' (generated, with ground truth), or a CSV manifest, "
                         "the authors' SOL-PMT CSV, a folder holding one, or a SOL-style tree.")
    group.addoption("--cache-dir", default=None,
                    help="feature cache folder "
                         "(default $PMT_CACHE_DIR or ~/.cache/pmt-validation).")
    group.addoption("--no-cache", action="store_true", help="do not read or write the cache.")
    group.addoption("--baseline", default=None, metavar="FILE",
                    help="compare every claim's figures and status with a stored run (a "
                         "baseline from --update-baseline, or a validation.json); drift "
                         "beyond the tolerances of pmt_core.report.regression fails "
                         "regression.drift.")
    group.addoption("--update-baseline", default=None, metavar="FILE",
                    help="write this run's claims (status and figures) as a baseline to FILE.")


@dataclass
class RunState:
    """What the session records for the report (one process: see module notes)."""

    started: float = field(default_factory=time.perf_counter)
    timings: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    claims: dict = field(default_factory=dict)
    device: str = "unknown"
    #: ``pmt_core.report.regression.Comparison.to_dict()`` once regression.drift has run.
    regression: dict | None = None


RUN = RunState()


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(id): the validation claim a test records (named "
                            "in the report even when the test errors before recording it)")


#: Test files that compare the claims recorded so far; they must run after all others.
RUN_LAST_FILES = ("test_regression.py",)


def pytest_collection_modifyitems(session, config, items):
    # Alphabetical file order would put test_regression.py before test_relevance_*.py;
    # a stable sort keeps every other test where it was.
    items.sort(key=lambda item: Path(str(item.fspath)).name in RUN_LAST_FILES)


@pytest.fixture
def recorded_claims():
    """Callable returning the claim records logged so far (id, status, measured, test)."""
    return lambda: [dict(record) for record in RUN.claims.values()]


@pytest.fixture
def run_state():
    """The session's :class:`RunState` (dataset summary, regression result)."""
    return RUN


# --------------------------------------------------------------- claims ----
class Claim:
    """One measured claim: set ``measured`` (and ``detail``), then assert."""

    def __init__(self, claim_id, title, threshold=None, paper=None, unit=None):
        self.id = claim_id
        self.title = title
        self.threshold = threshold
        self.paper = paper
        self.unit = unit
        self.measured = None
        self.detail = ""
        self.figures: list[dict] = []
        self.tables: list[dict] = []

    def figure(self, fig, caption: str = "") -> None:
        """Embed a matplotlib figure (closed after rendering)."""
        self.figures.append({"src": figure_to_data_uri(fig), "caption": caption})

    def table(self, rows: list[dict], caption: str = "") -> None:
        """Attach a table (list of dicts with the same keys)."""
        rows = [to_jsonable(dict(r)) for r in rows]
        columns = list(rows[0]) if rows else []
        self.tables.append({"caption": caption, "columns": columns, "rows": rows})

    def to_dict(self) -> dict:
        return to_jsonable({
            "id": self.id, "title": self.title, "measured": self.measured,
            "threshold": self.threshold, "paper": self.paper, "unit": self.unit,
            "detail": self.detail, "group": self.id.split(".")[0],
            "figures": self.figures, "tables": self.tables,
        })


@pytest.fixture
def claim(request):
    """Factory: ``c = claim(id, title, threshold=..., paper=..., unit=...)``."""
    made = []
    request.node._pmt_claims = made

    def make(claim_id, title, threshold=None, paper=None, unit=None):
        config = request.config
        reason = known_failure(claim_id, config.getoption("--dataset"),
                               config.getoption("--profile"), config.getoption("--seed"))
        if reason is not None:
            # Evaluated after the call (pytest >= 6.0.1 honours markers added in the body).
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        made.append(Claim(claim_id, title, threshold, paper, unit))
        return made[-1]

    return make


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Serialise the claims before the report is built, so they travel with it
    # (user_properties survive pytest-xdist).
    if call.when == "setup":
        marker = item.get_closest_marker("claim")
        if marker is not None and marker.args:
            item.user_properties.append((CLAIM_ID_PROPERTY, str(marker.args[0])))
    if call.when == "call":
        for c in getattr(item, "_pmt_claims", []):
            item.user_properties.append((CLAIM_PROPERTY, json.dumps(c.to_dict())))
    yield


def _declared_claim_id(report) -> str:
    """Claim id of a test that recorded none: ``@pytest.mark.claim("id")`` or its param id.

    Falls back to the test's name.
    """
    declared = [v for k, v in report.user_properties if k == CLAIM_ID_PROPERTY]
    if declared:
        return declared[0]
    name = report.nodeid.split("::")[-1]
    # parametrised claim tests use the claim id as the parameter id: test_x[group.name]
    match = re.fullmatch(r"[^\[]+\[([a-z0-9_]+(?:\.[a-z0-9_]+)+)\]", name)
    return match.group(1) if match else name


def _status(report) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "failed"
    if report.when != "call":
        return "skipped" if report.skipped else "error"
    return report.outcome


def pytest_runtest_logreport(report):
    if "validation" not in Path(report.fspath).parts:
        return
    records = [json.loads(v) for k, v in report.user_properties if k == CLAIM_PROPERTY]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if not records and report.nodeid not in RUN.claims:
            # A test that errored or skipped before recording still shows up, under its
            # claim id when the test names it, so the report and baselines can match it.
            claim_id = _declared_claim_id(report)
            records = [{"id": claim_id, "title": report.nodeid,
                        "group": claim_id.split(".")[0] if claim_id.split(".")[0] in GROUPS
                        else "other", "measured": None, "threshold": None, "paper": None,
                        "unit": None, "detail": "", "figures": [], "tables": []}]
        for i, record in enumerate(records):
            record["status"] = _status(report)
            record["test"] = report.nodeid  # lets a baseline tell "not run" from "vanished"
            if record["status"] == "xfailed":
                record["known_failure"] = report.wasxfail  # the measured reason
            if record["status"] in ("failed", "error", "skipped", "xfailed"):
                text = report.longreprtext or ""
                record["longrepr"] = text[-2500:]
            RUN.claims[f"{report.nodeid}#{i}"] = record
    elif report.when == "teardown" and report.failed:
        for key, record in RUN.claims.items():
            if key.startswith(report.nodeid + "#"):
                record["status"] = "error"


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except Exception:  # noqa: BLE001 - not a git checkout
        return "unknown"


def _versions() -> dict:
    import kymatio
    import scipy
    import zennit

    return {"python": platform.python_version(), "torch": torch.__version__,
            "kymatio": kymatio.__version__, "zennit": getattr(zennit, "__version__", "0.5.x"),
            "numpy": np.__version__, "scipy": scipy.__version__, "pandas": pd.__version__}


def _build_report(config) -> dict:
    from pmt_core.report.render import PAPER_VS_CODE

    claims = sorted(RUN.claims.values(), key=lambda c: (list(GROUPS).index(c["group"])
                    if c["group"] in GROUPS else len(GROUPS), c["id"]))
    timings = dict(RUN.timings)
    timings["total"] = time.perf_counter() - RUN.started
    return {
        "profile": config.getoption("--profile"),
        "device": RUN.device,
        "dataset": RUN.dataset or {"source": config.getoption("--dataset"), "n_examples": 0,
                                   "per_class": {}},
        "versions": _versions(),
        "timings_s": timings,
        "environment": {"profile": config.getoption("--profile"), "device": RUN.device,
                        "seed": config.getoption("--seed"), "git_commit": _git_commit(),
                        "command": " ".join(sys.argv), "platform": platform.platform(),
                        "cpu_threads": torch.get_num_threads(),
                        "baseline": config.getoption("--baseline")},
        "paper_vs_code": PAPER_VS_CODE,
        "regression": RUN.regression,
        "claims": claims,
    }


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not RUN.claims or getattr(config, "workerinput", None) is not None:
        return
    report = _build_report(config)
    config._pmt_report = report
    config._pmt_paths = write_report(report, config.getoption("--report-dir"))
    if config.getoption("--update-baseline"):
        from pmt_core.report.regression import write_baseline

        config._pmt_paths += (write_baseline(to_jsonable(report),
                                             config.getoption("--update-baseline")),)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    report = getattr(config, "_pmt_report", None)
    if report is None:
        return
    tr = terminalreporter
    tr.section("PMT validation claims")
    for c in report["claims"]:
        line = f"{c['status']:>8}  {c['id']:<42} measured {format_value(c['measured'])}"
        tr.write_line(line[:160])
        tr.write_line(f"{'':>10}{'':<42} threshold {format_value(c['threshold'])}"[:160])
    tr.write_line(verdict(report["claims"]))
    if report.get("regression"):
        tr.write_line(f"baseline {config.getoption('--baseline')}: "
                      f"{report['regression']['summary']}")
        for drift in report["regression"]["drifts"]:
            tr.write_line(f"  drift  {drift['text']}"[:200])
    for path in config._pmt_paths:
        tr.write_line(f"report: {path}")


# ---------------------------------------------------------------- stages ---
@contextlib.contextmanager
def _timed(name, config=None):
    """Time a stage into the report; with ``config``, show its progress bars live."""
    capture = config.pluginmanager.getplugin("capturemanager") if config is not None else None
    quiet = capture is None or config.getoption("verbose") < 0
    start = time.perf_counter()
    try:
        if quiet:
            yield
        else:
            # pytest captures fixture output; long stages show their bars anyway.
            with capture.global_and_fixture_disabled():
                yield
    finally:
        RUN.timings[name] = RUN.timings.get(name, 0.0) + time.perf_counter() - start


@pytest.fixture(scope="session")
def profile(pytestconfig):
    return get_profile(pytestconfig.getoption("--profile"))


@pytest.fixture(scope="session")
def run_seed(pytestconfig):
    return int(pytestconfig.getoption("--seed"))


@pytest.fixture(scope="session")
def compute_device(pytestconfig):
    from pmt_core.infra.device import select_device

    device = select_device(pytestconfig.getoption("--device"))
    RUN.device = str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
    return device


@pytest.fixture(scope="session")
def report_dir(pytestconfig):
    path = Path(pytestconfig.getoption("--report-dir"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def scattering_config():
    from pmt_core.features.scattering import ScatteringConfig

    return ScatteringConfig()


@pytest.fixture(scope="session")
def dataset(pytestconfig, profile, run_seed, report_dir):
    from pmt_core.data.datasets import load_dataset
    from pmt_core.data.split import assign_split, write_split_csv
    from pmt_core.data.synth import synthetic_manifest

    source = pytestconfig.getoption("--dataset")
    with _timed("data"):
        if source == "synthetic":
            frame = synthetic_manifest(profile.class_sizes, seed=run_seed)
        else:
            frame = load_dataset(source)
        frame = assign_split(frame, run_seed)
        write_split_csv(frame, report_dir / "split.csv")
    RUN.dataset = {
        "source": frame.attrs.get("source", source),
        "path": None if source == "synthetic" else str(Path(source).resolve()),
        "n_examples": len(frame),
        "per_class": frame["technique"].value_counts().to_dict(),
        "per_split": frame["subset"].value_counts().to_dict(),
        "n_ignored": frame.attrs.get("n_ignored"),
        "split_csv": str(report_dir / "split.csv"),
    }
    return frame


@pytest.fixture(scope="session")
def feature_cache(pytestconfig, scattering_config):
    """The on-disk feature cache, or None when disabled (--no-cache, PMT_CACHE_DIR=off)."""
    from pmt_core.infra.cache import FeatureCache, default_cache_dir

    if pytestconfig.getoption("--no-cache"):
        return None
    root = pytestconfig.getoption("--cache-dir") or default_cache_dir()
    if root is None:
        return None
    return FeatureCache(root, FeatureCache.namespace_for(scattering_config.fingerprint()))


@pytest.fixture(scope="session")
def feature_stage(pytestconfig, dataset, scattering_config, compute_device, feature_cache):
    from pmt_core.features.extraction import extract_features

    with _timed("features", pytestconfig):
        stage = extract_features(dataset, scattering_config, compute_device, cache=feature_cache)
    RUN.dataset["feature_cache"] = stage.cache
    RUN.dataset["feature_peak_rss_mib"] = stage.peak_rss_mib
    return stage


@pytest.fixture(scope="session")
def features(feature_stage):
    return feature_stage.result


@pytest.fixture(scope="session")
def descriptors(feature_stage):
    return feature_stage.descriptors


@pytest.fixture(scope="session")
def class_names(dataset):
    from pmt_core.techniques import present_techniques

    return present_techniques(dataset["technique"])


@pytest.fixture(scope="session")
def labels(dataset, class_names):
    return np.array([class_names.index(t) for t in dataset["technique"]])


@pytest.fixture(scope="session")
def test_index(dataset):
    from pmt_core.features.extraction import subset_index

    return subset_index(dataset, "test")


@pytest.fixture(scope="session")
def compression(dataset, features, report_dir):
    from pmt_core.features.compression import LogCompression
    from pmt_core.features.extraction import subset_index

    fitted = LogCompression().fit(features.values[subset_index(dataset, "training")])
    fitted.save(report_dir / "models" / "compression.json")
    return fitted


@pytest.fixture(scope="session")
def model_inputs(features, compression):
    from pmt_core.features.extraction import model_inputs as build

    return build(features.values, compression, features.paths)


@pytest.fixture(scope="session")
def test_inputs(model_inputs, test_index):
    return {kind: x[test_index] for kind, x in model_inputs.items()}


@pytest.fixture(scope="session")
def trained_models(pytestconfig, dataset, labels, class_names, model_inputs, profile, run_seed,
                   compute_device, scattering_config, compression, features, report_dir):
    from pmt_core.features.extraction import TrainedModel, subset_index
    from pmt_core.model.checkpoint import save_checkpoint
    from pmt_core.model.training import TrainingConfig, predict_logits, train_model

    train, val, test = (subset_index(dataset, s) for s in ("training", "validation", "test"))
    config = TrainingConfig(max_epochs=profile.max_epochs, patience=profile.patience,
                            seed=run_seed)
    models = {}
    for kind in ("s1", "s1s2"):
        x = model_inputs[kind]
        with _timed(f"training_{kind}", pytestconfig):
            result = train_model(x[train], labels[train], x[val], labels[val], class_names,
                                 config=config, device=compute_device, desc=f"train {kind}")
        logits = predict_logits(result.model, x[test], device=compute_device)
        models[kind] = TrainedModel(kind, result, tuple(class_names), labels[test],
                                    logits.argmax(axis=1), logits, result.seconds)
        # The S1 model reads the S1 rows of the compressed features: its checkpoint
        # stores the compression of those 74 paths (save_checkpoint checks the count).
        kept = compression if kind == "s1s2" else compression.subset(features.paths.first_order)
        save_checkpoint(report_dir / "models" / f"{kind}.pt", result.model,
                        scattering_config=scattering_config, class_names=class_names,
                        compression=kept, input_kind=kind, training_config=config)
    return models


@pytest.fixture(scope="session")
def explanations(trained_models, test_inputs, compute_device):
    from pmt_core.explain.lrp import RULES, explain

    out = {}
    for rule in RULES:
        with _timed(f"lrp_{rule}"):
            out[rule] = explain(trained_models["s1s2"].model, test_inputs["s1s2"], rule,
                                device=compute_device)
    return out

