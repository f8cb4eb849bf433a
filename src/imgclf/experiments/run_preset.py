"""Run a named recipe from presets/ as a DVC experiment.

    imgclf preset cnn                      # = make exp PRESET=cnn
    imgclf preset cnn -S train.cnn.epochs=6 -n cnn-short
    imgclf preset cnn --temp -n cnn-s43 -S train.seed=43   # workspace stays free meanwhile
    imgclf preset --list

A preset is a committed YAML file of parameter overrides (like lightning-hydra-template's
experiment configs). It becomes `dvc exp run -S key=value ...`, so the experiment records every
value in its params.yaml and `dvc exp show`, `dvc exp apply` and `dvc exp diff` work as for any
other experiment. The merged params are validated against the schema first: a wrong key or
value in a preset stops here, naming the preset, not twenty minutes into a run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from imgclf.config.params import ParamsError
from imgclf.config.presets import PRESETS, PresetError, load_preset
from imgclf.config.schema import flatten, merged, read_yaml, yaml_text
from imgclf.core.errors import UserError
from imgclf.experiments.preflight import check


def set_args(overrides: dict[str, Any]) -> list[str]:
    """`-S key=value` pairs; values in YAML flow style, as `dvc exp run -S` parses them."""
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={yaml_text(value)}")]


def _parse_set(values: list[str]) -> dict[str, Any]:
    out = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise PresetError(f"-S {item!r}: expected key=value")
        out[key] = yaml.safe_load(text)
    return out


def build_command(name: str, extra: list[str], exp_name: str | None, params_path: Path = Path("params.yaml"),
                  folder: Path = PRESETS, mode: str | None = None) -> list[str]:
    """The `dvc exp run` command line for a preset, after validating the params it would run with."""
    preset = load_preset(name, folder)
    overrides = {**flatten(preset.get("params") or {}), **_parse_set(extra)}
    base = read_yaml(params_path, PresetError)
    try:
        check(merged(base, overrides, PresetError), f"{folder / (name + '.yaml')} on top of {params_path}")
    except ParamsError as err:
        raise PresetError(str(err)) from None
    where = [f"--{mode}"] if mode else []
    return [os.environ.get("DVC", "dvc"), "exp", "run", *where, "-n", exp_name or name, *set_args(overrides)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf preset", description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", nargs="?", help="a file name in presets/, without .yaml")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override on top of the preset (repeatable)")
    parser.add_argument("-n", "--name", help="experiment name (default: the preset's name)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--temp", dest="mode", action="store_const", const="temp",
                       help="run in a temporary copy, so the workspace stays free to edit (a 30-minute CNN)")
    where.add_argument("--queue", dest="mode", action="store_const", const="queue",
                       help="only queue it; `dvc queue start` runs the queue")
    parser.add_argument("--dry", action="store_true", help="print the dvc command instead of running it")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    args = parser.parse_args(argv)
    try:
        if args.list or not args.preset:
            for path in sorted(PRESETS.glob("*.yaml")):
                print(f"{path.stem:14} {load_preset(path.stem).get('description', '')}")
            return 0
        cmd = build_command(args.preset, args.set_param, args.name, mode=args.mode)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(shlex.join(cmd), flush=True)
    if args.dry:
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
