"""DVC stage `download`: the dataset files into data/raw/, each verified by content SHA-256."""

from imgclf import paths, stage
from imgclf.download import fetch_all


def main(params):
    p = params.download
    report = fetch_all(p.files, p.sources, paths.RAW, timeout=p.timeout_s, retries=p.retries)
    for failure in report.failures:
        print(f"note: {failure}")
    used = ", ".join(sorted(set(report.files.values())))
    print(f"download: {len(report.files)} files verified in {report.seconds:.1f} s from {used}; "
          f"{len(report.failures)} source attempts failed")


if __name__ == "__main__":
    stage.run("download", main)
