"""Issue 9, the SMTP server's log lines: event=queued only once the spool
commit succeeded, with the Message-ID (found in the headers, or the one
added) and the size, so mail can be found by Message-ID; inbound lines
carry session=, listener-level lines listener=NAME, outbound connections
conn=, HTTP connections http=, server lines none (never
session=NOQUEUE); delay= from arrival with milliseconds; a failed
connection names its port; no event is logged twice."""
import glob
import os
import re
import time
from collections import Counter

import helpers
from helpers import RawSMTP, queued_id, message

QUEUED = re.compile(r"level=info session=(\S+) queue=(\S+) event=queued from=<(\S*)> rcpts=(\d+) "
                    r"size=(\d+) message_id=(\S+) account=(\S+)$")


def queued_lines(s):
    return [QUEUED.search(l) for l in s.log().splitlines() if "event=queued" in l]


def test_queued_line_names_the_message_id(server_factory):
    s = server_factory()
    given = message("with-id", extra="Message-ID: <app.42@sender.example>\r\n")
    q1 = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net", "c@example.net"],
                                  given)
    q2 = helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"], message("no-id"))
    lines = {m.group(2): m for m in queued_lines(s)}
    assert set(lines) == {q1, q2}, s.log()[-3000:]
    m = lines[q1]
    assert m.group(3) == "a@example.com" and m.group(4) == "2", m.group(0)
    assert m.group(6) == "<app.42@sender.example>", m.group(0)
    m = lines[q2]
    assert m.group(6) == f"<{q2}@relay.test>", m.group(0)
    # the size is the stored message's (with the headers Posthorn added)
    shown = s.queue()[q2]
    assert int(m.group(5)) == shown["size"], (m.group(0), shown)
    assert f"message_id=<{q2}@relay.test>" in s.log()


def test_queued_is_not_logged_when_the_commit_fails(server_factory):
    """The message file vanishes while the client sends (a disk or operator
    accident): the commit fails, the client gets 451, and no line claims
    the message was queued."""
    s = server_factory()
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: doomed\r\n\r\nfirst part\r\n")
        tmp = helpers.wait_for(lambda: glob.glob(os.path.join(s.data_dir, "spool", "tmp", "*")),
                               timeout=5, what="the message's file in tmp/")
        for f in tmp:
            os.unlink(f)
        c.send(b"second part\r\n.\r\n")
        r = c.reply()
        assert r.code == 451, r
        assert c.cmd("NOOP").code == 250
    qid = os.path.basename(tmp[0])
    log = s.log()
    assert not [l for l in log.splitlines() if "event=queued" in l], log[-3000:]
    assert f"queue={qid} event=queue_failed" in log, log[-3000:]


def test_each_line_has_one_identity_and_no_event_twice(server_factory):
    s = server_factory(listeners={"mx": {"max_connections_per_ip": "1"}},
                       relay={"trusted_networks": "127.0.0.1/32"})
    with RawSMTP(s.port, source="127.0.5.1") as c:
        c.ehlo()
        with RawSMTP(s.port, source="127.0.5.1") as refused:
            assert refused.greeting.code == 421
            assert refused.closed(5)
        assert c.cmd("BOGUS").code == 502
        assert c.cmd("QUIT").code == 221
    with RawSMTP(s.port) as c:  # trusted: may relay
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("identity").encode() + b".\r\n")
        qid = queued_id(c.reply().lines[0])
        assert c.cmd("QUIT").code == 221
    helpers.wait_for(lambda: s.log().count("event=disconnect") >= 3, timeout=10,
                     what="the disconnect lines")
    lines = [l for l in s.log().splitlines() if l.strip()]
    listener_events = ("listen", "refuse_connection", "accept_error", "stress_begin",
                       "stress_end")
    mine = [l for l in lines if re.search(r"\bevent=(\S+)", l).group(1) in listener_events
            and "listener=mx" in l]  # the SMTP listener's, not the HTTP one's
    assert any("event=listen" in l for l in mine), lines
    for l in mine:
        assert "session=" not in l, l
    refused = [l for l in lines if "event=refuse_connection" in l]
    assert len(refused) == 1 and "ip=127.0.5.1" in refused[0], refused
    # one line per event: connect, reject, queued, disconnect of each session
    sessions = [re.search(r"session=(\S+) event=connect", l).group(1)
                for l in lines if "event=connect" in l]
    per = Counter((re.search(r"session=(\S+)", l).group(1), re.search(r"event=(\S+)", l).group(1))
                  for l in lines if re.search(r"\bsession=\S+", l))
    for sid in sessions:
        assert per[(sid, "connect")] == 1 and per[(sid, "disconnect")] == 1, per
    queued = [sid for sid in sessions if per[(sid, "queued")]]
    assert len(queued) == 1 and per[(queued[0], "queued")] == 1, per
    assert sum(per[(sid, "reject")] for sid in sessions) == 1, per
    assert sum(1 for l in lines if f"queue={qid}" in l and "event=queued" in l) == 1
    helpers.check_identities(s.log())


