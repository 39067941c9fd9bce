"""Helpers for the HTTP API tests: requests with http.client, raw sockets
for what http.client will not send, API keys from the CLI, and a server
with a short [http] timeout (module-scoped)."""
import http.client
import json
import re
import socket
import time

import helpers

KEY_RE = re.compile(r"^ph_[0-9a-f]{64}$")
TIMEOUT = helpers.TIMEOUT


def hostport(srv):
    host, port = srv.http_address.rsplit(":", 1)
    return host, int(port)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error(self):
        """The SPEC 6 error object, checked for its shape."""
        doc = self.json()
        assert set(doc["error"]) >= {"code", "message"}, doc
        assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
        return doc["error"]

    def __repr__(self):
        return f"Response({self.status}, {self.body[:300]!r})"


def conn(srv, timeout=TIMEOUT):
    host, port = hostport(srv)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def request(srv, method, path, key=None, body=None, headers=None, c=None):
    """One request (on connection c, or a new one); returns a Response."""
    own = c is None
    c = c or conn(srv)
    h = dict(headers or {})
    if key:
        h["Authorization"] = f"Bearer {key}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        if own:
            c.close()


def raw(srv, data, timeout=TIMEOUT):
    """Sends bytes, reads until the server closes; returns what came back."""
    s = socket.create_connection(hostport(srv), timeout=timeout)
    try:
        s.sendall(data)
        return read_all(s)
    finally:
        s.close()


def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def parse_raw(data):
    """The first response of raw bytes: (status, headers, body)."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    return status, headers, rest[:n]


def create_key(srv, account="default", *args):
    rc, out, err = srv.cli("apikey", "create", account, *args)
    assert rc == 0, err
    key = out.strip()
    assert KEY_RE.match(key), out
    return key


def wait_http(srv, timeout=10.0):
    def up():
        try:
            return request(srv, "GET", "/healthz").status == 200
        except OSError:
            return False
    helpers.wait_for(up, timeout=timeout, what="HTTP /healthz")


def elapsed(t0):
    return time.monotonic() - t0


def two_accounts(server):
    """Adds account bob to a stopped server, starts it, and gives it a key
    of each account: server.key (default) and server.bob."""
    server.add_user("bob", domains=())
    server.start()
    server.key = create_key(server, "default")
    server.bob = create_key(server, "bob")
    return server
