"""A real SSH/SFTP server on loopback for remote tests: asyncssh's server in a background thread,
public-key login only, every session confined to one directory (a chroot in the SFTP layer).

Why asyncssh rather than Debian's openssh-server: it installs with pip (no root, no system
service), and it is the same SSH implementation DVC's `dvc-ssh` client already speaks through, so
the test exercises DVC's real remote code path over a real TCP connection.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh


@dataclass
class SftpServer:
    host: str
    port: int
    user: str
    keyfile: Path       # the client's private key (OpenSSH format)
    root: Path          # what the server's "/" is

    def url(self, path: str) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}/{path.lstrip('/')}"


class _ChrootSftp(asyncssh.SFTPServer):
    def __init__(self, chan, root: Path):
        super().__init__(chan, chroot=str(root).encode())


def serve(workdir: Path, user: str = "dvc"):
    """Context manager: start the server, yield an SftpServer, stop it on exit."""
    import contextlib

    @contextlib.contextmanager
    def running():
        root = workdir / "sftp-root"
        root.mkdir(parents=True, exist_ok=True)
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        keyfile = workdir / "id_ed25519"
        client_key.write_private_key(str(keyfile))
        keyfile.chmod(0o600)
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

        loop = asyncio.new_event_loop()
        started = threading.Event()
        box: dict = {}

        async def start():
            box["server"] = await asyncssh.listen(
                "127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=authorized,
                sftp_factory=lambda chan: _ChrootSftp(chan, root), allow_scp=False)
            started.set()

        def run_loop():
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            loop.run_forever()

        thread = threading.Thread(target=run_loop, name="sftp-server", daemon=True)
        thread.start()
        if not started.wait(30):
            raise RuntimeError("the loopback SFTP server did not start within 30 s")
        port = box["server"].sockets[0].getsockname()[1]
        try:
            yield SftpServer("127.0.0.1", port, user, keyfile, root)
        finally:
            async def stop():
                box["server"].close()
                await box["server"].wait_closed()
            asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()

    return running()
