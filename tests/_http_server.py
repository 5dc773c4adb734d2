"""A small HTTP server on 127.0.0.1 for offline download tests (yt-dlp, ffmpeg, Zenodo-like archives).

Each path is a :class:`Route`: bytes with a content type, plus failure behaviour -- a fixed error
status, ``fail_first`` error responses before success (e.g. HTTP 429 then 200), a body cut short at
``truncate_at`` bytes (Content-Length still claims the whole file), or ``drop_once_at``: the first
response that reaches that byte offset is cut there, later ones are whole (a connection dropped
mid-file).  Range requests (``bytes=a-b`` / ``bytes=a-``) get 206 answers as ffmpeg and resumable
downloaders expect.  ``hits`` counts requests per path.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    data: bytes = b""
    content_type: str = "application/octet-stream"
    status: int = 200
    fail_first: int = 0
    fail_status: int = 429
    truncate_at: int | None = None
    drop_once_at: int | None = None
    ranges: bool = True
    served_errors: int = 0
    dropped: bool = False


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # clients hang up on purpose (seeks, cut bodies)
        pass


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class MediaServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter = Counter()
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of every ranged request
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _error(self, status: int, head: bool) -> None:
                body = f"error {status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] += 1
                    r = server.routes.get(path)
                    fail = None
                    if r is not None and r.status != 200:
                        fail = r.status
                    elif r is not None and r.served_errors < r.fail_first:
                        r.served_errors += 1
                        fail = r.fail_status
                if r is None:
                    return self._error(404, head)
                if fail is not None:
                    return self._error(fail, head)
                n = len(r.data)
                start, end = 0, n - 1
                rng = self.headers.get("Range") if r.ranges else None
                if rng:
                    with server.lock:
                        server.ranges.append((path, rng))
                m = _RANGE.match(rng.strip()) if rng else None
                if m:
                    start = int(m.group(1))
                    if m.group(2):
                        end = min(int(m.group(2)), n - 1)
                    if start >= n:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{n}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{n}")
                else:
                    self.send_response(200)
                length = end - start + 1
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(length))
                if r.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head:
                    return
                stop = end + 1
                cut = False
                with server.lock:
                    if r.truncate_at is not None and r.truncate_at < stop:
                        stop, cut = max(r.truncate_at, start), True
                    if r.drop_once_at is not None and not r.dropped and start < r.drop_once_at < stop:
                        stop, cut, r.dropped = r.drop_once_at, True, True
                try:
                    pos = start
                    while pos < stop:
                        chunk = r.data[pos:min(stop, pos + 65536)]
                        self.wfile.write(chunk)
                        pos += len(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    cut = True
                if cut:
                    self.close_connection = True

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, data: bytes = b"", content_type: str = "application/octet-stream", **kw) -> Route:
        r = Route(data=data, content_type=content_type, **kw)
        with self.lock:
            self.routes[path] = r
        return r

    def __enter__(self) -> "MediaServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
