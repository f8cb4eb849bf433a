"""Walk a user's folder without trusting it, and mirror it into data/raw.

A folder people zip up and share holds more than images: macOS and Windows metadata, hidden
files, links to files and folders elsewhere, links that loop or point nowhere. The walk never
follows a link to a folder (so a loop cannot hang it) and says what each entry is; the image
folder reader decides from that what is used, skipped or ignored, and counts every entry.

`mirror` makes data/raw/images the folder as it is *now*: new and changed files are copied
(each through a temp file), files gone from the source are removed, identical files are left
untouched, so an unchanged folder gives byte-identical outputs and DVC skips every later stage.
Stdlib only: the download stage imports this, not the image decoder.
"""

from __future__ import annotations

import errno
import filecmp
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imgclf.core.atomic import write_json

# Files and folders the operating system leaves in a user's folder: never data, always listed.
OS_METADATA = {"__macosx", ".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "$recycle.bin",
               "system volume information", ".spotlight-v100", ".trashes", ".fseventsd",
               ".temporaryitems", ".appledouble", "@eadir", "icon\r"}

# What an entry that is not a readable regular file is, as the reason the reader gives for it.
LINK_TO_FOLDER = "link to a folder (not followed: put the folder itself, or links to its files, here)"
LOOP = "symbolic-link loop"
BROKEN = "broken link (its target does not exist)"
SPECIAL = "not a regular file (device, socket or pipe)"
UNREADABLE_FOLDER = "folder not readable"
SOURCE_RECORD = "source.json"   # beside raw/images: the entries not copied, the archive's SHA-256


def is_os_metadata(name: str) -> bool:
    """macOS AppleDouble (`._x`), Finder, Spotlight and Windows Explorer files and folders."""
    return name.lower() in OS_METADATA or name.startswith("._")


@dataclass(frozen=True)
class Entry:
    rel: str            # POSIX path relative to the walked root
    problem: str | None  # None: a regular file (or a link to one); else one of the reasons above

    @property
    def bad(self) -> bool:
        """A loop or a broken link is an image that cannot be read (skipped or fatal as
        dataset.on_bad_image says); a link to a folder or a device is simply not data."""
        return self.problem in (LOOP, BROKEN)


def walk(root: Path) -> tuple[list[Entry], list[str]]:
    """Every non-directory entry under root, sorted, and every real directory (relative, sorted).
    Links to files are followed wherever they point; links to folders are listed, never entered."""
    entries: list[Entry] = []
    dirs: list[str] = []
    failed: list[str] = []

    def onerror(err: OSError) -> None:
        failed.append(err.filename)

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                entries.append(Entry(_rel(here / name, root), LINK_TO_FOLDER))
            else:
                dirs.append(_rel(here / name, root))
        for name in sorted(filenames):
            entries.append(Entry(_rel(here / name, root), _problem(here / name)))
    for path in failed:
        if Path(path) != root:
            entries.append(Entry(_rel(Path(path), root), UNREADABLE_FOLDER))
    return sorted(entries, key=lambda e: e.rel.split("/")), sorted(dirs)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _problem(path: Path) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return LOOP if err.errno == errno.ELOOP else BROKEN
    return None if stat.S_ISREG(mode) else SPECIAL


def mirror(src: Path, dest: Path, move: bool = False) -> list[Entry]:
    """Make dest hold exactly src's regular files (links to files as copies of their targets)
    and real folders; return the entries that could not be copied, for the reader to report.
    move=True: src is a scratch copy on dest's file system (an unpacked archive), so a new or
    changed file is renamed into place instead of copied."""
    entries, dirs = walk(src)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {e.rel for e in entries if e.problem is None}
    _remove_extra(dest, wanted, set(dirs))
    for rel in dirs:
        (dest / rel).mkdir(parents=True, exist_ok=True)
    for rel in sorted(wanted):
        source, target = src / rel, dest / rel
        if target.is_file() and not target.is_symlink() and _same(source, target):
            continue
        if move and not source.is_symlink():
            os.replace(source, target)
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:40]}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [e for e in entries if e.problem is not None]


def _same(a: Path, b: Path) -> bool:
    return os.stat(a).st_size == os.stat(b).st_size and filecmp.cmp(a, b, shallow=False)


def _remove_extra(dest: Path, files: set[str], dirs: set[str]) -> None:
    """Delete what dest holds that the source no longer does (deepest first)."""
    for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            if _rel(here / name, dest) not in files:
                (here / name).unlink()
        for name in dirnames:
            path = here / name
            rel = _rel(path, dest)
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif rel not in dirs and not any(path.iterdir()):
                path.rmdir()
            elif rel in files:      # a folder where the source now has a file of that name
                shutil.rmtree(path)


def write_record(path: Path, archive_sha256: str | None, entries: list[Entry]) -> None:
    write_json(path, {"archive_sha256": archive_sha256,
                      "not_copied": [{"path": e.rel, "reason": e.problem} for e in entries]})


def read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def not_copied(raw: Path) -> list[Entry]:
    """The entries of the user's folder that download could not bring into raw/images."""
    return [Entry(e["path"], e["reason"]) for e in read_record(raw / SOURCE_RECORD).get("not_copied", [])]
