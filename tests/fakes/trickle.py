"""A provider that takes every request and then answers one byte at a time.

It stands for a server (or a proxy in front of one) that keeps a connection
alive without ever finishing its answer: each read gets a byte well within
any per-read timeout, so only a total deadline ends the wait.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
ANSWER = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    + b"{" * 4096
)


class TricklingServer:
    """Reads each request whole (headers and ``Content-Length`` body), counts it in
    ``.received``, then sends ``ANSWER`` one byte every ``interval`` seconds."""

    def __init__(self, interval: float = 0.3) -> None:
        self.interval = interval
        self.received = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.create_server((HOST, 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += _receive(conn)
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += _receive(conn)
                with self._lock:
                    self.received += 1
                for byte in ANSWER:
                    if self._stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(self.interval)
            except OSError:
                return


def _receive(conn: socket.socket) -> bytes:
    chunk = conn.recv(65536)
    if not chunk:
        raise ConnectionResetError("the client went away")
    return chunk
