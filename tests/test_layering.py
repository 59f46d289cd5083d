"""docs/design.md section 4: imports flow one way.

    geometry <- paths, data, models <- objectives, samplers <- engine, metrics
        <- experiments, interop, cli

A package may import itself and packages of strictly lower layers; same-layer imports are allowed
only where listed in SAME_LAYER_OK. geometry imports no other wasserflow package.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "wasserflow"
LAYER = {
    "geometry": 0,
    "paths": 1,
    "data": 1,
    "models": 1,
    "objectives": 2,
    "samplers": 2,
    "engine": 3,
    "metrics": 3,
    "experiments": 4,
    "interop": 4,
    "cli": 4,
}
SAME_LAYER_OK = {
    ("objectives", "samplers"),  # the loss calls the samplers' Field.from_network wrapper
    ("cli", "experiments"),  # the command line is the front of the experiments
    ("cli", "interop"),  # evaluate --from: models trained elsewhere
    ("metrics", "engine"),  # evaluate_run takes the engine's GenerativeModel protocol
}


def wasserflow_imports(path: Path, root: Path = SRC) -> set[str]:
    """The top-level wasserflow packages a module imports (absolute or relative)."""
    rel = path.relative_to(root).with_suffix("").parts
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "wasserflow" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "wasserflow":
                    continue
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(a.name for a in node.names)
            else:
                base = list(rel[:-1])
                base = base[: len(base) - (node.level - 1)]
                target = base + ((node.module or "").split(".") if node.module else [])
                if target:
                    found.add(target[0])
                else:
                    found.update(a.name for a in node.names)
    return {p for p in found if p in LAYER}


MODULES = sorted(p for p in SRC.rglob("*.py") if len(p.relative_to(SRC).parts) > 1)


def test_every_package_has_a_layer():
    packages = {p.relative_to(SRC).parts[0] for p in MODULES}
    assert packages <= set(LAYER), f"add {packages - set(LAYER)} to LAYER (and to docs/design.md)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_down(path):
    own = path.relative_to(SRC).parts[0]
    for dep in wasserflow_imports(path) - {own}:
        ok = LAYER[dep] < LAYER[own] or (own, dep) in SAME_LAYER_OK
        assert ok, (
            f"{path.relative_to(SRC)} ({own}, layer {LAYER[own]}) imports {dep} (layer {LAYER[dep]})"
        )


def test_checker_catches_upward_imports(tmp_path):
    probe = tmp_path / "geometry" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "from ..paths import schedules\nimport wasserflow.engine\nfrom . import exact\n"
    )
    assert wasserflow_imports(probe, root=tmp_path) == {"paths", "engine", "geometry"}


# ----------------------------------------------------------------------------- inside geometry
# geometry is two libraries, geometry.ot and geometry.flows, that never import each other; both
# may use the shared geometry._checks and geometry.measures, and neither imports the umbrella
# geometry/__init__.py (which re-exports both).

GEOMETRY = SRC / "geometry"
GEOMETRY_PARTS = {"ot", "flows", "measures", "_checks"}
SHARED = {"measures", "_checks"}


def geometry_imports(path: Path, root: Path = SRC) -> set[str]:
    """The parts of wasserflow.geometry a module imports: "ot", "flows", "measures", "_checks",
    or "__init__" for a name taken from the umbrella package itself."""
    rel = path.relative_to(root).with_suffix("").parts
    found = set()

    def add(target: list[str], names: list[str]) -> None:
        if not target or target[0] != "geometry":
            return
        if len(target) > 1:
            found.add(target[1])
        else:
            found.update(n if n in GEOMETRY_PARTS else "__init__" for n in names)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "wasserflow":
                    add(parts[1:], [])
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            module = (node.module or "").split(".") if node.module else []
            if node.level == 0:
                if module and module[0] == "wasserflow":
                    add(module[1:], names)
            else:
                base = list(rel[:-1])
                base = base[: len(base) - (node.level - 1)]
                add(base + module, names)
    return found


SUBPACKAGE_MODULES = sorted(p for sub in ("ot", "flows") for p in (GEOMETRY / sub).rglob("*.py"))


def test_geometry_has_its_two_subpackages():
    assert {p.relative_to(GEOMETRY).parts[0] for p in SUBPACKAGE_MODULES} == {"ot", "flows"}


@pytest.mark.parametrize("path", SUBPACKAGE_MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_ot_and_flows_do_not_import_each_other(path):
    own = path.relative_to(GEOMETRY).parts[0]
    extra = geometry_imports(path) - {own} - SHARED
    assert not extra, (
        f"{path.relative_to(SRC)} (geometry.{own}) imports geometry "
        f"{sorted(extra)}: only geometry._checks and geometry.measures are shared"
    )


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_geometry_modules_import_neither_subpackage(name):
    path = GEOMETRY / f"{name}.py"
    assert geometry_imports(path) <= SHARED, f"geometry/{name}.py must import only shared modules"


def test_geometry_checker_resolves_relative_and_absolute_imports(tmp_path):
    probe = tmp_path / "geometry" / "ot" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from ..flows import jko\nfrom .. import measures, exact_ot\nfrom .._checks import as_spd\n"
        "from . import costs\nimport wasserflow.geometry.flows.jko\nfrom ...paths import x\n"
    )
    assert geometry_imports(probe, root=tmp_path) == {
        "flows",
        "measures",
        "__init__",
        "_checks",
        "ot",
    }


def test_geometry_umbrella_reexports_both_subpackages():
    import wasserflow.geometry as geometry
    from wasserflow.geometry import flows, ot

    assert set(geometry.__all__) == set(ot.__all__) | set(flows.__all__)
    assert len(geometry.__all__) == len(set(geometry.__all__))
    for sub in (ot, flows):
        for name in sub.__all__:
            assert getattr(geometry, name) is getattr(sub, name), name


# ------------------------------------------------------------------ objectives are plugins
# Only wasserflow/objectives/ knows the kinds of objective: everything else asks a run's
# registered ObjectiveSpec (objectives/registry.py). No isinstance on an objective's config or
# spec class, no blockwise / energy flags on a run configuration, no comparison with a kind's
# name (but in the migration of version-1 files, whose recipes are a frozen format).

OBJECTIVES_DIR = SRC / "objectives"
CONFIG_NAMES = {"cfg", "config", "rc", "stored", "run_config", "recipe"}
KIND_COMPARE_OK = {("engine/config_io.py", "_v1_objective")}


def _objective_class_names() -> set[str]:
    from wasserflow.objectives import OBJECTIVES

    return {c.__name__ for spec in OBJECTIVES.values() for c in (spec.config, type(spec))}


def _kind_branches(path: Path, classes: set[str], kinds: set[str], root: Path = SRC) -> list[str]:
    """Where the module ``path`` tests the kind of an objective (line: what)."""
    tree = ast.parse(path.read_text())
    rel = str(path.relative_to(root))
    found = []
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    owner = {id(c): f.name for f in funcs for c in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("blockwise", "is_blockwise"):
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id == "is_blockwise":
            found.append(f"{node.lineno}: is_blockwise")
        elif isinstance(node, ast.Attribute) and node.attr == "energy":
            base = node.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            if name in CONFIG_NAMES:
                found.append(f"{node.lineno}: {name}.energy")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            named = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            named |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if named & classes:
                found.append(f"{node.lineno}: isinstance on {sorted(named & classes)}")
        elif isinstance(node, ast.Compare) and (rel, owner.get(id(node))) not in KIND_COMPARE_OK:
            consts = {
                c.value
                for c in [node.left, *node.comparators]
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
            if consts & kinds:
                found.append(f"{node.lineno}: compares with the kind {sorted(consts & kinds)}")
    return found


OUTSIDE_OBJECTIVES = [p for p in MODULES if OBJECTIVES_DIR not in p.parents]


@pytest.mark.parametrize("path", OUTSIDE_OBJECTIVES, ids=lambda p: str(p.relative_to(SRC)))
def test_only_objectives_know_the_kinds_of_objective(path):
    from wasserflow.objectives import OBJECTIVES

    found = _kind_branches(path, _objective_class_names(), set(OBJECTIVES))
    assert not found, (
        f"{path.relative_to(SRC)} branches on the kind of objective ({'; '.join(found)}): ask "
        "its ObjectiveSpec (wasserflow.objectives.objective_spec) instead"
    )


def test_a_run_configuration_has_no_kind_flags():
    from wasserflow.engine import RunConfig

    for flag in ("blockwise", "energy", "is_blockwise"):
        assert not hasattr(RunConfig, flag), f"RunConfig.{flag} is back: ask the ObjectiveSpec"


def test_the_kind_scan_catches_each_pattern(tmp_path):
    probe = tmp_path / "engine" / "probe.py"
    probe.parent.mkdir()
    probe.write_text(
        "def f(cfg, run, obj):\n"
        "    a = cfg.blockwise\n"
        "    b = run.config.energy\n"
        "    c = isinstance(obj, (JKOFlowObjective, int))\n"
        "    d = obj.kind == 'jko_flow'\n"
        "    e = ctx.energy and out.energy  # sampling facts and kinetic energies are fine\n"
    )
    kinds = {"jko_flow", "regression"}
    found = _kind_branches(probe, _objective_class_names(), kinds, root=tmp_path)
    assert [f.split(":")[0] for f in found] == ["2", "3", "4", "5"], found
