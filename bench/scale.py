"""Scale benchmark: the pipeline's stages on growing data, per stage wall time, images/s and peak RSS.

    python bench/scale.py --multipliers 1 2 4 8 16 --folder 100000 --epochs 4

Each configuration runs the stage scripts (`python -m stages.X`, the commands of dvc.yaml) in a
scratch project under --work, outside DVC, so DVC's cache copies neither fill the disk nor count in
the timings: Fashion-MNIST at each augment.multiplier (split once, shared), and an image folder of
--folder 96 px RGB images made from the real data (each official image enlarged and tinted; beyond
70,000, re-tinted copies of training images, which the split keeps beside their originals). Every
configuration gets a cold feature store, so the bottleneck computes every vector it reports.
train.head.epochs is fixed to --epochs (patience as long) so train's cost is per image, not per
convergence. Writes docs/scale.md (table) and docs/scale.png (cost and memory against images).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from imgclf.core import run_log

REPO = Path(__file__).resolve().parents[1]
CODE = REPO           # whose stages/ and src/ run: --code runs another checkout's (e.g. the code before a change)
STAGES = ("augment", "bottleneck", "train", "evaluate")


def stage_env(tag: str) -> dict:
    return dict(os.environ, PYTHONPATH=f"{CODE}{os.pathsep}{CODE / 'src'}", **{run_log.TAG: tag},
                TF_CPP_MIN_LOG_LEVEL="2")


def run_stage(project: Path, stage: str, tag: str) -> None:
    proc = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=project, env=stage_env(tag),
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{tag}: stage {stage} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"  {stage}: {proc.stdout.strip().splitlines()[-1]}", flush=True)


def make_project(path: Path, params: dict) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def base_params(epochs: int, project: Path, limit: int | None = None) -> dict:
    params = yaml.safe_load((CODE / "params.yaml").read_text())
    params["dataset"].update(train_limit=limit, test_limit=limit)
    params["train"]["head"].update(epochs=epochs, patience=epochs)
    params["bottleneck"]["cache_dir"] = str(project / ".cache" / "bottlenecks")     # cold, per configuration
    return params


def runs(project: Path, tag: str) -> dict[str, dict]:
    from imgclf.core.run_log import LOG
    lines = [json.loads(line) for line in (project / LOG).read_text().splitlines()]
    return {e["stage"]: e for e in lines if e.get("tag") == tag}


def measure(project: Path, tag: str, stages=STAGES) -> list[dict]:
    """Run the stages, then read back what each logged and count the images it handled."""
    import pandas as pd

    for stage in stages:
        run_stage(project, stage, tag)
    logged = runs(project, tag)
    manifest = pd.read_csv(project / "data/augmented/manifest.csv", usecols=["split"])
    n_all, n_train = len(manifest), int((manifest["split"] == "train").sum())
    train_json = json.loads((project / "metrics/train.json").read_text())
    evaluate_json = json.loads((project / "metrics/evaluate.json").read_text())
    variants = json.loads((project / "metrics/augment.json").read_text())["variants_made"]
    handled = {"augment": variants, "bottleneck": n_all, "train": n_train * train_json["epochs_run"],
               "evaluate": n_all - n_train}
    rows = []
    for stage in stages:
        e = logged[stage]
        rows.append({"config": tag, "images": n_all, "train_images": n_train, "stage": stage, "handled": handled[stage],
                     "seconds": e["seconds"], "images_per_s": round(handled[stage] / e["seconds"]) if handled[stage] else None,
                     "peak_rss_mib": e["peak_rss_mib"], "worker_peak_rss_mib": e.get("worker_peak_rss_mib", 0),
                     "test_accuracy": evaluate_json["test"]["accuracy"]})
    return rows


def input_rows(project: Path, tag: str, config: str) -> list[dict]:
    """Rows for the stages before augment (split; download for a folder), from the run log: the
    images they read (metrics/data.json), wall time and peak RSS."""
    logged = runs(project, tag)
    images = json.loads((project / "metrics/data.json").read_text())["images"]
    return [{"config": config, "images": images, "train_images": None, "stage": stage, "handled": images,
             "seconds": logged[stage]["seconds"], "images_per_s": round(images / logged[stage]["seconds"]),
             "peak_rss_mib": logged[stage]["peak_rss_mib"], "worker_peak_rss_mib": 0, "test_accuracy": None}
            for stage in ("download", "split") if stage in logged]


def make_folder(dest: Path, n: int) -> None:
    """n PNGs of 96 px RGB under dest/<class>/, from the real Fashion-MNIST (data/raw)."""
    import cv2

    from imgclf.data.fashion_mnist import load

    if dest.exists() and sum(1 for _ in dest.rglob("*.png")) == n:
        return
    shutil.rmtree(dest, ignore_errors=True)
    data = load(REPO / "data/raw")
    names = data.class_names()
    rng = np.random.default_rng(0)
    sources = np.concatenate([np.arange(len(data.images)), rng.integers(0, 60000, max(0, n - len(data.images)))])[:n]
    for name in names:
        (dest / name).mkdir(parents=True)
    labels = data.manifest["label"].to_numpy()
    for i, src in enumerate(sources):
        grey = cv2.resize(data.images[src], (96, 96), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        tint = rng.uniform(0.4, 1.0, 3)
        rgb = (grey[..., None] * tint * 255).astype(np.uint8)
        cv2.imwrite(str(dest / names[labels[src]] / f"img{i:06d}.png"), rgb)


def write_report(rows: list[dict], out: Path, run: dict) -> None:
    """docs/scale.md (+ .csv, .json, .png); `--render` rebuilds them from the .csv and .json."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".json").write_text(json.dumps(run, indent=2) + "\n")
    frame = pd.read_csv(out.with_suffix(".csv"))       # what --render reads: one path for both

    def cell(v, fmt="{:,.0f}"):
        return "" if pd.isna(v) or v == 0 else fmt.format(v)

    lines = ["# Scale benchmark", "",
             f"Written by `python bench/scale.py {run['args']}` at commit {run['commit']} on a CPU with "
             f"{run['cpu']}, {run['cores']} cores. {run.get('note', '')}".rstrip(), "",
             f"train.head.epochs = patience = {run['epochs']}, so train's cost is per image, not per convergence; "
             "every configuration starts with a cold feature store. images/s: split per image read, augment per "
             "variant made, bottleneck per image written, train per training image and epoch, evaluate per "
             "val/test image predicted. `m*`: the Fashion-MNIST split, shared by every multiplier.", "",
             "| config | images | stage | seconds | images/s | peak RSS MiB | largest worker MiB | test acc |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in frame.itertuples():
        lines.append(f"| {r.config} | {r.images:,} | {r.stage} | {r.seconds:,.1f} | {cell(r.images_per_s)} "
                     f"| {r.peak_rss_mib:,} | {cell(r.worker_peak_rss_mib)} | {cell(r.test_accuracy, '{}')} |")
    fmnist = frame[frame["config"].str.fullmatch(r"m\d+")]
    lines += ["", "Least-squares line through the multipliers (" + ", ".join(fmnist["config"].unique()) +
              "): seconds = fixed + per image x images handled; memory as the range of the peaks.", "",
              "| stage | fixed s | µs per image | R² | peak RSS MiB (min-max) |", "|---|---:|---:|---:|---|"]
    for stage, part in fmnist.groupby("stage", sort=False):
        part = part[part["handled"] > 0]
        x, y = part["handled"].to_numpy(float), part["seconds"].to_numpy(float)
        memory = f"{part['peak_rss_mib'].min():,}-{part['peak_rss_mib'].max():,}"
        if len(set(x)) < 2:
            lines.append(f"| {stage} | | | | {memory} (the same images at every multiplier) |")
            continue
        slope, fixed = np.polyfit(x, y, 1)
        r2 = 1 - ((y - (fixed + slope * x)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        lines.append(f"| {stage} | {fixed:,.1f} | {slope * 1e6:,.1f} | {r2:.3f} | {memory} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for stage, part in fmnist.groupby("stage", sort=False):
        ax1.plot(part["images"], part["seconds"], marker="o", label=stage)
        ax2.plot(part["images"], part["peak_rss_mib"] / 1024, marker="o", label=stage)
    thousands = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k")
    for ax in (ax1, ax2):
        ax.set_xlabel("images in data/augmented")
        ax.xaxis.set_major_formatter(thousands)      # 900000 and its neighbours ran into each other
    ax1.set(ylabel="wall time (s)", title="cost against data size")
    # The bound every stage has to stay under (issue 22): on the axis even when all stay far below it.
    bound = 3
    ax2.set(ylabel="peak RSS (GiB)", title="memory against data size",
            ylim=(0, max(bound, fmnist["peak_rss_mib"].max() / 1024) * 1.1))
    ax2.axhline(bound, color="grey", linestyle="--", linewidth=1, label=f"{bound} GiB bound")
    ax1.legend()
    ax2.legend(handles=ax2.get_lines()[-1:], loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multipliers", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    parser.add_argument("--folder", type=int, default=100_000, help="images in the folder run; 0 = none")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--code", type=Path, help="run the stages of this checkout instead (e.g. a git worktree "
                                                   "of the commit before a change); default: this repository")
    parser.add_argument("--limit", type=int, help="first N official train and test images only (a smoke run)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/imgclf-scale"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "scale")
    parser.add_argument("--render", action="store_true", help="only rebuild the report from <out>.csv and .json")
    args = parser.parse_args()
    if args.render:
        import pandas as pd
        write_report(pd.read_csv(args.out.with_suffix(".csv")).to_dict("records"), args.out,
                     json.loads(args.out.with_suffix(".json").read_text()))
        return
    global CODE
    CODE = (args.code or REPO).resolve()
    sys.path.insert(0, str(REPO / "src"))
    from imgclf.core.provenance import announce, ran_with
    run = announce(ran_with(args, {"params.yaml": f"the repository's, with train.head.epochs = patience = {args.epochs}"}))
    if args.code:
        from imgclf.core.provenance import git_commit
        run["commit"] = git_commit(CODE)

    if not (REPO / "data/raw").is_dir():
        raise SystemExit("data/raw is missing: run `dvc repro download` first")
    rows: list[dict] = []
    start = time.perf_counter()
    split_project = make_project(args.work / "split", base_params(args.epochs, args.work / "split", args.limit))
    (split_project / "data").mkdir()
    (split_project / "data/raw").symlink_to(REPO / "data/raw")
    print("split (once, shared by the multipliers)", flush=True)
    run_stage(split_project, "split", "scale-split")
    rows += input_rows(split_project, "scale-split", "m*")
    for m in args.multipliers:
        tag = f"m{m}"
        print(tag, flush=True)
        params = base_params(args.epochs, args.work / tag, args.limit)
        params["augment"]["multiplier"] = m
        params["train"]["head"]["flip_tta"] = m > 1      # no mirror variant to learn from at 1 (params.py refuses it)
        project = make_project(args.work / tag, params)
        (project / "data").mkdir()
        (project / "data/split").symlink_to(split_project / "data/split")
        rows += measure(project, tag)
        for heavy in ("data/augmented", "data/features", ".cache/bottlenecks", "models"):
            shutil.rmtree(project / heavy, ignore_errors=True)
    if args.folder:
        tag = f"folder-{args.folder // 1000}k"
        print(tag, flush=True)
        folder = args.work / "folder-images"
        make_folder(folder, args.folder)
        params = base_params(args.epochs, args.work / tag)
        params["dataset"].update(kind="image_folder", source=str(folder), image_size=96, colour="rgb")
        project = make_project(args.work / tag, params)
        for stage in ("download", "split"):
            run_stage(project, stage, tag)
        rows += input_rows(project, tag, tag) + measure(project, tag)
    argv = f"--multipliers {' '.join(map(str, args.multipliers))} --folder {args.folder} --epochs {args.epochs}"
    if args.code:
        argv += f" --code <checkout of {run['commit'][:12]}>"
    write_report(rows, args.out, {"args": argv, "commit": run["commit"][:7] + ("+dirty" if run["commit"].endswith("+dirty") else ""),
                                  "cpu": run["cpu"], "cores": os.cpu_count(), "epochs": args.epochs,
                                  "minutes": round((time.perf_counter() - start) / 60)})
    print(f"wrote {args.out.with_suffix('.md')}, .csv, .png")


if __name__ == "__main__":
    main()
