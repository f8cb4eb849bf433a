"""Check params.yaml as every stage would before its work, all at once.

The schema, imgaug building each augmenter, and the backbone registry: for `make check`, presets
and the tuner, which must refuse a bad value before the first stage runs; each stage itself asks
only for the checks its own work needs.

    imgclf check [params.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imgclf.config.params import Checks, Params, ParamsError, load_params, parse_params
from imgclf.data.augmenters import build_augmenter
from imgclf.features.backbones import BACKBONES

EVERY_CHECK = Checks(build_augmenter=build_augmenter, backbones=BACKBONES)


def check(raw: Any, path: Path | str = "params.yaml") -> Params:
    return parse_params(raw, path, EVERY_CHECK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf check", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        load_params(args.path, EVERY_CHECK)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.path}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
