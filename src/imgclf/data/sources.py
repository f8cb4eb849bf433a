"""Fetch files from an ordered list of sources, each verified by the SHA-256 of its content.

A source is a local directory or an http(s) base URL. For every file the sources are tried in
order; a missing file, a network failure, an HTML page instead of gzip, a truncated gzip or a
checksum mismatch moves on to the next source, and if none works the error lists every source
with its reason. Checksums are of the *decompressed* content for .gz files, because mirrors
recompress (Debian's copies differ byte-wise from Zalando's, the content does not).
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from imgclf.core.atomic import atomic_path
from imgclf.core.errors import UserError
from imgclf.core.progress import progress

_CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    pass


class SourceFailure(Exception):
    """One source could not provide one file; the message says why."""


@dataclass
class FetchReport:
    files: dict[str, str] = field(default_factory=dict)        # name -> source used
    failures: list[str] = field(default_factory=list)          # "name from source: reason"
    seconds: float = 0.0


def content_sha256(path: Path) -> str:
    """SHA-256 of the content: decompressed if the file is gzip, else the bytes as they are."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            while block := f.read(_CHUNK):
                h.update(block)
    except (OSError, EOFError, zlib.error) as err:
        raise SourceFailure(f"corrupt or truncated gzip ({err})") from None
    return h.hexdigest()


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head"))


def _verify(path: Path, name: str, expected: str) -> None:
    if name.endswith(".gz"):
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic != b"\x1f\x8b":
            what = "an HTML page" if _looks_like_html(path) else f"data starting {magic.hex() or 'empty'}"
            raise SourceFailure(f"expected gzip data but got {what}")
    actual = content_sha256(path)
    if actual != expected:
        raise SourceFailure(f"checksum mismatch: content SHA-256 {actual}, expected {expected}")


def http_session(retries: int) -> requests.Session:
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=0.5,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",),
                  raise_on_status=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_http(url: str, tmp: Path, session: requests.Session, timeout: float) -> None:
    try:
        with session.get(url, stream=True, timeout=timeout) as resp:
            if resp.status_code != 200:
                raise SourceFailure(f"HTTP {resp.status_code} {resp.reason}")
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as out, progress(total=total, unit="B", unit_scale=True,
                                               desc=url.rsplit("/", 1)[-1], leave=False) as bar:
                for block in resp.iter_content(_CHUNK):
                    out.write(block)
                    bar.update(len(block))
            if total is not None and tmp.stat().st_size != total:
                raise SourceFailure(f"connection closed after {tmp.stat().st_size} of {total} bytes")
    except requests.exceptions.Timeout:
        raise SourceFailure(f"timed out after {timeout:g} s") from None
    except requests.exceptions.ConnectionError as err:
        # With retries, urllib3 wraps the last failure in MaxRetryError: report its reason.
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so test it first.
        reason = getattr(err.args[0], "reason", None) if err.args else None
        if isinstance(reason, NewConnectionError):
            raise SourceFailure(f"cannot connect: {reason.args[-1] if reason.args else reason}") from None
        if isinstance(reason, (ReadTimeoutError, ConnectTimeoutError)):
            raise SourceFailure(f"timed out after {timeout:g} s") from None
        raise SourceFailure(f"cannot connect: {reason or err}") from None
    except requests.exceptions.RequestException as err:
        raise SourceFailure(f"{type(err).__name__}: {err}") from None


def _fetch_one(name: str, source: str, tmp: Path, session: requests.Session, timeout: float) -> None:
    if source.startswith(("http://", "https://")):
        fetch_http(f"{source.rstrip('/')}/{name}", tmp, session, timeout)
        return
    path = Path(source).expanduser() / name
    if not path.is_file():
        raise SourceFailure(f"{path} does not exist")
    shutil.copyfile(path, tmp)


def fetch_all(files: dict[str, str], sources: list[str], dest: Path, *,
              timeout: float = 60.0, retries: int = 3) -> FetchReport:
    """Put every file of `files` (name -> content SHA-256) into dest, verified.

    A file already in dest with the right content is kept (no refetch). Files are fetched into a
    temp file in dest and renamed into place only once verified, so dest never holds a partial or
    unverified file.
    """
    start = time.perf_counter()
    dest.mkdir(parents=True, exist_ok=True)
    report = FetchReport()
    session = http_session(retries)
    for name, expected in files.items():
        target = dest / name
        if target.is_file():
            try:
                _verify(target, name, expected)
                report.files[name] = "already present"
                continue
            except SourceFailure as err:
                report.failures.append(f"{name} already in {dest}: {err}; fetching again")
        reasons = []
        for source in sources:
            try:
                with atomic_path(target) as tmp:
                    _fetch_one(name, source, tmp, session, timeout)
                    _verify(tmp, name, expected)
            except SourceFailure as err:
                reasons.append(f"  {source}: {err}")
                report.failures.append(f"{name} from {source}: {err}")
                continue
            report.files[name] = source
            break
        else:
            raise DownloadError(f"could not fetch {name} (content SHA-256 {expected}) from any source:\n"
                                + "\n".join(reasons))
    report.seconds = time.perf_counter() - start
    return report
