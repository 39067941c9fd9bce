"""Delivery events (docs/events.md "For emitters") after real deliveries to
fake MX hosts (tests/e2e/mx.py), read back through GET /v1/events and
GET /v1/messages/{id}: a delivery (delivered, with the MX, its reply and
status, attempt 1; the message's sender and decoded subject), a 5xx
(bounced, and the hard bounce's suppressed event), a 4xx (deferred, attempt
by attempt), a RCPT refused for a suppressed address (suppressed, without a
message), and an ARF complaint and a later DSN sent to the VERP return path
(complained, bounced, suppressed)."""
import re

import helpers
from deliv import arf, db, dsn, transaction, verp_address, verp_key
from eventsapi import events, get, wait_events
from httpapi import create_key, wait_http
from mx import Zone, dns, farm, msg_bytes, mxs, start, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
OK_IP, BAD_IP, SLOW_IP = "127.0.0.72", "127.0.0.73", "127.0.0.74"
BOUNCES = "bounces.test"
OUTSIDER = "127.0.0.9"  # not in trusted_networks below
FROM = "shop@sender.test"
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


def build_zone():
    z = Zone()
    z.mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    for d, ip in (("ok.test", OK_IP), ("bad.test", BAD_IP), ("slow.test", SLOW_IP)):
        z.mx(d, f"mx.{d}").host(f"mx.{d}", ip)
    return z


def serve(start, extra=""):
    """A server with a key of the default account (the trusted client's)."""
    srv = start(relay={"trusted_networks": "127.0.0.1/32"}, extra=extra)
    wait_http(srv)
    srv.key = create_key(srv, "default")
    return srv


def send(srv, rcpts, subject="hello"):
    _, rs, dr = transaction(srv.port, FROM, rcpts, msg_bytes(FROM, rcpts, subject))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    return helpers.queued_id(dr.text)


def one(srv, query):
    evs = wait_events(srv, srv.key, query, 1)
    assert len(evs) == 1, evs
    return evs[0]


def check_attempt(e, qid, rcpt, ip, reply_code, attempt=1):
    """The detail docs/events.md gives delivered, deferred and bounced."""
    assert e["message_id"] == qid and e["recipient"] == rcpt and e["account"] == "default"
    d = e["detail"]
    assert d["mx"].endswith(f"[{ip}]") and d["mx"].startswith("mx."), d
    assert d["reply"].startswith(f"{reply_code} "), d
    assert STATUS_RE.match(d["status"]) and d["status"][0] == str(reply_code)[0], d
    assert d["attempt"] == attempt, d


def test_delivered(start, mxs):
    mxs(OK_IP)
    srv = serve(start)
    qid = send(srv, ["ann@ok.test"], subject="=?utf-8?q?caf=C3=A9_news?= =?utf-8?b?IQ==?=")
    e = one(srv, f"type=delivered&message={qid}")
    check_attempt(e, qid, "ann@ok.test", OK_IP, 250)
    assert e["detail"]["reply"] == "250 2.0.0 OK fake queued"
    types = [x["type"] for x in events(srv, srv.key, f"message={qid}")["events"]]
    assert types == ["accepted", "delivered"]
    doc = get(srv, srv.key, f"/v1/messages/{qid}")
    assert doc["from"] == FROM and doc["subject"] == "caf\u00e9 news!"
    (r,) = doc["recipients"]
    assert r["to"] == "ann@ok.test" and r["state"] == "delivered", r
    (a,) = r["attempts"]
    assert a["result"] == "delivered" and a["mx"] == e["detail"]["mx"] and \
        a["status"] == e["detail"]["status"], a
    (m,) = get(srv, srv.key, "/v1/messages?recipient=ann@ok.test")["messages"]
    assert m["from"] == FROM and m["subject"] == "caf\u00e9 news!"


