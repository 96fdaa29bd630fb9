"""The local HTTP server the weights tests download from (no network beyond 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time

import pytest

SOCKET_TIMEOUT_S = 5.0


class _Server:
    """A local HTTP server whose routes map a URL path to (body, declared Content-Length, delay)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int, float]] = {}
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = SOCKET_TIMEOUT_S

            def do_GET(self) -> None:
                server.hits.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                body, declared, delay = route
                time.sleep(delay)
                # After a delay the client may have given up already (the timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200)
                    self.send_header("Content-Length", str(declared))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{route}"

    def serve(self, route: str, body: bytes, *, declared: int | None = None, delay: float = 0.0) -> str:
        self.routes[route] = (body, len(body) if declared is None else declared, delay)
        return self.url(route)


@pytest.fixture
def server():
    local = _Server()
    local.thread.start()
    yield local
    local.httpd.shutdown()
    local.httpd.server_close()
    local.thread.join(SOCKET_TIMEOUT_S)
