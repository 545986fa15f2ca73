"""A real HTTP server on 127.0.0.1 standing in for an application's backend.

It records every request it receives (method, path, headers, body) and answers with
whatever `answer` function the test installs: answer(handler, record) writes the
response through the BaseHTTPRequestHandler.
"""

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes = b""
    chunked: bool = False
    header_list: list = field(default_factory=list)
    connection: int = 0  # which of the server's connections it came on (1, 2, ...)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A caller that went away mid-answer is what several tests do: no traceback."""


def echo(handler, record):
    """Default answer: 200 and a JSON summary of what arrived."""
    send(
        handler,
        200,
        json.dumps(
            {
                "method": record.method,
                "path": record.path,
                "body_length": len(record.body),
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )


def send(handler, status, body=b"", headers=None):
    handler.send_response(status)
    headers = dict(headers or {})
    headers.setdefault("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def send_chunked(handler, status, chunks, headers=None):
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for chunk in chunks:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")


def reset_after(handler, sent=b"partial" * 10_000, promised=1_000_000, pause=0.3):
    """Promise a long body, send some, wait, then reset the connection."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(promised))
    handler.end_headers()
    handler.wfile.write(sent)
    handler.wfile.flush()
    time.sleep(pause)
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


class Upstream:
    def __init__(self, tls=None):
        """tls: an ssl.SSLContext to serve https with."""
        self.received: list[Received] = []
        self.answer = echo
        self.connections = 0
        self.drop_reused = False  # close a kept-alive connection when its next request comes
        # Seconds a kept-alive connection may idle: a request coming later is dropped
        # unanswered, as when a backend's idle timeout closes it under the request.
        self.idle_timeout = None
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                upstream.connections += 1
                self.number = upstream.connections

            def log_message(self, *args):
                pass

            def _handle(self):
                self.served = getattr(self, "served", 0) + 1
                if upstream.drop_reused and self.served > 1:
                    self.close_connection = True  # as a short keep-alive timeout does
                    return
                idle = time.monotonic() - getattr(self, "answered", time.monotonic())
                if upstream.idle_timeout is not None and idle >= upstream.idle_timeout:
                    self.close_connection = True
                    return
                chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                if chunked:
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = Received(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    chunked,
                    list(self.headers.items()),
                    self.number,
                )
                upstream.received.append(record)
                upstream.answer(self, record)
                self.answered = time.monotonic()

            def _read_chunked(self):
                body = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b""):
                            pass
                        return bytes(body)
                    body += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def last(self):
        return self.received[-1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
