"""The queue routes of the HTTP API (SPEC 6, admin keys): GET /v1/queue
with filters and pages, POST /v1/queue/{id}/retry|hold|release and
DELETE /v1/queue/{id}, against a real server whose mail stays queued
(its smarthost is a closed port)."""
import re
import time

import pytest

import helpers
import httpapi
from eventsapi import wait_events
from httpapi import request


@pytest.fixture(scope="module")
def q(tmp_path_factory, cert):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("queueapi"), cert,
               listeners={"plain": {"tls": "none", "auth": "optional"}})
    s.admin = httpapi.create_key(s, "default", "--admin")
    s.user = httpapi.create_key(s, "default")
    s.start()
    httpapi.wait_http(s)
    yield s
    s.stop()


def send(s, frm, rcpts):
    return helpers.send_raw_message(s.port, frm, rcpts, helpers.message(frm=frm, to=rcpts[0]))


def listing(s, query=""):
    r = request(s, "GET", "/v1/queue" + query, key=s.admin)
    assert r.status == 200, r
    return r.json()


def by_id(doc):
    return {m["id"]: m for m in doc["queue"]}


def wait_attempted(s, qid, n=1):
    """Until the recipients of qid have been tried n times (deferred)."""
    def tried():
        m = by_id(listing(s)).get(qid)
        return m and all(r["attempts"] >= n for r in m["recipients"])
    helpers.wait_for(tried, timeout=15, what=f"{qid} tried")


def test_keys(q):
    assert request(q, "GET", "/v1/queue").status == 401
    r = request(q, "GET", "/v1/queue", key=q.user)
    assert r.status == 403 and r.error()["code"] == "forbidden"
    assert request(q, "POST", "/v1/queue/1L94W0FC000061K5/hold", key=q.user).status == 403


def test_list_fields_and_filters(q):
    a = send(q, "alice@one.example", ["x@dom-a.example", "y@dom-b.example"])
    b = send(q, "bob@two.example", ["z@dom-a.example"])
    wait_attempted(q, a)
    wait_attempted(q, b)
    doc = listing(q)
    assert set(doc) == {"queue", "next"} and doc["next"] is None
    ma = by_id(doc)[a]
    assert set(ma) == {"id", "size", "account", "from", "created_at", "recipients"}
    assert ma["from"] == "alice@one.example" and ma["account"] == "default"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ma["created_at"])
    assert ma["size"] > 0
    rc = ma["recipients"][0]
    assert set(rc) == {"to", "state", "attempts", "next_attempt", "last_reply"}
    assert rc["state"] == "deferred" and rc["attempts"] == 1 and rc["last_reply"]
    # domain: only the recipients there, and only messages that have one
    doc = listing(q, "?domain=DOM-A.example")
    assert {m["id"] for m in doc["queue"]} >= {a, b}
    assert [r["to"] for r in by_id(doc)[a]["recipients"]] == ["x@dom-a.example"]
    doc = listing(q, "?domain=dom-b.example")
    assert b not in by_id(doc) and a in by_id(doc)
    doc = listing(q, "?sender=BOB@two.example")
    assert list(by_id(doc)) == [b]
    assert listing(q, "?state=held")["queue"] == []
    assert by_id(listing(q, "?state=deferred")).keys() >= {a, b}


def test_pages(q):
    ids = [send(q, "pager@three.example", [f"p{i}@pages.example"]) for i in range(5)]
    seen, after, pages = [], None, 0
    while True:
        doc = listing(q, "?sender=pager@three.example&limit=2" + (f"&after={after}" if after else ""))
        seen += [m["id"] for m in doc["queue"]]
        pages += 1
        after = doc["next"]
        if after is None:
            break
    assert seen == ids and pages == 3


@pytest.mark.parametrize("query,param", [
    ("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=x", "limit"),
    ("?state=delivered", "state"), ("?after=nope", "after"), ("?domain=", "domain"),
])
def test_bad_parameters(q, query, param):
    r = request(q, "GET", "/v1/queue" + query, key=q.admin)
    assert r.status == 400, r
    assert r.error()["code"] == "invalid_parameter" and r.error()["parameter"] == param


