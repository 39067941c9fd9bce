"""Webhooks against a real server and real receivers (http.server, also over
TLS): CRUD and its errors; batches in the /v1/events shape, signed so that
a receiver verifies them with Python's hmac as docs/events.md says; retries
with exponential backoff; a dead endpoint that does not delay another; the
cursor surviving a restart (nothing lost, nothing delivered before sent
again); events dropped after webhook_retry_for; the type filter;
destinations blocked for account keys; https verified against ca_file."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

import helpers
from eventsapi import ALICE, Receiver, events, get, send, verify, wait_events, with_keys
from httpapi import request, wait_http
from pki import PKI, server_context

FAST = "[events]\nwebhook_backoff = 1s\nwebhook_timeout = 5s\n"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def start(server_factory, extra=FAST, **kw):
    return with_keys(server_factory(extra=extra, **kw))


def create(srv, key, body, status=201):
    r = request(srv, "POST", "/v1/webhooks", key=key, body=body)
    assert r.status == status, r
    return r.json()


def accepted_ids(srv, key, qid, n):
    return [e["id"] for e in wait_events(srv, key, f"message={qid}", n)]


# ---- CRUD ---------------------------------------------------------------------------------


def test_crud(server_factory, receiver):
    s = start(server_factory)
    hook = create(s, s.key, {"url": receiver.url, "types": ["accepted", "bounced"],
                             "description": "shop events"})
    assert set(hook) >= {"id", "secret", "url", "types", "description", "account", "state"}
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) == 6 + 64
    assert hook["types"] == ["accepted", "bounced"] and hook["account"] == "default"
    got = get(s, s.key, f"/v1/webhooks/{hook['id']}")
    assert "secret" not in got and got["recent_failures"] == []
    assert got["state"] == {"last_event_id": 0, "failures": 0, "failing_since": None,
                            "next_attempt_at": None}
    assert [w["id"] for w in get(s, s.key, "/v1/webhooks")["webhooks"]] == [hook["id"]]
    assert "secret" not in get(s, s.key, "/v1/webhooks")["webhooks"][0]
    # A given secret is kept as given; [] means every type.
    own = create(s, s.key, {"url": receiver.url, "secret": "my-own-secret-0123", "types": []})
    assert own["secret"] == "my-own-secret-0123" and len(own["types"]) == 8
    r = request(s, "PATCH", f"/v1/webhooks/{hook['id']}", key=s.key, body={"types": ["opened"]})
    assert r.status == 200 and r.json()["types"] == ["opened"]
    assert r.json()["description"] == "shop events"
    # Other accounts: not found; admin keys see and filter everything.
    for method in ("GET", "PATCH", "DELETE"):
        r = request(s, method, f"/v1/webhooks/{hook['id']}", key=s.alice,
                    body={"description": "x"} if method == "PATCH" else None)
        assert r.status == 404 and r.error()["code"] == "not_found", (method, r)
    assert get(s, s.alice, "/v1/webhooks")["webhooks"] == []
    assert len(get(s, s.admin, "/v1/webhooks")["webhooks"]) == 2
    assert get(s, s.admin, f"/v1/webhooks?account={ALICE}")["webhooks"] == []
    theirs = create(s, s.admin, {"url": receiver.url, "account": ALICE})
    assert theirs["account"] == ALICE
    assert [w["id"] for w in get(s, s.alice, "/v1/webhooks")["webhooks"]] == [theirs["id"]]
    r = request(s, "DELETE", f"/v1/webhooks/{hook['id']}", key=s.key)
    assert r.status == 200 and r.json()["id"] == hook["id"]
    assert request(s, "GET", f"/v1/webhooks/{hook['id']}", key=s.key).status == 404
    assert request(s, "DELETE", f"/v1/webhooks/{hook['id']}", key=s.key).status == 404
    assert request(s, "GET", "/v1/webhooks/abc", key=s.key).status == 404


@pytest.mark.parametrize("body,field", [
    ({}, "url"),
    ({"url": ""}, "url"),
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": "https://exa mple.com/"}, "url"),
    ({"url": "https://" + "a" * 2100 + ".example/"}, "url"),
    ({"url": 7}, "url"),
    ({"url": "https://h.example/", "types": ["sent"]}, "types"),
    ({"url": "https://h.example/", "types": "accepted"}, "types"),
    ({"url": "https://h.example/", "secret": "short"}, "secret"),
    ({"url": "https://h.example/", "secret": "has spaces in it 0123"}, "secret"),
    ({"url": "https://h.example/", "secret": "s\u00e9cret-not-ascii-0123"}, "secret"),
    ({"url": "https://h.example/", "description": "a\nb"}, "description"),
    ({"url": "https://h.example/", "colour": "red"}, "colour"),
])
def test_create_errors(server_factory, body, field):
    s = start(server_factory)
    r = request(s, "POST", "/v1/webhooks", key=s.key, body=body)
    assert r.status == 400, r
    assert r.error()["code"] == "invalid_field" and r.error()["field"] == field


def test_other_errors(server_factory):
    s = start(server_factory)
    r = request(s, "POST", "/v1/webhooks", key=s.key, body="{nope")
    assert r.status == 400 and r.error()["code"] == "malformed_json"
    r = request(s, "POST", "/v1/webhooks", key=s.key,
                body={"url": "https://h.example/", "account": ALICE})
    assert r.status == 403 and r.error()["code"] == "forbidden"
    r = request(s, "POST", "/v1/webhooks", key=s.admin,
                body={"url": "https://h.example/", "account": "ghost"})
    assert r.status == 400 and r.error()["field"] == "account"
    hook = create(s, s.key, {"url": "https://h.example/"})
    r = request(s, "PATCH", f"/v1/webhooks/{hook['id']}", key=s.key, body={})
    assert r.status == 400 and r.error()["code"] == "invalid_field"
    r = request(s, "PATCH", f"/v1/webhooks/{hook['id']}", key=s.admin, body={"account": ALICE})
    assert r.status == 400 and r.error()["field"] == "account"
    r = request(s, "PATCH", "/v1/webhooks/999", key=s.key, body={"description": "x"})
    assert r.status == 404
    assert request(s, "GET", "/v1/webhooks").status == 401
    assert request(s, "PUT", "/v1/webhooks/1", key=s.key, body={}).status == 405


# ---- delivery -----------------------------------------------------------------------------


def test_batch_is_signed_in_the_events_shape(server_factory, receiver):
    s = start(server_factory)
    hook = create(s, s.key, {"url": receiver.url})
    qid = send(s, ["w1@h.example", "w2@h.example"])
    posts = receiver.wait_posts(1)
    _, headers, body = posts[0]
    assert verify(hook["secret"], headers, body), headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Posthorn-Webhook"] == str(hook["id"])
    assert not verify("whsec_" + "0" * 64, headers, body)  # another secret does not verify
    assert not verify(hook["secret"], headers, body + b" ")  # nor a changed body
    doc = json.loads(body)
    assert list(doc) == ["events"]
    assert doc["events"] == events(s, s.key, f"message={qid}")["events"]


DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "events.md")


def doc_snippet(lang):
    with open(DOC) as f:
        text = f.read()
    return re.search(r"```%s\n(.*?)```" % lang, text, re.S).group(1)


def test_the_verifiers_of_the_docs_accept_a_real_post(server_factory, receiver):
    """The Python and Node.js code of docs/events.md, run as a user would."""
    s = start(server_factory)
    hook = create(s, s.key, {"url": receiver.url, "secret": "doc-secret-0123456789"})
    send(s, ["doc@h.example"])
    _, headers, body = receiver.wait_posts(1)[0]
    scope = {}
    exec(doc_snippet("python"), scope)
    assert scope["verify"](hook["secret"], headers, body)
    assert not scope["verify"](hook["secret"], headers, body[:-1])
    js = doc_snippet("js") + """
