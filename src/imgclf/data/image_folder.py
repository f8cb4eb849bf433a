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

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from imgclf.core.progress import progress
from imgclf.data.folder_walk import Entry, is_os_metadata, walk
from imgclf.data.manifest import SPLITS, DataError, ImageSet

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
# Image files OpenCV cannot decode: bad images (skipped or fatal), the message says what to do.
UNSUPPORTED = {".heic", ".heif", ".avif"}
DEFAULT_MAX_MEGAPIXELS = 100
LISTED = 1000                   # per list in metrics/data.json; NOT_USED holds them all
NOT_USED = "not_used.csv"
_NOHASH = re.compile(r"^(?P<stem>.+?)_nohash_.*$")
_FORMAT_OF_EXT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP",
                  ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}
_REDUCED = {"grey": ((2, cv2.IMREAD_REDUCED_GRAYSCALE_2), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                     (8, cv2.IMREAD_REDUCED_GRAYSCALE_8)),
            "rgb": ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                    (8, cv2.IMREAD_REDUCED_COLOR_8))}


@dataclass
class FolderReport:
    """Every file of the folder is used, skipped (a bad image, with its reason) or ignored (not
    data, with its reason): `files` = `images` + skipped + ignored, nothing unaccounted for."""
    files: int = 0
    images: int = 0
    skipped: list[dict] = field(default_factory=list)          # {"path", "reason"}
    ignored: list[dict] = field(default_factory=list)          # {"path", "reason"}
    ignored_folders: list[dict] = field(default_factory=list)  # class folders left out, {"path", "reason"}
    pre_split: bool = False

    def not_used(self) -> pd.DataFrame:
        """Every file skipped or ignored and every class folder left out, with its reason: the
        complete list (metrics/data.json lists the first LISTED of each)."""
        rows = ([{"path": i["path"], "outcome": "skipped", "reason": i["reason"]} for i in self.skipped]
                + [{"path": i["path"], "outcome": "ignored", "reason": i["reason"]} for i in self.ignored]
                + [{"path": i["path"], "outcome": "class folder left out", "reason": i["reason"]}
                   for i in self.ignored_folders])
        return pd.DataFrame(sorted(rows, key=lambda r: r["path"].split("/")), columns=["path", "outcome", "reason"])

    def as_metrics(self) -> dict:
        reasons: dict[str, int] = {}
        for item in self.ignored:      # the reason's fixed part, without the details in brackets
            key = item["reason"].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {"files": self.files, "images": self.images, "skipped_bad_images": len(self.skipped),
                "ignored_files": len(self.ignored), "ignored_class_folders": len(self.ignored_folders),
                "pre_split": self.pre_split, "ignored_by_reason": dict(sorted(reasons.items())),
                "skipped": self.skipped[:LISTED], "ignored": self.ignored[:LISTED],
                "ignored_folders": self.ignored_folders[:LISTED], "complete_list": f"data/split/{NOT_USED}"}


class BadImage(DataError):
    pass


@dataclass(frozen=True)
class Decoding:
    """How the split stage turns every file into a training image (imgclf-predict calls the same
    `decode`, with the default pixel limit)."""
    size: int
    colour: str                                   # grey | rgb
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS


