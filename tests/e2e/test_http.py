"""The HTTP server foundation against a real `posthorn serve`: every error
code with its JSON body, limits (body, headers, slow clients), keep-alive
and pipelining, keys (missing, bad, revoked, admin or not), /healthz, the
OpenAPI document, and shutdown with a request in flight."""
import json
import os
import signal
import socket
import time

import pytest

import helpers
import httpapi
from conftest import Server
from httpapi import create_key, parse_raw, raw, request

HTTP_TIMEOUT = 2  # [http] timeout of the module's server, seconds
MAX_BODY = 64 * 1024
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs")


@pytest.fixture(scope="module")
def api(tmp_path_factory, cert):
    s = Server(tmp_path_factory.mktemp("http"), cert,
               extra=f"timeout = {HTTP_TIMEOUT}s\nmax_request_size = 64k")
    s.start()
    s.key = create_key(s, "default", "--name", "ci")
    s.admin_key = create_key(s, "default", "--admin", "--name", "root")
    yield s
    s.stop()


# ---- /healthz, openapi, unknown paths -------------------------------------------


def test_healthz_needs_no_key(api):
    r = request(api, "GET", "/healthz")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["status"] == "ok"
    assert doc["checks"] == {"spool": "ok", "disk": "ok", "database": "ok"}
    h = request(api, "HEAD", "/healthz")
    assert h.status == 200 and h.body == b""
    assert int(h.headers["content-length"]) == len(r.body)


def test_openapi_document_is_served(api):
    r = request(api, "GET", "/v1/openapi.json")
    assert r.status == 200
    with open(os.path.join(DOCS, "openapi.json"), "rb") as f:
        assert r.body == f.read()
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert "/v1/account" in doc["paths"]


def test_unknown_path_is_404(api):
    for path in ("/nope", "/v1/account/", "/v1/apikeys/1/x", "/assets/"):
        r = request(api, "GET", path, key=api.key)
        assert r.status == 404, path
        assert r.error()["code"] == "not_found"


def test_wrong_method_is_405_with_allow(api):
    r = request(api, "POST", "/v1/account", key=api.key, body={})
    assert r.status == 405
    assert r.error()["code"] == "method_not_allowed"
    assert r.headers["allow"] == "GET, HEAD"
    r = request(api, "GET", "/v1/apikeys/1", key=api.key)
    assert r.status == 405
    assert r.headers["allow"] == "PATCH, DELETE"


def test_bad_path_encoding_is_400(api):
    r = request(api, "GET", "/v1/apikeys/%zz", key=api.key)
    assert r.status == 400
    assert r.error()["code"] == "bad_request"


# ---- keys ------------------------------------------------------------------------------


