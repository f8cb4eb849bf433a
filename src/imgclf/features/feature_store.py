"""On-disk key-value store of feature vectors: sqlite3 in WAL mode.

Keys are (namespace, SHA-256 of the image content). Values are raw float32 bytes whose length
is checked on every read, so a corrupt entry is reported and recomputed, never returned.
WAL mode plus a busy timeout lets two experiments read and write the same store at once;
each batch is one transaction, so a killed process loses at most its current batch.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from imgclf.core.errors import UserError
from imgclf.core.paths import project_root

# A rowid table, not WITHOUT ROWID: a vector's row is far above the 1/20 of a page where WITHOUT
# ROWID stays compact (docs/design.md, "A cache keyed by content", has the sizes on disk).
SCHEMA_VERSION = 2
_SCHEMA = ["""
CREATE TABLE namespaces (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL UNIQUE,
    dim INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL
)""", """
CREATE TABLE vectors (
    ns INTEGER NOT NULL REFERENCES namespaces(id),
    key BLOB NOT NULL,
    vector BLOB NOT NULL
)""", "CREATE UNIQUE INDEX vectors_by_key ON vectors (ns, key)"]
_LOOKUP_CHUNK = 900  # stays under SQLite's default limit of host parameters


class StoreError(UserError, RuntimeError):
    pass


STORE_FILE = "features.sqlite"


def store_path(cache_dir: str | Path) -> Path:
    """The store's file: bottleneck.cache_dir under the project root, for every stage and
    experiment workspace alike."""
    return project_root() / cache_dir / STORE_FILE


class FeatureStore:
    def __init__(self, path: Path | str, timeout_s: float = 120.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self.conn.execute("PRAGMA page_size=16384")  # only takes effect on a new file
            deadline = time.monotonic() + timeout_s
            while True:
                # Switching a new file to WAL needs a moment alone with it; SQLite reports
                # "locked" at once instead of waiting, so wait here while another process does it.
                try:
                    self._create_or_check_schema()
                    if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        self.conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache, bounded
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the feature store {self.path}: {err}") from None

    def _create_or_check_schema(self) -> None:
        """One exclusive transaction, so two processes opening a new store never see it half-made."""
        self.conn.execute("BEGIN EXCLUSIVE")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] > 0
            if version == 0 and not has_tables:
                for statement in _SCHEMA:
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise StoreError(f"{self.path} has store format {version or 'unknown'}, this code reads "
                                 f"format {SCHEMA_VERSION}; move it away (its vectors will be recomputed)")
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, namespace: str, dim: int, spec: dict) -> None:
        self.conn.execute("INSERT OR IGNORE INTO namespaces (namespace, dim, spec, created) VALUES (?,?,?,?)",
                          (namespace, dim, json.dumps(spec, sort_keys=True), time.time()))
        if self._ns(namespace)[1] != dim:
            raise StoreError(f"{self.path}: namespace {namespace} holds {self._ns(namespace)[1]}-d "
                             f"vectors, the extractor makes {dim}-d ones")

    def _ns(self, namespace: str) -> tuple[int, int]:
        row = self.conn.execute("SELECT id, dim FROM namespaces WHERE namespace=?", (namespace,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: unknown namespace {namespace}")
        return row

    def dim(self, namespace: str) -> int:
        return self._ns(namespace)[1]

    def iter_vectors(self, namespace: str, keys: Iterable[str]) -> Iterator[tuple[str, np.ndarray | None]]:
        """(key, vector) for each stored key, in chunks; vector is None for a corrupt entry.

        Streams, so reading 200,000 vectors never holds more than one chunk besides the caller's
        output array.
        """
        ns, dim = self._ns(namespace)
        keys = sorted(keys)  # index order: neighbouring lookups share pages
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = [bytes.fromhex(k) for k in keys[i:i + _LOOKUP_CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key, vector FROM vectors WHERE ns=? AND key IN ({marks})", (ns, *chunk)).fetchall()
            for key, blob in rows:
                vec = None
                if isinstance(blob, bytes) and len(blob) == 4 * dim:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if not np.isfinite(vec).all():
                        vec = None
                yield key.hex(), vec

    def put_many(self, namespace: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        ns = self._ns(namespace)[0]
        rows = [(ns, bytes.fromhex(k), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for k, v in items]
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR REPLACE INTO vectors (ns, key, vector) VALUES (?,?,?)", rows)
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to the feature store {self.path}: {err}") from None

    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        ns = self._ns(namespace)[0]
        keys = [bytes.fromhex(k) for k in keys]
        self.conn.execute("BEGIN IMMEDIATE")
        cur = self.conn.executemany("DELETE FROM vectors WHERE ns=? AND key=?", [(ns, k) for k in keys])
        self.conn.execute("COMMIT")
        return cur.rowcount

    def summary(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT n.namespace, n.dim, n.spec, n.created, COUNT(v.key), COALESCE(SUM(LENGTH(v.vector)), 0) "
            "FROM namespaces n LEFT JOIN vectors v ON v.ns = n.id GROUP BY n.id ORDER BY n.created"
        ).fetchall()
        return [{"namespace": ns, "dim": dim, "spec": json.loads(spec), "created": created,
                 "vectors": count, "bytes": size} for ns, dim, spec, created, count, size in rows]

    def prune(self, keep_namespaces: set[str] | None = None,
              keep_keys: dict[str, set[str]] | None = None) -> dict[str, int]:
        """Drop namespaces not in keep_namespaces, and in the kept ones entries not in keep_keys."""
        removed = {"namespaces": 0, "vectors": 0}
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for ns_id, ns in self.conn.execute("SELECT id, namespace FROM namespaces").fetchall():
                if keep_namespaces is not None and ns not in keep_namespaces:
                    removed["vectors"] += self.conn.execute("DELETE FROM vectors WHERE ns=?", (ns_id,)).rowcount
                    self.conn.execute("DELETE FROM namespaces WHERE id=?", (ns_id,))
                    removed["namespaces"] += 1
                elif keep_keys is not None and ns in keep_keys:
                    keep = {bytes.fromhex(k) for k in keep_keys[ns]}
                    stale = [(ns_id, k) for k, in self.conn.execute(
                        "SELECT key FROM vectors WHERE ns=?", (ns_id,)).fetchall() if k not in keep]
                    removed["vectors"] += len(stale)
                    self.conn.executemany("DELETE FROM vectors WHERE ns=? AND key=?", stale)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("VACUUM")
        return removed