# ---- one identity on every line (docs/logging.md) ------------------------------------

def test_every_line_has_one_identity(server_factory, cert):
    """An inbound session, a delivery through a sink, a connection refused
    by a closed smarthost port, HTTP requests, a reload and a stop: each
    line names its session, message, outbound connection, HTTP connection
    or listener, or (server lines) none; the delivery's delay= is from
    arrival, in seconds with milliseconds; the refused connection names
    its port."""
    import httpapi
    from mx import MXFarm, wait_status
    farm = MXFarm(cert)
    try:
        farm.add("127.0.0.33")
        good = server_factory(relay={"smarthost": f"127.0.0.33:{farm.port}",
                                     "smarthost_tls": "none"})
        t0 = time.time()
        qid = helpers.send_raw_message(good.port, "a@example.com", ["b@example.net"],
                                       message("delivered"))
        wait_status(good, qid, "b@example.net", "sent")
        took = time.time() - t0
        good.stop()
        lines = helpers.check_identities(good.log())
        line = [l for l in lines if "event=delivery " in l][0]
        assert helpers.identities(line) == {"queue": qid}, line
        delay = re.search(r" delay=(\d+\.\d{3}) ", line)
        assert delay and 0 < float(delay.group(1)) <= took + 0.05, (line, took)
    finally:
        farm.stop()

    closed = server_factory()  # its smarthost is a closed port
    port = int(closed._relay["smarthost"].rsplit(":", 1)[1])
    httpapi.wait_http(closed)
    assert httpapi.request(closed, "GET", "/v1/account").status == 401
    qid = helpers.send_raw_message(closed.port, "a@example.com", ["c@example.net"],
                                   message("refused"))
    helpers.wait_for(lambda: "event=smtpc_fail" in closed.log(), timeout=10,
                     what="the refused connection")
    closed.stop()
    lines = helpers.check_identities(closed.log())
    fail = [l for l in lines if "event=smtpc_fail" in l][0]
    assert set(helpers.identities(fail)) == {"conn"} and f" port={port} " in fail, fail
    conns = {helpers.identities(l)["conn"] for l in lines if "event=smtpc_fail" in l}
    assert len(conns) == len([l for l in lines if "event=smtpc_fail" in l])  # one ID each
    http = [l for l in lines if "event=http_request" in l]
    assert http and all(set(helpers.identities(l)) == {"http"} for l in http), http
    for event in ("started", "stopped", "queue_loaded"):
        server = [l for l in lines if f"event={event}" in l]
        assert len(server) == 1 and helpers.identities(server[0]) == {}, (event, server)
    deferred = [l for l in lines if "event=delivery " in l and f"queue={qid}" in l]
    assert deferred and helpers.identities(deferred[0]) == {"queue": qid}, deferred
    assert f"connect to 127.0.0.1[127.0.0.1]:{port}: " in deferred[0], deferred[0]
