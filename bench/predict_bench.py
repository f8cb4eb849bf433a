"""Throughput of the exported model (models/classifier.keras) on real test images.

    python bench/predict_bench.py [--images 2000] [--single 200]

batch: one model.predict call over all images; single: one call per image, as a service
answering one request at a time would. Also times the CLI end to end on PNG files.
Writes bench/out/predict.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--single", type=int, default=200)
    args = parser.parse_args()
    from imgclf.core.provenance import announce, ran_with
    run = announce(ran_with(args, {"model": "models/classifier.keras of the workspace"}))

    import cv2
    import keras
    import pandas as pd

    m = pd.read_csv("data/augmented/manifest.csv")
    images = np.load("data/augmented/images.npy", mmap_mode="r", allow_pickle=False)
    test = np.asarray(images[np.flatnonzero((m["split"] == "test").to_numpy())[: args.images]])
    model = keras.models.load_model("models/classifier.keras", safe_mode=True)
    model.predict(test[:256], verbose=0)
    t = time.perf_counter()
    model.predict(test, batch_size=256, verbose=0)
    batch = len(test) / (time.perf_counter() - t)
    model(test[:1], training=False)
    t = time.perf_counter()
    for img in test[: args.single]:
        model(img[None], training=False)
    single = args.single / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, img in enumerate(test[:500]):
            files.append(str(Path(tmp) / f"{i}.png"))
            cv2.imwrite(files[-1], img)
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "imgclf-predict"), *files], check=True,
                       capture_output=True)
        cli = len(files) / (time.perf_counter() - t)
    out = {"ran_with": run, "batch_images_per_s": round(batch, 1), "single_images_per_s": round(single, 1),
           "cli_500_png_images_per_s_including_startup": round(cli, 1)}
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/predict.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