def test_bounced_suppressed_and_refused(start, mxs):
    mxs(BAD_IP, reject_rcpt=True)
    srv = serve(start)
    qid = send(srv, ["bo@bad.test"])
    e = one(srv, f"type=bounced&message={qid}")
    check_attempt(e, qid, "bo@bad.test", BAD_IP, 550)
    assert e["detail"]["status"] == "5.1.1"
    s = one(srv, f"type=suppressed&message={qid}")
    assert s["recipient"] == "bo@bad.test" and \
        s["detail"]["reason"] == "hard bounce: " + e["detail"]["reply"], s
    doc = get(srv, srv.key, f"/v1/messages/{qid}")
    assert doc["recipients"][0]["state"] == "bounced", doc
    # The next RCPT to the address is refused, and that is an event too,
    # of no message (none was made).
    _, rs, _ = transaction(srv.port, FROM, ["bo@bad.test"])
    assert rs[0].code == 550 and "suppression list" in rs[0].text, rs
    evs = wait_events(srv, srv.key, "type=suppressed&recipient=bo@bad.test", 2)
    refused = evs[1]
    assert refused["message_id"] is None and refused["detail"]["reason"] == s["detail"]["reason"]


def test_deferred_attempt_by_attempt(start, mxs):
    mxs(SLOW_IP, defer_always=True)
    srv = serve(start)  # retry 1s, 2s (mx.start)
    qid = send(srv, ["di@slow.test"])
    evs = wait_events(srv, srv.key, f"type=deferred&message={qid}", 2, timeout=30)
    for i, e in enumerate(evs[:2]):
        check_attempt(e, qid, "di@slow.test", SLOW_IP, 451, attempt=i + 1)
        assert f"(attempt {i + 1})" in e["detail"]["reply"], e
    doc = get(srv, srv.key, f"/v1/messages/{qid}")
    (r,) = doc["recipients"]
    assert r["state"] == "deferred" and len(r["attempts"]) >= 2, r
    assert {a["result"] for a in r["attempts"]} == {"deferred"}
    assert events(srv, srv.key, f"type=delivered,bounced&message={qid}")["events"] == []


def report(srv, verp, data, frm=""):
    """A report sent by an outsider (untrusted, no AUTH) to a VERP address."""
    with helpers.RawSMTP(srv.port, source=OUTSIDER) as c:
        c.ehlo("mx.remote.test")
        assert c.cmd(f"MAIL FROM:<{frm}>").code == 250
        assert c.cmd(f"RCPT TO:<{verp}>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(data + b"\r\n.\r\n")
        assert c.reply().code == 250
        c.cmd("QUIT")


def test_complaint_and_late_bounce(start, mxs):
    mxs(OK_IP)
    srv = serve(start, extra=f"[bounces]\ndomain = {BOUNCES}\n")
    qid = send(srv, ["cy@ok.test", "dan@ok.test"])
    for r in ("cy@ok.test", "dan@ok.test"):
        wait_status(srv, qid, r, "sent")
    one(srv, "type=delivered&recipient=dan@ok.test")
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    # the VERP record reaches the database with the next flush (1 s)
    helpers.wait_for(lambda: verp_recorded(srv, qid), 10, what="the VERP record")
    report(srv, verp, arf(verp, "cy@ok.test"), frm="fbl@isp.test")
    c = one(srv, f"type=complained&message={qid}")
    assert c["recipient"] == "cy@ok.test" and c["detail"] == {"reason": "abuse"}, c
    s = one(srv, "type=suppressed&recipient=cy@ok.test")
    assert s["message_id"] == qid and s["detail"]["reason"] == "complaint (abuse)", s
    # a DSN that comes after the delivery: bounced, and suppressed
    report(srv, verp, dsn(verp, "dan@ok.test"))
    b = one(srv, "type=bounced&recipient=dan@ok.test")
    assert b["message_id"] == qid and b["detail"]["status"] == "5.1.1", b
    assert "User unknown" in b["detail"]["reply"], b
    s = one(srv, "type=suppressed&recipient=dan@ok.test")
    assert s["detail"]["reason"].startswith("hard bounce: "), s
    doc = get(srv, srv.key, f"/v1/messages/{qid}")
    states = {r["to"]: r["state"] for r in doc["recipients"]}
    assert states["dan@ok.test"] in ("bounced", "suppressed"), states


def verp_recorded(srv, qid):
    with db(srv) as c:
        return c.execute("SELECT 1 FROM verp_messages WHERE id = ?", (qid,)).fetchone()
