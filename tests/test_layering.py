"""The package layout reads as the data flow, and nothing imports upwards.

Every module of ``pmt_core`` belongs to a layer; a module may import (at the top
or inside a function) only from its own layer or those below. A new module must
be given a layer here, which is the point: the folder list is the pipeline.

Within a layer nothing imports in a circle either (packages included), so every
module can be read after the modules it imports; and no module is over 700 lines.
"""

import ast
import subprocess
import sys
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
    "run": 6,
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


def _executed_nodes(path: Path):
    """Every node of a module but the bodies of ``if TYPE_CHECKING:`` (type-only imports)."""
    todo = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


#: What computes a stage: a claim imports none of it, at any level.
STAGE_MODULES = ("pmt_core.run", "pmt_core.data.sources", "pmt_core.data.audio",
                 "pmt_core.model.training", "pmt_core.model.replicates",
                 "pmt_core.features.extraction", "pmt_core.explain.cache")
#: What a stage is computed through: a claim calls none of it.
STAGE_CALLS = ("explain", "train_replicates", "train_call", "stored", "explainer_inputs")


@pytest.mark.parametrize(("name", "path"), [(n, p) for n, p in MODULES if _unit(n) == "claims"],
                         ids=[n for n, _ in MODULES if _unit(n) == "claims"])
def test_claims_read_evidence_and_compute_no_stage(name, path):
    # A claim reads the Evidence it is given (claims/evidence.py: the run's stages,
    # each computed by the run on first read) and computes statistics; it never
    # trains, explains, reads audio or stores on the run.
    imports, calls = [], []
    for node in _executed_nodes(path):
        if isinstance(node, ast.Import):
            imports += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imports += [f"{node.module}.{a.name}" for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in STAGE_CALLS):
            calls.append(f"line {node.lineno}: .{node.func.attr}()")
    found = [t for t in imports if any(t == m or t.startswith(m + ".") for m in STAGE_MODULES)]
    assert not found, f"{name} imports what computes a stage: {found}"
    assert not calls, f"{name} computes a stage: {calls}"


def test_the_stage_check_sees_a_stage_computed_in_a_claim(tmp_path):
    # the check above can fail: a claim that explains, or imports the run, is caught
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from pmt_core.run import Run\n"
                   "def m(ev):\n    from pmt_core.run.sanity import x\n"
                   "    return ev.run.explain('lrp', None)\n")
    with pytest.raises(AssertionError, match="imports what computes a stage"):
        test_claims_read_evidence_and_compute_no_stage("bad", bad)
    bad.write_text("def m(ev):\n    return ev.run.explain('lrp', None)\n")
    with pytest.raises(AssertionError, match=r"computes a stage: \['line 2: .explain\(\)'\]"):
        test_claims_read_evidence_and_compute_no_stage("bad", bad)


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


# ------------------------------------------------------------ import circles --


def _module_names() -> dict[str, Path]:
    """Every module of pmt_core by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _import_graph() -> dict[str, set[str]]:
    """Module -> the pmt_core modules it imports, anywhere in its file.

    Imports inside functions count, as for the layers above (a lazy import is
    still a dependency; it only defers the circle to run time). ``from a.b import
    c`` is an edge to ``a.b.c`` when that is a module, else to ``a.b`` (its
    ``__init__``); ``import a.b.c`` to the longest prefix that is a module;
    relative imports are resolved against the importer's package. The parent
    packages that Python initialises on the way are not edges: else every
    package whose ``__init__`` imports a submodule would be a circle.
    """
    names = _module_names()

    def module_of(dotted: str) -> str | None:
        while dotted not in names and "." in dotted:
            dotted = dotted.rsplit(".", 1)[0]
        return dotted if dotted in names else None

    graph = {}
    for name, path in names.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(module_of(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + [base] * bool(base))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in names else module_of(base))
        graph[name] = {t for t in targets if t and t != name and t.split(".")[0] == "pmt_core"}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _one_circle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest circle through the first module of a component, for the message."""
    members, start = set(component), component[0]
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for child in sorted(graph[path[-1]] & members):
            if child == start:
                return path + [start]
            if child not in seen:
                seen.add(child)
                paths.append(path + [child])
    return component


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _one_circle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_circle_among_the_modules():
    graph = _import_graph()
    circles = [" -> ".join(_one_circle(graph, c)) for c in _circles(graph)]
    assert not circles, "import circles (break them; a lazy import still counts):\n" + "\n".join(
        circles)

# ------------------------------------------------------------- module length --
MAX_LINES = 700
#: Modules allowed over MAX_LINES for now.
LONG_MODULES: set[str] = set()


def test_no_module_is_over_700_lines():
    lengths = {path.relative_to(ROOT.parent).as_posix():
               len(path.read_text(encoding="utf-8").splitlines()) for _, path in MODULES}
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not set(long) - LONG_MODULES, (
        f"modules over {MAX_LINES} lines (split them along their concerns): "
        f"{ {k: v for k, v in long.items() if k not in LONG_MODULES} }")
    stale = sorted(LONG_MODULES - set(long))
    assert not stale, f"{stale} are {MAX_LINES} lines or fewer now: remove them from LONG_MODULES"


def test_the_pytest_plugin_imports_nothing_heavy():
    # The plugin is an entry point: pytest imports it in every run of the environment,
    # to parse options. The package's public names load on first use (pmt_core/__init__).
    code = ("import sys, pmt_core.pytest_plugin; "
            "heavy = sorted({'torch', 'kymatio', 'zennit', 'captum', 'matplotlib', 'scipy'} "
            "& set(sys.modules)); print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT.parent, check=True)
    assert done.stdout.strip() == "", f"imported while parsing options: {done.stdout.strip()}"
