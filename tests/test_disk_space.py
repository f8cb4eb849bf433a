"""Outputs that would not fit on the disk are refused before any work, with the estimate and the
free space in one message, and nothing half-written is left behind."""

from collections import namedtuple

import pytest

from imgclf.config.params import load_params
from imgclf.core import atomic
from imgclf.core.atomic import DiskSpaceError, require_space
from imgclf.data.manifest import save_set
from imgclf.data.split import assign_splits
from tests.conftest import REPO, image_set, synthetic_images

Usage = namedtuple("Usage", "total used free")


def _free(monkeypatch, nbytes: int) -> None:
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - nbytes, nbytes))


def test_the_message_gives_the_estimate_and_the_free_space(tmp_path, monkeypatch):
    _free(monkeypatch, 1_500_000)
    require_space(tmp_path / "ok.npy", 700_000, "things")                 # 1.4 MB with DVC's copy: fits
    with pytest.raises(DiskSpaceError) as err:
        require_space(tmp_path / "big.npy", 2_000_000, "4,000 things")
    assert str(err.value) == (f"[Errno 28] {tmp_path / 'big.npy'}: 4,000 things need about 4.0 MB (2.0 MB written, "
                              f"and DVC's cache copy), but the disk holding {tmp_path} has 1.5 MB free; free space "
                              f"(`dvc gc` drops cache entries no commit uses) or make less data")


def test_sizes_are_written_in_the_unit_a_reader_expects():
    assert [atomic._size(n) for n in (0, 999, 1000, 1_500_000, 2_000_000_000, 3 * 10**12, 5 * 10**15)] == [
        "0 B", "999 B", "1.0 KB", "1.5 MB", "2.0 GB", "3.0 TB", "5,000.0 TB"]


def test_an_output_that_just_fits_is_accepted_in_a_folder_not_made_yet(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: asked.append(path) or Usage(10**12, 0, 1_000))
    dest = tmp_path / "data" / "features" / "x.npy"
    require_space(dest, 500, "things")                      # 2 x 500 = exactly the free space
    assert dest.parent.is_dir() and asked == [dest.parent]  # the disk that will hold the file
    with pytest.raises(DiskSpaceError) as err:
        require_space(tmp_path / "y.npy", 1_001, "things", copies=1)   # outside DVC: no cache copy
    assert "need about 1.0 KB (1.0 KB written), but" in str(err.value)


def test_the_augment_stage_refuses_a_multiplier_that_would_fill_the_disk(tmp_path, monkeypatch):
    import stages.augment

    monkeypatch.chdir(tmp_path)
    x, y = synthetic_images(100, 0)
    save_set("data/split", assign_splits(image_set(x, y, ["train"] * 80 + ["test"] * 20), val_fraction=0.2, seed=0))
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text().replace(
        "  multiplier: 2 ", "  multiplier: 50 "))
    params = load_params(tmp_path / "params.yaml")
    assert params.augment.multiplier == 50
    _free(monkeypatch, 3_000_000)                 # 65 x 50 + 35 images of 784 bytes, twice: 5.2 MB
    with pytest.raises(DiskSpaceError, match=r"data/augmented/images\.npy: 3,285 augmented images "
                                             r"\(augment\.multiplier 50\) need about 5\.2 MB .* has 3\.0 MB free"):
        stages.augment.main(params)
    assert not (tmp_path / "data" / "augmented").exists() or not any((tmp_path / "data" / "augmented").iterdir())
    assert not (tmp_path / "metrics").exists()


def test_the_split_stage_refuses_a_folder_whose_images_would_fill_the_disk(tmp_path, monkeypatch):
    """A folder is decoded straight into data/split/images.npy: the estimate (every image file at
    dataset.image_size) is checked before the first file is decoded."""
    import yaml

    import stages.split
    from imgclf.data import image_folder
    from tests.test_image_folder import make_photo_folder

    monkeypatch.chdir(tmp_path)
    make_photo_folder(tmp_path / "data" / "raw" / "images", per_class=10, variants=2)      # 60 files
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["dataset"].update(kind="image_folder", source="unused", image_size=100, colour="rgb")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(tmp_path / "params.yaml")
    decoded = []
    monkeypatch.setattr(image_folder, "decode", lambda *a: decoded.append(a) or pytest.fail("decoded before the check"))
    _free(monkeypatch, 3_000_000)                 # 60 x 100 x 100 x 3 bytes, twice: 3.6 MB
    with pytest.raises(DiskSpaceError, match=r"data/split/images\.npy: 60 decoded images need about 3\.6 MB "
                                             r"\(1\.8 MB written, and DVC's cache copy\), but .* has 3\.0 MB free"):
        stages.split.main(params)
    assert decoded == []
    assert not (tmp_path / "data" / "split").exists() or not any((tmp_path / "data" / "split").iterdir())
    assert not (tmp_path / "metrics").exists()
