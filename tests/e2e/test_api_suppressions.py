"""/v1/suppressions against a real `posthorn serve`: add (201, then 200
with the first entry kept), look up in any case, list with search and
cursors, remove; every error (400 naming the field or parameter, 401,
404, 413); one account's key never sees or changes another's list; and
the list shared with `posthorn suppress` on the running server, both
ways, within a second."""
import json
import re
import subprocess
import time
import urllib.parse

import pytest

from conftest import Server
from httpapi import request, two_accounts

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def api(tmp_path_factory, cert):
    s = two_accounts(Server(tmp_path_factory.mktemp("supp"), cert,
                            extra="max_request_size = 4k"))
    yield s
    s.stop()


@pytest.fixture
def clean(api):
    """Empties default's and bob's lists after the test."""
    yield api
    for account in ("default", "bob"):
        rc, out, err = api.cli("suppress", "list", "--account", account)
        for line in out.splitlines():
            rc, _, err = api.cli("suppress", "remove", line.split("\t")[0], "--account", account)
            assert rc == 0, err


def add(api, body, key=None):
    return request(api, "POST", "/v1/suppressions", key=key or api.key, body=body)


def path(address):
    return "/v1/suppressions/" + urllib.parse.quote(address, safe="@")


def listing(api, query="", key=None):
    r = request(api, "GET", "/v1/suppressions" + query, key=key or api.key)
    assert r.status == 200, r
    return r.json()


def test_add_is_idempotent_and_keeps_the_first(clean):
    api = clean
    logged = api.log().count("event=suppression_added account=default")
    r = add(api, {"address": "John.Doe@Example.COM", "reason": "complaint (abuse)"})
    assert r.status == 201, r
    first = r.json()
    assert set(first) == {"address", "reason", "created_at"}
    assert first["address"] == "John.Doe@example.com"
    assert first["reason"] == "complaint (abuse)"
    assert RFC3339.match(first["created_at"])
    r = add(api, {"address": "<john.doe@example.com>", "reason": "unsubscribed"})
    assert r.status == 200 and r.json() == first
    r = add(api, {"address": "plain@example.com"})
    assert r.status == 201 and r.json()["reason"] == "manual"
    log = api.log()
    assert log.count("event=suppression_added account=default") == logged + 2
    assert 'address=John.Doe@example.com reason="complaint (abuse)"' in log
    assert [e["address"] for e in listing(api)["suppressions"]] == \
        ["John.Doe@example.com", "plain@example.com"]


def test_get_one_in_any_case(clean):
    api = clean
    entry = add(api, {"address": "a+tag@example.org", "reason": "x"}).json()
    for address in ("a+tag@example.org", "A+TAG@EXAMPLE.ORG", '"a+tag"@example.org'):
        r = request(api, "GET", path(address), key=api.key)
        assert r.status == 200 and r.json() == entry, address
    r = request(api, "GET", path("a@example.org"), key=api.key)
    assert r.status == 404 and r.error()["code"] == "not_found"
    assert "not on the suppression list" in r.error()["message"]


def test_delete(clean):
    api = clean
    entry = add(api, {"address": "gone@example.org", "reason": "r"}).json()
    r = request(api, "DELETE", path("GONE@example.org"), key=api.key)
    assert r.status == 200 and r.json() == entry
    assert "event=suppression_removed account=default" in api.log()
    r = request(api, "DELETE", path("gone@example.org"), key=api.key)
    assert r.status == 404 and r.error()["code"] == "not_found"
    assert request(api, "GET", path("gone@example.org"), key=api.key).status == 404
    assert listing(api)["suppressions"] == []


def test_list_search_and_cursors(clean):
    api = clean
    addrs = ["e@x.org", "D@y.org", "c@x.org", "b_1@z.org", "a%@x.org", "bx1@z.org"]
    for a in addrs:
        assert add(api, {"address": a}).status == 201, a
    doc = listing(api)
    assert [e["address"] for e in doc["suppressions"]] == \
        ["a%@x.org", "b_1@z.org", "bx1@z.org", "c@x.org", "D@y.org", "e@x.org"]
    assert doc["next"] is None
    seen, after = [], None
    while True:
        q = "?limit=4" + (f"&after={after}" if after else "")
        doc = listing(api, q)
        seen += [e["address"] for e in doc["suppressions"]]
        after = doc["next"]
        if not after:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", after)
    assert seen == ["a%@x.org", "b_1@z.org", "bx1@z.org", "c@x.org", "D@y.org", "e@x.org"]
    q = "?address=" + urllib.parse.quote("@X.ORG")
    assert [e["address"] for e in listing(api, q)["suppressions"]] == \
        ["a%@x.org", "c@x.org", "e@x.org"]
    assert [e["address"] for e in listing(api, "?address=b_")["suppressions"]] == ["b_1@z.org"]
    assert [e["address"] for e in listing(api, "?address=%25")["suppressions"]] == ["a%@x.org"]
    doc = listing(api, "?address=x.org&limit=2")
    assert len(doc["suppressions"]) == 2 and doc["next"]
    doc = listing(api, f"?address=x.org&limit=2&after={doc['next']}")
    assert [e["address"] for e in doc["suppressions"]] == ["e@x.org"] and doc["next"] is None


def field_error(r, field, words):
    assert r.status == 400, r
    e = r.error()
    assert e["code"] == "invalid_field" and e["field"] == field, e
    assert words in e["message"], e


