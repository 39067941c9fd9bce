"""Issue 9, the SMTP server's log lines: event=queued only once the spool
commit succeeded, with the Message-ID (found in the headers, or the one
added) and the size, so mail can be found by Message-ID; inbound lines
carry session=, listener-level lines listener=NAME (never
session=NOQUEUE); no event is logged twice."""
import glob
import os
import re
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
                  for l in lines if re.search(r"\bsession=\S+", l) and "NOQUEUE" not in l)
    for sid in sessions:
        assert per[(sid, "connect")] == 1 and per[(sid, "disconnect")] == 1, per
    queued = [sid for sid in sessions if per[(sid, "queued")]]
    assert len(queued) == 1 and per[(queued[0], "queued")] == 1, per
    assert sum(per[(sid, "reject")] for sid in sessions) == 1, per
    assert sum(1 for l in lines if f"queue={qid}" in l and "event=queued" in l) == 1
