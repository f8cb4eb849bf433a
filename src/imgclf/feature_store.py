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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    namespace TEXT PRIMARY KEY,
    dim INTEGER NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    namespace TEXT NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
"""
_LOOKUP_CHUNK = 900  # stays under SQLite's default limit of host parameters


class StoreError(RuntimeError):
    pass


@dataclass
class Lookup:
    vectors: dict[str, np.ndarray]
    corrupt: list[str]


class FeatureStore:
    def __init__(self, path: Path | str, timeout_s: float = 120.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the feature store {self.path}: {err}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def register(self, namespace: str, dim: int, spec: dict) -> None:
        row = self.conn.execute("SELECT dim FROM namespaces WHERE namespace=?", (namespace,)).fetchone()
        if row is not None:
            if row[0] != dim:
                raise StoreError(f"{self.path}: namespace {namespace} holds {row[0]}-d vectors, "
                                 f"the extractor makes {dim}-d ones")
            return
        self.conn.execute("INSERT OR IGNORE INTO namespaces VALUES (?,?,?,?)",
                          (namespace, dim, json.dumps(spec, sort_keys=True), time.time()))

    def dim(self, namespace: str) -> int:
        row = self.conn.execute("SELECT dim FROM namespaces WHERE namespace=?", (namespace,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: unknown namespace {namespace}")
        return row[0]

    def get_many(self, namespace: str, keys: Iterable[str]) -> Lookup:
        """Vectors for the keys that are present and intact; corrupt ones are deleted and listed."""
        dim = self.dim(namespace)
        keys = list(keys)
        found: dict[str, np.ndarray] = {}
        corrupt: list[str] = []
        for i in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = [bytes.fromhex(k) for k in keys[i:i + _LOOKUP_CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key, vector FROM vectors WHERE namespace=? AND key IN ({marks})",
                (namespace, *chunk)).fetchall()
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32) if isinstance(blob, bytes) and len(blob) == 4 * dim else None
                if vec is None or not np.isfinite(vec).all():
                    corrupt.append(key.hex())
                else:
                    found[key.hex()] = vec
        if corrupt:
            self.delete(namespace, corrupt)
        return Lookup(found, corrupt)

    def put_many(self, namespace: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        rows = [(namespace, bytes.fromhex(k), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for k, v in items]
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?,?,?)", rows)
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to the feature store {self.path}: {err}") from None

    def delete(self, namespace: str, keys: Iterable[str]) -> int:
        keys = [bytes.fromhex(k) for k in keys]
        self.conn.execute("BEGIN IMMEDIATE")
        cur = self.conn.executemany("DELETE FROM vectors WHERE namespace=? AND key=?",
                                    [(namespace, k) for k in keys])
        self.conn.execute("COMMIT")
        return cur.rowcount

    def summary(self) -> list[dict]:
        rows = self.conn.execute(
            "SELECT n.namespace, n.dim, n.spec, n.created, COUNT(v.key), COALESCE(SUM(LENGTH(v.vector)), 0) "
            "FROM namespaces n LEFT JOIN vectors v USING (namespace) GROUP BY n.namespace ORDER BY n.created"
        ).fetchall()
        return [{"namespace": ns, "dim": dim, "spec": json.loads(spec), "created": created,
                 "vectors": count, "bytes": size} for ns, dim, spec, created, count, size in rows]

    def prune(self, keep_namespaces: set[str] | None = None,
              keep_keys: dict[str, set[str]] | None = None) -> dict[str, int]:
        """Drop namespaces not in keep_namespaces, and in the kept ones entries not in keep_keys."""
        removed = {"namespaces": 0, "vectors": 0}
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for ns, in self.conn.execute("SELECT namespace FROM namespaces").fetchall():
                if keep_namespaces is not None and ns not in keep_namespaces:
                    removed["vectors"] += self.conn.execute(
                        "DELETE FROM vectors WHERE namespace=?", (ns,)).rowcount
                    self.conn.execute("DELETE FROM namespaces WHERE namespace=?", (ns,))
                    removed["namespaces"] += 1
                elif keep_keys is not None and ns in keep_keys:
                    keep = {bytes.fromhex(k) for k in keep_keys[ns]}
                    stale = [(ns, k) for k, in self.conn.execute(
                        "SELECT key FROM vectors WHERE namespace=?", (ns,)).fetchall() if k not in keep]
                    removed["vectors"] += len(stale)
                    self.conn.executemany("DELETE FROM vectors WHERE namespace=? AND key=?", stale)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("VACUUM")
        return removed
