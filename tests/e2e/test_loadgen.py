"""bench/loadgen.c's HTTP mode (-A) against a small HTTP server on
loopback: what it posts is the JSON it says, whatever the lengths of
-f and -t, and a malformed status line is an error, not a guess."""
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("loadgen") / "loadgen")
    subprocess.run(["cc", "-O1", "-Wall", "-pthread", "-o", exe,
                    os.path.join(ROOT, "bench", "loadgen.c"), "-lssl", "-lcrypto"], check=True)
    return exe


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Api.bodies.append(body)
        doc = json.loads(body)
        out = json.dumps({"messages": [{"id": "X", "to": t, "status": "queued"}
                                       for t in doc["to"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture
def api():
    Api.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_long_from_and_to_are_posted_whole(loadgen, api):
    frm = "f" * 6000 + "@bench.test"
    to = "t" * 3000 + "@dest.test"
    p = subprocess.run([loadgen, "-p", str(api.server_port), "-A", "k", "-m", "2", "-l", "0",
                        "-r", "3", "-f", frm, "-t", to],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr[-500:])
    assert "ok=2 " in p.stdout, p.stdout
    assert len(Api.bodies) == 2
    doc = json.loads(Api.bodies[0])
    assert doc["from"] == frm and doc["to"] == [f"{i}{to}" for i in (1, 2, 3)]


def test_short_status_line_is_an_error(loadgen):
    """'HTTP/1.1' alone (no status code): a failed message, never a status
    read from beyond the line."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)

    def serve():
        c, _ = ls.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    p = subprocess.run([loadgen, "-p", str(ls.getsockname()[1]), "-A", "k", "-m", "1"],
                       capture_output=True, text=True, timeout=60)
    ls.close()
    assert p.returncode == 1 and "ok=0 " in p.stdout and "failed=1" in p.stdout, \
        (p.stdout, p.stderr)
    assert "I/O error on message 0" in p.stderr, p.stderr  # malformed, not "status 0"
