"""Is the change real? Two revisions' test predictions compared image by image.

    imgclf compare BASE [HEAD]      # git revisions or DVC experiment names; HEAD: the workspace

`dvc metrics diff` shows test accuracy up by a tenth of a point; two seeds of one recipe differ by that much. Both
revisions scored the same test images, so the question has an exact answer from the images on
which they disagree: McNemar's exact test (a binomial test on fixed vs broken images) and a
paired bootstrap interval of the accuracy difference. The per-image predictions are the evaluate
stage's `metrics/plots/confusion_test.csv` (id, actual, predicted, confidence): git-tracked, so
any two commits or experiments compare without a DVC remote, and small (four short columns).
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imgclf.core import paths
from imgclf.core.errors import UserError

PREDICTIONS = paths.CONFUSION_TEST.as_posix()
WORKSPACE = "workspace"
ALPHA = 0.05


class CompareError(UserError, ValueError):
    pass


def load_predictions(rev: str, path: str = PREDICTIONS) -> tuple[pd.DataFrame, str]:
    """(predictions indexed by image id, a label naming the revision) for a revision or the workspace."""
    if rev == WORKSPACE:
        file = Path(path)
        if not file.is_file():
            raise CompareError(f"workspace: no {path}; run `dvc repro` first")
        raw, label = file.read_bytes(), "workspace"
    else:
        from imgclf.core.revisions import read_at, resolve

        commit = resolve(rev)
        raw = read_at(commit, path)
        if raw is None:
            raise CompareError(f"{rev} ({commit[:7]}): no {path} in that commit; run the pipeline there")
        label = commit[:7] if commit.startswith(rev) else f"{rev} ({commit[:7]})"
    frame = pd.read_csv(io.BytesIO(raw))
    missing = {"id", "actual", "predicted"} - set(frame.columns)
    if missing:
        raise CompareError(f"{label}: {path} has no per-image {', '.join(sorted(missing))} column(s) (written "
                           f"by the evaluate stage since per-image predictions were added); re-run evaluate there")
    if frame["id"].duplicated().any():
        raise CompareError(f"{label}: {path} repeats image ids, e.g. {frame['id'][frame['id'].duplicated()].iloc[0]}")
    return frame.set_index("id"), label


@dataclass
class Comparison:
    base: str
    head: str
    images: int
    base_accuracy: float
    head_accuracy: float
    difference: float               # head - base, as a fraction
    ci_low: float
    ci_high: float
    p_value: float                  # McNemar's exact test, two-sided
    fixed: int                      # wrong in base, right in head
    broken: int                     # right in base, wrong in head
    per_class: pd.DataFrame
    fixed_suspects: int | None = None   # of the fixed images, those whose label the audit suspects
    broken_suspects: int | None = None  # (None: neither revision's predictions carry the audit's flag)

    def verdict(self) -> str:
        pt = 100 * self.difference
        if self.fixed == self.broken == 0:
            return f"no change: the same correct/wrong outcome on all {self.images:,} test images"
        ci = f"95 % CI [{100 * self.ci_low:+.2f}, {100 * self.ci_high:+.2f}]"
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        if self.p_value < ALPHA:
            word = "a real improvement" if self.difference > 0 else "a real regression"
            return f"{pt:+.2f} pt, {ci}, McNemar {p}: {word}"
        if self.ci_low > 0 or self.ci_high < 0:
            # The percentile bootstrap is approximate and a little narrower than the exact test
            # near the edge: say which of the two counts instead of printing both and "noise".
            return (f"{pt:+.2f} pt, {ci}, McNemar {p}: borderline, within noise by McNemar's exact test "
                    f"(the bootstrap interval just excludes 0); repeat with another seed before trusting it")
        return f"{pt:+.2f} pt, {ci}, McNemar {p}: within noise"


def compare(base: pd.DataFrame, head: pd.DataFrame, base_label: str = "base", head_label: str = "head",
            resamples: int = 9999, seed: int = 0) -> Comparison:
    """Paired comparison on the images both revisions scored (which must be the same images)."""
    from scipy.stats import binomtest, bootstrap

    only_base, only_head = base.index.difference(head.index), head.index.difference(base.index)
    if len(only_base) or len(only_head):
        raise CompareError(
            f"{base_label} and {head_label} were scored on different test sets: {len(only_base)} image ids only "
            f"in {base_label} (e.g. {list(only_base[:3])}), {len(only_head)} only in {head_label} "
            f"(e.g. {list(only_head[:3])}); compare runs of the same split")
    head = head.loc[base.index]
    if not (base["actual"] == head["actual"]).all():
        bad = base.index[base["actual"] != head["actual"]]
        raise CompareError(f"{base_label} and {head_label} disagree on the true class of {len(bad)} images "
                           f"(e.g. {bad[0]}); compare runs of the same data")
    right_base = (base["predicted"] == base["actual"]).to_numpy()
    right_head = (head["predicted"] == head["actual"]).to_numpy()
    fixed, broken = int((~right_base & right_head).sum()), int((right_base & ~right_head).sum())
    diff = float(right_head.mean() - right_base.mean())
    if fixed + broken == 0:
        low = high = 0.0
        p_value = 1.0
    else:
        p_value = float(binomtest(fixed, fixed + broken, 0.5).pvalue)
        ci = bootstrap((right_base.astype(np.float64), right_head.astype(np.float64)),
                       lambda a, b, axis: b.mean(axis=axis) - a.mean(axis=axis), paired=True, vectorized=True,
                       n_resamples=resamples, confidence_level=0.95, method="percentile",
                       rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    actual = base["actual"].to_numpy()
    rows = []
    for cls in pd.unique(actual):
        m = actual == cls
        rows.append({"class": cls, "images": int(m.sum()),
                     "base_accuracy": round(float(right_base[m].mean()), 4),
                     "head_accuracy": round(float(right_head[m].mean()), 4),
                     "fixed": int((~right_base & right_head & m).sum()),
                     "broken": int((right_base & ~right_head & m).sum())})
    per_class = pd.DataFrame(rows).sort_values("class").reset_index(drop=True)
    suspect = label_suspects(base, head)
    fixed_suspects = broken_suspects = None
    if suspect is not None:
        fixed_suspects = int((~right_base & right_head & suspect).sum())
        broken_suspects = int((right_base & ~right_head & suspect).sum())
    return Comparison(base_label, head_label, len(base), float(right_base.mean()), float(right_head.mean()),
                      diff, low, high, p_value, fixed, broken, per_class, fixed_suspects, broken_suspects)


def label_suspects(base: pd.DataFrame, head: pd.DataFrame) -> np.ndarray | None:
    """Per image (base's order): the label audit suspects its given label in either revision's
    predictions; None when neither carries the flag (runs from before the audit)."""
    flags = [f["label_suspect"].astype(bool) for f in (base, head.loc[base.index]) if "label_suspect" in f]
    if not flags:
        return None
    return np.logical_or.reduce([f.to_numpy() for f in flags])


def changed_images(base: pd.DataFrame, head: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(broken, fixed) rows of head: image id, true class and both revisions' predictions."""
    head = head.loc[base.index]
    right_base, right_head = base["predicted"] == base["actual"], head["predicted"] == head["actual"]
    both = pd.DataFrame({"actual": base["actual"], "base_predicted": base["predicted"],
                         "head_predicted": head["predicted"]})
    suspect = label_suspects(base, head)
    both["label_suspect"] = False if suspect is None else suspect
    return both[right_base & ~right_head], both[~right_base & right_head]


def report_lines(c: Comparison, markdown: bool = False) -> list[str]:
    """The comparison as printable lines (or a Markdown table for the PR report)."""
    p = "< 0.001" if c.p_value < 0.001 else f"{c.p_value:.3f}"
    rows = [("test images", f"{c.images:,}"),
            (f"accuracy {c.base}", f"{c.base_accuracy:.4f}"),
            (f"accuracy {c.head}", f"{c.head_accuracy:.4f}"),
            ("difference (head - base)", f"{100 * c.difference:+.2f} pt, 95 % CI "
                                         f"[{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}] (paired bootstrap)"),
            ("fixed (wrong -> right)", f"{c.fixed}{_of_them(c.fixed_suspects)}"),
            ("broken (right -> wrong)", f"{c.broken}{_of_them(c.broken_suspects)}"),
            ("McNemar exact p", p)]
    changed = c.per_class[(c.per_class["fixed"] > 0) | (c.per_class["broken"] > 0)]
    if markdown:
        out = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "", f"**{c.verdict()}**", ""]
        if len(changed):
            out += ["| class | images | base accuracy | head accuracy | fixed | broken |", "|---|---|---|---|---|---|"]
            out += [f"| {r['class']} | {r['images']} | {r['base_accuracy']:.4f} | {r['head_accuracy']:.4f} | "
                    f"{r['fixed']} | {r['broken']} |" for _, r in changed.iterrows()]
        return out
    width = max(len(k) for k, _ in rows)
    out = [f"{k:<{width}}  {v}" for k, v in rows]
    if len(changed):
        out += ["", f"{'class':<14}{'images':>7}{'base':>9}{'head':>9}{'fixed':>7}{'broken':>8}"]
        out += [f"{r['class']:<14}{r['images']:>7}{r['base_accuracy']:>9.4f}{r['head_accuracy']:>9.4f}"
                f"{r['fixed']:>7}{r['broken']:>8}" for _, r in changed.iterrows()]
    return out + ["", f"verdict: {c.verdict()}"]


def _of_them(suspects: int | None) -> str:
    return "" if suspects is None else f" ({suspects} of them label suspects)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="git revision or DVC experiment name")
    parser.add_argument("head", nargs="?", default=WORKSPACE, help="another one (default: the workspace)")
    args = parser.parse_args(argv)
    try:
        base, base_label = load_predictions(args.base)
        head, head_label = load_predictions(args.head)
        result = compare(base, head, base_label, head_label)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
