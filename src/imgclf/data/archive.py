"""Bring a user's image folder into data/raw: a local directory, a .zip / .tar.gz, or an
http(s) URL of such an archive, optionally verified by SHA-256.

Archives are checked member by member before anything is extracted: absolute paths, `..`
components and device files refuse the whole archive, and so do archives (or their unpacked
contents) over the size limit, with the offending member names in the message. A link inside an
archive is never created: a link to a file of the archive is extracted as a copy of that file;
one that points outside the archive, to a folder, in a loop or nowhere is not extracted and is
reported like the same link in a directory. Names are taken as NFC, so a zip made by macOS
Finder (decomposed accents) gives the same class names as the folder it was made from.

Every run mirrors the source into data/raw/images (folder_walk.mirror): what the user removed is
removed, what did not change is not touched. An archive whose SHA-256 equals the last one
extracted is not extracted again.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import tarfile
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imgclf.core.errors import UserError
from imgclf.core.hashing import file_sha256
from imgclf.data.folder_walk import (
    BROKEN,
    LINK_TO_FOLDER,
    LOOP,
    SOURCE_RECORD,
    Entry,
    mirror,
    read_record,
    write_record,
)
from imgclf.data.sources import SourceFailure, fetch_http, http_session

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
_MAX_LINK_HOPS = 40             # the kernel's own limit (MAXSYMLINKS)


class ArchiveError(UserError, ValueError):
    pass


@dataclass
class _Member:
    name: str          # NFC, POSIX, no trailing slash
    kind: str          # file | dir | symlink | hardlink | special
    link: str          # the link's target as stored ("" for others)
    size: int
    raw: object        # ZipInfo or TarInfo


def _unsafe_name(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in p.parts:
        return "'..' in path"
    return None


def _norm(name: str) -> str:
    return unicodedata.normalize("NFC", name.replace("\\", "/")).rstrip("/")


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            kind, link = "dir", ""
        elif stat.S_ISLNK(mode):
            kind, link = "symlink", zf.read(info).decode("utf-8", "replace")
        else:
            kind, link = "file", ""
        members.append(_Member(_norm(info.filename), kind, link, info.file_size, info))
    return members


def _tar_members(tf: tarfile.TarFile) -> list[_Member]:
    members = []
    for m in tf.getmembers():
        kind = ("file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym()
                else "hardlink" if m.islnk() else "special")
        members.append(_Member(_norm(m.name), kind, m.linkname, m.size, m))
    return members


def _check(archive: Path, members: list[_Member], max_bytes: int) -> None:
    refused = []
    for m in members:
        reason = _unsafe_name(m.raw.filename if isinstance(m.raw, zipfile.ZipInfo) else m.raw.name)
        if reason is None and m.kind == "special":
            reason = "device or special file"
        if reason:
            refused.append(f"{m.name} ({reason})")
    if refused:
        raise ArchiveError(f"{archive}: refused {len(refused)} unsafe member(s), nothing extracted: "
                           + "; ".join(refused[:20]))
    total = sum(m.size for m in members if m.kind == "file")
    if total > max_bytes:
        raise ArchiveError(f"{archive}: unpacks to {total / 2**20:.1f} MiB, over the "
                           f"{max_bytes / 2**20:.0f} MiB limit (dataset.max_archive_mb)")


def _resolve(m: _Member, by_name: dict[str, _Member]) -> tuple[_Member | None, str]:
    """Follow a link member to the file member it names, inside the archive only."""
    seen = set()
    while m.kind in ("symlink", "hardlink"):
        if m.name in seen or len(seen) > _MAX_LINK_HOPS:
            return None, LOOP
        seen.add(m.name)
        base = "" if m.kind == "hardlink" else posixpath.dirname(m.name)   # tar hard links name archive paths
        target = posixpath.normpath(posixpath.join(base, _norm(m.link)))
        if m.link.startswith("/") or target == ".." or target.startswith("../"):
            return None, f"link outside the archive (to {m.link}; not followed)"
        if target not in by_name:
            return None, BROKEN
        m = by_name[target]
    if m.kind == "dir":
        return None, LINK_TO_FOLDER
    return m, ""


def extract(archive: Path, dest: Path, max_bytes: int) -> list[Entry]:
    """Unpack archive into dest (a new directory); return the members not extracted, with why."""
    if archive.stat().st_size > max_bytes:
        raise ArchiveError(f"{archive}: {archive.stat().st_size / 2**20:.1f} MiB is over the "
                           f"{max_bytes / 2**20:.0f} MiB limit (dataset.max_archive_mb)")
    if zipfile.is_zipfile(archive):
        container = zipfile.ZipFile(archive)
        members = _zip_members(container)
        open_member = container.open
    else:
        try:
            container = tarfile.open(archive)
            members = _tar_members(container)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ArchiveError(f"{archive}: not a readable .zip or .tar archive ({err})") from None
        open_member = container.extractfile
    with container:
        _check(archive, members, max_bytes)
        by_name = {m.name: m for m in members}
        not_extracted = []
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for m in members:
                if not m.name or m.name == ".":
                    continue
                out = tmp / m.name
                if m.kind == "dir":
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                source, problem = _resolve(m, by_name)
                if source is None:
                    not_extracted.append(Entry(m.name, problem))
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open_member(source.raw) as f, open(out, "wb") as o:
                        shutil.copyfileobj(f, o)
                except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as err:
                    raise ArchiveError(f"{archive}: member {m.name} cannot be read ({err}); "
                                       f"the archive is damaged") from None
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return not_extracted


def fetch_folder(source: str, sha256: str | None, dest: Path, *, max_bytes: int,
                 timeout: float = 60.0, retries: int = 3) -> str:
    """Make dest the image folder named by `source` as it is now; returns a one-line description.
    Beside dest, SOURCE_RECORD lists what could not be copied (for the split stage's report)."""
    is_url = source.startswith(("http://", "https://"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    record_path = dest.parent / SOURCE_RECORD
    if not is_url and Path(source).expanduser().is_dir():
        if sha256:
            raise ArchiveError(f"dataset.source_sha256 is set but {source} is a directory; "
                               f"checksums apply to archives")
        not_copied = mirror(Path(source).expanduser(), dest)
        write_record(record_path, None, not_copied)
        return f"mirrored directory {source} ({len(not_copied)} entries not copied)"
    if not is_url and not Path(source).expanduser().exists():
        where = ("" if Path(source).expanduser().is_absolute() else
                 f" (a relative path is read from {Path.cwd()}; `dvc exp run --temp` and `--queue` "
                 f"run in a copy of the repo under .dvc/tmp/exps: give an absolute path)")
        raise ArchiveError(f"dataset.source {source}: no such file or directory{where}")
    name = source.rsplit("/", 1)[-1].split("?")[0]
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise ArchiveError(f"dataset.source {source!r}: expected a directory or a {', '.join(ARCHIVE_SUFFIXES)} "
                           f"archive (local or http/https)")
    last = read_record(record_path)
    if is_url and sha256 and last.get("archive_sha256") == sha256 and dest.is_dir():
        return f"{source}: SHA-256 as last extracted, not downloaded again"
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmpdir:
        archive = Path(tmpdir) / name
        if is_url:
            try:
                fetch_http(source, archive, http_session(retries), timeout)
            except SourceFailure as err:
                raise ArchiveError(f"could not download {source}: {err}") from None
        else:
            archive = Path(source).expanduser()
        actual = file_sha256(archive)
        if sha256 and actual != sha256:
            raise ArchiveError(f"{source}: SHA-256 {actual}, expected {sha256} (dataset.source_sha256)")
        if last.get("archive_sha256") == actual and dest.is_dir():
            return f"{source}: same SHA-256 as last extracted, {dest} kept"
        unpacked = Path(tmpdir) / "unpacked"
        not_extracted = extract(archive, unpacked, max_bytes)
        not_copied = mirror(unpacked, dest, move=True)
        write_record(record_path, actual, not_extracted + not_copied)
    return f"extracted {source} ({len(not_extracted)} members not extracted)"
