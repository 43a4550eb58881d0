"""A weights source on 127.0.0.1 that breaks in each way a real one does, for the
download tests of the library (test_fetch.py) and of the running app
(test_weight_faults.py)."""

import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTML_PAGE = b"<!DOCTYPE html><html><body>Google Drive - Quota exceeded</body></html>"
FAULTS = {
    "html": "an HTML page instead of the file",
    "wrong": "other bytes than the file",
    "truncated": "half of the body it announces",
    "slow": "nothing for 3 s, then the file",
    "gone": "404 Not Found",
}


class WeightsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        weights, fault = self.server.weights, self.server.fault
        assert fault is None or fault in FAULTS, fault
        if fault == "gone":
            self.send_error(404)
            return
        if fault == "slow":
            time.sleep(3)
        body = {"html": HTML_PAGE, "wrong": weights[::-1]}.get(fault, weights)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if fault == "truncated" else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@contextmanager
def weights_server(weights: bytes):
    """A server whose `url` serves `weights`; set its `fault` to one of FAULTS to break
    it, and back to None to mend it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), WeightsHandler)
    server.weights, server.fault = weights, None
    server.url = f"http://127.0.0.1:{server.server_port}/weights"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of_a_closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving: nothing listens there
    return f"http://127.0.0.1:{port}/weights"
