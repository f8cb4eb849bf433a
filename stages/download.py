"""DVC stage `download`: the dataset into data/raw/: Fashion-MNIST's IDX files, each verified by
content SHA-256, or an image folder (directory or archive, local or http/https) mirrored as it
is now. The stage runs on every `dvc repro` (dvc.yaml: always_changed), because DVC cannot see
a folder outside the repo change; when nothing changed its output is byte-identical and every
later stage is skipped."""

import shutil

from imgclf.core import paths
from imgclf.data.archive import fetch_folder
from imgclf.data.folder_walk import SOURCE_RECORD
from imgclf.data.sources import fetch_all
from stages import stage


def main(params):
    d = params.dataset
    if d.kind == "image_folder":
        _keep_only(["images", SOURCE_RECORD])
        what = fetch_folder(d.source, d.source_sha256, paths.RAW / "images",
                            max_bytes=d.max_archive_mb * 2**20, timeout=params.download.timeout_s,
                            retries=params.download.retries)
        print(f"download: {what} into {paths.RAW / 'images'}")
        return
    p = params.download
    _keep_only(list(p.files))
    report = fetch_all(p.files, p.sources, paths.RAW, timeout=p.timeout_s, retries=p.retries)
    for failure in report.failures:
        print(f"note: {failure}")
    used = ", ".join(sorted(set(report.files.values())))
    print(f"download: {len(report.files)} files verified in {report.seconds:.1f} s from {used}; "
          f"{len(report.failures)} source attempts failed")


def _keep_only(names: list[str]) -> None:
    """data/raw persists between runs (dvc.yaml: persist): drop what another dataset kind left."""
    if not paths.RAW.is_dir():
        return
    for path in paths.RAW.iterdir():
        if path.name not in names:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


if __name__ == "__main__":
    stage.run("download", main)
