"""PNG contact sheets a reviewer looks at: the data is "not only tested, but visually inspected".

Images are upscaled with nearest-neighbour so pixels stay visible; captions are drawn with OpenCV.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from imgclf.core.atomic import write_bytes

CELL = 96          # pixels per image cell
CAPTION = 12       # height of one caption line under each cell
LABEL_W = 110      # row-label column width


def _to_bgr(img: np.ndarray) -> np.ndarray:
    img = cv2.resize(img, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)


def _text(canvas, text, x, y, scale=0.35, color=(230, 230, 230)):
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def grid(rows: list[tuple[str, list[tuple[np.ndarray, str]]]], title: str) -> np.ndarray:
    """rows: (row label, [(image, caption), ...]); returns a BGR image."""
    n_cols = max((len(cells) for _, cells in rows), default=1)
    lines = max((c.count("\n") + 1 for _, cells in rows for _, c in cells), default=1)
    row_h = CELL + lines * CAPTION + 6
    h = 24 + len(rows) * row_h
    w = LABEL_W + n_cols * (CELL + 4)
    canvas = np.full((h, w, 3), 32, np.uint8)
    _text(canvas, title, 6, 16, 0.45)
    for r, (label, cells) in enumerate(rows):
        y = 24 + r * row_h
        _text(canvas, label[:16], 4, y + CELL // 2, 0.4)
        for c, (img, caption) in enumerate(cells):
            x = LABEL_W + c * (CELL + 4)
            canvas[y:y + CELL, x:x + CELL] = _to_bgr(img)
            for k, line in enumerate(caption.split("\n")):
                _text(canvas, line[:17], x, y + CELL + 10 + k * CAPTION, 0.32)
    return canvas


def save_png(path: Path | str, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path} as PNG")
    write_bytes(path, buf.tobytes())


def split_preview(images: np.ndarray, manifest: pd.DataFrame, per_class: int = 8) -> np.ndarray:
    """Per class: the first train and val sources (by id), captioned with id and split."""
    rows = []
    for label, part in manifest[manifest["split"].isin(["train", "val"])].groupby("label", sort=True):
        part = part.sort_values("id").head(per_class)
        rows.append((part["class_name"].iloc[0],
                     [(images[i], f"{part.at[i, 'split']}\n{part.at[i, 'id']}") for i in part.index]))
    return grid(rows, "split: train/val sources per class")


def augment_preview(images: np.ndarray, manifest: pd.DataFrame, max_variants: int = 8) -> np.ndarray:
    """One train source per class with its variants side by side (variant 0 is the original)."""
    train = manifest[manifest["split"] == "train"]
    rows = []
    for label, part in train[train["variant"] == 0].groupby("label", sort=True):
        parent = part.sort_values("id")["id"].iloc[0]
        family = train[train["parent_id"] == parent].sort_values("variant").head(max_variants)
        rows.append((part["class_name"].iloc[0],
                     [(images[i], "original" if v == 0 else f"variant {v}")
                      for i, v in zip(family.index, family["variant"])]))
    return grid(rows, "augment: each source and its variants")


def misclassified_preview(images: np.ndarray, y_true: np.ndarray, probs: np.ndarray,
                          class_names: list[str], n: int = 24, per_row: int = 8) -> np.ndarray:
    """The most confidently wrong predictions, captioned 'true>pred p'."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:n]
    cells = [(images[i], f"true {class_names[y_true[i]]}\npred {class_names[pred[i]][:8]} {probs[i, pred[i]]:.2f}")
             for i in order]
    rows = [(f"top {r * per_row + 1}-{min(len(cells), (r + 1) * per_row)}", cells[r * per_row:(r + 1) * per_row])
            for r in range((len(cells) + per_row - 1) // per_row)]
    return grid(rows, f"evaluate: the {len(order)} most confident test errors")


def label_suspects_preview(sections: list, class_names: list[str], title: str, n: int = 16,
                           per_row: int = 8) -> np.ndarray:
    """sections: (split, images of its suspects in rank order, their rows of the suspect table);
    the first n of each, captioned 'given>suggested' and the label quality score."""
    rows = []
    for split, images, table in sections:
        cells = [(images[k], f"{r.given[:9]}>\n{r.suggested[:9]} {r.quality:.2f}")
                 for k, r in enumerate(table.head(n).itertuples())]
        rows += [(f"{split} {i + 1}-{min(len(cells), i + per_row)}", cells[i:i + per_row])
                 for i in range(0, len(cells), per_row)] or [(f"{split}: none", [])]
    return grid(rows or [("none", [])], title)


def pairs_preview(images: np.ndarray, manifest: pd.DataFrame, a: np.ndarray, b: np.ndarray,
                  rms: np.ndarray, title: str, n: int = 12, per_row: int = 3) -> np.ndarray:
    """The n closest pairs (smallest RMS first), each shown as its two images side by side."""
    order = np.argsort(rms, kind="stable")[:n]
    ids, split = manifest["id"].to_numpy(), manifest["split"].to_numpy()
    cells = []
    for k in order:
        i, j = a[k], b[k]
        cells.append((images[i], f"{split[i]} {ids[i]}\nrms {rms[k]:.1f}"))
        cells.append((images[j], f"{split[j]} {ids[j]}\n"))
    step = 2 * per_row
    rows = [(f"pairs {r * per_row + 1}-{min(len(order), (r + 1) * per_row)}", cells[r * step:(r + 1) * step])
            for r in range((len(cells) + step - 1) // step)]
    if not rows:
        rows = [("none", [])]
    return grid(rows, title)


def near_duplicate_preview(images: np.ndarray, manifest: pd.DataFrame, pairs, in_test: np.ndarray,
                           params) -> np.ndarray:
    """What the audit flagged, worst first: pairs within the official test set (distinct images
    there are the false-positive proxy) and pairs that span official splits (train images
    excluded next to a test image), each ordered by descending RMS, so the least similar pairs a
    reviewer must judge come first."""
    if params.near_duplicates == "off":
        return grid([("none", [])], "split: near-duplicate search is off")
    official = manifest["official_split"].to_numpy()
    spans = official[pairs.a] != official[pairs.b]
    sections = []
    for name, mask in (("in test", in_test), ("across", spans), ("other", ~in_test & ~spans)):
        order = np.flatnonzero(mask)[np.argsort(-pairs.rms[mask], kind="stable")][:6]
        sections.append((name, order))
    ids, split = manifest["id"].to_numpy(), manifest["split"].to_numpy()
    rows = []
    for name, order in sections:
        cells = []
        for k in order:
            i, j = pairs.a[k], pairs.b[k]
            cells.append((images[i], f"{split[i]} {ids[i]}\nrms {pairs.rms[k]:.1f}"))
            cells.append((images[j], f"{split[j]} {ids[j]}\n"))
        rows.extend((f"{name} {r // 6 + 1}", cells[r:r + 6]) for r in range(0, max(len(cells), 1), 6))
    title = (f"split: {len(pairs)} near-duplicate pairs (rms <= {params.near_duplicate_max_rms:g}, "
             f"{params.near_duplicates} mode), least similar first")
    return grid(rows, title)
