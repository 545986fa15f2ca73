"""The embedded transfer's HTTP/1.1 client: requests written and answers read on
kept-alive sockets, pooled per address and TLS name.

Written here rather than taken from urllib3 and http.client, whose layers cost several
times the exchange itself (bench/JOURNAL.md), and whose leniency had to be checked
around: an answer is read strictly. Every header line must be one RFC 9110 allows, the
body's framing follows RFC 9112 §6.3, and a connection goes back to its pool only once
its answer was read to the byte its framing names, with nothing after it. Nothing is
added to a request (no default headers, no cookies, nothing from the environment), its
target goes out exactly as signed, redirects are answers like any other, and nothing is
retried here (the transfer decides that).
"""

import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from werkzeug.datastructures import Headers

POOL_SIZE = 32  # idle connections kept per address and name: above gunicorn's threads per worker
IDLE_REUSE = 0.75  # seconds a pooled connection may idle and still be reused
MAX_LINE = 65536  # bytes in a line of an answer's head
MAX_FIELDS = 100  # header (or trailer) lines in an answer
READ_SIZE = 64 * 1024
NO_BODY = frozenset({204, 304})

# RFC 9112 §4: the status line (HTTP/1.0 and 1.1; a reason phrase of visible characters).
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?\r?\n")
# RFC 9110 §5 and RFC 9112 §5: a field line is a token, ":", and a value of visible
# characters, spaces and tabs. No control byte, no bare CR (a lenient parser reads a
# line break there), no obsolete line folding.
_FIELD_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r?\n")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[\t ]*(?:;[^\r\n]*)?\r?\n")  # RFC 9112 §7.1
_TARGET = re.compile(r"[!-~]+")  # no space, no control byte


class Unreachable(Exception):
    """No connection could be made (refused, no route, the TLS handshake or certificate
    failed); its cause is the OSError."""


class MalformedAnswer(Exception):
    """The backend's answer head is not one an HTTP/1.1 client may take."""


class Dropped(ConnectionError):
    """The connection ended before an answer began: a request without a body may be sent
    again (RFC 9112 §9.3.1)."""


class BrokenAnswer(OSError):
    """The answer's body ended before its framing said, or its chunks are malformed."""


class Body(Protocol):
    """A request body read as it is sent: b"" at its end."""

    def read(self, size: int = ...) -> bytes: ...


