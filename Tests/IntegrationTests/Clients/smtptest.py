"""Shared helpers for Herald's Python test clients: a byte-exact SMTP client on a raw
socket (optionally upgraded to TLS in place) and JSON output for the Swift tests."""

import json
import socket
import ssl
import sys
import time


def emit(obj):
    """Prints one JSON document on stdout (the Swift test decodes it)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def unverified_context():
    """TLS client context that accepts Herald's self-signed test certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Closed(Exception):
    pass


class RawSMTP:
    """A blocking SMTP client that never reads ahead of what it is asked for, so a
    test can see exactly which bytes arrived before and after STARTTLS."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.transcript = []

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed("connection closed; buffered %r" % self.buf)
        self.buf += chunk

    def readline(self):
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_reply(self):
        """Returns (code, [text lines]) of one possibly multi-line reply."""
        lines = []
        while True:
            line = self.readline()
            self.transcript.append(line)
            lines.append(line[4:])
            if len(line) < 4 or line[3] == " ":
                return int(line[:3]), lines

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.read_reply()

    def pending(self, wait):
        """Bytes the server sends within `wait` seconds, without blocking longer;
        (bytes, closed)."""
        deadline = time.time() + wait
        data = self.buf
        self.buf = b""
        closed = False
        old = self.sock.gettimeout()
        try:
            while time.time() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.time()))
                try:
                    chunk = self.sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    break
                except (ConnectionResetError, ssl.SSLError, OSError):
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                data += chunk
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass
        return data, closed

    def starttls(self, context=None):
        """Wraps the socket in TLS (after the server's 220 to STARTTLS)."""
        if self.buf:
            raise AssertionError("plaintext buffered before the TLS handshake: %r" % self.buf)
        self.sock = (context or unverified_context()).wrap_socket(self.sock, server_hostname="mx.test")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency plus the final dot; `message` must use CRLF."""
    lines = message.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    out = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
    return out + b".\r\n"
