"""A realistic folder, the kind people zip up and share: OS clutter, odd names, every image
encoding, broken and hostile files, links of every kind. As a directory, as a zip made the way
macOS Finder makes one (wrapper folder, __MACOSX/ AppleDouble files, decomposed accents, links
stored as links) and as a .tar.gz, through the real download and split stage entry points:
every file is used, skipped with its reason or ignored with its reason, the counts add up to
the files present, and nothing gives a traceback."""

import json
import os
import stat
import struct
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import REPO

USED, SKIPPED, IGNORED = "used", "skipped", "ignored"


_SAMPLES = None


def _photo(rng, h=40, w=40) -> np.ndarray:
    """A crop of a real photograph at a random place and scale: no two files are copies."""
    global _SAMPLES
    if _SAMPLES is None:
        from sklearn.datasets import load_sample_images
        _SAMPLES = load_sample_images().images
    photo = _SAMPLES[int(rng.integers(0, 2))]
    side = int(rng.integers(60, 200))
    y, x = int(rng.integers(0, photo.shape[0] - side)), int(rng.integers(0, photo.shape[1] - side))
    return cv2.resize(np.ascontiguousarray(photo[y:y + side, x:x + side]), (w, h), interpolation=cv2.INTER_AREA)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims width x height, with a few bytes of data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_corpus(root: Path, outside: Path) -> dict[str, tuple[str, str]]:
    """Build the folder; return {relative path: (outcome, reason substring)} for every file and
    link in it, as a user's folder holds them (outcomes for the directory form)."""
    rng = np.random.default_rng(0)
    expect: dict[str, tuple[str, str]] = {}

    def img(rel: str, outcome=USED, reason="", **save):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(rng)).save(path, **save)
        expect[rel] = (outcome, reason)

    def raw(rel: str, data: bytes, outcome: str, reason: str):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expect[rel] = (outcome, reason)

    for cls in ("china", "flower", "café crème"):              # unicode and a space in a class name
        for i in range(4):
            img(f"{cls}/photo {i}.jpg")
    img("china/nested/deeper/n1.png")                         # nested sub-folders
    img("china/-leading-dash.png")
    img("flower/fleur été.JPG", format="JPEG")               # upper-case extensions
    img("flower/UPPER.PNG", format="PNG")
    img("flower/scan.tif")
    img("flower/anim.gif")
    sixteen = (_photo(rng).astype(np.uint16) * 257)
    (root / "china/sixteen-bit.png").parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "china/sixteen-bit.png"), sixteen)
    expect["china/sixteen-bit.png"] = (USED, "")
    rgba = np.dstack([_photo(rng), np.where(np.arange(40) < 20, 0, 255).astype(np.uint8)[None].repeat(40, 0)])
    Image.fromarray(rgba, "RGBA").save(root / "china/alpha.png")
    expect["china/alpha.png"] = (USED, "")
    Image.fromarray(_photo(rng)).convert("L").save(root / "china/grey.jpg")
    expect["china/grey.jpg"] = (USED, "")
    Image.fromarray(_photo(rng)).convert("CMYK").save(root / "china/cmyk.jpg")
    expect["china/cmyk.jpg"] = (USED, "")
    exif = Image.Exif()
    exif[0x0112] = 6
    img("china/rotated.jpg", exif=exif.tobytes())
    # very large: a JPEG decoded at reduced scale, a PNG refused by its size (limit 0.5 MP in params)
    Image.fromarray(cv2.resize(_photo(rng), (1000, 800))).save(root / "flower/big.jpg")
    expect["flower/big.jpg"] = (USED, "")
    Image.fromarray(cv2.resize(_photo(rng), (1000, 800))).save(root / "flower/big.png")
    expect["flower/big.png"] = (SKIPPED, "1000x800 pixels (1 megapixels) is over the 0.5 megapixel limit")
    raw("flower/bomb.png", _png_claiming(60000, 60000), SKIPPED, "60000x60000 pixels (3,600 megapixels)")
    ok, jpeg = cv2.imencode(".jpg", _photo(rng))
    raw("china/empty.jpg", b"", SKIPPED, "empty file")
    raw("china/truncated.jpg", jpeg.tobytes()[:-60], SKIPPED, "truncated (the file ends before the image does)")
    raw("china/really-a-jpeg.png", jpeg.tobytes(), SKIPPED, "wrong extension (the content is JPEG")
    raw("china/notes.jpg", b"shopping list\n", SKIPPED, "not an image")
    raw("china/IMG_0001.HEIC", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", SKIPPED, "HEIC/HEIF is not supported")
    # clutter and things that are not data
    raw(".DS_Store", b"\0\0\0\1Bud1", IGNORED, "OS metadata")
    raw("china/.DS_Store", b"\0\0\0\1Bud1", IGNORED, "OS metadata")
    raw("china/._photo 0.jpg", b"\0\5\26\7AppleDouble", IGNORED, "OS metadata")
    raw("flower/Thumbs.db", b"\xd0\xcf\x11\xe0", IGNORED, "OS metadata")
    raw("flower/desktop.ini", b"[.ShellClassInfo]", IGNORED, "OS metadata")
    raw(".hidden class/a.jpg", jpeg.tobytes(), IGNORED, "hidden")
    raw("china/.hidden.jpg", jpeg.tobytes(), IGNORED, "hidden")
    raw("README.md", b"# my photos\n", IGNORED, "not in a class folder")
    raw("flower/labels.csv", b"file,label\n", IGNORED, "not an image file type (.csv)")
    (root / "empty class").mkdir()                               # a class folder without images
    (root / "only junk").mkdir()
    raw("only junk/notes.txt", b"todo", IGNORED, "not an image file type (.txt)")
    # links: to a file inside and outside the folder, to a folder, in a loop, to nothing
    outside.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo(rng)).save(outside / "elsewhere.png")
    (outside / "a folder").mkdir(exist_ok=True)
    Image.fromarray(_photo(rng)).save(outside / "a folder" / "x.png")
    links = {"flower/link-inside.jpg": ("photo 1.jpg", USED, ""),
             "flower/link-outside.png": (str(outside / "elsewhere.png"), USED, ""),
             "china/loop-a.jpg": ("loop-b.jpg", SKIPPED, "symbolic-link loop"),
             "china/loop-b.jpg": ("loop-a.jpg", SKIPPED, "symbolic-link loop"),
             "china/gone.jpg": ("nothing-here.jpg", SKIPPED, "broken link"),
             "china/alias": ("../flower", IGNORED, "link to a folder"),
             "linked class": (str(outside / "a folder"), IGNORED, "link to a folder")}
    for rel, (target, outcome, reason) in links.items():
        os.symlink(target, root / rel)
        expect[rel] = (outcome, reason)
    return expect


