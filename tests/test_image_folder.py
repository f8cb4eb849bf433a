"""Image folders: real photographs from scikit-learn cut into a small labelled dataset with
_nohash_ groups, every kind of bad file, pre-split folders, and hostile archives."""

import shutil
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from imgclf.data.archive import ArchiveError, extract, fetch_folder
from imgclf.data.image_folder import BadImage, load, read_groups_csv
from imgclf.data.manifest import SPLITS
from imgclf.data.split import assign_splits

FORMATS = [".jpg", ".png", ".bmp", ".webp"]


def make_photo_folder(root: Path, per_class: int = 8, variants: int = 2, seed: int = 0,
                      prefix: str = "photo") -> dict[str, int]:
    """Three classes of 64x64 crops (china, flower, china colour-inverted), each photo saved as
    `variants` files <photo>_nohash_<k> (a flip, a brightness change): one source group each."""
    china, flower = load_sample_images().images
    rng = np.random.default_rng(seed)
    sources = {"china": china, "flower": flower, "inverted": 255 - china}
    counts = {}
    for cls, photo in sources.items():
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            y, x = int(rng.integers(0, photo.shape[0] - 128)), int(rng.integers(0, photo.shape[1] - 128))
            crop = cv2.resize(np.ascontiguousarray(photo[y:y + 128, x:x + 128]), (64, 64), interpolation=cv2.INTER_AREA)
            for k in range(variants):
                img = crop[:, ::-1] if k % 2 else np.clip(crop.astype(int) + 12 * k, 0, 255).astype(np.uint8)
                ext = FORMATS[(i + k) % len(FORMATS)]
                ok = cv2.imwrite(str(d / f"{prefix}{i}_nohash_{k}{ext}"), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
                assert ok
        counts[cls] = per_class * variants
    return counts


def _jpeg_bytes(size=32):
    ok, buf = cv2.imencode(".jpg", np.full((size, size, 3), 128, np.uint8))
    return buf.tobytes()


BAD_FILES = {
    "empty": ("flower/empty.jpg", lambda p: p.write_bytes(b""), "empty file"),
    "truncated": ("flower/cut.jpg", lambda p: p.write_bytes(_jpeg_bytes()[:-40]), "truncated"),
    "not an image": ("china/notes.jpg", lambda p: p.write_text("shopping list"), "not an image"),
    "wrong extension": ("china/really_a_jpeg.png", lambda p: p.write_bytes(_jpeg_bytes()),
                        "wrong extension (the content is JPEG, the name says .png)"),
    "broken link": ("inverted/broken_link.jpg", lambda p: p.symlink_to(p.parent / "gone.jpg"), "broken link"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_bad_file_fails_naming_it_or_is_skipped_and_listed(tmp_path, kind):
    counts = make_photo_folder(tmp_path, per_class=2)
    rel, write, reason = BAD_FILES[kind]
    write(tmp_path / rel)
    with pytest.raises(BadImage) as err:
        load(tmp_path, 32, "rgb", "fail")
    assert str(tmp_path / rel) in str(err.value) and reason in str(err.value)
    data, report = load(tmp_path, 32, "rgb", "skip")
    assert len(data.images) == sum(counts.values())
    assert [s["path"] for s in report.skipped] == [rel] and reason in report.skipped[0]["reason"]


def test_decoding_sizes_colour_labels_and_ignored_files(tmp_path):
    counts = make_photo_folder(tmp_path)
    (tmp_path / "china" / "README.txt").write_text("not data")
    data, report = load(tmp_path, 48, "rgb", "fail")
    assert data.images.shape == (sum(counts.values()), 48, 48, 3) and data.images.dtype == np.uint8
    assert data.class_names() == ["china", "flower", "inverted"]
    assert report.ignored == [{"path": "china/README.txt", "reason": "not an image file type (.txt)"}]
    assert report.skipped == [] and report.files == sum(counts.values()) + 1
    grey, _ = load(tmp_path, 40, "grey", "fail")
    assert grey.images.shape == (sum(counts.values()), 40, 40)


def test_exif_orientation_is_honoured(tmp_path):
    from PIL import Image

    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255                     # left half white
    d = tmp_path / "a"
    d.mkdir()
    pil = Image.fromarray(img)
    exif = Image.Exif()
    exif[0x0112] = 6                      # "rotate 90 CW to display"
    pil.save(d / "x.jpg", exif=exif.tobytes(), quality=95)
    (tmp_path / "b").mkdir()
    Image.fromarray(img).save(tmp_path / "b" / "y.png")   # a second class: a classifier needs two
    data, _ = load(tmp_path, 40, "grey", "fail")
    shown = data.images[0]
    assert shown[:15].mean() > 200 and shown[-15:].mean() < 50   # white ends up on top


def test_nohash_groups_and_identical_content_never_straddle_splits(tmp_path):
    make_photo_folder(tmp_path, per_class=10, variants=3)
    shutil.copy(tmp_path / "china" / "photo0_nohash_0.jpg", tmp_path / "china" / "copy_of_photo0.jpg")
    data, _ = load(tmp_path, 32, "rgb", "fail")
    m = data.manifest
    assert m.loc[m.id == "china/photo3_nohash_1.jpg", "source_id"].item() == "china/photo3"
    for seed in range(4):
        out = assign_splits(data, 0.3, seed, test_fraction=0.3).manifest
        used = out[out.split.isin(SPLITS)]
        assert (used.groupby("source_id").split.nunique() == 1).all()
        assert (used.groupby("group_id").split.nunique() == 1).all()
        copy = out[out.id == "china/copy_of_photo0.jpg"].iloc[0]
        orig = out[out.id == "china/photo0_nohash_0.jpg"].iloc[0]
        assert copy.group_id == orig.group_id and copy.split == orig.split
        assert set(used.split) == set(SPLITS)


def test_groups_csv_maps_files_to_groups(tmp_path):
    make_photo_folder(tmp_path / "f", per_class=3, variants=1)
    csv = tmp_path / "groups.csv"
    csv.write_text("file,group\nchina/photo0_nohash_0.jpg,shoot-A\nflower/photo1_nohash_0.png,shoot-A\n")
    data, _ = load(tmp_path / "f", 32, "rgb", "fail", read_groups_csv(csv))
    m = data.manifest.set_index("id")
    assert m.loc["china/photo0_nohash_0.jpg", "source_id"] == m.loc["flower/photo1_nohash_0.png", "source_id"] == "shoot-A"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\n")
    with pytest.raises(ValueError, match="expected columns 'file' and 'group'"):
        read_groups_csv(bad)


def test_pre_split_folder_is_respected(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        make_photo_folder(tmp_path / split, per_class=n, variants=1, seed=len(split), prefix=split)
    data, report = load(tmp_path, 32, "rgb", "fail")
    assert report.pre_split
    out = assign_splits(data, 0.5, 0, test_fraction=0.5).manifest
    assert (out.split == out.id.str.split("/").str[0]).all()
    assert data.class_names() == ["china", "flower", "inverted"]
    # The same photo (_nohash_ stem) in train/ and test/ is a leak in the user's split: the
    # train copy is excluded, never trained on, and counted.
    shutil.copy(tmp_path / "test/flower/test0_nohash_0.jpg", tmp_path / "train/flower/test0_nohash_7.jpg")
    data, _ = load(tmp_path, 32, "rgb", "fail")
    out = assign_splits(data, 0.5, 0).manifest.set_index("id")
    assert out.loc["train/flower/test0_nohash_7.jpg", "split"] == "excluded"
    assert out.loc["test/flower/test0_nohash_0.jpg", "split"] == "test"


def _zip(path: Path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_archives_refuse_traversal_and_never_create_links(tmp_path):
    dest = tmp_path / "out"
    for name in ("../evil.jpg", "/tmp/evil.jpg", "a/../../evil.jpg"):
        _zip(tmp_path / "bad.zip", {"ok/a.jpg": _jpeg_bytes(), name: _jpeg_bytes()})
        with pytest.raises(ArchiveError, match="refused 1 unsafe member") as err:
            extract(tmp_path / "bad.zip", dest, 2**30)
        assert name in str(err.value)
        assert not dest.exists()
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tf:
        link = tarfile.TarInfo("ok/escape.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tf.addfile(link)
    not_extracted = extract(tmp_path / "bad.tar.gz", dest, 2**30)     # listed, never followed
    assert [(e.rel, e.problem) for e in not_extracted] == [
        ("ok/escape.jpg", "link outside the archive (to ../../../etc/passwd; not followed)")]
    assert not any(p.is_symlink() for p in dest.rglob("*")) and not (tmp_path / "etc").exists()
    with tarfile.open(tmp_path / "dev.tar", "w") as tf:
        fifo = tarfile.TarInfo("ok/pipe.jpg")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)
    with pytest.raises(ArchiveError, match=r"ok/pipe.jpg \(device or special file\)"):
        extract(tmp_path / "dev.tar", tmp_path / "out2", 2**30)
    assert not (tmp_path / "out2").exists()


def test_archive_size_limit_and_checksum(tmp_path):
    _zip(tmp_path / "bomb.zip", {"c/a.jpg": b"\0" * 3_000_000})   # packs to a few KiB
    with pytest.raises(ArchiveError, match="unpacks to 2.9 MiB, over the 1 MiB limit"):
        extract(tmp_path / "bomb.zip", tmp_path / "out", 2**20)
    (tmp_path / "big.zip").write_bytes(b"\0" * 2_000_000)
    with pytest.raises(ArchiveError, match="1.9 MiB is over the 1 MiB limit"):
        extract(tmp_path / "big.zip", tmp_path / "out", 2**20)
    folder = tmp_path / "photos"
    make_photo_folder(folder, per_class=1, variants=1)
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=".")
    with pytest.raises(ArchiveError, match="SHA-256 .* expected 0000"):
        fetch_folder(str(archive), "0" * 64, tmp_path / "raw" / "images", max_bytes=2**30)
    import hashlib
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    fetch_folder(str(archive), digest, tmp_path / "raw" / "images", max_bytes=2**30)
    data, _ = load(tmp_path / "raw" / "images", 32, "rgb", "fail")
    assert len(data.images) == 3


@pytest.mark.slow
def test_dvc_repro_end_to_end_on_an_image_folder_archive(tmp_path):
    """The README's switch: dataset.kind=image_folder with a .zip source, bad files skipped."""
    import hashlib
    import json

    from tests.conftest import BIN, make_pipeline_repo, run

    photos = tmp_path / "photos"
    make_photo_folder(photos, per_class=12, variants=2)
    (photos / "flower" / "empty.jpg").write_bytes(b"")
    (photos / "china" / "notes.jpg").write_text("not an image")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(photos.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(photos).as_posix())

    def edit(params):
        params["dataset"].update(kind="image_folder", source=str(archive), image_size=32, on_bad_image="skip",
                                 source_sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
        params["split"].update(val_fraction=0.2, test_fraction=0.25, audit_recall_pairs=100)
        params["bottleneck"]["batch_size"] = 32
        params["train"]["head"].update(epochs=30, patience=5, hidden_units=[32])

    repo = make_pipeline_repo(tmp_path / "repo", edit)
    run([BIN / "dvc", "repro"], repo)
    data = json.loads((repo / "metrics" / "data.json").read_text())
    assert data["images"] == 72 and data["skipped_bad_images"] == 2
    assert {s["path"] for s in data["skipped"]} == {"flower/empty.jpg", "china/notes.jpg"}
    ev = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert set(ev["test"]["f1"]) == {"china", "flower", "inverted"} and ev["test"]["images"] > 0
    leak = json.loads((repo / "metrics" / "leakage.json").read_text())
    assert leak["sources_in_more_than_one_split"] == 0
    info = json.loads((repo / "models" / "classifier.json").read_text())
    assert info["input_shape"] == [32, 32, 3] and ev["export"]["agreement_with_pipeline_test"] == 1.0
    assert "metrics/data.json" in run([BIN / "dvc", "metrics", "show"], repo).stdout
    # The label audit scores each train/val photo once (its variants are its group's), in folds by group.
    labels = json.loads((repo / "metrics" / "labels.json").read_text())
    split = json.loads((repo / "metrics" / "split.json").read_text())
    assert labels["images_scored"] == {"train": split["train_images"], "val": split["val_images"]}
    assert 2 <= labels["folds"] <= 5 and labels["injected_flips"]["flipped"] >= 0


def test_archive_from_an_http_url(tmp_path):
    """The real download path (requests + retries), served by a loopback HTTP server."""
    import functools
    import hashlib
    import http.server
    import threading

    folder = tmp_path / "photos"
    make_photo_folder(folder, per_class=1, variants=2)
    www = tmp_path / "www"
    www.mkdir()
    with tarfile.open(www / "photos.tar.gz", "w:gz") as tf:
        tf.add(folder, arcname="photos-v1")
    (www / "page.zip").write_text("<html>moved</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        digest = hashlib.sha256((www / "photos.tar.gz").read_bytes()).hexdigest()
        fetch_folder(f"{url}/photos.tar.gz", digest, tmp_path / "raw" / "images", max_bytes=2**30, retries=0)
        data, _ = load(tmp_path / "raw" / "images", 32, "rgb", "fail")   # photos-v1/ is looked into
        assert len(data.images) == 6 and data.class_names() == ["china", "flower", "inverted"]
        with pytest.raises(ArchiveError, match="could not download .*/missing.zip: HTTP 404"):
            fetch_folder(f"{url}/missing.zip", None, tmp_path / "raw2" / "images", max_bytes=2**30, retries=0)
        with pytest.raises(ArchiveError, match="page.zip: not a readable .zip or .tar archive"):
            fetch_folder(f"{url}/page.zip", None, tmp_path / "raw3" / "images", max_bytes=2**30, retries=0)
    finally:
        server.shutdown()
        server.server_close()


def _garment(rng, size=32):
    blob = cv2.GaussianBlur(rng.uniform(0, 255, (size - 6, size - 6)).astype(np.float32), (0, 0), 2.0)
    img = np.zeros((size, size, 3), np.uint8)
    img[3:-3, 3:-3] = ((blob - blob.min()) / (np.ptp(blob) + 1e-6) * 200 + 30).astype(np.uint8)[..., None]
    return img


def test_nohash_names_group_mixed_extensions_nested_folders_and_underscored_stems(tmp_path):
    """Copies are mirrored (never byte-identical), so only the name can group them here."""
    rng = np.random.default_rng(0)
    files = {  # path -> (photo, mirrored?)
        "cat/cat1.jpg": (0, False), "cat/cat1_nohash_flip.png": (0, True),
        "cat/2019/my_cat_2.png": (1, False), "cat/2019/my_cat_2_nohash_a_b.bmp": (1, True),
        "cat/my_cat_2.png": (2, False),                       # same stem, other folder: another photo
        "dog/rex.webp": (3, False), "dog/rex_nohash_.jpg": (3, True), "dog/rex_2.png": (4, False),
    }
    photos = [_garment(rng) for _ in range(5)]
    for rel, (k, mirrored) in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img = photos[k][:, ::-1] if mirrored else photos[k]
        params = [cv2.IMWRITE_JPEG_QUALITY, 100] if path.suffix == ".jpg" else []
        assert cv2.imwrite(str(path), np.ascontiguousarray(img), params)
    data, _ = load(tmp_path, 32, "rgb", "fail")
    source = dict(zip(data.manifest["id"], data.manifest["source_id"]))
    assert source["cat/cat1.jpg"] == source["cat/cat1_nohash_flip.png"] == "cat/cat1"
    assert source["cat/2019/my_cat_2.png"] == source["cat/2019/my_cat_2_nohash_a_b.bmp"] == "cat/2019/my_cat_2"
    assert source["cat/my_cat_2.png"] == "cat/my_cat_2"
    assert source["dog/rex.webp"] == source["dog/rex_nohash_.jpg"] == "dog/rex" != source["dog/rex_2.png"]
    for seed in range(6):
        out = assign_splits(data, 0.4, seed, test_fraction=0.3).manifest.set_index("id")
        for a, b in (("cat/cat1.jpg", "cat/cat1_nohash_flip.png"), ("dog/rex.webp", "dog/rex_nohash_.jpg"),
                     ("cat/2019/my_cat_2.png", "cat/2019/my_cat_2_nohash_a_b.bmp")):
            assert out.loc[a, "split"] == out.loc[b, "split"]


def test_nohash_names_group_across_pre_split_directories(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "val", "test"):
        for cls in ("a", "b"):
            for i in range(3):
                (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / split / cls / f"{split}_{i}.png"), _garment(rng))
    photo = _garment(rng)
    cv2.imwrite(str(tmp_path / "test" / "a" / "shared.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 100])
    cv2.imwrite(str(tmp_path / "train" / "a" / "shared_nohash_m.png"), np.ascontiguousarray(photo[:, ::-1]))
    cv2.imwrite(str(tmp_path / "val" / "a" / "shared_nohash_2.png"), np.ascontiguousarray(photo[:, ::-1]))
    data, _ = load(tmp_path, 32, "rgb", "fail")
    out = assign_splits(data, 0.2, 0).manifest.set_index("id")
    assert out.loc["test/a/shared.jpg", "split"] == "test"
    assert out.loc["train/a/shared_nohash_m.png", "split"] == out.loc["val/a/shared_nohash_2.png", "split"] == "excluded"


def _split_stage_on(tmp_path, monkeypatch, images: dict[str, np.ndarray], **split):
    """stages.split.main on a folder of images, in a scratch project directory."""
    import stages.split
    from imgclf.config.params import Params

    for rel, img in images.items():
        (tmp_path / "data/raw/images" / rel).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "data/raw/images" / rel), np.ascontiguousarray(img))
    monkeypatch.chdir(tmp_path)
    params = Params.model_validate({
        "dataset": {"kind": "image_folder", "source": "x", "image_size": 32},
        "download": {"sources": ["x"], "files": {"a": "0" * 64}},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2, "audit_recall_pairs": 100, **split},
        "augment": {"augmenters": [{"name": "Fliplr", "args": {"p": 0.5}}]}}, strict=False)
    stages.split.main(params)
    import json
    return json.loads((tmp_path / "metrics/leakage.json").read_text())


def test_a_folder_of_unmarked_copies_splits_with_every_copy_beside_its_original(tmp_path, monkeypatch):
    """Every photo has one copy with no name marker (mirrored, shifted or re-exposed): the
    near-duplicate audit groups each with its original, so no pair straddles."""
    rng = np.random.default_rng(2)
    images = {}
    for i in range(40):
        photo = _garment(rng)
        copy = [photo[:, ::-1], np.roll(photo, 2, axis=1), np.clip(photo.astype(int) + 20, 0, 255)][i % 3]
        images[f"{'ab'[i % 2]}/p{i}.png"] = photo
        images[f"{'ab'[i % 2]}/copy_of_p{i}.png"] = np.asarray(copy, np.uint8)
    leak = _split_stage_on(tmp_path, monkeypatch, images)
    from imgclf.data.manifest import load_set
    m = load_set(tmp_path / "data/split").manifest.set_index("id")
    for i in range(40):
        cls = "ab"[i % 2]
        assert m.loc[f"{cls}/p{i}.png", "split"] == m.loc[f"{cls}/copy_of_p{i}.png", "split"]
    assert leak["near_duplicate_pairs"] >= 40 and leak["audit_recall_own_variants"] == 1.0
    assert leak["near_duplicate_pairs_train_val"] == leak["near_duplicate_pairs_test_train"] == 0


def _unmarked_copies(rng, n=40):
    images = {}
    for i in range(n):
        photo = _garment(rng)
        copy = [photo[:, ::-1], np.roll(photo, 2, axis=1), np.clip(photo.astype(int) + 20, 0, 255)][i % 3]
        images[f"{'ab'[i % 2]}/p{i}.png"] = photo
        images[f"{'ab'[i % 2]}/copy_of_p{i}.png"] = np.asarray(copy, np.uint8)
    return images


@pytest.mark.parametrize("mode", ["report", "off"])
def test_report_and_off_modes_do_not_group_unmarked_copies(tmp_path, monkeypatch, mode):
    """report: the audit finds and counts the copies but leaves the split to names and pixels;
    off: no search at all. With 40 copies split by hash, some land on the other side of the line."""
    leak = _split_stage_on(tmp_path, monkeypatch, _unmarked_copies(np.random.default_rng(2)), near_duplicates=mode)
    straddling = sum(leak[f"near_duplicate_pairs_{k}"] for k in ("train_val", "test_train", "test_val"))
    assert leak["near_duplicate_mode"] == mode
    if mode == "report":
        assert leak["near_duplicate_pairs"] >= 40 and straddling > 0 and leak["audit_recall_own_variants"] == 1.0
    else:
        assert leak["near_duplicate_pairs"] == 0 and straddling == 0 and leak["audit_recall_own_variants"] is None


def test_nohash_names_alone_group_copies_that_are_not_identical(tmp_path, monkeypatch):
    """With the near-duplicate search off and no two files identical, only the `_nohash_` names
    can keep each photo's copies on one side."""
    rng = np.random.default_rng(4)
    images = {}
    for i in range(30):
        photo, cls = _garment(rng), "ab"[i % 2]
        images[f"{cls}/p{i}.png"] = photo
        images[f"{cls}/p{i}_nohash_1.png"] = np.clip(photo.astype(int) + 9, 0, 255).astype(np.uint8)
        images[f"{cls}/p{i}_nohash_2.png"] = np.roll(photo, 1, axis=0)
    _split_stage_on(tmp_path, monkeypatch, images, near_duplicates="off")
    from imgclf.data.manifest import load_set
    m = load_set(tmp_path / "data/split").manifest.set_index("id")
    assert m["sha256"].nunique() == 90
    sides = [{m.loc[f"{'ab'[i % 2]}/p{i}{s}.png", "split"] for s in ("", "_nohash_1", "_nohash_2")} for i in range(30)]
    assert all(len(s) == 1 for s in sides)
    assert len(set().union(*sides)) == 3                      # and the photos do spread over train, val, test


def test_a_folder_that_is_one_photo_many_times_is_a_clear_error(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    photos = {"a": _garment(rng), "b": _garment(rng)}            # each class: one photo, shifted copies
    images = {f"{c}/p{i}.png": np.roll(photos[c], i % 3, axis=1) for i in range(12) for c in "ab"}
    from imgclf.data.manifest import DataError
    with pytest.raises(DataError, match=r"24 images form only 2 groups of copies .* leaves \d+ train and \d+ val"):
        _split_stage_on(tmp_path / "two", monkeypatch, images)
    # the same photo in both classes: refused, naming the files
    images = {f"{'ab'[i % 2]}/p{i}.png": np.roll(photos["a"], i % 3, axis=1) for i in range(12)}
    with pytest.raises(DataError, match=r"carry different labels.*\n  a/p0.png \(a\), a/p6.png \(a\), b/p3.png \(b\)"):
        _split_stage_on(tmp_path / "mixed", monkeypatch, images)


@pytest.mark.parametrize("colour", ["grey", "rgb"])
def test_predict_converts_a_file_exactly_as_the_split_stage_did(tmp_path, colour):
    """Train/serve consistency: imgclf-predict's input array for a file equals the array the
    folder loader (what the split stage calls) made of it, byte for byte, for a source smaller
    and one larger than the model's input, in PNG and JPEG."""
    from imgclf.models.predict import load_image

    rng = np.random.default_rng(3)
    sizes = {"small.png": (19, 23), "large.jpg": (90, 71), "same.png": (28, 28), "wide.png": (120, 40)}
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for name, (h, w) in sizes.items():
            img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
            cv2.imwrite(str(tmp_path / cls / name), img)
    data, _ = load(tmp_path, 28, colour, "fail")
    shape = (28, 28) if colour == "grey" else (28, 28, 3)
    for row, file_id in enumerate(data.manifest["id"]):
        served = load_image(tmp_path / file_id, shape)
        assert served.dtype == data.images.dtype and served.shape == data.images[row].shape
        assert served.tobytes() == data.images[row].tobytes(), file_id


def test_predict_names_a_file_it_cannot_serve(tmp_path):
    from imgclf.models.predict import load_image

    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(BadImage, match=r"scan\.pdf: unsupported extension '\.pdf'"):
        load_image(tmp_path / "scan.pdf", (28, 28))
    (tmp_path / "photo.png").write_bytes(_jpeg_bytes())
    with pytest.raises(BadImage, match=r"photo\.png: wrong extension"):
        load_image(tmp_path / "photo.png", (28, 28))


def test_a_folder_is_decoded_into_one_array_not_held_twice(tmp_path):
    """Peak memory of loading is the decoded images once (a list of images, then np.stack, held
    them twice: a 100,000-photo folder's split stage peaked at 14 GiB)."""
    import tracemalloc

    rng = np.random.default_rng(3)
    for i in range(300):
        (tmp_path / f"c{i % 3}").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / f"c{i % 3}" / f"{i}.png"), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    (tmp_path / "c0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    tracemalloc.start()
    data, report = load(tmp_path, 96, "rgb", "skip")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.images.shape == (300, 96, 96, 3) and len(report.skipped) == 1
    assert peak < 1.3 * data.images.nbytes, f"peak {peak / data.images.nbytes:.2f}x the images"


def _split_stage_peak_mib(project: Path, image_size: int) -> tuple[int, Path]:
    import re
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(kind="image_folder", source="unused", image_size=image_size, on_bad_image="skip")
    params["split"].update(audit_recall_pairs=0)      # its variants are full-size images
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "stages.split"], cwd=project, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(re.search(r"split: done in .* s, peak RSS (\d+) MiB", proc.stdout)[1]), project / "data" / "split"


def test_the_split_stage_decodes_a_folder_into_its_output_file_not_into_memory(tmp_path):
    """Users' folders are larger than memory: the stage must write the decoded pixels to
    data/split/images.npy as it goes and read them back a chunk at a time. 300 files at 768 px RGB
    are 531 MB of pixels, 472 MB more than at 256 px: held in memory (as before), the peak RSS grew
    by 450 MiB; read back in chunks of about 64 MiB it grows by about 80."""
    project = tmp_path / "project"
    make_photo_folder(project / "data" / "raw" / "images", per_class=50, variants=2)
    (project / "data" / "raw" / "images" / "flower" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 99)
    small_mib, _ = _split_stage_peak_mib(project, 256)
    large_mib, split_dir = _split_stage_peak_mib(project, 768)
    assert large_mib - small_mib < 200, f"peak RSS {large_mib} MiB at 768 px against {small_mib} MiB at 256 px"
    data, report = load(project / "data" / "raw" / "images", 768, "rgb", "skip")
    assert len(report.skipped) == 1                                   # the stage's file shrank to the decoded rows
    np.testing.assert_array_equal(np.load(split_dir / "images.npy"), data.images)
    assert not [p.name for p in split_dir.iterdir() if p.name.startswith(".")]   # no temp file left


def test_a_missing_source_is_named_and_a_relative_one_explained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchiveError, match=r"dataset.source photos: no such file or directory \(a relative "
                                           r"path is read from .*give an absolute path\)"):
        fetch_folder("photos", None, tmp_path / "raw" / "images", max_bytes=2**30)
    with pytest.raises(ArchiveError, match=r"dataset.source /nowhere/photos.zip: no such file or directory$"):
        fetch_folder("/nowhere/photos.zip", None, tmp_path / "raw" / "images", max_bytes=2**30)
    assert not (tmp_path / "raw" / "images").exists()
