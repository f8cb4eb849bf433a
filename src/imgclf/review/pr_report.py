"""The pull-request report: what a change did to the pipeline's numbers and pictures, against a
base revision, as Markdown with PNG images beside it.

    imgclf pr-report BASE_REV [--out pr-report]     (after `dvc repro`, repo root)

Why images rendered here rather than `dvc plots diff`: a PR comment cannot run Vega, and CI
machines have no browser; matplotlib renders the same plots offline (as example-get-started's
CML report posts them). Only plots whose data changed are drawn, so an unchanged model adds no
noise. The workflow (.github/workflows/pr-metrics.yml) posts the folder with `cml comment`.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from imgclf.core import paths
from imgclf.core.revisions import read_at
from imgclf.review.plotting import png_bytes, pyplot

CONFUSION, PER_CLASS = paths.CONFUSION_TEST.as_posix(), paths.PER_CLASS_TEST.as_posix()
PREVIEWS = {(paths.PREVIEWS / "embedding_test.png").as_posix(): "Embedding view (test)",
            (paths.PREVIEWS / "test_errors.png").as_posix(): "Misclassified test images",
            (paths.PREVIEWS / "label_suspects.png").as_posix(): "Most suspect train and val labels",
            (paths.PREVIEWS / "test_label_suspects.png").as_posix(): "Most suspect test labels"}


def _dvc() -> str:
    return os.environ.get("DVC", "dvc")


def read_head(path: str) -> bytes | None:
    p = Path(path)
    return p.read_bytes() if p.is_file() else None


def markdown_table_or(table: str, empty: str) -> str:
    """A --md table with only its header and separator rows has nothing to say."""
    rows = [line for line in table.splitlines() if line.startswith("|")]
    return table.strip() if len(rows) > 2 else empty


def confusion_matrix(csv: bytes, names: list[str]) -> np.ndarray:
    df = pd.read_csv(io.BytesIO(csv))
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), np.int64)
    np.add.at(matrix, (df["actual"].map(index).to_numpy(), df["predicted"].map(index).to_numpy()), 1)
    return matrix


def render_confusion(base: np.ndarray | None, head: np.ndarray, names: list[str]) -> bytes:
    """Head's confusion matrix, the base's, and head minus base (red: more of that cell)."""
    plt = pyplot()
    panels = [("head", head, "Blues")] + ([] if base is None else [("base", base, "Blues"),
                                                                  ("head - base", head - base, "RdBu_r")])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 5.6), dpi=90, squeeze=False)
    for ax, (title, m, cmap) in zip(axes[0], panels):
        off = m.copy()
        if title != "head - base":
            np.fill_diagonal(off, 0)       # the diagonal would swamp every error cell's colour
        limit = max(1, int(np.abs(off).max()))
        ax.imshow(off, cmap=cmap, vmin=-limit if cmap == "RdBu_r" else 0, vmax=limit)
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=6.5)
        ax.set_title(f"{title} (actual rows, predicted columns)", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.tight_layout()
    return png_bytes(fig)


def render_per_class_f1(base: pd.DataFrame | None, head: pd.DataFrame) -> bytes:
    plt = pyplot()
    names = head["class"].tolist()
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2), dpi=90)
    if base is not None:
        b = base.set_index("class")["f1"].reindex(names)
        ax.barh(y + 0.2, b.to_numpy(), height=0.4, color="#bbbbbb", label="base")
    ax.barh(y - 0.2, head["f1"].to_numpy(), height=0.4, color="#1f77b4", label="head")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    low = float(np.nanmin(pd.concat([head["f1"], base["f1"]]) if base is not None else head["f1"]))
    ax.set_xlim(max(0.0, low - 0.05), 1.0)
    ax.set_xlabel("F1 on the test set")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return png_bytes(fig)


def significance(base: str, out: Path) -> list[str]:
    """imgclf.review.compare's table and verdict, and a preview of images the change broke and fixed;
    a line saying why when either side has no per-image predictions."""
    from imgclf.core.errors import UserError
    from imgclf.review import compare

    try:
        base_pred, base_label = compare.load_predictions(base)
        head_pred, head_label = compare.load_predictions(compare.WORKSPACE)
        result = compare.compare(base_pred, head_pred, base_label, "this change")
    except UserError as err:
        return [f"_not compared: {err}_"]
    lines = compare.report_lines(result, markdown=True)
    broken, fixed = compare.changed_images(base_pred, head_pred)
    if len(broken) + len(fixed):
        try:
            (out / "changed_test_images.png").write_bytes(_changes_png(broken, fixed))
            lines += ["", "![test images this change broke and fixed](changed_test_images.png)"]
        except (OSError, KeyError, UserError) as err:       # no data/augmented here, or other images
            lines += ["", f"_no preview of the changed images: {err}_"]
    return lines


def changes_preview(images_by_id, broken: pd.DataFrame, fixed: pd.DataFrame, per_row: int = 8) -> np.ndarray:
    """Up to one row of test images the change broke and one it fixed, captioned with the true
    class (' ?' when the label audit suspects it) and base -> head predictions. images_by_id(ids)
    returns their pixels."""
    from imgclf.review.previews import grid

    rows = []
    for label, frame in (("broken", broken), ("fixed", fixed)):
        pick = frame.head(per_row)
        if len(pick):
            pixels = images_by_id(list(pick.index))
            rows.append((f"{label} ({len(frame)})", [
                (img, f"true {r.actual[:9]}{' ?' if r.label_suspect else ''}\n{r.base_predicted[:6]}>{r.head_predicted[:6]}")
                for img, r in zip(pixels, pick.itertuples())]))
    return grid(rows, f"compare: {len(broken)} test images broken, {len(fixed)} fixed (first {per_row} of each)")


def _changes_png(broken: pd.DataFrame, fixed: pd.DataFrame) -> bytes:
    import cv2

    from imgclf.core import paths
    from imgclf.data.manifest import load_set

    data = load_set(paths.AUGMENTED, lazy=True)
    row_of = pd.Series(np.arange(len(data.manifest)), index=data.manifest["id"])

    def pixels(ids):
        return [np.asarray(data.images[i]) for i in row_of.loc[ids].to_numpy()]

    ok, png = cv2.imencode(".png", changes_preview(pixels, broken, fixed))
    return png.tobytes()


def _dvc_md(*args: str) -> str:
    res = subprocess.run([_dvc(), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed: {res.stderr.strip()[-500:]}")
    return res.stdout


def build(base: str, out: Path) -> Path:
    """Write out/report.md (and the PNGs it links) comparing the workspace with `base`."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"## Pipeline metrics against `{base}`", "",
             markdown_table_or(_dvc_md("metrics", "diff", base, "--md", "--precision", "4"), "_no metric changes_"),
             "", "## Parameters changed", "",
             markdown_table_or(_dvc_md("params", "diff", base, "--md"), "_no parameter changes_"), ""]
    lines += ["## Is the change real? (test set, paired)", "", *significance(base, out), ""]
    plots = []
    head_conf, base_conf = read_head(CONFUSION), read_at(base, CONFUSION)
    head_f1, base_f1 = read_head(PER_CLASS), read_at(base, PER_CLASS)
    if head_f1 is not None and head_conf is not None:
        head_table = pd.read_csv(io.BytesIO(head_f1))
        base_table = pd.read_csv(io.BytesIO(base_f1)) if base_f1 is not None else None
        names = head_table["class"].tolist()
        if head_conf != base_conf:
            base_matrix = None
            if base_conf is not None and base_table is not None and base_table["class"].tolist() == names:
                base_matrix = confusion_matrix(base_conf, names)
            (out / "confusion_test.png").write_bytes(
                render_confusion(base_matrix, confusion_matrix(head_conf, names), names))
            plots.append(("Confusion matrix (test)", "confusion_test.png"))
        if head_f1 != base_f1:
            (out / "per_class_f1_test.png").write_bytes(render_per_class_f1(base_table, head_table))
            plots.append(("Per-class F1 (test), base vs head", "per_class_f1_test.png"))
    for path, title in PREVIEWS.items():
        head_png, base_png = read_head(path), read_at(base, path)
        if head_png is not None and head_png != base_png:
            name = Path(path).name
            (out / f"head_{name}").write_bytes(head_png)
            plots.append((f"{title}, head", f"head_{name}"))
            if base_png is not None:
                (out / f"base_{name}").write_bytes(base_png)
                plots.append((f"{title}, base", f"base_{name}"))
    lines += ["## Plots that changed", ""]
    lines += [f"### {title}\n\n![{title}]({file})\n" for title, file in plots] or ["_no plot changes_", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf pr-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision to compare the workspace with, e.g. origin/main")
    parser.add_argument("--out", type=Path, default=Path("pr-report"), help="folder for report.md and its PNGs")
    args = parser.parse_args(argv)
    try:
        report = build(args.base, args.out)
    except RuntimeError as err:
        print(f"pr_report: {err}", file=sys.stderr)
        return 2
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