def test_hold_release_survives_restart(q):
    qid = send(q, "holder@four.example", ["h1@hold.example", "h2@hold.example"])
    r = request(q, "POST", f"/v1/queue/{qid}/hold", key=q.admin)
    assert r.status == 200 and r.json() == {"id": qid, "recipients": 2}, r
    states = [x["state"] for x in by_id(listing(q, "?state=held"))[qid]["recipients"]]
    assert states == ["held", "held"]
    log = q.log()
    assert f"queue={qid} event=held to=<h1@hold.example> by=api" in log
    # again: nothing to hold
    assert request(q, "POST", f"/v1/queue/{qid}/hold", key=q.admin).json()["recipients"] == 0
    q.restart()
    httpapi.wait_http(q)
    assert qid in by_id(listing(q, "?state=held"))
    time.sleep(1.5)  # held mail is not tried
    assert all(x["attempts"] == 0 for x in by_id(listing(q))[qid]["recipients"])
    r = request(q, "POST", f"/v1/queue/{qid}/release", key=q.admin)
    assert r.status == 200 and r.json()["recipients"] == 2
    assert re.search(rf"queue={qid} event=released to=<h2@hold.example> held=\d+ by=api", q.log())
    wait_attempted(q, qid)


def test_retry_is_not_an_attempt(q):
    qid = send(q, "retrier@five.example", ["r@retry.example"])
    wait_attempted(q, qid)
    before = by_id(listing(q))[qid]["recipients"][0]
    r = request(q, "POST", f"/v1/queue/{qid}/retry", key=q.admin)
    assert r.status == 200 and r.json() == {"id": qid, "recipients": 1}, r
    helpers.wait_for(lambda: re.search(rf"queue={qid} event=delivery .* retry=manual", q.log()),
                     what="the manual attempt")
    time.sleep(0.3)
    after = by_id(listing(q))[qid]["recipients"][0]
    assert after["attempts"] == before["attempts"] == 1
    assert after["next_attempt"] is not None


def test_delete(q):
    qid = send(q, "deleter@six.example", ["d1@del.example", "d2@del.example"])
    r = request(q, "DELETE", f"/v1/queue/{qid}", key=q.admin)
    assert r.status == 200 and r.json() == {"id": qid, "recipients": 2}, r
    assert qid not in by_id(listing(q))
    log = q.log()
    for a in ("d1@del.example", "d2@del.example"):
        assert f"queue={qid} event=deleted to=<{a}> by=api" in log
    r = request(q, "DELETE", f"/v1/queue/{qid}", key=q.admin)
    assert r.status == 404 and r.error()["code"] == "not_found"


def test_deleted_message_has_a_terminal_state(q):
    """A deleted recipient ends with a `bounced` event whose detail says
    reason "deleted", so /v1/messages shows it bounced, not still queued."""
    qid = send(q, "gone@seven.example", ["g1@del.example"])
    wait_attempted(q, qid)
    r = request(q, "DELETE", f"/v1/queue/{qid}", key=q.admin)
    assert r.status == 200, r
    [ev] = wait_events(q, q.user, f"type=bounced&message={qid}", 1)
    assert ev["recipient"] == "g1@del.example"
    assert ev["detail"]["reason"] == "deleted"
    assert "deleted from the queue" in ev["detail"]["reply"]

    def state():
        doc = request(q, "GET", f"/v1/messages/{qid}", key=q.user).json()
        return doc["recipients"][0]["state"]
    helpers.wait_for(lambda: state() == "bounced", timeout=10, what="state bounced")


def test_offline_deletion_has_a_terminal_state(q):
    """`queue delete` on a stopped server: at the next start each deleted
    recipient gets its `bounced` event (reason "deleted") too, found by
    the message's account, so /v1/messages does not show it queued forever."""
    qid = send(q, "offline@eight.example", ["o1@del.example", "o2@del.example"])
    wait_attempted(q, qid)
    q.stop()
    try:
        rc, out, err = q.cli("queue", "delete", qid)
        assert rc == 0 and out == "2\n", (rc, out, err)
    finally:
        q.start()
        httpapi.wait_http(q)
    evs = wait_events(q, q.user, f"type=bounced&message={qid}", 2, timeout=10)
    assert sorted(e["recipient"] for e in evs) == ["o1@del.example", "o2@del.example"]
    for ev in evs:
        assert ev["detail"]["reason"] == "deleted", ev
        assert "deleted from the queue" in ev["detail"]["reply"]
    doc = request(q, "GET", f"/v1/messages/{qid}", key=q.user).json()
    assert {r["state"] for r in doc["recipients"]} == {"bounced"}, doc


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/queue/{}/retry"), ("POST", "/v1/queue/{}/hold"),
    ("POST", "/v1/queue/{}/release"), ("DELETE", "/v1/queue/{}"),
])
def test_unknown_and_malformed_ids(q, method, path):
    r = request(q, method, path.format("1L94W0FC000061K5"), key=q.admin)
    assert r.status == 404 and r.error()["code"] == "not_found", r
    r = request(q, method, path.format("not-an-id"), key=q.admin)
    assert r.status == 400 and r.error()["parameter"] == "id", r
