"""Cross-process wake-ups for a store with no notification channel of its own (SQLite).

Each waiting worker binds a Unix datagram socket in a directory named after the store; `notify`
sends one byte to each. A socket whose worker died is removed by the first notify that finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import select
import socket
import tempfile


class SocketWaker:
    def __init__(self, key: str) -> None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.dir = os.path.join(tempfile.gettempdir(), f"taskmill-wake-{digest}")
        self._sender: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._own: str | None = None
        self._mtime = -1
        self._targets: list[str] = []

    def _listen(self) -> socket.socket:
        if self._listener is None:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            self._own = os.path.join(self.dir, f"{os.getpid()}-{secrets.token_hex(4)}.sock")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(self._own)
            sock.setblocking(False)
            self._listener = sock
        return self._listener

    def notify(self) -> None:
        """Best effort: a wake-up that cannot be sent leaves the workers to their poll."""
        with contextlib.suppress(OSError):
            self._notify()

    def _notify(self) -> None:
        try:
            mtime = os.stat(self.dir).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            self._mtime = mtime
            self._targets = [os.path.join(self.dir, n) for n in os.listdir(self.dir)
                             if n.endswith(".sock")]
        if not self._targets:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        for path in self._targets:
            try:
                self._sender.sendto(b"w", path)
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(path)
            except OSError:
                pass

    def wait(self, timeout: float) -> bool:
        """True if woken before `timeout` seconds; drains pending wake-ups."""
        sock = self._listen()
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.recv(64)
        return True

    def close(self) -> None:
        for sock in (self._listener, self._sender):
            if sock is not None:
                sock.close()
        if self._own:
            with contextlib.suppress(OSError):
                os.unlink(self._own)
            with contextlib.suppress(OSError):
                os.rmdir(self.dir)  # only if no other worker of this store listens there
        self._listener = self._sender = None
        self._own = None
