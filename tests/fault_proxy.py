"""A fault-injecting HTTP proxy for tests: sits on 127.0.0.1 in front of the moto S3 server.

Clients use the proxy's URL as their S3 endpoint. Each request is forwarded to
the upstream server unless a :class:`Fault` rule matches it first:

* ``slowdown``: answer ``503 SlowDown`` with S3's XML error body (the store's
  "back off" signal), without forwarding;
* ``reset``: read the request, then close the connection with a TCP reset;
* ``cut``: forward, then send the upstream headers (full ``Content-Length``)
  and only the first ``cut_bytes`` of the body before closing;
* ``delay``: wait ``delay_seconds``, then forward.

A rule fires for requests whose method and path match, ``times`` times (None:
forever), optionally only every ``every``-th match. ``injected`` counts what
fired, so a test can prove its faults really happened.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("slowdown", "reset", "cut", "delay")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
SLOWDOWN_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>"
)


@dataclass
class Fault:
    """``path``: a regular expression searched in the request path (URL-decoded is not applied)."""

    kind: str
    method: str | None = None
    path: str = ""
    times: int | None = 1
    every: int = 1
    cut_bytes: int = 100
    delay_seconds: float = 0.5
    matched: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {self.kind!r}")


class FaultProxy:
    """``with FaultProxy(upstream) as proxy: ... proxy.url ...``; add rules with :meth:`add`."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname, parts.port)
        self.rules: list[Fault] = []
        self.injected: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # the test output stays readable
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                fault = proxy._match(self.command, self.path)
                kind = fault.kind if fault else None
                if kind == "slowdown":
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOWDOWN_BODY)
                    return
                if kind == "reset":
                    # SO_LINGER 0: close() sends RST, as a dropped connection looks to the client.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind == "delay":
                    time.sleep(fault.delay_seconds)
                status, reason, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                self.send_response(status, reason)
                head = self.command == "HEAD"  # a HEAD answer's Content-Length is the object's size
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and (head or name.lower() != "content-length"):
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if head:
                    return
                if kind == "cut" and len(data) > fault.cut_bytes:
                    self.wfile.write(data[: fault.cut_bytes])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, *faults: Fault) -> FaultProxy:
        with self._lock:
            self.rules.extend(faults)
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if (rule.method and rule.method != method) or not re.search(rule.path, path):
                    continue
                if rule.times is not None and rule.times <= 0:
                    continue
                rule.matched += 1
                if rule.matched % rule.every:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                self.injected[rule.kind] += 1
                return rule
        return None

    def _forward(self, method: str, path: str, headers, body: bytes):
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
