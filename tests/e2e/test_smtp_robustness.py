"""Inbound edge cases found in review: a client that stops reading, a BDAT
refused before its chunk, a failed BDAT that must not taint the next
message, the empty line after the headers split between two reads (or
two BDAT chunks), the SIGTERM drain of a session that went back to
idle, and the per-session error limit (max_errors)."""
import re
import signal
import socket
import time

import helpers
from helpers import RawSMTP, message


def test_client_that_stops_reading_is_dropped(server_factory):
    s = server_factory(listeners={"mx": {"timeout": "2s"}})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", s.port))
    sock.settimeout(0.5)
    sent = 0
    try:  # pipeline replies the client never reads, until the server stops reading too
        while sent < 64 << 20:
            sock.send(b"NOOP\r\n" * 2048)
            sent += 6 * 2048
    except (socket.timeout, TimeoutError, BlockingIOError):
        pass
    helpers.wait_for(lambda: re.search(r"event=disconnect .*reason=timeout", s.log()),
                     timeout=15, what="the server dropped the non-reading client")
    sock.close()
    # and its slot is free again: the per-address cap still lets clients in
    with helpers.RawSMTP(s.port) as r:
        assert r.greeting.code == 220


def test_bdat_refused_by_helo_swallows_its_chunk(server_factory):
    s = server_factory()
    with helpers.RawSMTP(s.port) as r:
        assert r.cmd("HELO client.test").code == 250
        # BDAT needs EHLO; its 6 bytes ("HELP\r\n") are data, never a command
        r.send("BDAT 6\r\nHELP\r\n")
        assert r.reply().code in (502, 503)
        rep = r.cmd("RSET")
        assert rep.code == 250, rep  # RSET's own reply: HELP would have said 214


def test_failed_bdat_does_not_taint_the_next_message(server_factory):
    s = server_factory()
    with helpers.RawSMTP(s.port) as r:
        r.ehlo()
        r.send("BDAT 5 LAST\r\nhello")
        assert r.reply().code == 503  # no MAIL yet
        assert r.cmd("MAIL FROM:<a@example.com>").code == 250
        assert r.cmd("RCPT TO:<b@example.net>").code == 250
        body = b"Subject: second\r\n\r\nok\r\n"
        r.send(b"BDAT %d LAST\r\n" % len(body) + body)
        rep = r.reply()
        assert rep.code == 250 and "queued as" in rep.text, rep


def test_missing_headers_go_before_the_body_when_the_empty_line_is_split(server_factory):
    s = server_factory()
    with helpers.RawSMTP(s.port) as r:
        r.ehlo()
        assert r.cmd("MAIL FROM:<a@example.com>").code == 250
        assert r.cmd("RCPT TO:<b@example.net>").code == 250
        assert r.cmd("DATA").code == 354
        r.send("Subject: split\r\n\r")
        time.sleep(0.3)  # the server reads the CR alone
        r.send("\nbody line\r\n.\r\n")
        qid = helpers.queued_id(r.reply().text)
    text = s.queue_show(qid)
    head, _, body = text.partition("Subject: split")[2].partition("\n\n")
    assert "Message-ID:" in head and "Date:" in head, text
    assert "Message-ID" not in body and "Date:" not in body, text


def test_missing_headers_go_before_the_body_when_the_empty_line_spans_bdat_chunks(
        server_factory):
    s = server_factory()
    with helpers.RawSMTP(s.port) as r:
        r.ehlo()
        assert r.cmd("MAIL FROM:<a@example.com>").code == 250
        assert r.cmd("RCPT TO:<b@example.net>").code == 250
        first, last = b"Subject: chunked\r\n\r", b"\nbody line\r\n"
        r.send(b"BDAT %d\r\n" % len(first) + first)
        rep = r.reply()
        assert rep.code == 250 and rep.text == f"2.0.0 {len(first)} octets received", rep
        r.send(b"BDAT %d LAST\r\n" % len(last) + last)
        rep = r.reply()
        assert rep.code == 250, rep
        qid = helpers.queued_id(rep.text)
    # queue show prints the header block, up to the first empty line: the
    # added headers are inside it, after the client's own
    text = s.queue_show(qid)
    head = text.partition("Subject: chunked\n")[2]
    assert "Date: " in head and "Message-ID: <" in head, text
    assert "body line" not in text, text


def test_drain_closes_a_session_that_went_back_to_idle(server_factory):
    s = server_factory()
    r = helpers.RawSMTP(s.port)
    r.ehlo()
    assert r.cmd("MAIL FROM:<a@example.com>").code == 250
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # the drain starts while the transaction is open
    assert r.cmd("RSET").code == 250
    rep = r.reply()
    assert rep.code == 421, rep
    assert r.closed(timeout=5)
    r.close()
    assert s.proc.wait(10) == 0


def test_max_errors_closes_with_421(server_factory):
    s = server_factory(listeners={"mx": {"max_errors": "3"}})
    with RawSMTP(s.port) as c:
        c.ehlo()
        # pipelined: the third rejected command is the last one read
        c.send(b"BOGUS 1\r\nBOGUS 2\r\nMAIL FROM:<bad address>\r\nNOOP\r\nNOOP\r\n")
        assert [c.reply().code for _ in range(3)] == [502, 502, 501]
        r = c.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r
        assert "too many errors" in r.text.lower()
        assert c.closed(5)
    assert re.search(r"event=error_limit ip=127\.0\.0\.1 errors=3 limit=3", s.log())
    assert "reason=error_limit" in s.log()


def test_max_errors_counts_since_the_last_message(server_factory):
    s = server_factory(listeners={"mx": {"max_errors": "3"}},
                       relay={"trusted_networks": "127.0.0.1/32"})
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("BOGUS").code == 502
        assert c.cmd("RCPT TO:<b@example.net>").code == 503  # no MAIL yet
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("between-errors").encode() + b".\r\n")
        assert c.reply().code == 250
        # counted afresh: two more are fine, the third ends the session
        assert c.cmd("BOGUS").code == 502
        assert c.cmd("VRFY").code == 252  # not a refusal
        assert c.cmd("BOGUS").code == 502
        assert c.cmd("NOOP").code == 250
    # relay refusals count too
    with RawSMTP(s.port, source="127.0.4.1") as u:
        u.ehlo()
        assert u.cmd("MAIL FROM:<a@example.com>").code == 250
        assert [u.cmd(f"RCPT TO:<x{i}@example.net>").code for i in range(3)] == [554] * 3
        r = u.reply()
        assert r.code == 421 and r.lines[0].startswith("4.7.0"), r


def test_max_errors_default_is_20(server_factory):
    s = server_factory()
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.send(b"BOGUS\r\n" * 25)
        codes = [c.reply().code for _ in range(21)]
        assert codes == [502] * 20 + [421], codes
        assert c.closed(5)
