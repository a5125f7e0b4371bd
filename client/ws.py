"""A minimal WebSocket client (RFC 6455) in the standard library, for following ComfyUI's ``/ws`` events.

Used where ``websocket-client`` is not installed (a user's ComfyUI, the main job's runtime venv): the same
``create_connection(url, timeout)`` → ``recv()`` / ``settimeout()`` / ``close()`` interface and exception names.
It only reads: text frames come back as ``str``, binary frames (preview images) as ``bytes``, fragments are
joined, pings are answered; the client sends nothing but its handshake, pongs and the close frame.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from urllib.parse import urlsplit

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class WebSocketException(Exception):
    pass


class WebSocketTimeoutException(WebSocketException):
    pass


class WebSocket:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise WebSocketTimeoutException("timed out") from None
            except OSError as err:
                raise WebSocketException(str(err)) from None
            if not chunk:
                raise WebSocketException("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self) -> tuple[bool, int, bytes]:
        """One frame: ``(fin, opcode, payload)`` (server frames are unmasked)."""
        first, second = self.read(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.read(8))
        mask = self.read(4) if second & 0x80 else None
        payload = self.read(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload

    def send(self, opcode: int, payload: bytes = b"") -> None:
        """A masked frame (clients must mask); only short control frames are sent."""
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary."""
        message, kind = b"", None
        while True:
            # A timeout between the frames of one message would lose it; ComfyUI sends each message whole.
            fin, opcode, payload = self.frame()
            if opcode == PING:
                self.send(PONG, payload[:125])
            elif opcode == CLOSE:
                raise WebSocketException("connection closed by the server")
            elif opcode in (TEXT, BINARY, CONTINUATION):
                kind = kind or opcode
                message += payload
                if fin:
                    return message.decode("utf-8") if kind == TEXT else message

    def close(self) -> None:
        try:
            self.send(CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


def create_connection(url: str, timeout: float | None = None) -> WebSocket:
    """Open ``ws://host:port/path?query`` (plain ``ws`` only: the pack talks to servers it reaches directly)."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise WebSocketException(f"only ws:// URLs are supported without websocket-client, not {parts.scheme}://")
    try:
        sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    except OSError as err:
        raise WebSocketException(str(err)) from None
    key = base64.b64encode(os.urandom(16)).decode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    ws = WebSocket(sock)
    head = b""
    while b"\r\n\r\n" not in head:
        head += ws.read(1)
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 101 " not in f"{status} ":
        sock.close()
        raise WebSocketException(f"the server refused the WebSocket upgrade: {status}")
    return ws