def test_missing_and_bad_keys_are_401(api):
    cases = [
        ({}, "missing Authorization"),
        ({"Authorization": "Basic YTpi"}, "Bearer KEY"),
        ({"Authorization": "Bearer nonsense"}, "invalid or revoked"),
        ({"Authorization": "Bearer ph_" + "0" * 64}, "invalid or revoked"),
    ]
    for headers, words in cases:
        r = request(api, "GET", "/v1/account", headers=headers)
        assert r.status == 401, headers
        e = r.error()
        assert e["code"] == "unauthorized"
        assert words in e["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_account(api):
    api.add_user("carol", domains=("carol.example", "b.example"))
    key = create_key(api, "carol")
    doc = request(api, "GET", "/v1/account", key=key).json()
    assert doc == {"account": "carol", "domains": ["b.example", "carol.example"],
                   "admin": False, "key_id": doc["key_id"]}
    assert request(api, "GET", "/v1/account", key=api.admin_key).json()["admin"] is True


def test_account_key_sees_own_keys_admin_sees_all(api):
    api.add_user("dave", domains=())
    dave = create_key(api, "dave", "--name", "dave-ci")
    mine = request(api, "GET", "/v1/apikeys", key=dave).json()["apikeys"]
    assert [k["name"] for k in mine] == ["dave-ci"]
    assert set(mine[0]) == {"id", "account", "name", "admin", "created_at", "last_used_at",
                            "revoked_at"}
    everything = request(api, "GET", "/v1/apikeys", key=api.admin_key).json()["apikeys"]
    assert {"ci", "root", "dave-ci"} <= {k["name"] for k in everything}
    # default's ordinary key does not see default's admin key, nor dave's.
    seen = request(api, "GET", "/v1/apikeys", key=api.key).json()["apikeys"]
    assert all(k["account"] == "default" and not k["admin"] for k in seen)
    root_id = next(k["id"] for k in everything if k["name"] == "root")
    r = request(api, "PATCH", f"/v1/apikeys/{root_id}", key=api.key, body={"name": "x"})
    assert r.status == 404 and r.error()["code"] == "not_found"
    r = request(api, "DELETE", f"/v1/apikeys/{mine[0]['id']}", key=api.key)
    assert r.status == 404


def test_revoked_key_stops_within_a_second(api):
    key = create_key(api, "default", "--name", "short-lived")
    assert request(api, "GET", "/v1/account", key=key).status == 200
    key_id = request(api, "GET", "/v1/account", key=key).json()["key_id"]
    rc, out, err = api.cli("apikey", "revoke", str(key_id))
    assert rc == 0, err
    t0 = time.monotonic()
    while request(api, "GET", "/v1/account", key=key).status == 200:
        assert time.monotonic() - t0 < 1.0, "a revoked key still works after a second"
        time.sleep(0.05)
    assert request(api, "GET", "/v1/account", key=key).error()["code"] == "unauthorized"


def test_rename_and_revoke_through_the_api(api):
    key = create_key(api, "default", "--name", "old")
    key_id = request(api, "GET", "/v1/account", key=key).json()["key_id"]
    r = request(api, "PATCH", f"/v1/apikeys/{key_id}", key=key, body={"name": "new name"})
    assert r.status == 200 and r.json()["name"] == "new name"
    r = request(api, "DELETE", f"/v1/apikeys/{key_id}", key=api.admin_key)
    assert r.status == 200 and r.json()["revoked_at"]
    r = request(api, "DELETE", f"/v1/apikeys/{key_id}", key=api.admin_key)
    assert r.status == 409 and r.error()["code"] == "conflict"
    r = request(api, "DELETE", "/v1/apikeys/424242", key=api.admin_key)
    assert r.status == 404
    r = request(api, "DELETE", "/v1/apikeys/abc", key=api.admin_key)
    assert r.status == 404


# ---- request bodies ---------------------------------------------------------------------


def test_malformed_json_is_400_with_position(api):
    r = request(api, "PATCH", "/v1/apikeys/1", key=api.key, body='{"name":\n "x",\n}')
    assert r.status == 400
    e = r.error()
    assert e["code"] == "malformed_json"
    assert "line 3" in e["message"] and "column" in e["message"]
    r = request(api, "PATCH", "/v1/apikeys/1", key=api.key, body="")
    assert r.status == 400 and r.error()["code"] == "malformed_json"


def test_invalid_field_is_400_naming_it(api):
    cases = [
        ({"name": 5}, "name", "expected a string"),
        ({}, "name", "required"),
        ({"name": "x" * 65}, "name", "expected a string of 0 to 64"),
        ({"name": "a\u0007b"}, "name", "control characters"),
        ({"name": "ok", "colour": "red"}, "colour", "unknown field"),
    ]
    for body, field, words in cases:
        r = request(api, "PATCH", "/v1/apikeys/1", key=api.key, body=body)
        assert r.status == 400, body
        e = r.error()
        assert e["code"] == "invalid_field"
        assert e["field"] == field
        assert e["message"].startswith(field + ": ") and words in e["message"], e


def test_body_over_max_request_size_is_413(api):
    big = json.dumps({"name": "x" * (MAX_BODY + 10)})
    r = request(api, "PATCH", "/v1/apikeys/1", key=api.key, body=big)
    assert r.status == 413
    assert r.error()["code"] == "request_too_large"
    assert r.headers["connection"] == "close"
    # Chunked: the size is known only as it comes.
    data = (b"PATCH /v1/apikeys/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + api.key.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(20):
        data += b"1000\r\n" + b"x" * 4096 + b"\r\n"
    status, headers, body = parse_raw(raw(api, data))
    assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


def test_413_comes_before_the_body(api):
    """With Expect: 100-continue the client learns before sending anything."""
    s = socket.create_connection(httpapi.hostport(api), timeout=httpapi.TIMEOUT)
    s.sendall(b"PATCH /v1/apikeys/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
              + api.key.encode() + b"\r\nContent-Length: 10000000\r\n"
              b"Expect: 100-continue\r\n\r\n")
    status, headers, body = parse_raw(httpapi.read_all(s))
    s.close()
    assert status == 413
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_headers_too_large_is_431(api):
    data = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"
    status, headers, body = parse_raw(raw(api, data))
    assert status == 431
    assert json.loads(body)["error"]["code"] == "headers_too_large"
    many = b"".join(b"X-%d: v\r\n" % i for i in range(150))
    status, _, body = parse_raw(raw(api, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n"))
    assert status == 431


def test_malformed_requests_get_json_errors(api):
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request"),  # no Host
        (b"GET /healthz HTTP/1.1\nHost: t\n\n", 400, "bad_request"),  # bare LF
        (b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n", 505, "http_version_not_supported"),
        (b"POST /v1/account HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "not_implemented"),
        (b"POST /v1/account HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n", 400, "bad_request"),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n", 417,
         "expectation_failed"),
    ]
    for data, want, code in cases:
        status, headers, body = parse_raw(raw(api, data))
        assert status == want, data
        assert json.loads(body)["error"]["code"] == code
        assert headers["connection"] == "close"


# ---- connections -------------------------------------------------------------------------


def test_keep_alive_two_requests_one_connection(api):
    c = httpapi.conn(api)
    r1 = request(api, "GET", "/healthz", c=c)
    sock = c.sock
    r2 = request(api, "GET", "/v1/account", key=api.key, c=c)
    assert r1.status == 200 and r2.status == 200
    assert c.sock is sock and sock is not None, "the second request used a new connection"
    assert "connection" not in r2.headers
    c.close()


def test_pipelined_requests_answered_in_order(api):
    one = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    data = raw(api, one + one + last)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.index(b"HTTP/1.1 404") > data.rindex(b"HTTP/1.1 200")


def test_http10_closes_unless_asked(api):
    data = raw(api, b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, _ = parse_raw(data)
    assert status == 200 and headers["connection"] == "close"


def test_slow_head_times_out_with_408(api):
    s = socket.create_connection(httpapi.hostport(api), timeout=httpapi.TIMEOUT)
    t0 = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    for _ in range(HTTP_TIMEOUT * 2):  # a byte now and then does not help
        time.sleep(0.5)
        try:
            s.sendall(b"X")
        except OSError:
            break
    data = httpapi.read_all(s)
    s.close()
    status, _, body = parse_raw(data)
    assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
    assert HTTP_TIMEOUT - 0.5 <= httpapi.elapsed(t0) <= HTTP_TIMEOUT + 3


def test_stalled_body_times_out(api):
    s = socket.create_connection(httpapi.hostport(api), timeout=httpapi.TIMEOUT)
    s.sendall(b"PATCH /v1/apikeys/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
              + api.key.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"na")
    t0 = time.monotonic()
    status, _, body = parse_raw(httpapi.read_all(s))
    s.close()
    assert status == 408
    assert HTTP_TIMEOUT - 0.5 <= httpapi.elapsed(t0) <= HTTP_TIMEOUT + 3


def test_idle_keep_alive_closed_quietly(api):
    s = socket.create_connection(httpapi.hostport(api), timeout=httpapi.TIMEOUT)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    t0 = time.monotonic()
    data = httpapi.read_all(s)  # the reply, then EOF after the idle timeout
    s.close()
    assert data.count(b"HTTP/1.1") == 1 and b"408" not in data
    assert HTTP_TIMEOUT - 0.5 <= httpapi.elapsed(t0) <= HTTP_TIMEOUT + 3


# ---- configuration, shutdown, health -------------------------------------------------------


class NoHttpServer(Server):
    """A config file without an [http] section."""

    def write_conf(self):
        super().write_conf()
        with open(self.conf) as f:
            lines = [ln for ln in f.read().splitlines()
                     if ln != "[http]" and not ln.startswith("address = " + self.http_address)]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")


def test_no_http_section_no_listener(tmp_path, cert):
    s = NoHttpServer(tmp_path, cert)
    s.start()
    try:
        with open(s.conf) as f:
            assert "[http]" not in f.read()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(httpapi.hostport(s), timeout=2).close()
        with helpers.smtp(s.port) as c:  # SMTP runs as usual
            assert c.noop()[0] == 250
        assert "listener=http" not in s.log()
    finally:
        s.stop()


def test_sigterm_finishes_request_in_flight(server_factory):
    s = server_factory()
    key = create_key(s)
    idle = socket.create_connection(httpapi.hostport(s), timeout=httpapi.TIMEOUT)
    busy = socket.create_connection(httpapi.hostport(s), timeout=httpapi.TIMEOUT)
    body = b'{"name": "drained"}'
    busy.sendall(b"PATCH /v1/apikeys/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                 + key.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert httpapi.read_all(idle) == b""  # an idle connection is closed at once
    with pytest.raises(OSError):
        socket.create_connection(httpapi.hostport(s), timeout=2).close()
    busy.sendall(body[5:])
    status, headers, rbody = parse_raw(httpapi.read_all(busy))
    assert status == 200 and json.loads(rbody)["name"] == "drained"
    assert headers["connection"] == "close"
    assert s.proc.wait(10) == 0
    s.stop()


def test_healthz_503_when_the_spool_is_unusable(server_factory):
    s = server_factory()
    assert request(s, "GET", "/healthz").status == 200
    # The server holds the directory open: removing it makes every new
    # file in it fail, as a lost disk would.
    tmp = os.path.join(s.data_dir, "spool", "tmp")
    os.rmdir(tmp)
    try:
        r = request(s, "GET", "/healthz")
        assert r.status == 503
        doc = r.json()
        assert doc["status"] == "unavailable"
        assert doc["checks"]["spool"] != "ok" and doc["checks"]["database"] == "ok"
        assert doc["error"]["code"] == "unavailable" and "spool" in doc["error"]["message"]
    finally:
        os.mkdir(tmp)


def test_healthz_503_below_min_free_space(server_factory):
    s = server_factory(server={"min_free_space": "1000000g"})
    r = request(s, "GET", "/healthz")
    assert r.status == 503
    assert "below min_free_space" in r.json()["checks"]["disk"]


def test_last_use_recorded(server_factory):
    s = server_factory()
    key = create_key(s, "default", "--name", "used")
    create_key(s, "default", "--name", "unused")
    assert request(s, "GET", "/v1/account", key=key).status == 200
    s.stop()  # the last uses are written at exit at the latest
    rc, out, err = s.cli("apikey", "list")
    rows = {ln.split("\t")[2]: ln.split("\t") for ln in out.splitlines()}
    assert rows["unused"][5] == "never"
    assert rows["used"][5] != "never" and rows["used"][5].endswith("Z")
