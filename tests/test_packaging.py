"""`pip install .` and `make setup` agree: every runtime range in pyproject.toml admits the exact
pin in requirements.txt, and test-only packages are not runtime dependencies."""

import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt: {line!r} is not an exact pin (name==version)"
            pins[name.lower()] = version
    return pins


def test_every_runtime_range_admits_the_pinned_version():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        assert req.name.lower() in pins, f"{req.name} is a runtime dependency but not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name.lower()]), f"{req.name}=={pins[req.name.lower()]} is outside {spec}"
    runtime = {Requirement(s).name.lower() for s in project["dependencies"]}
    assert not {"pytest", "pytest-xdist", "asyncssh"} & runtime
    assert {Requirement(s).name.lower() for s in project["optional-dependencies"]["test"]} <= set(pins)
