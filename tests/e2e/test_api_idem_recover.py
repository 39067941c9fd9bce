"""Idempotency-Key claims a crash left without an answer, resolved at the
next start against the spool (docs/api.md "Idempotency"): a claim with no
plan (the request died before recording one, so before any commit) or
whose planned messages are not in the spool is given up, and a retry
sends; one whose planned messages are (partly) in the spool answers the
retry with what is known and sends nothing again. The crash is the state
it leaves in the database: the server stopped, the claim row set back to
"no answer" as a killed process would have left it."""
import hashlib
import json
import os
import sqlite3
import time

import pytest

from httpapi import create_key, request, wait_http


@pytest.fixture
def srv(server_factory):
    s = server_factory()
    wait_http(s)
    s.add_user("alice", domains=("sender.test",))
    s.key = create_key(s, "alice")
    return s


def post(srv, body, key):
    text = json.dumps(body)
    return request(srv, "POST", "/v1/messages", key=srv.key, body=text,
                   headers={"Idempotency-Key": key, "Content-Type": "application/json"})


def crashed(srv, key, body, planned):
    """The server stopped, the claim of key left as a crash leaves it."""
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.data_dir, "posthorn.db"), timeout=10)
    h = hashlib.blake2b(json.dumps(body).encode(), digest_size=32).hexdigest()
    with db:
        db.execute("INSERT INTO idempotency_keys (account, idem_key, body_hash, status, answer,"
                   " created_at, planned) VALUES ('alice', ?, ?, 0, NULL, ?, ?)"
                   " ON CONFLICT (account, idem_key) DO UPDATE SET status = 0, answer = NULL,"
                   " planned = excluded.planned",
                   (key, h, int(time.time()), None if planned is None else json.dumps(planned)))
    db.close()
    srv.start()
    wait_http(srv)


def planned_of(srv, key):
    db = sqlite3.connect(os.path.join(srv.data_dir, "posthorn.db"), timeout=10)
    try:
        return db.execute("SELECT planned FROM idempotency_keys WHERE idem_key = ?",
                          (key,)).fetchone()[0]
    finally:
        db.close()


BODY = {"from": "a@sender.test", "to": ["r1@dest.test", "r2@dest.test"], "subject": "s",
        "text": "once"}


def test_a_claim_without_plan_is_given_up(srv):
    crashed(srv, "k-noplan", BODY, None)
    assert "key=k-noplan queued=0 result=released" in open(srv.log_path).read()
    r = post(srv, BODY, "k-noplan")
    assert r.status == 200, r.body  # not 409 for 24 h: nothing had been committed
    assert "idempotent-replayed" not in r.headers
    assert set(srv.queue()) == {r.json()["messages"][0]["id"]}
    again = post(srv, BODY, "k-noplan")
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.body == r.body and len(srv.queue()) == 1


def test_the_plan_is_recorded_before_the_commit(srv):
    r = post(srv, BODY, "k-plan")
    assert r.status == 200, r.body
    mid = r.json()["messages"][0]["id"]
    plan = json.loads(planned_of(srv, "k-plan"))
    assert plan == {"messages": [{"to": "r1@dest.test", "id": mid},
                                 {"to": "r2@dest.test", "id": mid}]}


def test_committed_messages_answer_instead_of_resending(srv):
    """The first message of the plan reached the spool, the second did not:
    the retry is answered with that, and nothing is sent again."""
    body = {"from": "a@sender.test", "to": "r1@dest.test", "subject": "s", "text": "first"}
    r = post(srv, body, "k-seed")
    assert r.status == 200, r.body
    mid = r.json()["messages"][0]["id"]
    gone = mid[:-1] + ("A" if mid[-1] != "A" else "B")  # a valid ID of no message
    assert gone not in srv.queue()
    crashed(srv, "k-half", BODY, {"messages": [{"to": "r1@dest.test", "id": mid},
                                                {"to": "r2@dest.test", "id": gone}]})
    assert "key=k-half queued=1 result=answered" in open(srv.log_path).read()
    r = post(srv, BODY, "k-half")
    assert r.status == 200, r.body
    assert r.headers["idempotent-replayed"] == "true"
    one, two = r.json()["messages"]
    assert one == {"id": mid, "to": "r1@dest.test", "status": "queued"}
    assert two["id"] is None and two["status"] == "refused"
    assert two["reason"].startswith("not queued: the server stopped"), two
    assert set(srv.queue()) == {mid}  # nothing sent again


def test_a_plan_with_nothing_in_the_spool_is_given_up(srv):
    body = {"from": "a@sender.test", "to": "r1@dest.test", "subject": "s", "text": "x"}
    r = post(srv, body, "k-seed2")
    mid = r.json()["messages"][0]["id"]
    gone = mid[:-1] + ("A" if mid[-1] != "A" else "B")
    crashed(srv, "k-none", BODY, {"messages": [{"to": "r1@dest.test", "id": gone},
                                                {"to": "r2@dest.test", "id": gone}]})
    assert "key=k-none queued=0 result=released" in open(srv.log_path).read()
    r = post(srv, BODY, "k-none")
    assert r.status == 200 and "idempotent-replayed" not in r.headers, r.body
    assert len(srv.queue()) == 2


def test_committed_messages_that_left_the_spool_still_answer(srv):
    """A planned message that was committed but is no longer in the spool
    at the next start (delivered, or deleted, after the answer failed to
    be recorded) is known by its accepted record: the retry is answered,
    never sent a second time."""
    body = {"from": "a@sender.test", "to": "r1@dest.test", "subject": "s", "text": "left"}
    r = post(srv, body, "k-seed3")
    assert r.status == 200, r.body
    mid = r.json()["messages"][0]["id"]
    srv.stop()
    rc, out, err = srv.cli("queue", "delete", mid)
    assert rc == 0, err
    crashed(srv, "k-left", body, {"messages": [{"to": "r1@dest.test", "id": mid}]})
    assert "key=k-left queued=1 result=answered" in open(srv.log_path).read()
    again = post(srv, body, "k-left")
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true", again.body
    assert again.json()["messages"] == [{"id": mid, "to": "r1@dest.test", "status": "queued"}]
    assert srv.queue() == {}  # nothing sent again