def present(root: Path) -> set[str]:
    """Every file and link in the folder, found independently of the code under test."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.add(Path(dirpath, name).relative_to(root).as_posix())
    return found


def finder_zip(folder: Path, archive: Path) -> None:
    """What macOS Finder's Compress writes: one wrapper folder, directory entries, links stored as
    links, decomposed (NFD) UTF-8 names, and __MACOSX/._name AppleDouble files beside the data."""
    top = folder.name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            here = Path(dirpath)
            rel_dir = here.relative_to(folder.parent).as_posix()
            info = zipfile.ZipInfo(unicodedata.normalize("NFD", rel_dir) + "/")
            info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
            info.create_system = 3
            zf.writestr(info, b"")
            for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
                path = here / name
                arc = unicodedata.normalize("NFD", path.relative_to(folder.parent).as_posix())
                info = zipfile.ZipInfo(arc)
                info.create_system = 3
                if path.is_symlink():
                    info.external_attr = (stat.S_IFLNK | 0o755) << 16
                    zf.writestr(info, os.readlink(path))
                else:
                    info.external_attr = (stat.S_IFREG | 0o644) << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, path.read_bytes())
                    if name.endswith(".jpg") and not name.startswith("."):
                        zf.writestr(f"__MACOSX/{top}/{Path(arc).parent.relative_to(top).as_posix()}/._{name}".replace("/./", "/"),
                                    b"\0\5\26\7AppleDouble")


def _project(tmp_path: Path, source: Path, on_bad_image: str) -> Path:
    project = tmp_path / f"project-{source.name}-{on_bad_image}"
    project.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(kind="image_folder", source=str(source), image_size=24, on_bad_image=on_bad_image,
                             max_image_megapixels=0.5)
    params["split"].update(audit_recall_pairs=20, val_fraction=0.2, test_fraction=0.2)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def run_stage(project: Path, name: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _outcomes(not_used, used_ids: list[str]) -> dict[str, tuple[str, str]]:
    out = {rel: (USED, "") for rel in used_ids}
    out.update({r.path: (r.outcome, r.reason) for r in not_used.itertuples() if r.outcome in (SKIPPED, IGNORED)})
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    folder = base / "photos"
    expect = make_corpus(folder, base / "outside")
    assert set(expect) == present(folder)
    finder_zip(folder, base / "photos.zip")
    with tarfile.open(base / "photos.tar.gz", "w:gz") as tf:
        tf.add(folder, arcname="photos")
    return base, folder, expect


def _expected_for(kind: str, expect: dict, zip_names: list[str]) -> dict[str, tuple[str, str]]:
    """The directory's outcomes, as the same files arrive in an archive (links cannot point
    outside an archive; the Finder zip adds __MACOSX/ and nests everything in photos/)."""
    if kind == "directory":
        return expect
    out = {f"photos/{rel}": v for rel, v in expect.items()}
    out["photos/flower/link-outside.png"] = (IGNORED, "outside the archive")
    out["photos/linked class"] = (IGNORED, "outside the archive")
    out["photos/README.md"] = (IGNORED, "not in a class folder")
    if kind == "zip":
        out.update({unicodedata.normalize("NFC", n): (IGNORED, "OS metadata") for n in zip_names
                    if n.startswith("__MACOSX/") and not n.endswith("/")})
    return out


@pytest.mark.parametrize("kind", ["directory", "zip", "tar.gz"])
def test_every_file_of_a_realistic_folder_is_used_skipped_or_ignored_with_its_reason(tmp_path, corpus, kind):
    base, folder, expect = corpus
    source = {"directory": folder, "zip": base / "photos.zip", "tar.gz": base / "photos.tar.gz"}[kind]
    project = _project(tmp_path, source, "skip")
    for stage in ("download", "split"):
        proc = run_stage(project, stage)
        assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((project / "metrics" / "data.json").read_text())
    manifest = pd.read_csv(project / "data" / "split" / "manifest.csv")
    zip_names = zipfile.ZipFile(base / "photos.zip").namelist()
    wanted = _expected_for(kind, expect, zip_names)
    prefix = "" if kind == "directory" else "photos/"
    not_used = pd.read_csv(project / "data" / "split" / "not_used.csv")     # the complete list
    got = _outcomes(not_used, list(manifest["id"]))
    listed = {(i["path"], SKIPPED, i["reason"]) for i in data["skipped"]} | {
        (i["path"], IGNORED, i["reason"]) for i in data["ignored"]}         # metrics/data.json's lists
    assert listed == {(p, o, r) for p, (o, r) in got.items() if o != USED}
    assert set(got) == set(wanted), (set(got) ^ set(wanted))
    wrong = {rel: (got[rel], want) for rel, want in wanted.items()
             if got[rel][0] != want[0] or want[1] not in got[rel][1]}
    assert not wrong, wrong
    # the counts add up to the files present, and what was left out is said
    assert data["files"] == len(wanted) == data["images"] + data["skipped_bad_images"] + data["ignored_files"]
    assert sum(data["ignored_by_reason"].values()) == data["ignored_files"]
    assert not any("." in key for key in data["ignored_by_reason"])      # dvc metrics diff splits keys on dots
    assert sorted(manifest["class_name"].unique()) == ["café crème", "china", "flower"]
    assert {f["path"].removeprefix(prefix): f["reason"] for f in data["ignored_folders"]} == {
        "empty class": "no image files", "only junk": "no image files"}
    assert sorted(not_used.loc[not_used.outcome == "class folder left out", "path"]) == [
        prefix + "empty class", prefix + "only junk"]
    assert "class folder left out: " + prefix + "empty class" in proc.stdout
    # transparent pixels over white, EXIF orientation applied, 16-bit read as 8-bit
    images = np.load(project / "data" / "split" / "images.npy")
    row = manifest.index[manifest["id"] == prefix + "china/alpha.png"][0]
    assert images[row][:, :10].min() == 255 and images[row][:, -10:].mean() < 250


@pytest.mark.parametrize("kind", ["directory", "zip", "tar.gz"])
def test_with_on_bad_image_fail_the_first_bad_file_stops_the_run_in_one_line(tmp_path, corpus, kind):
    base, folder, _ = corpus
    source = {"directory": folder, "zip": base / "photos.zip", "tar.gz": base / "photos.tar.gz"}[kind]
    project = _project(tmp_path, source, "fail")
    assert run_stage(project, "download").returncode == 0
    proc = run_stage(project, "split")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("decode:")]
    assert len(lines) == 1 and lines[0].startswith("error: split: ") and "dataset.on_bad_image: skip" in lines[0]
    assert f"china/IMG_0001.HEIC in {source}: HEIC/HEIF is not supported" in lines[0]
    assert not (project / "data" / "split" / "images.npy").exists()


def test_a_class_whose_every_file_is_bad_is_left_out_and_listed(tmp_path):
    from imgclf.data.image_folder import load

    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(_photo(rng)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.jpg").write_text("not an image")
    data, report = load(tmp_path, 16, "rgb", "skip")
    assert data.class_names() == ["a", "b"] and sorted(data.manifest["label"].unique()) == [0, 1]
    assert report.ignored_folders == [{"path": "c", "reason": "every image file skipped"}]


def test_names_that_are_not_utf8_are_listed_not_crashed_on(tmp_path):
    """Linux keeps a file name's bytes as they are; a zip made on an old Windows machine leaves
    names in its own code page. Such a file is ignored and listed, readable, with the rest."""
    from imgclf.data.image_folder import load

    rng = np.random.default_rng(2)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(_photo(rng)).save(tmp_path / cls / f"{i}.png")
    os.makedirs(os.path.join(os.fsencode(tmp_path), b"caf\xe9"))
    Image.fromarray(_photo(rng)).save(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"a", b"\xff.png")), format="PNG")
    Image.fromarray(_photo(rng)).save(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9", b"x.png")), format="PNG")
    data, report = load(tmp_path, 16, "rgb", "skip")
    assert len(data.images) == 4 and report.files == 6
    assert [(i["path"], i["reason"]) for i in report.ignored] == [
        ("a/\ufffd.png", "file name is not valid UTF-8 (rename it)"),
        ("caf\ufffd/x.png", "file name is not valid UTF-8 (rename it)")]
    report.not_used().to_csv(tmp_path / "not_used.csv", index=False)     # writes, does not raise
    json.dumps(report.as_metrics())
