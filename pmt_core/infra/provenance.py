"""Where a run ran: code version (and whether the tree was clean), machine, libraries.

Recorded in the report and in every regression baseline, so that a figure can be
traced to the code and the arithmetic that made it: a baseline written from a
dirty tree, or on another instruction set, says so.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

#: CPU instruction-set extensions that change float rounding in BLAS and FFT kernels.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "neon", "asimd")


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                             cwd=cwd, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(cwd: str | os.PathLike | None = None) -> dict:
    """Commit, and whether tracked files differ from it (``dirty``); None outside git."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    commit = _git("rev-parse", "--short", "HEAD", cwd=cwd)
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"git_commit": commit, "git_dirty": bool(status)}


def cpu_info() -> dict:
    """CPU model and the rounding-relevant instruction-set extensions it has."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return {"cpu": model, "isa": [f for f in ISA_FLAGS if f in flags],
            "cpu_count": os.cpu_count()}


#: Installed distributions whose code the figures or the report depend on.
DISTRIBUTIONS = ("torch", "kymatio", "zennit", "captum", "numpy", "scipy", "pandas",
                 "scikit-learn", "soundfile", "matplotlib", "jinja2")


def library_versions() -> dict:
    """Exact installed versions (package metadata) of :data:`DISTRIBUTIONS`, and Python's.

    A distribution that is not installed is ``None``.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def file_checksums(folder: str | os.PathLike, names) -> dict:
    """SHA-256 of each of ``names`` that exists under ``folder`` (``{name: hex}``).

    What a run wrote (its split, checkpoints, per-example records), so that a report
    can be matched with the files beside it.
    """
    from pmt_core.infra.cache import file_digest

    return {name: file_digest(Path(folder) / name) for name in names
            if (Path(folder) / name).is_file()}


def provenance(device=None, code: dict | None = None) -> dict:
    """Everything above plus torch's thread count, the arithmetic and the device, as one dict.

    ``code``: the :func:`git_state` recorded when the run started (read now if None).
    """
    import torch

    from pmt_core.infra import arithmetic

    out = {**(git_state() if code is None else code), **cpu_info(),
           "platform": platform.platform(),
           "torch_threads": torch.get_num_threads(), "arithmetic": arithmetic.state()}
    if device is not None:
        out["device"] = str(device)
        if torch.device(device).type == "cuda":
            out["gpu"] = torch.cuda.get_device_name(device)
    return out