const [secret, ts, sig, file] = process.argv.slice(1);
const body = require("fs").readFileSync(file);
const h = {"x-posthorn-timestamp": ts, "x-posthorn-signature": sig};
console.log(verify(secret, h, body), verify(secret, h, Buffer.concat([body, Buffer.from(" ")])));
"""
    path = os.path.join(s.dir, "body.json")
    with open(path, "wb") as f:
        f.write(body)
    out = subprocess.run(["node", "-e", js, hook["secret"], headers["X-Posthorn-Timestamp"],
                          headers["X-Posthorn-Signature"], path],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["true", "false"], out


def test_retries_with_backoff(server_factory, receiver):
    s = start(server_factory)
    receiver.fail_with(500, 500)
    hook = create(s, s.key, {"url": receiver.url})
    qid = send(s, ["retry@h.example"])
    ids = accepted_ids(s, s.key, qid, 1)
    posts = receiver.wait_posts(3, timeout=30)
    (t1, _, b1), (t2, _, b2), (t3, h3, b3) = posts[:3]
    assert 0.9 <= t2 - t1 < 5, t2 - t1  # webhook_backoff = 1s
    assert 1.9 <= t3 - t2 < 8, t3 - t2  # then doubled
    for _, h, b in posts[:3]:
        assert verify(hook["secret"], h, b)
        assert [e["id"] for e in json.loads(b)["events"]] == ids  # the same batch again
    state = helpers.wait_for(
        lambda: (w := get(s, s.key, f"/v1/webhooks/{hook['id']}"))["state"]["failures"] == 0 and w,
        what="the run of failures to end")
    fails = state["recent_failures"]
    assert [f["status"] for f in fails] == [500, 500]
    assert fails[0]["error"] == "HTTP 500: try again later" and not fails[0]["dropped"]
    assert fails[0]["first_event"] == ids[0] and fails[0]["last_event"] == ids[-1]
    assert state["state"]["last_event_id"] == ids[-1]
    assert "event=webhook_failed" in s.log() and "event=webhook_delivered" in s.log()


def test_dead_endpoint_does_not_delay_another(server_factory, receiver):
    s = start(server_factory)
    # Accepts connections (the kernel does) and never answers.
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    try:
        dead = create(s, s.key, {"url": f"http://127.0.0.1:{hole.getsockname()[1]}/hook"})
        create(s, s.key, {"url": receiver.url})
        t0 = time.monotonic()
        send(s, ["both@h.example"])
        receiver.wait_posts(1)
        assert time.monotonic() - t0 < 4, "the live webhook waited for the dead one (timeout 5s)"
        w = helpers.wait_for(
            lambda: (w := get(s, s.key, f"/v1/webhooks/{dead['id']}"))["recent_failures"] and w,
            timeout=20, what="the dead endpoint's timeout")
        assert "imed out" in w["recent_failures"][0]["error"], w
        assert w["recent_failures"][0]["status"] == 0
    finally:
        hole.close()


def test_restart_keeps_the_cursor(server_factory, receiver):
    s = start(server_factory)
    create(s, s.key, {"url": receiver.url})
    q1 = send(s, ["r1@h.example"])
    first = accepted_ids(s, s.key, q1, 1)
    helpers.wait_for(lambda: receiver.events(), what="the first batch")
    receiver.fail_with(*[503] * 1000)
    q2 = send(s, ["r2@h.example"])
    second = accepted_ids(s, s.key, q2, 1)
    n = len(receiver.wait_posts(2))
    s.stop()
    while not receiver.statuses.empty():
        receiver.statuses.get_nowait()
    s.start()
    wait_http(s)
    q3 = send(s, ["r3@h.example"])
    third = accepted_ids(s, s.key, q3, 1)
    helpers.wait_for(lambda: set(third) <= {e["id"] for e in receiver.events()},
                     what="events after the restart")
    after = [e["id"] for _, _, b in receiver.received()[n:] for e in json.loads(b)["events"]]
    assert set(second) <= set(after), "an event failed before the restart was lost"
    assert not set(first) & set(after), "a delivered event was sent again"


def test_drop_after_retry_for(server_factory, receiver):
    s = start(server_factory, extra=FAST + "webhook_retry_for = 2s\n")
    receiver.fail_with(*[500] * 1000)
    hook = create(s, s.key, {"url": receiver.url})
    old = accepted_ids(s, s.key, send(s, ["old@h.example"]), 1)
    w = helpers.wait_for(
        lambda: (w := get(s, s.key, f"/v1/webhooks/{hook['id']}"))["recent_failures"]
        and w["recent_failures"][0]["dropped"] and w, timeout=30, what="a dropped batch")
    assert w["recent_failures"][0]["last_event"] == old[-1]
    assert w["state"]["last_event_id"] == old[-1]
    assert "event=webhook_dropped" in s.log()
    while not receiver.statuses.empty():
        receiver.statuses.get_nowait()
    n = len(receiver.received())
    new = accepted_ids(s, s.key, send(s, ["new@h.example"]), 1)
    helpers.wait_for(lambda: set(new) <= {e["id"] for e in receiver.events()},
                     what="the next events")
    later = [e["id"] for _, _, b in receiver.received()[n:] for e in json.loads(b)["events"]]
    assert not set(old) & set(later)


def test_types_filter_and_delete(server_factory, receiver):
    s = start(server_factory)
    other = Receiver()
    try:
        create(s, s.key, {"url": other.url, "types": ["bounced"]})
        hook = create(s, s.key, {"url": receiver.url, "types": ["accepted"]})
        send(s, ["typed@h.example"])
        receiver.wait_posts(1)
        time.sleep(1.5)
        assert other.received() == []
        assert request(s, "DELETE", f"/v1/webhooks/{hook['id']}", key=s.key).status == 200
        time.sleep(1.2)  # the dispatcher sees changes within a second
        n = len(receiver.received())
        accepted_ids(s, s.key, send(s, ["gone@h.example"]), 1)
        time.sleep(1.5)
        assert len(receiver.received()) == n
    finally:
        other.close()


def test_blocked_destinations(server_factory, receiver):
    s = start(server_factory,
              extra=FAST + "webhook_blocked_destinations = 127.0.0.0/8, ::1/128\n")
    r = request(s, "POST", "/v1/webhooks", key=s.key, body={"url": receiver.url})
    assert r.status == 400 and r.error()["field"] == "url"
    assert "webhook_blocked_destinations" in r.error()["message"]
    # A name is checked when the dispatcher connects (after DNS).
    named = create(s, s.key, {"url": receiver.url.replace("127.0.0.1", "localhost")})
    send(s, ["blocked@h.example"])
    w = helpers.wait_for(
        lambda: (w := get(s, s.key, f"/v1/webhooks/{named['id']}"))["recent_failures"] and w,
        timeout=20, what="the blocked attempt")
    assert "webhook_blocked_destinations" in w["recent_failures"][0]["error"]
    assert receiver.received() == []
    # An admin key's webhook may reach it.
    create(s, s.admin, {"url": receiver.url})
    send(s, ["allowed@h.example"])
    receiver.wait_posts(1)


def test_https_is_verified(server_factory, tmp_path):
    pki = PKI(tmp_path)
    good = Receiver(tls_context=server_context(pki.leaf("good", "IP:127.0.0.1")))
    bad = Receiver(tls_context=server_context(pki.leaf("bad", "IP:127.0.0.1", self_signed=True)))
    try:
        s = start(server_factory, tls_keys={"ca_file": pki.ca})
        ok = create(s, s.key, {"url": good.url})
        nok = create(s, s.key, {"url": bad.url})
        send(s, ["tls@h.example"])
        _, headers, body = good.wait_posts(1)[0]
        assert verify(ok["secret"], headers, body)
        w = helpers.wait_for(
            lambda: (w := get(s, s.key, f"/v1/webhooks/{nok['id']}"))["recent_failures"] and w,
            timeout=20, what="the unverified attempt")
        assert "certificate" in w["recent_failures"][0]["error"], w
        assert bad.received() == []
    finally:
        good.close()
        bad.close()
