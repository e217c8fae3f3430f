"""A loopback HTTP file server for download tests: ETag, Last-Modified, Range, and injected faults."""

import hashlib
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LoopbackHTTPServer:
    """Serves `handler` on 127.0.0.1 (a free port, or `port`) from a thread, for the duration of a `with` block."""

    def __init__(self, handler, port: int = 0):
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, at the end of every test
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


class LoopbackServer(LoopbackHTTPServer):
    """Serves files of `root` on 127.0.0.1. Faults are set per test:

    - `cut_after[name] = (n_bytes, times)`: close the connection after n bytes, `times` times.
    - `ranges = False`: ignore Range requests (answer 200 with the whole file).
    - `republish_after_cut[name] = data`: the publication changes right after a cut (before the next attempt).
    - `bare = True`: say nothing about the files (no ETag, Last-Modified or Content-Length).
    - `throttle = (n_bytes, seconds)`: send the body n bytes at a time, pausing between pieces (a slow link).
    A resume (Range) must carry If-Range, or it is refused (412): a client that resumes without it could splice
    two publications. With an If-Range that no longer matches, the whole new file is sent (200), as RFC 9110 says.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cut_after: dict[str, tuple[int, int]] = {}
        self.ranges = True
        self.republish_after_cut: dict[str, bytes] = {}
        self.bare = False
        self.throttle: tuple[int, float] | None = None
        self.requests: list[tuple[str, str, dict]] = []
        super().__init__(self._handler())

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def publish(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _serve(self, body: bool):
                name = self.path.lstrip("/")
                server.requests.append((self.command, name, dict(self.headers)))
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start, status = 0, 200
                last_modified = formatdate(path.stat().st_mtime, usegmt=True)
                wanted = self.headers.get("Range")
                if wanted and server.ranges:
                    if self.headers.get("If-Range") is None:
                        self.send_error(412, "a resume must say which version it continues (If-Range)")
                        return
                    if self.headers["If-Range"] in (etag, last_modified):
                        start, status = int(wanted.split("=")[1].split("-")[0]), 206
                self.send_response(status)
                if not server.bare:
                    self.send_header("Content-Length", str(len(data) - start))
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", last_modified)
                if server.ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if not body:
                    return
                payload = data[start:]
                cut, times = server.cut_after.get(name, (None, 0))
                if cut is not None and times > 0:
                    server.cut_after[name] = (cut, times - 1)
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    if name in server.republish_after_cut:
                        path.write_bytes(server.republish_after_cut.pop(name))
                    return
                if server.throttle:
                    size, pause = server.throttle
                    for offset in range(0, len(payload), size):
                        self.wfile.write(payload[offset : offset + size])
                        self.wfile.flush()
                        time.sleep(pause)
                    return
                self.wfile.write(payload)

        return Handler