def decode(path: Path, size: int, colour: str, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> np.ndarray:
    """One file -> uint8 (size, size) grey or (size, size, 3) RGB; BadImage names the reason.

    The header is read first (Pillow, no pixels decoded), so a file that claims to be huge is
    refused by its size before OpenCV allocates anything; a huge JPEG is decoded at 1/2, 1/4 or
    1/8 scale when that fits. Transparent pixels are composited over white, as a viewer shows them."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImage(f"{path}: unreadable ({err.strerror or err})") from None
    if not data:
        raise BadImage(f"{path}: empty file")
    fmt, width, height, alpha = _header(path, data)
    expected = _FORMAT_OF_EXT.get(path.suffix.lower())
    if expected and expected != fmt:
        raise BadImage(f"{path}: wrong extension (the content is {fmt}, the name says {path.suffix.lower()})")
    flag = cv2.IMREAD_GRAYSCALE if colour == "grey" else cv2.IMREAD_COLOR
    pixels, limit = width * height, max_megapixels * 1e6
    if pixels > limit:
        fits = [f for f, _ in _REDUCED[colour] if pixels / (f * f) <= limit] if fmt == "JPEG" else []
        if not fits:
            raise BadImage(f"{path}: {width}x{height} pixels ({pixels / 1e6:,.0f} megapixels) is over the "
                           f"{max_megapixels:g} megapixel limit (dataset.max_image_megapixels)")
        flag = dict(_REDUCED[colour])[fits[0]]
    if alpha:
        flag = cv2.IMREAD_UNCHANGED
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as err:
        raise BadImage(f"{path}: not decodable ({str(err).strip().splitlines()[-1]})") from None
    if _truncated(data):
        raise BadImage(f"{path}: truncated (the file ends before the image does)")
    if img is None or img.size == 0:
        raise BadImage(f"{path}: not a decodable image (corrupt or not an image)")
    if alpha:
        img = _over_white(img, colour)
    elif colour == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    interp = cv2.INTER_AREA if img.shape[0] >= size and img.shape[1] >= size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def _header(path: Path, data: bytes) -> tuple[str, int, int, bool]:
    """(format, width, height, has transparency) from the header alone."""
    from PIL import Image, UnidentifiedImageError

    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif"):
        raise BadImage(f"{path}: {'AVIF' if data[8:12] == b'avif' else 'HEIC/HEIF'} is not supported "
                       f"(convert it to JPEG or PNG)")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None     # only the header is read; decode() applies its own limit
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height), mode, info = im.format, im.size, im.mode, im.info
    except UnidentifiedImageError:
        raise BadImage(f"{path}: not an image (no JPEG, PNG, BMP, WebP, TIFF or GIF signature)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        if _truncated(data):
            raise BadImage(f"{path}: truncated (the file ends before the image does)") from None
        raise BadImage(f"{path}: not a decodable image ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    fmt = "JPEG" if fmt == "MPO" else fmt        # a camera's multi-picture JPEG is a JPEG
    if fmt not in _FORMAT_OF_EXT.values():
        raise BadImage(f"{path}: {fmt} images are not supported (convert it to JPEG or PNG)")
    alpha = fmt != "JPEG" and (mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in info)
    return fmt, width, height, alpha


def _over_white(img: np.ndarray, colour: str) -> np.ndarray:
    """An IMREAD_UNCHANGED decode (any depth, grey/BGR/BGRA) -> uint8 grey or RGB over white."""
    if img.dtype != np.uint8:
        img = (img.astype(np.float32) * (255.0 / np.iinfo(img.dtype).max)).round().astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 2:     # grey + alpha
        img = np.dstack([img[..., 0], img[..., 0], img[..., 0], img[..., 1]])
    if img.shape[2] == 4:
        a = img[..., 3:].astype(np.float32) / 255.0
        img = (img[..., :3].astype(np.float32) * a + 255.0 * (1.0 - a)).round().astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if colour == "grey" else cv2.COLOR_BGR2RGB)


def _truncated(data: bytes) -> bool:
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


def _visible(name: str) -> bool:
    return not name.startswith(".") and not is_os_metadata(name)


def _unwrap(root: Path) -> Path:
    """Archives often wrap everything in one top-level folder (photos-v1/...): look inside it,
    past the OS metadata (a Finder zip's __MACOSX/) beside it."""
    while True:
        entries = [p for p in root.iterdir() if _visible(p.name)]
        if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() and entries[0].name not in SPLITS:
            root = entries[0]
        else:
            return root


@dataclass
class Candidate:
    path: Path
    rel: str                  # relative to the folder the user gave, as reports name it
    class_name: str
    class_dir: Path
    official: str | None      # train / val / test for a pre-split folder
    problem: str | None = None   # a link that cannot be read: a bad image before any decoding


@dataclass
class Scan:
    """The image files of a folder, in the order their rows will have, before any is decoded."""
    root: Path
    candidates: list[Candidate]
    report: FolderReport

    def __len__(self) -> int:
        return len(self.candidates)


def image_shape(size: int, colour: str) -> tuple[int, ...]:
    return (size, size) + ((3,) if colour == "rgb" else ())


def _outside_reason(parts: list[str], base: list[str]) -> str | None:
    """Why a path (file or folder) is not part of the image folder at all, or None."""
    if any(is_os_metadata(p) for p in parts):
        return "OS metadata"
    if any(p.startswith(".") for p in parts):
        return "hidden"
    if parts[:len(base)] != base:
        return f"outside the image folder ({'/'.join(base)}/)"
    return None


def _ignore_reason(parts: list[str], base: list[str], pre_split: bool, entry: Entry | None = None) -> str | None:
    """Why a file is not data, or None for an image file in a class folder."""
    if (reason := _outside_reason(parts, base)) is not None:
        return reason
    if entry is not None and entry.problem is not None and not entry.bad:
        return entry.problem
    if len(parts) - len(base) < (3 if pre_split else 2):
        return "not in a class folder"
    suffix = Path(parts[-1]).suffix.lower()
    if suffix not in EXTENSIONS and suffix not in UNSUPPORTED:
        return f"not an image file type ({suffix or 'no extension'})"
    try:
        "/".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename it)"
    return None


def _shown(rel: str) -> str:
    """A path as reports can print and store it: a name that is not valid UTF-8 (its bytes kept
    by Python as surrogates) shows U+FFFD where the bad bytes are."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def scan(root: Path | str, not_copied: list[Entry] = ()) -> Scan:
    """Sort every entry of the folder into an image candidate or an ignored file, with the reason.
    not_copied: entries of the user's folder that download could not copy (links), reported too."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    entries, dirs = walk(root)
    entries = sorted([*entries, *not_copied], key=lambda e: e.rel.split("/"))
    top = _unwrap(root)
    base = list(top.relative_to(root).parts)
    subdirs = sorted(p.name for p in top.iterdir() if p.is_dir() and not p.is_symlink() and _visible(p.name))
    pre_split = bool(subdirs) and set(subdirs) <= set(SPLITS)
    if pre_split and "train" not in subdirs:
        raise DataError(f"{top}: split directories {subdirs} have no train/")
    report = FolderReport(pre_split=pre_split, files=len(entries))
    candidates = []
    depth = len(base) + (1 if pre_split else 0)
    for entry in entries:
        parts = entry.rel.split("/")
        reason = _ignore_reason(parts, base, pre_split, entry)
        if reason is not None:
            report.ignored.append({"path": _shown(entry.rel), "reason": reason})
            continue
        class_dir = root.joinpath(*parts[:depth + 1])
        candidates.append(Candidate(root / entry.rel, entry.rel, parts[depth], class_dir,
                                    parts[len(base)] if pre_split else None, entry.problem))
    class_dirs = {"/".join(d.split("/")[:depth + 1]) for d in dirs                  # every class folder,
                  if len(d.split("/")) > depth and _outside_reason(d.split("/"), base) is None}  # used or not
    used = {c.class_dir.relative_to(root).as_posix() for c in candidates}
    report.ignored_folders = [{"path": _shown(d), "reason": "no image files"} for d in sorted(class_dirs - used)]
    if not candidates:
        raise DataError(f"{root}: no image files with extensions {sorted(EXTENSIONS)} in class folders "
                        f"(expected <class>/<image> or train|val|test/<class>/<image>; "
                        f"{len(report.ignored)} other files ignored)")
    order = {s: i for i, s in enumerate(sorted(subdirs))}
    candidates.sort(key=lambda c: (order.get(c.official, 0), c.class_name, c.rel.split("/")))
    return Scan(root, candidates, report)


def decode_into(found: Scan, out, decoding: Decoding, on_bad_image: str, groups: dict[str, str] | None = None,
                show_progress: bool = True, origin: str | None = None) -> tuple[pd.DataFrame, FolderReport]:
    """Decode every file of `found` into consecutive rows of `out` (an array, or a RowWriter over
    the stage's output file, so a folder of any size is never held in memory) and return the
    manifest of the rows written: as many as files decoded, the first rows of `out`. A bad file
    is named as the user knows it: its path within `origin` (the folder or archive they gave).

    Labels are given after decoding, to the classes that kept at least one image (sorted by
    name): a class folder whose every file was skipped is left out and listed, never a class
    the model must learn without examples."""
    report, rows = found.report, []
    with progress(total=len(found), desc="decode", unit="img", disable=not show_progress) as bar:
        for c in found.candidates:
            bar.update()
            try:
                if c.problem is not None:
                    raise BadImage(f"{c.path}: {c.problem}")
                img = decode(c.path, decoding.size, decoding.colour, decoding.max_megapixels)
            except BadImage as err:
                reason = str(err).split(": ", 1)[-1]
                if on_bad_image == "fail":
                    where = f"{c.rel} in {origin}" if origin else c.path
                    raise BadImage(f"{where}: {reason} (set dataset.on_bad_image: skip to list and skip "
                                   f"such files)") from None
                report.skipped.append({"path": c.rel, "reason": reason})
                continue
            out[len(rows)] = img
            source = (groups or {}).get(c.rel) or name_group(c.class_name, c.path.relative_to(c.class_dir))
            rows.append({"id": c.rel, "source_id": source, "class_name": c.class_name,
                         "official_split": c.official or "pool"})
    if not rows:
        raise DataError(f"{found.root}: none of {len(found)} image files could be "
                        f"decoded ({len(report.skipped)} skipped; see metrics/data.json)")
    manifest = pd.DataFrame(rows)
    _label_classes(found, manifest, report)
    report.images = len(rows)
    return manifest, report


def _label_classes(found: Scan, manifest: pd.DataFrame, report: FolderReport) -> None:
    classes = sorted(manifest["class_name"].unique())
    emptied = sorted({c.class_dir.relative_to(found.root).as_posix() for c in found.candidates
                      if c.class_name not in classes})
    report.ignored_folders = sorted(report.ignored_folders + [
        {"path": d, "reason": "every image file skipped"} for d in emptied], key=lambda f: f["path"])
    if len(classes) < 2:
        raise DataError(f"{found.root}: {len(classes)} class folder(s) with images {classes}; a classifier needs "
                        f"at least 2 (expected <class>/<image> or train|val|test/<class>/<image>; left out: "
                        f"{[f['path'] for f in report.ignored_folders] or 'none'})")
    if report.pre_split:
        in_train = set(manifest.loc[manifest["official_split"] == "train", "class_name"])
        if missing := [c for c in classes if c not in in_train]:
            raise DataError(f"{found.root}: class folder(s) {missing} have images in val/ or test/ but none "
                            f"in train/; the model could never predict them")
    manifest.insert(2, "label", manifest["class_name"].map({c: i for i, c in enumerate(classes)}).astype(int))


def load(root: Path | str, size: int, colour: str, on_bad_image: str,
         groups: dict[str, str] | None = None, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> tuple[ImageSet, FolderReport]:
    """The folder as one in-memory ImageSet (the split stage decodes into its output file instead)."""
    found = scan(root)
    images = np.empty((len(found), *image_shape(size, colour)), np.uint8)
    manifest, report = decode_into(found, images, Decoding(size, colour, max_megapixels), on_bad_image, groups,
                                   show_progress=False)
    return ImageSet(images[:len(manifest)], manifest), report
