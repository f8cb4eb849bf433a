"""Bring a user's image folder into data/raw: a local directory, a .zip / .tar.gz, or an
http(s) URL of such an archive, optionally verified by SHA-256.

Archives are checked member by member before anything is extracted: absolute paths, `..`
components, links and device files are refused, and so are archives (or their unpacked
contents) over the size limit, with the offending member names in the message. Extraction goes
to a temp directory renamed into place, so data/raw never holds half an archive.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from imgclf.errors import UserError
from imgclf.download import SourceFailure, _fetch_http, _http_session
from imgclf.hashing import file_sha256

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


class ArchiveError(UserError, ValueError):
    pass


def _unsafe_name(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in p.parts:
        return "'..' in path"
    return None


def _check_members(archive: Path, max_bytes: int) -> None:
    refused, total = [], 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                reason = _unsafe_name(info.filename)
                if reason is None and (info.external_attr >> 16) & 0o170000 == 0o120000:
                    reason = "symbolic link"
                if reason:
                    refused.append(f"{info.filename} ({reason})")
                total += info.file_size
    else:
        try:
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    reason = _unsafe_name(member.name)
                    if reason is None and (member.issym() or member.islnk()):
                        reason = f"link to {member.linkname}"
                    elif reason is None and not (member.isfile() or member.isdir()):
                        reason = "device or special file"
                    if reason:
                        refused.append(f"{member.name} ({reason})")
                    total += member.size
        except tarfile.TarError as err:
            raise ArchiveError(f"{archive}: not a readable .zip or .tar archive ({err})") from None
    if refused:
        raise ArchiveError(f"{archive}: refused {len(refused)} unsafe member(s), nothing extracted: "
                           + "; ".join(refused[:20]))
    if total > max_bytes:
        raise ArchiveError(f"{archive}: unpacks to {total / 2**20:.1f} MiB, over the "
                           f"{max_bytes / 2**20:.0f} MiB limit (dataset.max_archive_mb)")


def extract(archive: Path, dest: Path, max_bytes: int) -> None:
    if archive.stat().st_size > max_bytes:
        raise ArchiveError(f"{archive}: {archive.stat().st_size / 2**20:.1f} MiB is over the "
                           f"{max_bytes / 2**20:.0f} MiB limit (dataset.max_archive_mb)")
    _check_members(archive, max_bytes)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # second line of defence after _check_members
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_folder(source: str, sha256: str | None, dest: Path, *, max_bytes: int,
                 timeout: float = 60.0, retries: int = 3) -> str:
    """Put the image folder named by `source` at dest; returns a one-line description."""
    is_url = source.startswith(("http://", "https://"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not is_url and Path(source).expanduser().is_dir():
        if sha256:
            raise ArchiveError(f"dataset.source_sha256 is set but {source} is a directory; "
                               f"checksums apply to archives")
        src = Path(source).expanduser()
        tmp = dest.parent / f".{dest.name}.copying"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, symlinks=False)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        return f"copied directory {src}"
    name = source.rsplit("/", 1)[-1].split("?")[0]
    if not name.endswith(ARCHIVE_SUFFIXES):
        raise ArchiveError(f"dataset.source {source!r}: expected a directory or a {', '.join(ARCHIVE_SUFFIXES)} "
                           f"archive (local or http/https)")
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmpdir:
        archive = Path(tmpdir) / name
        if is_url:
            try:
                _fetch_http(source, archive, _http_session(retries), timeout)
            except SourceFailure as err:
                raise ArchiveError(f"could not download {source}: {err}") from None
        else:
            local = Path(source).expanduser()
            if not local.is_file():
                raise ArchiveError(f"dataset.source {source}: no such file or directory")
            archive = local
        if sha256:
            actual = file_sha256(archive)
            if actual != sha256:
                raise ArchiveError(f"{source}: SHA-256 {actual}, expected {sha256} (dataset.source_sha256)")
        extract(archive, dest, max_bytes)
    return f"extracted {source}"
