"""Does the head gain from averaging an image's prediction with its mirror image's, as the CNN
does? Scores the exported classifier (backbone + head, raw images in) on val and on the official
test set: the image alone, the mirror alone, and the mean of both probabilities. Nothing is
retrained; the mirrored images' vectors are new to the backbone, so this is the full cost of
the lever at prediction time (twice the backbone passes).

    python research/head_flip_tta.py                       # models/classifier.keras of the workspace
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imgclf.core import paths
from imgclf.data.manifest import load_set


def main() -> None:
    import keras

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/classifier.keras", help="an exported classifier (raw images in)")
    args = ap.parse_args()
    from imgclf.core.provenance import announce, ran_with
    announce(ran_with(args))
    model = keras.models.load_model(args.model, safe_mode=True, compile=False)
    data = load_set(paths.SPLIT, lazy=True)
    for split in ("val", "test"):
        rows = (data.manifest["split"] == split).to_numpy()
        x, y = np.asarray(data.images[rows]), data.manifest["label"].to_numpy()[rows]
        start = time.perf_counter()
        p_image = model.predict(x, batch_size=256, verbose=0)
        p_mirror = model.predict(np.ascontiguousarray(x[:, :, ::-1]), batch_size=256, verbose=0)
        seconds = time.perf_counter() - start
        scores = {name: float(np.mean(np.argmax(p, axis=1) == y))
                  for name, p in (("image", p_image), ("mirror", p_mirror), ("mean of both", (p_image + p_mirror) / 2))}
        print(f"{split} ({len(y)} images, {seconds:.1f} s for both views): "
              + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
