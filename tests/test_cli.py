"""The `imgclf` command: every tool of the project under one name, as a user types it."""

import importlib
import subprocess
import sys

import pytest

from imgclf.__main__ import COMMANDS, main
from tests.conftest import REPO


def test_help_lists_every_command_with_what_it_is_for(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, what) in COMMANDS.items():
        assert f"  {name}" in out and what in out


def test_every_command_is_a_module_with_a_main_whose_help_names_the_command(capsys):
    for name, (module, _) in COMMANDS.items():
        assert callable(importlib.import_module(module).main), module
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        usage = capsys.readouterr().out
        assert usage.startswith(f"usage: imgclf {name} ") or name == "predict" and usage.startswith("usage: imgclf-predict ")


def test_an_unknown_command_is_one_error_and_exit_2(capsys):
    assert main(["compre"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: imgclf: no command 'compre'") and "compare" in err


def test_the_installed_command_runs_a_tool_and_passes_its_exit_code(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("multiplier: 2", "multiplier: 0"))
    ok = subprocess.run([sys.executable, "-m", "imgclf", "check", str(REPO / "params.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("params.yaml: ok")
    res = subprocess.run([sys.executable, "-m", "imgclf", "check", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "augment.multiplier = 0" in res.stderr and "Traceback" not in res.stderr
