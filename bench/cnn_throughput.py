"""Training throughput of the CNN on this machine, to size `train.cnn.epochs` for a time budget
before spending half an hour on a run: the machines behind "2 cores" differ by 2.5x for the
same network (docs/hardware.md).

    python bench/cnn_throughput.py                                   # params.yaml's CNN
    python bench/cnn_throughput.py --filters 48,96,192 --block conv-pool-conv --precision float32

Trains the pipeline's own training model (augmentation layers included) on random 28x28 images
for --batches batches after one warm-up pass, and prints images/s and CPU seconds per wall
second: a ratio near 1 on two cores means the VM ran at one core's worth during the measurement,
so measure again.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from imgclf.config.params import load_params
from imgclf.models.cnn import CnnConfig, build_cnn_in_precision, native_bfloat16


def measure(cfg: CnnConfig, batches: int) -> tuple[float, float]:
    """(images per second, CPU seconds per wall second) of model.fit on random data."""
    import keras

    model, _ = build_cnn_in_precision((28, 28), 10, cfg)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    n = cfg.batch_size * batches
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    model.fit(x[:cfg.batch_size * 5], y[:cfg.batch_size * 5], batch_size=cfg.batch_size, verbose=0)
    cpu0, start = os.times(), time.perf_counter()
    model.fit(x, y, batch_size=cfg.batch_size, epochs=1, verbose=0)
    wall, cpu1 = time.perf_counter() - start, os.times()
    return n / wall, ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--filters", help="comma-separated, e.g. 48,96,192 (default: params)")
    parser.add_argument("--block", choices=["conv-conv-pool", "conv-pool-conv"])
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--train-images", type=int, default=108_044, help="per epoch (multiplier 2: 108,044)")
    args = parser.parse_args()
    settings = load_params(args.params).train.cnn.model_dump()
    if args.filters:
        settings["filters"] = [int(f) for f in args.filters.split(",")]
    settings.update({k: v for k, v in (("block", args.block), ("precision", args.precision)) if v})
    cfg = CnnConfig(seed=0, **settings)
    from imgclf.core.provenance import announce, ran_with
    announce(ran_with(args, {"train.cnn": cfg.model_dump()}))
    rate, cores = measure(cfg, args.batches)
    print(f"cnn {'-'.join(map(str, cfg.filters))} {cfg.block} {cfg.precision} batch {cfg.batch_size} "
          f"(CPU bfloat16 hardware: {native_bfloat16()}): {rate:,.0f} images/s, {cores:.2f} CPU s per wall s; "
          f"an epoch of {args.train_images:,} images takes {args.train_images / rate:.0f} s")


if __name__ == "__main__":
    main()
