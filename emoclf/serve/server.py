"""The HTTP server of ``emoclf serve``: Python's own http.server, one thread per request, JSON for the page."""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from emoclf.serve import DEFAULT_HOST, DEFAULT_PORT
from emoclf.serve import service as service_module
from emoclf.serve.comparison import comparison_file, comparison_view
from emoclf.serve.page import comparison_page, predict_page
from emoclf.serve.service import Service, UploadError, UploadTooLarge, size_message

READ_TIMEOUT = 30  # seconds a client may take to send its request, so that a stalled one frees its thread
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine reaches."""
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    """Routes: / and /comparison (pages), /api/options, POST /api/predict, /comparison/file/NAME."""

    server_version = "emoclf-serve"
    timeout = READ_TIMEOUT

    def log_message(self, fmt, *args) -> None:  # into the logging tree, not onto stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route) -> None:
        """Run a route; any failure becomes a JSON message and the server goes on serving."""
        try:
            if not self._host_allowed():
                self._json({"error": "This server answers only requests addressed to 127.0.0.1 or localhost."},
                           HTTPStatus.FORBIDDEN)
                return
            route(urlsplit(self.path))
        except UploadError as exc:
            self._json({"error": str(exc)}, exc.status)
        except (ConnectionError, socket.timeout) as exc:
            log.info("Client went away: %s", exc)
        except Exception as exc:  # one bad request must never stop the server
            log.exception("Request %s %s failed", self.command, self.path)
            self._json({"error": f"The server failed on this request ({type(exc).__name__}: {exc}); it keeps "
                                 f"serving, and its log has the details."}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _host_allowed(self) -> bool:
        # Bound to this machine only: refuse a Host header naming another site (DNS rebinding).
        if not is_loopback(self.server.server_address[0]):
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        return not host or is_loopback(name)

    @property
    def service(self) -> Service:
        return self.server.service

    def _get(self, url) -> None:
        if url.path in ("/", "/index.html"):
            self._send(predict_page().encode("utf-8"), "text/html; charset=utf-8")
        elif url.path == "/api/options":
            try:
                self._json(self.service.options())
            except FileNotFoundError as exc:
                self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
        elif url.path == "/comparison":
            view = comparison_view(self.service.runs_dir)
            self._send(comparison_page(view).encode("utf-8"), "text/html; charset=utf-8")
        elif url.path.startswith("/comparison/file/"):
            path = comparison_file(self.service.runs_dir, unquote(url.path[len("/comparison/file/"):]))
            if path is None:
                self._json({"error": f"No such file in the latest comparison: {url.path}"}, HTTPStatus.NOT_FOUND)
            else:
                kind = "image/png" if path.suffix == ".png" else "text/plain; charset=utf-8"
                self._send(path.read_bytes(), kind)
        elif url.path == "/favicon.ico":
            self._send(b"", "image/x-icon", HTTPStatus.NO_CONTENT)
        else:
            self._json({"error": f"No page {url.path}; the pages are / and /comparison."}, HTTPStatus.NOT_FOUND)

    def _post(self, url) -> None:
        if url.path != "/api/predict":
            self._json({"error": f"Nothing to POST to at {url.path}; photos go to /api/predict."},
                       HTTPStatus.NOT_FOUND)
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        data = self._body()
        result = self.service.predict(data, query.get("name", "upload"), query.get("run", ""),
                                      query.get("face", "none"), query.get("gradcam") in ("1", "true", "on"))
        self._json(result)

    def _body(self) -> bytes:
        """The request body, refused unread past MAX_UPLOAD_BYTES."""
        limit = service_module.MAX_UPLOAD_BYTES
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise UploadError("The upload has no valid Content-Length; send the photo as the request body.") from None
        if length < 0 or length > limit:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise UploadTooLarge(size_message(max(length, 0), limit))
        data = self.rfile.read(length)
        if len(data) < length:
            raise UploadError(f"The upload stopped after {len(data)} of {length} bytes; send it again.")
        return data

    def _json(self, data: Dict, status: int = HTTPStatus.OK) -> None:
        self._send(json.dumps(data).encode("utf-8"), "application/json", status)

    def _send(self, body: bytes, kind: str, status: int = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if status != HTTPStatus.NO_CONTENT:
            self.wfile.write(body)


class Server(ThreadingHTTPServer):
    """A threading HTTP server that holds the Service its handlers use."""

    daemon_threads = True  # Ctrl+C is not held up by a client that keeps its connection open

    def __init__(self, address, service: Service):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        """A client that hung up is no error of the server's; anything else is logged with its traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.info("Client %s went away: %s", client_address[0], exc)
        else:
            log.exception("Request from %s failed", client_address[0])


def make_server(service: Service, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> Server:
    """A server bound to ``host``:``port`` (port 0: any free port), not yet serving; warns when not loopback."""
    if not is_loopback(host):
        log.warning("Serving on %s: anyone who can reach this machine on port %d can use the page and its models.",
                    host, port)
    return Server((host, port), service)


def url_of(server: Server) -> str:
    """The address to open in a browser."""
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(service: Service, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          ready: Optional[Callable[[str], None]] = None) -> None:
    """Serve until interrupted; ``ready(url)`` is called once the port is open."""
    server = make_server(service, host, port)
    try:
        if ready:
            ready(url_of(server))
        server.serve_forever()
    finally:
        server.server_close()
        service.close()

