"""Helpers for the events, stats and webhook tests: mail sent over SMTP (the
real path that emits accepted events), events read back through the API,
and a webhook receiver (http.server) that verifies signatures exactly as
docs/events.md tells users to."""
import hashlib
import hmac
import http.server
import json
import queue
import smtplib
import threading
import time

import helpers
from httpapi import create_key, request, wait_http

ALICE = helpers.USER  # an account with a password, sending from example.com


def with_keys(s):
    """A started server with alice added and three keys: key (default),
    alice (ALICE) and admin."""
    s.add_user()
    wait_http(s)
    s.key = create_key(s, "default")
    s.alice = create_key(s, ALICE)
    s.admin = create_key(s, "default", "--admin")
    return s


def send(srv, rcpts, frm="sender@example.net", subject="hello", login=None):
    """One message over SMTP (as `login` when given, else the trusted
    default account); returns its queue ID."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=helpers.TIMEOUT) as s:
        s.ehlo("client.test")
        if login:
            s.login(login, helpers.PASSWORD)
        code, text = s.mail(frm)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (code, text)
        code, text = s.data(helpers.message(subject=subject, frm=frm, to=rcpts[0]))
        assert code == 250, (code, text)
        return helpers.queued_id(text)


def get(srv, key, path):
    r = request(srv, "GET", path, key=key)
    assert r.status == 200, r
    return r.json()


def events(srv, key, query=""):
    return get(srv, key, "/v1/events" + (f"?{query}" if query else ""))


def wait_events(srv, key, query, n, timeout=helpers.TIMEOUT):
    """The events of `query` once there are at least n."""
    def enough():
        doc = events(srv, key, query)
        return doc if len(doc["events"]) >= n else None
    return helpers.wait_for(enough, timeout=timeout, what=f"{n} events for {query!r}")["events"]


def verify(secret, headers, body, now=None):
    """What a receiver does (docs/events.md): HMAC-SHA256 keyed with the
    secret, over timestamp "." body, hex, compared in constant time, and a
    timestamp within 5 minutes."""
    ts = headers["X-Posthorn-Timestamp"]
    sig = headers["X-Posthorn-Signature"]
    want = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs((now or time.time()) - int(ts)) <= 300
    return hmac.compare_digest(want, sig) and fresh


class Receiver:
    """A webhook endpoint on 127.0.0.1: records every POST (time, headers,
    body) and answers with the next status of `statuses` (then 200)."""

    def __init__(self, statuses=(), tls_context=None, host="127.0.0.1"):
        self.posts = []
        self.statuses = queue.Queue()
        for s in statuses:
            self.statuses.put(s)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts.append((time.monotonic(), dict(self.headers), body))
                try:
                    status = outer.statuses.get_nowait()
                except queue.Empty:
                    status = 200
                answer = b"ok" if status < 300 else b"try again later"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        if tls_context:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if tls_context else "http"
        self.url = f"{scheme}://{host}:{self.port}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fail_with(self, *statuses):
        for s in statuses:
            self.statuses.put(s)

    def received(self):
        with self.lock:
            return list(self.posts)

    def events(self):
        """Every event of every POST, in order (repeats included)."""
        return [e for _, _, body in self.received() for e in json.loads(body)["events"]]

    def wait_posts(self, n, timeout=helpers.TIMEOUT):
        return helpers.wait_for(lambda: len(self.received()) >= n and self.received(),
                                timeout=timeout, what=f"{n} webhook POSTs")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
