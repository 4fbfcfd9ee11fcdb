"""The pinned arithmetic: which code paths are set, when, and what the libraries report."""

import json
import os
import subprocess
import sys

import pytest

from pmt_core.infra import arithmetic

needs_pinnable = pytest.mark.skipif(not arithmetic.pinnable(),
                                    reason="not an x86-64 CPU with AVX2 and FMA")


@needs_pinnable
def test_pin_sets_every_code_path_the_user_has_not():
    env = {"OPENBLAS_CORETYPE": "SkylakeX"}
    applied = arithmetic.pin(env)
    assert env == {**arithmetic.PINS, "OPENBLAS_CORETYPE": "SkylakeX"}
    assert applied["set"] == ["MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"]
    assert not applied["pinned"] and "OPENBLAS_CORETYPE" in applied["reason"]
    full = {}
    assert arithmetic.pin(full)["pinned"] and full == arithmetic.PINS


def test_native_opts_out_and_other_cpus_are_left_alone(monkeypatch):
    env = {"PMT_ARITHMETIC": "native"}
    assert arithmetic.pin(env) == {"pinned": False, "reason": "PMT_ARITHMETIC=native",
                                   "set": [], "late": []}
    assert env == {"PMT_ARITHMETIC": "native"}
    monkeypatch.setattr(arithmetic, "pinnable", lambda: False)
    env = {}
    assert not arithmetic.pin(env)["pinned"] and env == {}


def _state_in_fresh_process(**extra_env) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in arithmetic.PINS}
    env.update(extra_env)
    code = ("import json, pmt_core; from pmt_core.infra.arithmetic import state; "
            "print(json.dumps(state()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_pinnable
def test_importing_pmt_core_puts_mkl_on_its_compatible_branch():
    # Read back from MKL itself: the variable alone proves nothing if MKL had
    # started before it was set.
    pinned = _state_in_fresh_process()
    assert pinned["pinned"] and pinned["mkl_branch"] in ("COMPATIBLE", None)
    assert pinned["aten_capability"] == "AVX2"
    assert pinned["openblas_core"] in ("Haswell", None)
    native = _state_in_fresh_process(PMT_ARITHMETIC="native")
    assert not native["pinned"]
    if pinned["mkl_branch"] is not None:
        assert native["mkl_branch"] != "COMPATIBLE"
