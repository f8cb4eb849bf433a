"""Inspect and prune the bottleneck feature store.

    imgclf cache show  [--params params.yaml]
    imgclf cache prune [--params params.yaml] [--keep-other-namespaces] [--keep-unused] [--dry-run]

`prune` keeps the namespace the current params produce and, inside it, the vectors of the
images in the current augmented manifest (data/augmented/manifest.csv); it drops every other
namespace and every other vector unless told to keep them.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from imgclf.config.params import ParamsError, load_params
from imgclf.core import paths
from imgclf.features.feature_store import FeatureStore, store_path


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def show(store: FeatureStore, current: str | None = None) -> str:
    rows = store.summary()
    size = store.path.stat().st_size + sum(
        p.stat().st_size for p in store.path.parent.glob(store.path.name + "-*") if p.is_file())
    lines = [f"{store.path}: {len(rows)} namespace(s), {sum(r['vectors'] for r in rows)} vectors, "
             f"{_mib(size)} on disk"]
    for r in rows:
        spec = r["spec"]
        mark = "  (current params)" if r["namespace"] == current else ""
        lines.append(f"  {r['namespace']}  {r['vectors']:>8} vectors x {r['dim']}-d  {_mib(r['bytes']):>10}  "
                     f"{spec.get('backbone')} {spec.get('backbone_args')} {spec.get('weights')} "
                     f"{spec.get('image_size')}px {spec.get('resize')} "
                     f"{spec.get('layer', 'output')}/grid {spec.get('grid', 1)}  created "
                     f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['created']))}{mark}")
    return "\n".join(lines)


def current_namespace(params) -> str:
    from imgclf.features.backbones import extractor_for

    p = params.bottleneck
    return extractor_for(p).namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf cache", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["show", "prune"])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--keep-other-namespaces", action="store_true")
    parser.add_argument("--keep-unused", action="store_true", help="keep vectors of images not in the manifest")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = store_path(params.bottleneck.cache_dir)
    if not path.exists():
        print(f"{path}: no feature store yet (run the bottleneck stage)")
        return 0
    namespace = current_namespace(params)
    with FeatureStore(path) as store:
        if args.command == "show":
            print(show(store, namespace))
            return 0
        keep_ns = None if args.keep_other_namespaces else {namespace}
        keep_keys = None
        if not args.keep_unused:
            manifest = paths.AUGMENTED / "manifest.csv"
            if not manifest.exists():
                print(f"error: {manifest} not found; run `dvc repro augment` or pass --keep-unused",
                      file=sys.stderr)
                return 2
            keep_keys = {namespace: set(pd.read_csv(manifest, usecols=["sha256"])["sha256"])}
        before = store.summary()
        if args.dry_run:
            drop_ns = [r for r in before if keep_ns is not None and r["namespace"] not in keep_ns]
            print(f"would drop {len(drop_ns)} namespace(s) with {sum(r['vectors'] for r in drop_ns)} vectors"
                  + ("" if keep_keys is None else
                     f", and in {namespace} the vectors of images not among the "
                     f"{len(keep_keys[namespace])} in the current manifest"))
            return 0
        removed = store.prune(keep_ns, keep_keys)
        print(f"pruned {removed['namespaces']} namespace(s) and {removed['vectors']} vectors")
        print(show(store, namespace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