def test_invalid_fields_are_400_naming_them(clean):
    api = clean
    cases = [
        ({}, "address", "required"),
        ({"address": 5}, "address", "expected a string"),
        ({"address": "nobody"}, "address", "no '@'"),
        ({"address": "a b@x.org"}, "address", "unquoted local part"),
        ({"address": "a@x..org"}, "address", "not a valid RFC 5321 address"),
        ({"address": "a@-x.org"}, "address", "not a valid RFC 5321 address"),
        ({"address": "x" * 65 + "@x.org"}, "address", "longer than 64"),
        ({"address": "a@x.org", "reason": "two\nlines"}, "reason", "control characters"),
        ({"address": "a@x.org", "reason": "r" * 513}, "reason", "expected a string of 0 to 512"),
        ({"address": "a@x.org", "reason": 1}, "reason", "expected a string"),
        ({"address": "a@x.org", "why": "x"}, "why", "unknown field"),
    ]
    for body, field, words in cases:
        field_error(add(api, body), field, words)
    r = add(api, '{"address": ')
    assert r.status == 400 and r.error()["code"] == "malformed_json"
    assert listing(api)["suppressions"] == []


def test_invalid_parameters_are_400_naming_them(clean):
    api = clean
    for q, param in (("?limit=0", "limit"), ("?limit=1001", "limit"), ("?after=%3D%3D", "after"),
                     ("?address=" + "a" * 255, "address")):
        r = request(api, "GET", "/v1/suppressions" + q, key=api.key)
        assert r.status == 400, q
        e = r.error()
        assert e["code"] == "invalid_parameter" and e["parameter"] == param, e
    for method in ("GET", "DELETE"):
        r = request(api, method, "/v1/suppressions/no-at-sign", key=api.key)
        assert r.status == 400, method
        e = r.error()
        assert e["code"] == "invalid_parameter" and e["parameter"] == "address", e


def test_no_key_is_401(api):
    for method, p in (("GET", "/v1/suppressions"), ("POST", "/v1/suppressions"),
                      ("GET", path("a@b.c")), ("DELETE", path("a@b.c"))):
        r = request(api, method, p, body={"address": "a@b.c"} if method == "POST" else None)
        assert r.status == 401 and r.error()["code"] == "unauthorized", (method, p)


def test_body_above_max_request_size_is_413(clean):
    r = add(clean, {"address": "a@x.org", "reason": "r" * 5000})
    assert r.status == 413 and r.error()["code"] == "request_too_large"


def test_another_accounts_list_is_out_of_reach(clean):
    api = clean
    add(api, {"address": "shared@x.org", "reason": "default's"})
    assert listing(api, key=api.bob)["suppressions"] == []
    assert listing(api, "?address=shared", key=api.bob)["suppressions"] == []
    for method in ("GET", "DELETE"):
        r = request(api, method, path("shared@x.org"), key=api.bob)
        assert r.status == 404, method
    r = add(api, {"address": "shared@x.org", "reason": "bob's"}, key=api.bob)
    assert r.status == 201 and r.json()["reason"] == "bob's"
    assert request(api, "DELETE", path("shared@x.org"), key=api.bob).status == 200
    r = request(api, "GET", path("shared@x.org"), key=api.key)
    assert r.status == 200 and r.json()["reason"] == "default's"


def within_a_second(pred, what):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < 1.0, f"{what} not seen within a second"
        time.sleep(0.05)


def test_cli_and_api_share_the_list_on_a_running_server(clean):
    api = clean
    rc, out, err = api.cli("suppress", "add", "Cli@Example.org", "--reason", "from the CLI")
    assert rc == 0, err
    within_a_second(lambda: request(api, "GET", path("cli@example.org"), key=api.key).status
                    == 200, "a CLI add")
    assert request(api, "GET", path("cli@example.org"), key=api.key).json()["reason"] == \
        "from the CLI"
    assert add(api, {"address": "api@example.org", "reason": "from the API"}).status == 201
    rc, out, err = api.cli("suppress", "list")
    assert rc == 0 and "api@example.org\tfrom the API\t" in out
    rc, out, err = api.cli("suppress", "remove", "cli@example.org")
    assert rc == 0, err
    within_a_second(lambda: request(api, "GET", path("cli@example.org"), key=api.key).status
                    == 404, "a CLI remove")
    assert request(api, "DELETE", path("api@example.org"), key=api.key).status == 200
    rc, out, err = api.cli("suppress", "list")
    assert rc == 0 and out == ""
    rc, out, err = api.cli("suppress", "add", "bobs@example.org", "--account", "bob")
    assert rc == 0, err
    within_a_second(lambda: request(api, "GET", path("bobs@example.org"), key=api.bob).status
                    == 200, "a CLI add to bob")
    assert request(api, "GET", path("bobs@example.org"), key=api.key).status == 404


def test_with_curl(clean):
    api = clean
    base = f"http://{api.http_address}"
    auth = ["-H", f"Authorization: Bearer {api.key}"]
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *auth, "-d",
                          '{"address": "curl@example.org", "reason": "manual"}',
                          base + "/v1/suppressions"],
                         capture_output=True, text=True, timeout=30).stdout
    body, code = out.rsplit("\n", 1)
    assert code == "201" and json.loads(body)["address"] == "curl@example.org"
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "DELETE", *auth,
                          base + "/v1/suppressions/curl@example.org"],
                         capture_output=True, text=True, timeout=30).stdout
    assert out.rsplit("\n", 1)[1] == "200"
