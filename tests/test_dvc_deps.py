"""dvc.yaml's deps cannot go stale: every project module a stage imports (transitively, also
inside functions) is a dependency of that stage, so editing it makes `dvc repro` re-run it."""

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"stages": REPO / "stages", "imgclf": REPO / "src" / "imgclf"}


def _module_file(name: str) -> Path | None:
    top, _, rest = name.partition(".")
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*rest.split(".")) if rest else ROOTS[top]
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)   # from pkg import module
    return names


def import_closure(module: str) -> set[str]:
    """Project files (relative to the repo) imported by `module`, itself and packages included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):        # importing a.b.c imports a and a.b too
            path = _module_file(".".join(parts[:k]))
            if path and path not in seen:
                seen.add(path)
                todo.extend(_imports(path))
    return {p.relative_to(REPO).as_posix() for p in seen}


def test_every_stage_depends_on_every_module_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        module = stage["cmd"].split("python -m ", 1)[1].split()[0]
        deps = {d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]}
        lacking = sorted(import_closure(module) - deps)
        if lacking:
            missing[name] = lacking
    assert not missing, f"dvc.yaml deps miss imported modules: {missing}"


def test_the_closure_follows_imports_inside_functions_and_from_package_imports():
    closure = import_closure("stages.split")
    assert {"stages/split.py", "stages/__init__.py", "src/imgclf/__init__.py", "stages/stage.py",
            "src/imgclf/config/params.py", "src/imgclf/core/atomic.py", "src/imgclf/data/augmenters.py"} <= closure
    assert not {"src/imgclf/models/cnn.py", "src/imgclf/data/augment.py"} & closure


def test_a_stage_imports_the_library_of_its_own_checkout(tmp_path):
    """Experiments run in copies of the project (dvc exp run --temp, the queue): a copy's stage must
    run the copy's src/imgclf, not the workspace's through the editable install."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = subprocess.run([sys.executable, "-c", "import stages, imgclf.config.params; print(imgclf.config.params.__file__)"],
                         cwd=copy, capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(copy / "src" / "imgclf" / "config" / "params.py")
