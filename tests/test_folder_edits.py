"""Nothing stale from an edited folder: DVC cannot see a folder outside the repo, so the download
stage runs every time and mirrors the folder as it is now. After adding, removing, replacing or
moving an image, `dvc repro` and `dvc exp run` use the folder as it is; a folder that did not
change re-runs nothing after download. For a directory and for an archive of it."""

import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from tests.conftest import BIN, make_pipeline_repo, run, stages_run
from tests.test_image_folder import make_photo_folder

pytestmark = pytest.mark.slow


def _zip_of(folder: Path, archive: Path) -> None:
    tmp = archive.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    tmp.replace(archive)


def _repro(repo: Path, *args: str) -> str:
    return run([BIN / "dvc", *args], repo).stdout


def _manifest(repo: Path) -> pd.DataFrame:
    return pd.read_csv(repo / "data" / "split" / "manifest.csv").set_index("id")


@pytest.mark.parametrize("kind", ["directory", "zip"])
def test_each_kind_of_edit_reaches_the_next_repro_and_experiment(tmp_path, kind):
    folder = tmp_path / "photos"
    make_photo_folder(folder, per_class=10, variants=1)
    archive = tmp_path / "photos.zip"
    source = folder if kind == "directory" else archive

    def publish():                       # the user edits the folder (and re-zips it)
        if kind == "zip":
            _zip_of(folder, archive)

    publish()

    def edit(params):
        params["dataset"].update(kind="image_folder", source=str(source), image_size=24)
        params["split"].update(val_fraction=0.2, test_fraction=0.2, audit_recall_pairs=20)

    repo = make_pipeline_repo(tmp_path / "repo", edit)
    assert {"download", "split"} <= stages_run(_repro(repo, "repro", "split"))
    before = _manifest(repo)
    assert len(before) == 30

    # unchanged: download checks the source, split is skipped
    out = _repro(repo, "repro", "split")
    assert stages_run(out) == {"download"} and "Stage 'split' didn't change" in out

    if kind == "zip":                    # the same mirror as a directory's: one edit, then the trap below
        (folder / "flower" / "photo0_nohash_0.jpg").rename(tmp_path / "held-back.jpg")
        shutil.copy(tmp_path / "held-back.jpg", folder / "flower" / "new_photo.jpg")
        publish()
        _repro(repo, "repro", "split")
        moved = _manifest(repo)
        assert "flower/new_photo.jpg" in moved.index and "flower/photo0_nohash_0.jpg" not in moved.index
    else:
        moved = _edit_each_way(repo, folder, tmp_path, publish)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "edited"], repo)

    # The trap DVC's run-cache sets: a file removed after a run came back in `dvc exp run`.
    committed = set(moved.index)
    (folder / "flower" / "new_photo.jpg").unlink()
    publish()
    out = _repro(repo, "exp", "run", "split", "-S", "split.seed=7")
    assert "download" in stages_run(out) and "is cached - skipping run" not in out.split("Stage 'split'")[0]
    now = _manifest(repo)
    assert set(now.index) == committed - {"flower/new_photo.jpg"}
    # and back to the folder of the committed run: DVC may restore that split, it is the same data
    shutil.copy(tmp_path / "held-back.jpg", folder / "flower" / "new_photo.jpg")
    publish()
    out = _repro(repo, "exp", "run", "split", "-S", "split.seed=42")
    assert set(_manifest(repo).index) == committed


def _edit_each_way(repo: Path, folder: Path, tmp_path: Path, publish) -> pd.DataFrame:
    """Remove, add, replace and move one image, each followed by `dvc repro split`."""
    (folder / "flower" / "photo0_nohash_0.jpg").rename(tmp_path / "held-back.jpg")
    publish()
    _repro(repo, "repro", "split")
    assert "flower/photo0_nohash_0.jpg" not in _manifest(repo).index          # removed
    shutil.copy(tmp_path / "held-back.jpg", folder / "flower" / "new_photo.jpg")
    publish()
    _repro(repo, "repro", "split")
    assert "flower/new_photo.jpg" in _manifest(repo).index                   # added
    # replaced: same name, other pixels
    old_sha = _manifest(repo).loc["china/photo1_nohash_0.png", "sha256"]
    yy, xx = np.mgrid[0:64, 0:64]
    fresh = ((np.sin(xx / 3.0) * np.cos(yy / 5.0) + 1) * 120).astype(np.uint8)   # like no other image
    assert cv2.imwrite(str(folder / "china" / "photo1_nohash_0.png"), np.dstack([fresh, fresh[::-1], fresh.T]))
    publish()
    _repro(repo, "repro", "split")
    assert _manifest(repo).loc["china/photo1_nohash_0.png", "sha256"] != old_sha
    # moved to another class folder
    (folder / "china" / "photo2_nohash_0.bmp").rename(folder / "flower" / "from_china.bmp")
    publish()
    _repro(repo, "repro", "split")
    moved = _manifest(repo)
    assert "china/photo2_nohash_0.bmp" not in moved.index
    assert moved.loc["flower/from_china.bmp", "class_name"] == "flower" and len(moved) == 30
    return moved
