"""One arithmetic on every x86 CPU: pin the code paths of MKL, ATen, oneDNN and OpenBLAS.

Training amplifies rounding: a few float32 ulps of difference in the features give
another draw of every replicate (``--perturb ulp``: the pitch slope of one reading
moved 0.32 -> 0.68). The libraries under torch and numpy choose their kernels by
CPU, so an Intel Xeon and an AMD EPYC running the same code and seed round
differently, and a baseline written on one would be compared with another draw on
the other. Pinning every library to a code path both kinds run makes the same
seed give the same bits on both:

=====================  ===============  ==============================================
variable               value            why
=====================  ===============  ==============================================
``MKL_CBWR``           ``COMPATIBLE``   MKL's conditional numerical reproducibility;
                                        the one branch Intel documents as identical
                                        on Intel and non-Intel CPUs ("AVX2" falls
                                        back to the automatic branch on AMD)
``ATEN_CPU_CAPABILITY`` ``avx2``        torch's own kernels: AVX-512 variants where
                                        the CPU exposes AVX-512, AVX2 otherwise
``ONEDNN_MAX_CPU_ISA``  ``AVX2``        oneDNN picks its kernels by instruction set
``OPENBLAS_CORETYPE``  ``Haswell``      numpy's and scipy's BLAS picks SkylakeX kernels
                                        on AVX-512 CPUs, Haswell ones on AVX2 CPUs
=====================  ===============  ==============================================

Measured on a 2-core AMD EPYC (no AVX-512 exposed): ``MKL_CBWR=COMPATIBLE`` changes
the trained weights (MKL's default branch there is not the compatible one), the
other three leave them as they were (this CPU already takes those paths), and 3
epochs of the ci training took 53 s pinned against 58 s unpinned. The pins are
applied only on x86-64 CPUs with AVX2 and FMA (elsewhere they would name code
paths the CPU lacks), never over a value the user set, and only where they can
still take effect: MKL reads ``MKL_CBWR`` at its first call, OpenBLAS its core type
when numpy loads, so :func:`pin` runs first thing on ``import pmt_core``.
``PMT_ARITHMETIC=native`` leaves every library to its own choice.

:func:`state` reports what is in force (MKL's branch read back from MKL itself,
torch's capability, OpenBLAS's core type); the report and every baseline record
it, and the feature cache's namespace includes it.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

#: Library code paths that every AVX2-capable x86-64 CPU runs identically.
PINS = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}

#: Opt-out: ``PMT_ARITHMETIC=native`` keeps each library's own kernel choice.
OPT_OUT_VARIABLE = "PMT_ARITHMETIC"

#: MKL's answer to ``mkl_cbwr_get(MKL_CBWR_BRANCH)`` (mkl_service.h).
_MKL_BRANCHES = {1: "off", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3",
                 7: "SSE4_1", 8: "SSE4_2", 9: "AVX", 10: "AVX2", 11: "AVX512_MIC",
                 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}

#: What :func:`pin` did in this process (set by the first call).
_applied: dict | None = None


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def pinnable() -> bool:
    """Whether this CPU runs every pinned code path (x86-64 with AVX2 and FMA)."""
    return (platform.machine().lower() in ("x86_64", "amd64")
            and {"avx2", "fma"} <= _cpu_flags())


def pin(environ=None) -> dict:
    """Set :data:`PINS` in ``environ`` where the user has not, once per process.

    Parameters
    ----------
    environ : mapping, optional
        The environment to change; ``os.environ`` by default.

    Returns
    -------
    dict
        ``{"pinned": bool, "reason": str, "set": [names set here],
        "late": [names set after their library had loaded]}``.
    """
    global _applied
    if environ is None and _applied is not None:
        return _applied
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT_VARIABLE, "").lower() == "native":
        result = {"pinned": False, "reason": f"{OPT_OUT_VARIABLE}=native", "set": [], "late": []}
    elif not pinnable():
        result = {"pinned": False, "reason": "not an x86-64 CPU with AVX2 and FMA",
                  "set": [], "late": []}
    else:
        set_here = [name for name in PINS if name not in env]
        for name in set_here:
            env[name] = PINS[name]
        # numpy loads OpenBLAS (and its core type) on import; torch reads the
        # others lazily, so only numpy can have been too early.
        late = [n for n in set_here
                if environ is None and n == "OPENBLAS_CORETYPE" and "numpy" in sys.modules]
        overridden = [n for n in PINS if env.get(n) != PINS[n]]
        reasons = ((["the user's value of " + ", ".join(overridden)] if overridden else [])
                   + (["set after numpy had loaded"] if late else []))
        result = {"pinned": not reasons, "set": set_here, "late": late,
                  "reason": "; ".join(reasons) or "pinned"}
    if environ is None:
        _applied = result
    return result


def _mkl_branch() -> str | None:
    """MKL's code branch in force, read back from the MKL inside torch (None: unknown)."""
    import ctypes

    import torch

    library = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    return _MKL_BRANCHES.get(int(get(1)), f"code {int(get(1))}")


def _openblas_core() -> str | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    cores = sorted({str(i.get("architecture")) for i in threadpool_info()
                    if i.get("internal_api") == "openblas"})
    return ",".join(cores) or None


def state() -> dict:
    """Report the arithmetic in force: what :func:`pin` did, what each library says.

    Returns
    -------
    dict
        ``{"pinned", "reason", "mkl_branch", "aten_capability", "openblas_core"}``.
        A library that cannot be asked gives None.
    """
    import torch

    applied = pin()
    return {"pinned": applied["pinned"], "reason": applied["reason"],
            "mkl_branch": _mkl_branch(),
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "openblas_core": _openblas_core()}


def fingerprint() -> str:
    """Short text that changes whenever the pinned arithmetic does (cache namespaces)."""
    applied = pin()
    return "pinned" if applied["pinned"] else "native"