class Connection:
    """One socket to a backend and the bytes read from it but not yet taken."""

    def __init__(self, sock: socket.socket, key: tuple[str, str]) -> None:
        self.sock, self.key = sock, key
        self.buffer = bytearray()
        self.idle_since = 0.0

    def recv(self, size: int) -> bytes:
        if self.buffer:
            data = bytes(self.buffer[:size])
            del self.buffer[:size]
            return data
        return self.sock.recv(size)

    def readline(self) -> bytes:
        """A line with its LF, or what came before the connection closed."""
        scanned = 0
        while (end := self.buffer.find(b"\n", scanned)) < 0:
            if len(self.buffer) > MAX_LINE:
                raise MalformedAnswer(f"a line of the answer's head is over {MAX_LINE} bytes")
            scanned = len(self.buffer)
            data = self.sock.recv(READ_SIZE)
            if not data:
                line = bytes(self.buffer)
                self.buffer.clear()
                return line
            self.buffer += data
        if end >= MAX_LINE:
            raise MalformedAnswer(f"a line of the answer's head is over {MAX_LINE} bytes")
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def fields(self) -> list[tuple[str, str]]:
        """Header or trailer lines up to the blank line, each checked first."""
        fields: list[tuple[str, str]] = []
        while (line := self.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise MalformedAnswer("the connection closed within the answer's head")
            if not _FIELD_LINE.fullmatch(line):
                raise MalformedAnswer(f"a header line no field may hold: {line[:80]!r}")
            if len(fields) == MAX_FIELDS:
                raise MalformedAnswer(f"more than {MAX_FIELDS} header lines")
            name, _, value = line.partition(b":")
            fields.append((name.decode("latin-1"), value.strip(b" \t\r\n").decode("latin-1")))
        return fields

    def dropped(self) -> bool:
        """Whether the idle connection was closed, or holds bytes nobody asked for."""
        if self.buffer or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True  # (TLS: bytes decrypted but not taken, which poll cannot see)
        poll = select.poll()
        poll.register(self.sock, select.POLLIN)
        return bool(poll.poll(0))

    def close(self) -> None:
        self.sock.close()


class Answer:
    """The backend's answer: its head read, its body read as it comes (read1)."""

    def __init__(
        self,
        pools: "Pools",
        connection: Connection,
        status: int,
        reason: str,
        headers: Headers,
        length: int | None,  # bytes of body to come; None: chunked or until the close
        chunked: bool,
        reusable: bool,
    ) -> None:
        self.pools, self.connection = pools, connection
        self.status, self.reason, self.headers = status, reason, headers
        self.remaining, self.chunked, self.reusable = length, chunked, reusable
        self.chunk_left = 0  # bytes of the current chunk still to come
        self.chunk_end = False  # the CRLF after a chunk's data is still to come
        self.done = False
        if length == 0:
            self._finish()

    def read1(self, size: int) -> bytes:
        """At most `size` bytes of the body, from at most one read of the socket; b"" at
        its end. Raises BrokenAnswer, TimeoutError or another OSError."""
        if self.done:
            return b""
        if self.chunked:
            return self._chunk(size)
        if self.remaining is None:  # until the backend closes
            data = self.connection.recv(size)
            if not data:
                self._finish()
            return data
        data = self.connection.recv(min(size, self.remaining))
        if not data:
            raise BrokenAnswer(f"the answer ended {self.remaining} bytes short")
        self.remaining -= len(data)
        if not self.remaining:
            self._finish()
        return data

    def _chunk(self, size: int) -> bytes:
        connection = self.connection
        while not self.chunk_left:
            if self.chunk_end and connection.readline() not in (b"\r\n", b"\n"):
                raise BrokenAnswer("a chunk is longer than its size says")
            line = connection.readline()
            match = _CHUNK_SIZE.fullmatch(line)
            if not match:
                raise BrokenAnswer(f"not a chunk's size: {line[:80]!r}" if line else "ended early")
            self.chunk_left = int(match.group(1), 16)
            self.chunk_end = True
            if not self.chunk_left:
                try:
                    connection.fields()  # (trailers: checked, not passed on)
                except MalformedAnswer as error:
                    raise BrokenAnswer(str(error)) from None
                self._finish()
                return b""
        data = connection.recv(min(size, self.chunk_left))
        if not data:
            raise BrokenAnswer("the answer ended within a chunk")
        self.chunk_left -= len(data)
        return data

    def _finish(self) -> None:
        """Read to its end: the connection goes back to its pool, if it may."""
        self.done = True
        if self.reusable:  # (shutdown() clears it first)
            self.pools.put(self.connection)
        else:
            self.connection.close()

    def close(self) -> None:
        """Let go of the answer; one not read to its end takes its connection along."""
        if not self.done:
            self.done = True
            self.connection.close()

    def shutdown(self) -> None:
        """Unblock a read waiting on the backend (the watchdog's cut)."""
        self.reusable = False
        if not self.done:
            self.connection.sock.shutdown(socket.SHUT_RDWR)


class Pools:
    """The process's connections to backends, idle ones kept per address and TLS name:
    a connection verified for one name is never reused for another on the same address.
    Built after gunicorn forks: connections are not shared between processes."""

    def __init__(self, ca_bundle: str) -> None:
        # The CAs read once, not for every new TLS connection (tens of milliseconds of
        # CPU for the system's bundle).
        self.tls = ssl.create_default_context(cafile=ca_bundle)
        self.idle: dict[tuple[str, str], list[Connection]] = {}
        self.lock = threading.Lock()

    def send(
        self,
        address: str,
        server_name: str,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | Body | Iterable[bytes] | None,
        timeouts: tuple[float, float],
        reuse: bool = True,
    ) -> Answer:
        """Send a request to `address` (scheme://ip:port, the one the check approved),
        verified as `server_name` (TLS), its request target `target` exactly as signed,
        and read the answer's head. `body`: bytes, a Body (its length is in `headers`),
        an iterable sent chunked, or None; `timeouts`: (connect, read) in seconds.

        Raises Unreachable, TimeoutError, MalformedAnswer, Dropped (no answer came), or
        the OSError of the socket or whatever reading `body` raised."""
        key = (address, server_name)
        connection = self._take(key) if reuse else None
        if connection is None:
            connection = self._connect(key, timeouts[0])
        try:
            connection.sock.settimeout(timeouts[1])
            _write(connection.sock, method, target, headers, body)
            return self._answer(connection, method)
        except BaseException:
            connection.close()
            raise

    def _connect(self, key: tuple[str, str], timeout: float) -> Connection:
        scheme, _, host_port = key[0].partition("://")
        host, _, port = host_port.rpartition(":")
        try:
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        except TimeoutError:
            raise
        except OSError as error:
            raise Unreachable(error) from error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":  # Host, SNI and the certificate are the name's
                sock = self.tls.wrap_socket(sock, server_hostname=key[1])
        except TimeoutError:
            sock.close()
            raise
        except OSError as error:
            sock.close()
            raise Unreachable(error) from error
        return Connection(sock, key)

    def _answer(self, connection: Connection, method: str) -> Answer:
        while True:
            line = connection.readline()
            if not line:
                raise Dropped("the connection closed before an answer")
            status_line = _STATUS_LINE.fullmatch(line)
            if not status_line:
                raise MalformedAnswer(f"not a status line: {line[:80]!r}")
            fields = connection.fields()
            status = int(status_line.group(2))
            if status == 101:  # (never asked for: no Upgrade goes upstream)
                raise MalformedAnswer("a switch of protocols nobody asked for")
            if status >= 200:
                break  # (an interim answer, 1xx, is read and let go)
        headers = Headers(fields)
        tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
        reusable = status_line.group(1) == b"1" and "close" not in tokens
        coding = headers.getlist("Transfer-Encoding")
        lengths = headers.getlist("Content-Length")
        length: int | None = None
        chunked = False
        if method == "HEAD" or status in NO_BODY:
            length = 0
        elif coding:  # (it overrides a Content-Length, after which the connection closes)
            chunked = coding[-1].rpartition(",")[2].strip().lower() == "chunked"
            reusable = reusable and chunked and not lengths
        elif lengths:
            values = {value.strip() for line in lengths for value in line.split(",")}
            if len(values) != 1 or not (value := values.pop()).isascii() or not value.isdigit():
                raise MalformedAnswer(f"a Content-Length no answer may carry: {lengths}")
            length = int(value)
        else:
            reusable = False  # the body ends when the backend closes
        reason = (status_line.group(3) or b"").decode("latin-1")
        return Answer(self, connection, status, reason, headers, length, chunked, reusable)

    def _take(self, key: tuple[str, str]) -> Connection | None:
        """The newest idle connection for `key` still fit to reuse; None: connect anew."""
        stale = []
        found = None
        with self.lock:
            idle = self.idle.get(key)
            while idle:
                connection = idle.pop()
                if time.monotonic() - connection.idle_since <= IDLE_REUSE:
                    found = connection
                    break
                stale.append(connection)
        for connection in stale:
            connection.close()
        if found is not None and found.dropped():  # (the backend closed it, idle)
            found.close()
            return self._take(key)
        return found

    def put(self, connection: Connection) -> None:
        """An answer read to its end gives its connection back."""
        if connection.buffer:  # bytes after the answer: not the next one's
            connection.close()
            return
        connection.idle_since = time.monotonic()
        with self.lock:
            idle = self.idle.setdefault(connection.key, [])
            if len(idle) < POOL_SIZE:
                idle.append(connection)
                return
        connection.close()

    def sweep(self) -> None:
        """Close the connections idle past reuse (the watchdog's, every half second)."""
        now = time.monotonic()
        stale = []
        with self.lock:
            for key, idle in list(self.idle.items()):
                fresh = [c for c in idle if now - c.idle_since <= IDLE_REUSE]
                stale += [c for c in idle if now - c.idle_since > IDLE_REUSE]
                if fresh:
                    self.idle[key] = fresh
                else:
                    del self.idle[key]
        for connection in stale:
            connection.close()


def _write(
    sock: socket.socket,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | Body | Iterable[bytes] | None,
) -> None:
    streamed = body is not None and not isinstance(body, bytes) and not hasattr(body, "read")
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
    if streamed:
        lines.append("Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # Each line's CRLF is the only CR and LF: a value holding one would start a line
    # of its own (header injection); nor may a target hold a space or control byte.
    if (
        head.count("\n") != len(lines)
        or head.count("\r") != len(lines)
        or "\x00" in head
        or not _TARGET.fullmatch(target)
    ):
        raise ValueError("a request line or header holds a byte no HTTP/1.1 message may")
    data = head.encode("latin-1")
    if isinstance(body, bytes):
        sock.sendall(data + body)
        return
    sock.sendall(data)
    if body is None:
        return
    try:
        if hasattr(body, "read"):
            while chunk := body.read():
                sock.sendall(chunk)
        else:
            for chunk in body:
                if chunk:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the backend may have answered before the body's end (a 413): read that
