"""An HTTPS peer for the TLS policy tests: it serves MTA-STS policies
(GET /.well-known/mta-sts.txt, by Host) and collects TLS-RPT reports (POST
anywhere), over TLS with a certificate from the test PKI. It listens on
one loopback address and port (the server's [relay] mta_sts_port), and
every mta-sts.DOMAIN of the tests resolves to that address.

    peer = HTTPSPeer(cert, ip="127.0.0.40")
    peer.policies["mta-sts.sts.test"] = (200, "version: STSv1\\n...")
    peer.gets    -> [(host, path), ...]   every GET, in order
    peer.posts   -> [(path, headers, body bytes), ...]
"""
import http.server
import ssl
import threading

from conftest import free_port
from pki import server_context


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test output is for failures
        pass

    def _reply(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        peer = self.server.peer
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        with peer.lock:
            peer.gets.append((host, self.path))
            status, body = peer.policies.get(host, (404, "no policy here"))
        if self.path != "/.well-known/mta-sts.txt":
            status, body = 404, "not found"
        if status in (301, 302):
            self.send_response(status)
            self.send_header("Location", body)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._reply(status, body.encode() if isinstance(body, str) else body)

    def do_POST(self):
        peer = self.server.peer
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with peer.lock:
            peer.posts.append((self.path, dict(self.headers), body))
            status = peer.post_status
        self._reply(status, b"thanks")


class HTTPSPeer:
    def __init__(self, cert, ip="127.0.0.40", port=None):
        self.ip = ip
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.policies = {}
        self.gets = []
        self.posts = []
        self.post_status = 200
        self.httpd = http.server.ThreadingHTTPServer((ip, self.port), _Handler)
        self.httpd.peer = self
        self.httpd.daemon_threads = True
        ctx = server_context(cert)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets_for(self, host):
        with self.lock:
            return [g for g in self.gets if g[0] == host]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
