"""A localhost TCP proxy that a test can cut and restore, to make a real service unreachable.

``TcpProxy(target_host, target_port).start()`` listens on an ephemeral 127.0.0.1 port and pipes
every connection to the target. :meth:`TcpProxy.cut` closes the listener and every open
connection (clients see resets and refused connections); :meth:`TcpProxy.restore` listens again
on the same port. Threads only; no asyncio loop to manage from synchronous tests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class TcpProxy:
    """Forward 127.0.0.1:<port> to a target until cut; restore on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        """A proxy in front of an ``http://host:port`` URL."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: where clients should connect."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        """Listen (on the same port as before, if restarted) and accept in a thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by cut()/stop()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Stop listening and reset every open connection: the service is now unreachable."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets = list(self._sockets)
        if listener is not None:
            listener.close()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            self._close(sock)

    def restore(self) -> None:
        """Listen again on the same port."""
        self.start()

    def stop(self) -> None:
        """Cut for good."""
        self.cut()
