"""The package layout reads as the data flow, and nothing imports upwards.

Every module of ``pmt_core`` belongs to a layer; a module may import (at the top
or inside a function) only from its own layer or those below. A new module must
be given a layer here, which is the point: the folder list is the pipeline.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pmt_core"

#: Layer of each package or top-level module, bottom (0) to top.
LAYERS = {
    "techniques": 0, "profiles": 0,
    "infra": 1, "stats": 1,
    "data": 2,
    "features": 3,
    "model": 4,
    "explain": 5,
    "stages": 6,
    "scale": 7,
    "figures": 7,
    "claims": 8,
    "report": 9,
    "pytest_plugin": 10, "explain_audio": 10, "explain_files": 10, "__main__": 10, "__init__": 10,
}  # fmt: skip


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield name.removesuffix(".__init__") if rel.name == "__init__" and len(
            rel.parts) > 2 else name, path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("pmt_core"):
                for alias in node.names:
                    yield f"{node.module}.{alias.name}", node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pmt_core"):
                    yield alias.name, node.lineno


MODULES = list(_modules())


def test_every_module_has_a_layer():
    units = {_unit(name) for name, _ in MODULES}
    assert units <= set(LAYERS), f"give these a layer: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_nothing_imports_upwards(name, path):
    own = LAYERS[_unit(name)]
    upward = []
    for target, line in _imports(path):
        parts = target.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue  # "from pmt_core import X": the package's public API (top layer)
        if LAYERS[parts[1]] > own:
            upward.append(f"line {line}: {target}")
    assert not upward, f"{name} (layer {own}) imports upwards: {upward}"


def test_no_relative_imports():
    # absolute imports keep every dependency visible to this test
    offenders = [str(p) for _, p in MODULES
                 if any(isinstance(n, ast.ImportFrom) and n.level
                        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not offenders


def test_importing_the_package_leaves_the_matplotlib_backend_alone():
    import os
    import subprocess
    import sys

    code = ("import matplotlib; import pmt_core, pmt_core.claims.catalogue, "
            "pmt_core.explain_audio, pmt_core.figures.paper; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "svg"}, check=True)
    assert out.stdout.strip() == "svg"
