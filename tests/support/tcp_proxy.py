"""A localhost TCP proxy that a test can cut and restore, to make a real service unreachable.

``TcpProxy(target_host, target_port).start()`` listens on an ephemeral 127.0.0.1 port and pipes
every connection to the target. :meth:`TcpProxy.cut` closes the listener and every open
connection (clients see resets and refused connections); :meth:`TcpProxy.restore` listens again
on the same port. :meth:`TcpProxy.hold` keeps a request from reaching the target while the
client waits for it (a write "in flight"), :meth:`TcpProxy.release` lets it through, even if
the client has died meanwhile. Threads only; no asyncio loop to manage from synchronous tests.
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
        self._hold_marker: bytes | None = None
        self._released = threading.Event()
        self._released.set()
        self.held = 0  # requests held so far

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
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, outbound: bool = False) -> None:
        held = False
        try:
            while data := src.recv(65536):
                if outbound and self._must_hold(data):
                    held = True
                    self._released.wait()
                dst.sendall(data)
            if held:
                # The client is gone but its request went through: let the target finish it
                # (a full close could abort it); the other direction closes both afterwards.
                dst.shutdown(socket.SHUT_WR)
                return
        except OSError:
            pass
        for s in (src, dst):
            self._close(s)

    def _must_hold(self, data: bytes) -> bool:
        with self._lock:
            marker = self._hold_marker
            if self._released.is_set() or (marker is not None and marker not in data):
                return False
            self.held += 1
            return True

    def hold(self, marker: bytes | None = None) -> None:
        """Keep client data from the target: every chunk, or those containing ``marker``.

        A held chunk (say the start of ``POST /_bulk``) and everything after it on the same
        connection wait until :meth:`release`; other connections flow.
        """
        with self._lock:
            self._hold_marker = marker
            self._released.clear()

    def release(self) -> None:
        """Forward what was held, and stop holding."""
        with self._lock:
            self._hold_marker = None
            self._released.set()

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
        """Cut for good (held data is dropped)."""
        self.cut()
        self._released.set()
