"""Any folder of labelled images as an ImageSet: one subdirectory per class, optionally under
top-level train/ val/ test/ directories (then respected as the split).

Images are decoded once with OpenCV (EXIF orientation honoured), converted to the configured
colour and size, and stored as one uint8 array. Source groups by name (TF retrain.py's
convention, see `name_group`), or a CSV maps files to groups; the split stage adds identical
content and near-duplicates. Bad files (empty, truncated, not an image, unreadable) fail the
stage naming the file, or with on_bad_image=skip are listed with their reason; never dropped
silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from imgclf.manifest import SPLITS, DataError, ImageSet
from imgclf.progress import progress

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_NOHASH = re.compile(r"^(?P<stem>.+?)_nohash_.*$")


@dataclass
class FolderReport:
    images: int = 0
    skipped: list[dict] = field(default_factory=list)    # {"path", "reason"}
    ignored: list[str] = field(default_factory=list)     # files with other extensions
    pre_split: bool = False

    def as_metrics(self) -> dict:
        return {"images": self.images, "skipped_bad_images": len(self.skipped),
                "ignored_non_image_files": len(self.ignored), "pre_split": self.pre_split,
                "skipped": self.skipped, "ignored": self.ignored[:100]}


class BadImage(DataError):
    pass


def decode(path: Path, size: int, colour: str) -> np.ndarray:
    """One file -> uint8 (size, size) grey or (size, size, 3) RGB; BadImage names the reason."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImage(f"{path}: unreadable ({err.strerror or err})") from None
    if not data:
        raise BadImage(f"{path}: empty file")
    kind = _sniff(data)
    if kind is None:
        raise BadImage(f"{path}: not an image (no JPEG, PNG, BMP or WebP signature)")
    if _EXT_KIND[path.suffix.lower()] != kind:
        raise BadImage(f"{path}: wrong extension (the content is {kind.upper()}, the name says "
                       f"{path.suffix.lower()})")
    flag = cv2.IMREAD_GRAYSCALE if colour == "grey" else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise BadImage(f"{path}: not a decodable image (corrupt, truncated or not an image)")
    if _truncated(data, path):
        raise BadImage(f"{path}: truncated (the file ends before the image does)")
    if colour == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    interp = cv2.INTER_AREA if img.shape[0] >= size and img.shape[1] >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


_EXT_KIND = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".bmp": "bmp", ".webp": "webp"}


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _truncated(data: bytes, path: Path) -> bool:
    """OpenCV decodes a truncated JPEG/PNG with a grey tail and only a warning: check the end."""
    if data[:3] == b"\xff\xd8\xff":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def name_group(class_name: str, within_class: Path) -> str:
    """`<stem>_nohash_<anything>.<ext>` is one photo with `<stem>.<any ext>`: same class, same
    sub-folder below the class folder, whatever the extension and the train/val/test folder.
    The stem is everything before the first `_nohash_`, so it may contain underscores."""
    match = _NOHASH.match(within_class.stem)
    stem = match["stem"] if match else within_class.stem
    return (Path(class_name) / within_class.parent / stem).as_posix()


def read_groups_csv(path: Path) -> dict[str, str]:
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the group file: {err}") from None
    if not {"file", "group"} <= set(frame.columns):
        raise DataError(f"{path}: expected columns 'file' and 'group', found {list(frame.columns)}")
    return dict(zip(frame["file"], frame["group"]))


def _unwrap(root: Path) -> Path:
    """Archives often wrap everything in one top-level folder (photos-v1/...): look inside it."""
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in SPLITS:
            root = entries[0]
        else:
            return root


@dataclass
class Scan:
    """The image files of a folder, in the order their rows will have, before any is decoded."""
    root: Path
    candidates: list[tuple]     # (path, relative name, class index, class, its directory, official split)
    report: FolderReport

    def __len__(self) -> int:
        return len(self.candidates)


def image_shape(size: int, colour: str) -> tuple[int, ...]:
    return (size, size) + ((3,) if colour == "rgb" else ())


def scan(root: Path | str) -> Scan:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    root = _unwrap(root)
    subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    pre_split = bool(subdirs) and set(subdirs) <= set(SPLITS)
    if pre_split and "train" not in subdirs:
        raise DataError(f"{root}: split directories {subdirs} have no train/")
    split_roots = [(s, root / s) for s in subdirs] if pre_split else [(None, root)]
    class_names = sorted({c.name for _, sr in split_roots for c in sr.iterdir()
                          if c.is_dir() and not c.name.startswith(".")})
    if len(class_names) < 2:
        raise DataError(f"{root}: found {len(class_names)} class subdirectories {class_names}; a classifier "
                        f"needs at least 2 (expected <class>/<image> or train|val|test/<class>/<image>)")
    report = FolderReport(pre_split=pre_split)
    candidates = []
    for official, split_root in split_roots:
        for label, cls in enumerate(class_names):
            cls_dir = split_root / cls
            if not cls_dir.is_dir():
                continue
            for path in sorted(p for p in cls_dir.rglob("*") if p.is_file() or p.is_symlink()):
                rel = path.relative_to(root).as_posix()
                if path.name.startswith("."):
                    continue
                if path.suffix.lower() not in EXTENSIONS:
                    report.ignored.append(rel)
                    continue
                candidates.append((path, rel, label, cls, cls_dir, official))
    if not candidates:
        raise DataError(f"{root}: no readable images with extensions {sorted(EXTENSIONS)}")
    return Scan(root, candidates, report)


def decode_into(found: Scan, out, size: int, colour: str, on_bad_image: str,
                groups: dict[str, str] | None = None, show_progress: bool = True) -> tuple[pd.DataFrame, FolderReport]:
    """Decode every file of `found` into consecutive rows of `out` (an array, or a RowWriter over
    the stage's output file, so a folder of any size is never held in memory) and return the
    manifest of the rows written: as many as files decoded, the first rows of `out`."""
    report, rows = found.report, []
    with progress(total=len(found), desc="decode", unit="img", disable=not show_progress) as bar:
        for path, rel, label, cls, cls_dir, official in found.candidates:
            bar.update()
            try:
                img = decode(path, size, colour)
            except BadImage as err:
                if on_bad_image == "fail":
                    raise BadImage(f"{err} (set dataset.on_bad_image: skip to list and skip such files)") from None
                report.skipped.append({"path": rel, "reason": str(err).split(": ", 1)[-1]})
                continue
            out[len(rows)] = img
            source = (groups or {}).get(rel) or name_group(cls, path.relative_to(cls_dir))
            rows.append({"id": rel, "source_id": source, "label": label, "class_name": cls,
                         "official_split": official or "pool"})
    if not rows:
        raise DataError(f"{found.root}: none of {len(found)} image files could be "
                        f"decoded ({len(report.skipped)} skipped; see metrics/data.json)")
    report.images = len(rows)
    return pd.DataFrame(rows), report


def load(root: Path | str, size: int, colour: str, on_bad_image: str,
         groups: dict[str, str] | None = None) -> tuple[ImageSet, FolderReport]:
    """The folder as one in-memory ImageSet (the split stage decodes into its output file instead)."""
    found = scan(root)
    images = np.empty((len(found), *image_shape(size, colour)), np.uint8)
    manifest, report = decode_into(found, images, size, colour, on_bad_image, groups, show_progress=False)
    return ImageSet(images[:len(manifest)], manifest), report
