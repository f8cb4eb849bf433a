"""DVC stage `download`: the dataset into data/raw/: Fashion-MNIST's IDX files, each verified by
content SHA-256, or an image folder (directory or archive, local or http/https)."""

from imgclf import paths, stage
from imgclf.archive import fetch_folder
from imgclf.download import fetch_all


def main(params):
    d = params.dataset
    if d.kind == "image_folder":
        what = fetch_folder(d.source, d.source_sha256, paths.RAW / "images",
                            max_bytes=d.max_archive_mb * 2**20, timeout=params.download.timeout_s,
                            retries=params.download.retries)
        print(f"download: {what} into {paths.RAW / 'images'}")
        return
    p = params.download
    report = fetch_all(p.files, p.sources, paths.RAW, timeout=p.timeout_s, retries=p.retries)
    for failure in report.failures:
        print(f"note: {failure}")
    used = ", ".join(sorted(set(report.files.values())))
    print(f"download: {len(report.files)} files verified in {report.seconds:.1f} s from {used}; "
          f"{len(report.failures)} source attempts failed")


if __name__ == "__main__":
    stage.run("download", main, augments=False)
