"""GET /v1/events, /v1/messages and /v1/messages/{id} against a real server:
events appear after SMTP acceptance, in
the SPEC 6 shape; every filter; pagination that neither skips nor repeats
while events keep coming; accounts see only their own; every error; events
survive a restart and SIGTERM loses none; retention deletes them. The
test config's smarthost is a closed port, so each message also gets a
deferred event right after its accepted ones (test_delivery_events.py
checks those): the cases that count events filter on type=accepted."""
import re
import sqlite3
import time

import pytest

import helpers
from conftest import Server
from eventsapi import ALICE, events, get, send, wait_events, with_keys
from httpapi import create_key, request, wait_http

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def srv(tmp_path_factory, cert):
    s = with_keys(Server(tmp_path_factory.mktemp("events"), cert, relay={"retry": "1h"}).start())
    yield s
    s.stop()


def test_accepted_events_after_smtp(srv):
    t0 = time.time()
    qid = send(srv, ["one@Dest.Example", "two@dest.example"])
    evs = wait_events(srv, srv.key, f"type=accepted&message={qid}", 2)
    assert [e["recipient"] for e in evs] == ["one@dest.example", "two@dest.example"]
    for e in evs:
        assert set(e) == {"id", "type", "time", "account", "message_id", "recipient", "tags",
                          "detail"}
        assert e["type"] == "accepted" and e["message_id"] == qid
        assert e["account"] == "default" and e["tags"] == [] and e["detail"] == {}
        assert TIME_RE.match(e["time"]), e["time"]
        assert isinstance(e["id"], int)
    assert evs[1]["id"] == evs[0]["id"] + 1
    when = time.mktime(time.strptime(evs[0]["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(when - t0) < 60


def test_filters(srv):
    qa = send(srv, ["filter-a@f.example"])
    qb = send(srv, ["filter-b@f.example", "filter-c@g.example"])
    wait_events(srv, srv.key, f"message={qb}", 2)
    assert [e["message_id"] for e in events(srv, srv.key, "recipient=filter-a@F.EXAMPLE")["events"]] == [qa]
    assert events(srv, srv.key, "recipient=FILTER-A@f.example")["events"] == []
    assert {e["recipient"] for e in events(srv, srv.key, f"message={qb}")["events"]} == \
        {"filter-b@f.example", "filter-c@g.example"}
    assert events(srv, srv.key, "type=delivered,bounced&message=" + qa)["events"] == []
    assert len(events(srv, srv.key, "type=accepted&message=" + qa)["events"]) == 1
    assert events(srv, srv.key, "tag=nothing")["events"] == []
    first = events(srv, srv.key, f"message={qa}")["events"][0]
    assert first["type"] == "accepted"
    only = f"type=accepted&message={qa}"
    assert events(srv, srv.key, f"{only}&since={first['time']}")["events"] == [first]
    assert events(srv, srv.key, f"message={qa}&until={first['time']}")["events"] == []
    assert events(srv, srv.key, "since=2100-01-01")["events"] == []
    assert events(srv, srv.key, "until=2000-01-01")["events"] == []
    # The '+' of an offset sent unencoded arrives as a space, and still works.
    assert events(srv, srv.key, f"{only}&since=2000-01-01T00:00:00+01:00")["events"] == [first]


def test_pagination_is_stable(srv):
    marker = "page"
    for i in range(5):
        send(srv, [f"{marker}{i}@p.example"])
    whole = [e for e in events(srv, srv.key, "limit=1000")["events"]]
    seen, after = [], None
    added = False
    while True:
        q = "limit=3" + (f"&after={after}" if after else "")
        doc = events(srv, srv.key, q)
        seen += doc["events"]
        if doc["events"]:
            assert doc["next"] == str(doc["events"][-1]["id"])
        if not added:  # new events arrive while paging: they come last, once
            send(srv, [f"{marker}-late@p.example"])
            wait_events(srv, srv.key, f"recipient={marker}-late@p.example", 1)
            added = True
        if len(doc["events"]) < 3:
            if not doc["events"]:
                assert doc["next"] == after
            break
        after = doc["next"]
    ids = [e["id"] for e in seen]
    assert ids == sorted(set(ids)), "a page repeated or reordered an event"
    assert seen[:len(whole)] == whole
    assert seen[-1]["recipient"] == f"{marker}-late@p.example"
    # Newest first, with the same cursor rules.
    desc = events(srv, srv.key, "order=desc&limit=2")
    assert [e["id"] for e in desc["events"]] == sorted(ids, reverse=True)[:2]
    more = events(srv, srv.key, f"order=desc&limit=2&after={desc['next']}")
    assert [e["id"] for e in more["events"]] == sorted(ids, reverse=True)[2:4]
    # An empty page keeps the cursor, so polling can go on from it.
    last = str(ids[-1])
    assert events(srv, srv.key, f"after={last}") == {"events": [], "next": last}


def test_accounts_see_their_own(srv):
    mine = send(srv, ["to-alice-rcpt@a.example"], frm="alice@example.com", login=ALICE)
    other = send(srv, ["to-default@a.example"])
    wait_events(srv, srv.admin, f"message={other}", 1)
    wait_events(srv, srv.admin, f"message={mine}", 1)
    assert all(e["account"] == ALICE for e in events(srv, srv.alice, "limit=1000")["events"])
    assert events(srv, srv.alice, f"message={other}")["events"] == []
    assert len(events(srv, srv.admin, f"type=accepted&message={mine}")["events"]) == 1
    assert all(e["account"] == ALICE
               for e in events(srv, srv.admin, f"account={ALICE}&limit=1000")["events"])
    assert len(events(srv, srv.alice, f"type=accepted&account={ALICE}&message={mine}")["events"]) == 1
    # Messages: another account's is not found, exactly like a missing one.
    assert get(srv, srv.alice, f"/v1/messages/{mine}")["account"] == ALICE
    r = request(srv, "GET", f"/v1/messages/{other}", key=srv.alice)
    assert r.status == 404 and r.error()["code"] == "not_found"
    assert get(srv, srv.admin, f"/v1/messages/{mine}")["id"] == mine
    ids = [m["id"] for m in get(srv, srv.alice, "/v1/messages?limit=1000")["messages"]]
    assert mine in ids and other not in ids


def test_message_view(srv):
    qid = send(srv, ["view1@v.example", "view2@V.example"], frm="someone@example.org")
    doc = get(srv, srv.key, f"/v1/messages/{qid}")  # found at once: the spool has it
    assert doc["id"] == qid and doc["account"] == "default"
    assert [r["to"] for r in doc["recipients"]] == ["view1@v.example", "view2@v.example"]
    for r in doc["recipients"]:
        # The smarthost of the test config is a closed port: queued or deferred.
        assert r["state"] in ("queued", "deferred")
        assert all(a["result"] == "deferred" for a in r["attempts"]), r
    assert TIME_RE.match(doc["created_at"]) and doc["tags"] == [] and doc["metadata"] == {}
    wait_events(srv, srv.key, f"message={qid}", 2)
    doc = get(srv, srv.key, f"/v1/messages/{qid}")
    assert set(doc) >= {"id", "from", "subject", "tags", "recipients"}
    r = request(srv, "GET", "/v1/messages/0000000000000000", key=srv.key)
    assert r.status == 404 and r.error()["code"] == "not_found"
    r = request(srv, "GET", "/v1/messages/not-an-id", key=srv.key)
    assert r.status == 404


def test_message_search(srv):
    q1 = send(srv, ["search@s.example"])
    q2 = send(srv, ["search@s.example", "other@s.example"])
    wait_events(srv, srv.key, f"message={q2}", 2)
    doc = get(srv, srv.key, "/v1/messages?recipient=search@S.example")
    assert [m["id"] for m in doc["messages"]] == [q1, q2] and doc["next"] == q2
    doc = get(srv, srv.key, "/v1/messages?recipient=search@s.example&limit=1")
    assert [m["id"] for m in doc["messages"]] == [q1]
    doc = get(srv, srv.key, f"/v1/messages?recipient=search@s.example&after={doc['next']}")
    assert [m["id"] for m in doc["messages"]] == [q2]
    doc = get(srv, srv.key, "/v1/messages?recipient=search@s.example&order=desc")
    assert [m["id"] for m in doc["messages"]] == [q2, q1]
    m = doc["messages"][0]
    assert set(m) == {"id", "account", "from", "subject", "tags", "metadata", "created_at"}
    assert get(srv, srv.key, "/v1/messages?since=2100-01-01")["messages"] == []
    assert get(srv, srv.key, "/v1/messages?tag=none")["messages"] == []


BAD = [
    ("/v1/events?type=nope", "type"),
    ("/v1/events?type=", "type"),
    ("/v1/events?since=yesterday", "since"),
    ("/v1/events?until=2026-02-30", "until"),
    ("/v1/events?since=2026-01-02&until=2026-01-01", "until"),
    ("/v1/events?limit=0", "limit"),
    ("/v1/events?limit=1001", "limit"),
    ("/v1/events?limit=ten", "limit"),
    ("/v1/events?after=-1", "after"),
    ("/v1/events?after=abc", "after"),
    ("/v1/events?message=nope", "message"),
    ("/v1/events?recipient=", "recipient"),
    ("/v1/events?tag=" + "t" * 200, "tag"),
    ("/v1/events?order=sideways", "order"),
    ("/v1/events?account=bad%20name", "account"),
    ("/v1/messages?after=zzz", "after"),
    ("/v1/messages?since=never", "since"),
    ("/v1/messages?limit=5000", "limit"),
    ("/v1/messages?recipient=", "recipient"),
    ("/v1/messages?order=up", "order"),
]


@pytest.mark.parametrize("path,param", BAD)
def test_bad_parameters_are_400_naming_them(srv, path, param):
    r = request(srv, "GET", path, key=srv.key)
    assert r.status == 400, r
    err = r.error()
    assert err["code"] == "invalid_parameter" and err["parameter"] == param
    assert err["message"].startswith(param + ": ")


def test_auth_and_method_errors(srv):
    for path in ("/v1/events", "/v1/messages", "/v1/messages/0000000000000000"):
        r = request(srv, "GET", path)
        assert r.status == 401 and r.error()["code"] == "unauthorized"
        r = request(srv, "GET", path, key="ph_" + "0" * 64)
        assert r.status == 401
    r = request(srv, "GET", "/v1/events?account=default", key=srv.alice)
    assert r.status == 403 and r.error()["code"] == "forbidden"
    assert r.error()["message"].startswith("account: ")
    r = request(srv, "DELETE", "/v1/events", key=srv.key)
    assert r.status == 405 and "GET" in r.headers["allow"]


def test_metrics_count_written_events(srv):
    from prometheus_client.parser import text_string_to_metric_families
    qid = send(srv, ["metric@m.example"])
    wait_events(srv, srv.key, f"message={qid}", 1)
    def metrics():
        body = request(srv, "GET", "/metrics").body.decode()
        return {smp.name: smp.value for f in text_string_to_metric_families(body)
                for smp in f.samples}
    # deferred events keep coming (the closed smarthost): bracket the count
    before = metrics()
    n = len(events(srv, srv.admin, "limit=1000")["events"])
    values = metrics()
    assert before["posthorn_events_written_total"] <= n <= values["posthorn_events_written_total"]
    assert values["posthorn_events_dropped_total"] == 0
    assert values["posthorn_events_queue_bytes"] >= 0


def test_restart_keeps_events_and_sigterm_loses_none(srv):
    qids = [send(srv, [f"restart{i}@r.example"]) for i in range(20)]
    srv.stop()  # at once: what the writer had not written yet is written now
    db = sqlite3.connect(f"{srv.data_dir}/posthorn.db")
    n = db.execute("SELECT count(*) FROM events WHERE type = 'accepted' AND message_id IN (%s)"
                   % ",".join("?" * len(qids)), qids).fetchone()[0]
    db.close()
    assert n == 20
    srv.start()
    wait_http(srv)
    got = {e["message_id"] for e in events(srv, srv.key, "limit=1000&type=accepted")["events"]}
    assert set(qids) <= got
    assert "event=events_lost" not in srv.log() and "events_dropped" not in srv.log()


def test_retention_deletes_old_events(server_factory):
    s = server_factory(extra="[events]\nretention = 2s\nstats_retention = 0")
    wait_http(s)
    key = create_key(s, "default")
    qid = send(s, ["old@r.example"])
    wait_events(s, key, f"message={qid}", 1)
    assert get(s, key, "/v1/messages?recipient=old@r.example")["messages"]
    helpers.wait_for(lambda: not events(s, key, f"message={qid}")["events"], timeout=15,
                     what="events pruned")
    helpers.wait_for(lambda: not get(s, key, "/v1/messages?recipient=old@r.example")["messages"],
                     timeout=15, what="messages pruned")
    assert "event=events_pruned" in s.log()
    # The counters have their own retention (0: for ever).
    assert get(s, key, "/v1/stats")["stats"][0]["accepted"] == 1


def test_database_failure_is_500_and_loses_no_event(server_factory):
    """While the events table is away (an operator's mistake, a broken
    file), reads answer 500 and the writer keeps the batch and retries it
    every second; once the table is back, nothing is missing."""
    s = with_keys(server_factory())
    db = sqlite3.connect(f"{s.data_dir}/posthorn.db", timeout=10)
    db.execute("ALTER TABLE events RENAME TO events_away")
    db.commit()
    try:
        qid = send(s, ["while-away@x.example"])
        r = request(s, "GET", "/v1/events", key=s.key)
        assert r.status == 500 and r.error()["code"] == "internal_error"
        helpers.wait_for(lambda: "event=events_write_error" in s.log(), what="the write error")
    finally:
        db.execute("ALTER TABLE events_away RENAME TO events")
        db.commit()
        db.close()
    assert len(wait_events(s, s.key, f"type=accepted&message={qid}", 1)) == 1
    assert "event=api_store_error" in s.log()
