"""A real PostgreSQL for the test session, on loopback: Debian's server binaries (`.ci/run`
installs the `postgresql` package), a fresh cluster in a temporary directory, password
authentication over TCP, one user and one database. PostgreSQL refuses to run as root, so as root
the cluster belongs to the package's `postgres` user."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

USER, PASSWORD, DATABASE = "tuner", "pw-for-tests", "studies"


def server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve():
    """Yields the server's URL without a database (postgresql://tuner:...@127.0.0.1:PORT); the
    database `studies` exists on it."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="imgclf-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    (root / "pw").write_text(PASSWORD)
    if as_root:
        shutil.chown(root / "pw", "postgres", "postgres")
    data, port = root / "data", _free_port()

    def pg(*args, **kw):
        return subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True, timeout=120, **kw)

    pg(bin_dir / "initdb", "-D", data, "-U", USER, "--pwfile", root / "pw", "-A", "scram-sha-256", "--no-sync")
    pg(bin_dir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-o",
       f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        pg(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", USER, DATABASE,
           env={**os.environ, "PGPASSWORD": PASSWORD})
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
