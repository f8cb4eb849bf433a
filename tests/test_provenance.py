"""Benchmarks and analyses state what they ran with (code, CPU kind, arguments, params)."""

from __future__ import annotations

import argparse
import ast
import subprocess
from pathlib import Path

from imgclf.core.cpu import cpu_kind
from imgclf.core.provenance import announce, git_commit, ran_with

REPO = Path(__file__).resolve().parents[1]


def _git(cwd: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=cwd, check=True,
                   capture_output=True)


def test_commit_is_marked_dirty_when_tracked_files_differ(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("x")          # untracked files do not change the code that ran
    assert git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == head + "+dirty"


def test_outside_git_says_so(tmp_path):
    assert git_commit(tmp_path).startswith("unknown")


def test_record_holds_arguments_params_and_cpu_kind(capsys):
    args = argparse.Namespace(images=1000, per_kind=3)
    record = announce(ran_with(args, {"split": {"seed": 42}}))
    assert record["args"] == {"images": 1000, "per_kind": 3}
    assert record["params"] == {"split": {"seed": 42}}
    assert record["cpu"] == cpu_kind() and record["cpu"]
    line = capsys.readouterr().out
    assert record["commit"][:12] in line and "--images 1000 --per-kind 3" in line and "split" in line and record["cpu"] in line


def test_every_benchmark_and_analysis_records_what_it_ran_with():
    scripts = sorted([*REPO.glob("bench/*.py"), *REPO.glob("research/*.py")])
    assert len(scripts) >= 8
    missing = [s.relative_to(REPO).as_posix() for s in scripts
               if not any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "ran_with"
                          for n in ast.walk(ast.parse(s.read_text())))]
    assert not missing, f"scripts that do not call imgclf.core.provenance.ran_with: {missing}"


def test_cpu_kind_names_bfloat16_and_amx_apart(tmp_path):
    """Three kinds this project has run on: AVX-512 alone (bfloat16 emulated), AMD Zen 4
    (AVX512-BF16, no AMX) and Intel Sapphire/Emerald Rapids with both exposed."""
    def kind(flags: str) -> str:
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: fpu sse4_2 avx2 {flags}\n")
        return cpu_kind(info)

    assert kind("avx512f avx512bw") == "no AVX512-BF16"
    assert kind("avx512f avx512_bf16") == "AVX512-BF16, no AMX"
    assert kind("avx512f avx512_bf16 amx_bf16 amx_tile amx_int8") == "AVX512-BF16+AMX"
    assert cpu_kind(tmp_path / "missing") not in {"no AVX512-BF16", "AVX512-BF16, no AMX", "AVX512-BF16+AMX"}
