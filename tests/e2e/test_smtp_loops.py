"""SPEC §2 §4, issue 8: mail loops are stopped by the hop count. A message
with more Received header fields than [relay] max_hops (the one Posthorn
adds included) is refused at the end of DATA/BDAT with 554 5.4.6; a relay
that loops through itself therefore bounces the message with 5.4.6 after
max_hops trips instead of forever."""
import re

import helpers
from conftest import free_port
from helpers import RawSMTP, queued_id, message


def with_received(n, body="Hello.\r\n"):
    hdrs = "".join(f"Received: from hop{i}.test by relay{i}.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                   for i in range(n))
    return hdrs + message("hops", body=body)


def send_data(port, data):
    with RawSMTP(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(data.encode() + b".\r\n")
        r = c.reply()
        # the session goes on either way
        assert c.cmd("NOOP").code == 250
        return r


def test_too_many_received_headers_refused_at_end_of_data(server_factory):
    s = server_factory(relay={"max_hops": "5"})
    before = set(s.queue())
    r = send_data(s.port, with_received(5))  # 5 + ours = 6 > 5
    assert r.code == 554 and r.lines[0].startswith("5.4.6"), r
    assert "too many hops (6 received headers, limit 5)" in r.text.lower(), r
    assert set(s.queue()) == before
    r = send_data(s.port, with_received(4))  # 4 + ours = 5: at the limit
    assert r.code == 250, r
    assert re.search(r"event=reject cmd=DATA reply=\"554 5\.4\.6", s.log())


def test_default_limit_is_50(server_factory):
    s = server_factory()
    assert send_data(s.port, with_received(50)).code == 554
    assert send_data(s.port, with_received(49)).code == 250


def test_folded_and_body_received_do_not_count(server_factory):
    s = server_factory(relay={"max_hops": "3"})
    folded = ("Received: from a.test\r\n\tby b.test\r\n\twith ESMTP;\r\n"
              " Mon, 1 Jan 2024 00:00:00 +0000\r\n"
              "received: from c.test by d.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n")
    body = "".join(f"Received: in the body {i}\r\n" for i in range(10))
    r = send_data(s.port, folded + message("folded", body=body))
    assert r.code == 250, r  # 2 + ours = 3
    r = send_data(s.port, folded + "RECEIVED: x\r\n" + message("three"))
    assert r.code == 554 and r.lines[0].startswith("5.4.6"), r


def test_bdat_hops(server_factory):
    s = server_factory(relay={"max_hops": "2"})
    data = with_received(2).encode()
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        half = len(data) // 2
        c.send(b"BDAT %d\r\n" % half + data[:half])
        assert c.reply().code == 250
        c.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
        r = c.reply()
        assert r.code == 554 and r.lines[0].startswith("5.4.6"), r
        assert re.search(r"event=reject cmd=BDAT reply=\"554 5\.4\.6", s.log())
        # one Received from the client: 1 + ours = 2, accepted
        one = with_received(1).encode()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        c.send(b"BDAT %d LAST\r\n" % len(one) + one)
        r = c.reply()
        assert r.code == 250, r


def test_relay_that_loops_through_itself_stops(server_factory):
    """The relay is its own smarthost: every delivery comes back to it with
    one more Received header. The hop limit ends the loop: the last hop is
    refused with 554 5.4.6, the message bounces with 5.4.6, the bounce (null
    sender) loops the same way and is dropped, and the queue empties."""
    port = free_port()
    s = server_factory(listeners={"mx": {"address": f"127.0.0.1:{port}"}},
                       relay={"smarthost": f"127.0.0.1:{port}", "smarthost_tls": "none"})
    qid = helpers.send_raw_message(port, "sender@example.com", ["loop@example.net"],
                                   message("loop"))

    def settled():
        log = s.log()
        return "554 5.4.6" in log and not s.queue() and log

    log = helpers.wait_for(settled, timeout=45, what="the loop to end and the queue to empty")
    queued = len(re.findall(r"event=queued", log))
    # the message is queued 50 times (the 50th relay is refused); its bounce the same
    assert queued <= 2 * 50, f"{queued} messages queued:\n{log[-3000:]}"
    bounced = [l for l in log.splitlines()
               if "event=delivery" in l and "status=bounced" in l and "5.4.6" in l]
    assert bounced, log[-3000:]
    assert any(f"event=dsn_queued" in l for l in log.splitlines()), log[-3000:]
    assert qid
