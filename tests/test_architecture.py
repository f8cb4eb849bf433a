"""The package layering and each stage's deps, as docs/architecture.md states them: a package
imports only the packages before it in the pipeline's order, a stage imports only its own work,
and an edit of a module re-runs exactly the stages the document's table names."""

import ast
import json
import re
import shutil
import subprocess

import yaml

from tests.conftest import BIN, REPO
from tests.test_dvc_deps import import_closure

LIB = REPO / "src" / "imgclf"
LAYERS = ["core", "config", "data", "features", "models", "review", "experiments"]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# What a stage must never import: the work of later steps (and, for download, augmentation).
NEVER = {
    "download": ["data/augment.py", "data/augmenters.py", "features/", "models/", "review/", "experiments/"],
    "split": ["features/", "models/", "experiments/"],
    "augment": ["features/", "models/", "experiments/"],
    "bottleneck": ["models/", "review/", "experiments/"],
    "labels": ["features/", "models/", "experiments/"],          # reads the vectors, never computes them
    "train": ["review/", "experiments/"],
    "evaluate": ["experiments/"],
}


def _imported_packages(path) -> set[str]:
    """imgclf packages a file imports, also inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "imgclf" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_the_library_is_the_seven_packages_and_nothing_beside_them():
    """Beside them only the package's face and the `imgclf` command, which imports each tool when asked."""
    assert sorted(p.name for p in LIB.iterdir() if p.suffix == ".py") == ["__init__.py", "__main__.py"]
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_a_package_imports_only_the_packages_before_it():
    upward = []
    for layer, package in enumerate(LAYERS):
        for path in sorted((LIB / package).glob("*.py")):
            for other in _imported_packages(path):
                if other not in LAYERS or LAYERS.index(other) > layer:
                    upward.append(f"{path.relative_to(LIB)} imports imgclf.{other}")
    assert not upward, upward


def test_a_stage_imports_only_its_own_work():
    assert set(NEVER) == set(STAGES)
    found = {}
    for name, stage in STAGES.items():
        closure = import_closure(stage["cmd"].split("python -m ", 1)[1].split()[0])
        bad = sorted(f for f in closure for never in NEVER[name] if f.startswith(f"src/imgclf/{never}"))
        if bad:
            found[name] = bad
    assert not found, found


def _documented() -> dict[str, set[str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("<!-- invalidates:start -->", 1)[1].split("<!-- invalidates:end -->", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|$", table, re.M)
    return {f"src/imgclf/{module}": set() if stages.strip() == "none" else {s.strip() for s in stages.split(",")}
            for module, stages in rows}


def test_an_edit_of_each_module_re_runs_the_stages_the_document_names(tmp_path):
    """Every module gets a comment; `dvc status` against the committed dvc.lock then names, per
    stage, the code deps that changed: inverted, that is the table of docs/architecture.md."""
    project = tmp_path / "p"
    for name in ("src", "stages"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        shutil.copy(REPO / name, project / name)
    subprocess.run([BIN / "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    modules = sorted(p.relative_to(project).as_posix() for p in (project / "src" / "imgclf").rglob("*.py"))
    for module in modules:
        with open(project / module, "a") as f:
            f.write("# an edit that changes nothing but the file's hash\n")
    status = json.loads(subprocess.run([BIN / "dvc", "status", "--json"], cwd=project, capture_output=True,
                                       text=True, check=True).stdout)
    reruns = {module: set() for module in modules}
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, dict):
                for path, how in change.get("changed deps", {}).items():
                    if path in reruns:
                        assert how == "modified", (stage, path, how)
                        reruns[path].add(stage.split(":")[-1])
    table = "\n".join(f"| `{m.removeprefix('src/imgclf/')}` | "
                      f"{', '.join(s for s in STAGES if s in reruns[m]) or 'none'} |" for m in modules)
    assert reruns == _documented(), f"docs/architecture.md's table should read:\n{table}"
