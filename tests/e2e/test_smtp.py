"""SPEC §3 on the shared server: greeting, EHLO, relay, queueing and headers,
limits, pipelining, BDAT, SMTPUTF8, DSN parameters and SMTP smuggling."""
import re
import time

import pytest

import helpers
from helpers import RawSMTP, ehlo_keywords, queued_id, message


def mail_session(port, frm="sender@example.com", rcpts=("rcpt@example.net",)):
    c = RawSMTP(port)
    c.ehlo()
    r = c.cmd(f"MAIL FROM:<{frm}>")
    assert r.code == 250, r
    for rc in rcpts:
        r = c.cmd(f"RCPT TO:<{rc}>")
        assert r.code == 250, r
    return c


def header_values(show, name):
    """Values of header NAME in `queue show` output (case-insensitive, unfolded)."""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", show)
    return re.findall(rf"(?im)^{re.escape(name)}:[ \t]*(.*)$", unfolded)


# ---------- greeting and EHLO ----------

def test_greeting(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        assert c.greeting.code == 220
        assert c.greeting.lines[0].startswith("relay.test ESMTP"), c.greeting


def test_ehlo_extensions_plain_trusted(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        r = c.ehlo()
        assert r.lines[0].startswith("relay.test"), r
        kw = ehlo_keywords(r)
        for k in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                  "CHUNKING", "DSN", "AUTH"):
            assert k in kw, (k, r)
        assert "STARTTLS" not in kw, r
        assert "SIZE 26214400" in r.lines, r  # default max_message_size 25m
        auth = [l for l in r.lines if l.upper().startswith("AUTH ")][0].upper().split()
        assert "PLAIN" in auth and "LOGIN" in auth, r


def test_ehlo_size_follows_listener(srv):
    with RawSMTP(srv.port_of("small")) as c:
        assert "SIZE 65536" in c.ehlo().lines


def test_helo_works(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        r = c.cmd("HELO client.test")
        assert r.code == 250, r
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.code == 250, r


def test_starttls_listener_ehlo_before_and_after(srv):
    with RawSMTP(srv.port_of("sub")) as c:
        kw = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in kw
        assert "AUTH" not in kw, "AUTH must not be offered before TLS"
        c.starttls()
        r = c.ehlo()
        kw = ehlo_keywords(r)
        assert "STARTTLS" not in kw, r
        assert "AUTH" in kw, r
        r = c.cmd("STARTTLS")
        assert 500 <= r.code < 600, r
        assert c.cmd("NOOP").code == 250


def test_auth_off_listener_never_offers_auth(srv):
    with RawSMTP(srv.port_of("off")) as c:
        assert "AUTH" not in ehlo_keywords(c.ehlo())
        r = c.cmd("AUTH PLAIN AGFsaWNlAHg=")
        assert (r.code, r.lines[0]) == (502, "5.5.1 AUTH not available"), r
        assert c.cmd("NOOP").code == 250


def test_unknown_command_and_session_goes_on(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("FROBNICATE now")
        assert r.code in (500, 502), r
        assert c.cmd("NOOP").code == 250
        r = c.cmd("QUIT")
        assert r.code == 221, r
        assert c.closed(5)


# ---------- relay and queueing ----------

def test_trusted_relay_queues_and_queue_show(srv):
    body = "Body line one.\r\nBody line two.\r\n"
    data = "From: <sender@example.com>\r\nTo: <r1@example.net>\r\nSubject: relay-test-1\r\n\r\n" + body
    with helpers.smtp(srv.port_of("plain")) as s:
        s.ehlo("client.test")
        assert s.mail("sender@example.com")[0] == 250
        assert s.rcpt("r1@example.net")[0] == 250
        assert s.rcpt("r2@example.org")[0] == 250
        code, text = s.data(data)
        assert code == 250, (code, text)
        text = text.decode()
        assert text.startswith("2.0.0 Ok: queued as "), text
        qid = queued_id(text)
    q = srv.queue()
    assert qid in q, (qid, q)
    assert q[qid]["sender"] == "sender@example.com", q[qid]
    assert len(q[qid]["recipients"]) == 2, q[qid]
    show = srv.queue_show(qid)
    assert "r1@example.net" in show and "r2@example.org" in show, show
    assert "Subject: relay-test-1" in show, show
    assert len(header_values(show, "Received")) >= 1, show
    assert any("relay.test" in v for v in header_values(show, "Received")), show
    mids = header_values(show, "Message-ID")
    assert len(mids) == 1, show
    assert "@relay.test>" in mids[0], mids
    assert len(header_values(show, "Date")) == 1, show


def test_existing_message_id_and_date_kept(srv):
    extra = "Message-ID: <own-id-123@client.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    qid = helpers.send_raw_message(srv.port_of("plain"), "sender@example.com",
                                   ["r@example.net"], message("own-ids", extra=extra))
    show = srv.queue_show(qid)
    assert header_values(show, "Message-ID") == ["<own-id-123@client.test>"], show
    assert header_values(show, "Date") == ["Mon, 1 Jan 2024 10:00:00 +0000"], show
    assert len(header_values(show, "Received")) >= 1, show


def test_message_id_header_name_case_insensitive(srv):
    extra = "message-id: <lower-id@client.test>\r\n"
    qid = helpers.send_raw_message(srv.port_of("plain"), "sender@example.com",
                                   ["r@example.net"], message("lc-mid", extra=extra))
    show = srv.queue_show(qid)
    assert len(header_values(show, "Message-ID")) == 1, show


def test_message_id_in_body_does_not_count(srv):
    data = ("From: <a@example.com>\r\nSubject: mid-in-body\r\n\r\n"
            "Message-ID: <in-body@client.test>\r\nDate: not a header here\r\n")
    qid = helpers.send_raw_message(srv.port_of("plain"), "a@example.com", ["b@example.net"], data)
    show = srv.queue_show(qid)
    mids = header_values(show, "Message-ID")
    assert any(m.endswith("@relay.test>") for m in mids), show


def test_folded_message_id_kept(srv):
    extra = "Message-ID:\r\n <folded-id@client.test>\r\n"
    qid = helpers.send_raw_message(srv.port_of("plain"), "sender@example.com",
                                   ["r@example.net"], message("folded-mid", extra=extra))
    show = srv.queue_show(qid)
    assert header_values(show, "Message-ID") == ["<folded-id@client.test>"], show


def test_terminator_split_across_writes(srv):
    import socket as so
    with mail_session(srv.port_of("plain")) as c:
        c.sock.setsockopt(so.IPPROTO_TCP, so.TCP_NODELAY, 1)
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: split-end\r\n\r\nbody")
        for b in (b"\r", b"\n", b".", b"\r", b"\n"):
            time.sleep(0.05)
            c.send(b)
        r = c.reply()
        assert r.code == 250, r
        # commands byte by byte
        for b in b"NOOP\r\n":
            c.send(bytes([b]))
            time.sleep(0.01)
        assert c.reply().code == 250


def test_commands_case_insensitive_and_quoted_local_part(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        assert c.cmd("ehlo client.test").code == 250
        assert c.cmd("mail from:<a@example.com>").code == 250
        r = c.cmd('rcpt to:<"john doe"@example.net>')
        assert r.code == 250, r
        assert c.cmd("rset").code == 250
        r = c.cmd("MAIL FROM:<a@example.com> SIZE=abc")
        assert r.code == 501, r


def test_ehlo_resets_transaction(srv):
    with mail_session(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        assert c.cmd("RCPT TO:<b@example.net>").code == 503


def test_null_sender_accepted(srv):
    with mail_session(srv.port_of("plain"), frm="") as c:
        r = c.cmd("DATA")
        assert r.code == 354, r
        c.send(message("null-sender").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r


def test_rcpt_before_mail_and_data_before_rcpt(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert c.cmd("RCPT TO:<x@example.net>").code == 503
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("MAIL FROM:<a@example.com>").code == 503
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
        assert c.cmd("RSET").code == 250
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250


def test_rset_discards_transaction(srv):
    before = set(srv.queue())
    with mail_session(srv.port_of("plain")) as c:
        assert c.cmd("RSET").code == 250
        r = c.cmd("DATA")
        assert r.code in (503, 554), r
    assert set(srv.queue()) == before


# ---------- limits ----------

def test_size_param_over_max(srv):
    with RawSMTP(srv.port_of("small")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com> SIZE=65537")
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        r = c.cmd("MAIL FROM:<a@example.com> SIZE=65536")
        assert r.code == 250, r


def test_data_over_max_rejected_after_data(srv):
    before = set(srv.queue())
    with mail_session(srv.port_of("small")) as c:
        assert c.cmd("DATA").code == 354
        line = "x" * 70 + "\r\n"
        big = "Subject: big\r\n\r\n" + line * (70 * 1024 // len(line) + 10)
        c.send(big.encode() + b".\r\n")
        r = c.reply()
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        assert c.cmd("NOOP").code == 250, "session goes on after 552"
        # and a message within the limit still goes through
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("small-ok").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        ok_id = queued_id(r.lines[0])
    assert set(srv.queue()) - before == {ok_id}


def test_too_many_recipients(srv):
    with RawSMTP(srv.port_of("small")) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        for i in range(5):
            r = c.cmd(f"RCPT TO:<r{i}@example.net>")
            assert r.code == 250, r
        r = c.cmd("RCPT TO:<r5@example.net>")
        assert r.code == 452 and r.lines[0].startswith("4.5.3"), r
        assert c.cmd("DATA").code == 354
        c.send(message("five-rcpts").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
    assert len(srv.queue()[qid]["recipients"]) == 5


def test_command_line_too_long(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("NOOP " + "a" * 600)
        assert r.code == 500 and r.lines[0].startswith("5.5.2"), r
        assert c.cmd("NOOP").code == 250, "session goes on"
        r = c.cmd("MAIL FROM:<" + "b" * 5000 + "@example.com>")
        assert r.code == 500 and r.lines[0].startswith("5.5.2"), r
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250


def test_command_line_of_exactly_512_octets_accepted(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        line = "NOOP " + "a" * (512 - 2 - 5)
        assert len(line) + 2 == 512
        r = c.cmd(line)
        assert r.code == 250, r


# ---------- pipelining ----------

def test_pipelining_replies_in_order(srv):
    before = set(srv.queue())
    with RawSMTP(srv.port_of("plain")) as c:
        c.send("EHLO client.test\r\nMAIL FROM:<p@example.com>\r\nRCPT TO:<p1@example.net>\r\n"
               "RCPT TO:<p2@example.net>\r\nDATA\r\n")
        r = c.reply()
        assert r.code == 250 and "PIPELINING" in ehlo_keywords(r), r
        assert c.reply().code == 250  # MAIL
        assert c.reply().code == 250  # RCPT
        assert c.reply().code == 250  # RCPT
        assert c.reply().code == 354  # DATA
        # the message, its end and the next transaction in one write
        c.send(message("pipelined").encode() + b".\r\n"
               b"MAIL FROM:<p@example.com>\r\nRCPT TO:<@@>\r\nRCPT TO:<p3@example.net>\r\n"
               b"DATA\r\n")
        r = c.reply()
        assert r.code == 250, r
        id1 = queued_id(r.lines[0])
        assert c.reply().code == 250          # MAIL
        assert 500 <= c.reply().code < 600    # bad RCPT
        assert c.reply().code == 250          # RCPT
        assert c.reply().code == 354          # DATA
        c.send(message("pipelined-2").encode() + b".\r\nQUIT\r\n")
        r = c.reply()
        assert r.code == 250, r
        id2 = queued_id(r.lines[0])
        assert c.reply().code == 221
    q = srv.queue()
    assert set(q) - before == {id1, id2}
    assert len(q[id1]["recipients"]) == 2 and len(q[id2]["recipients"]) == 1


# ---------- BDAT ----------

def test_bdat_chunks(srv):
    content = ("From: <b@example.com>\r\nTo: <c@example.net>\r\n"
               "Subject: bdat-chunked-message\r\nX-Marker: split-across-chunks\r\n\r\n"
               "chunk body line\r\n").encode()
    cut1, cut2 = 20, content.index(b"split-across") + 5
    chunks = [content[:cut1], content[cut1:cut2], content[cut2:]]
    with RawSMTP(srv.port_of("plain")) as c:
        assert "CHUNKING" in ehlo_keywords(c.ehlo())
        assert c.cmd("MAIL FROM:<b@example.com>").code == 250
        assert c.cmd("RCPT TO:<c@example.net>").code == 250
        for ch in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            r = c.reply()
            assert r.code == 250, r
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
        assert c.cmd("NOOP").code == 250
    show = srv.queue_show(qid)
    assert "X-Marker: split-across-chunks" in show, show
    assert "Subject: bdat-chunked-message" in show, show
    assert "c@example.net" in show


def test_bdat_zero_last(srv):
    content = message("bdat-zero-last").encode()
    with mail_session(srv.port_of("plain")) as c:
        c.send(b"BDAT %d\r\n" % len(content) + content)
        assert c.reply().code == 250
        r = c.cmd("BDAT 0 LAST")
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
    assert "Subject: bdat-zero-last" in srv.queue_show(qid)


def test_bdat_pipelined_with_commands(srv):
    content = message("bdat-pipelined").encode()
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n"
               b"BDAT %d LAST\r\n" % len(content) + content + b"NOOP\r\n")
        assert c.reply().code == 250
        assert c.reply().code == 250
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
        assert c.reply().code == 250  # NOOP
    assert qid in srv.queue()


def test_bdat_without_mail_consumes_chunk(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        payload = b"QUIT\r\nQUIT\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(payload) + payload)
        r = c.reply()
        assert r.code == 503, r
        # the chunk's bytes are data, not commands: the session is still open
        r = c.cmd("NOOP")
        assert r.code == 250, r


def test_bdat_over_max_size(srv):
    before = set(srv.queue())
    with mail_session(srv.port_of("small")) as c:
        chunk = (b"x" * 998 + b"\r\n") * 40  # 40000 octets
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        assert c.reply().code == 250
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        r = c.reply()
        assert r.code == 552 and r.lines[0].startswith("5.3.4"), r
        assert c.cmd("RSET").code == 250
        assert c.cmd("NOOP").code == 250
    assert set(srv.queue()) == before


def test_queue_delete_on_running_server(srv):
    qid = helpers.send_raw_message(srv.port_of("plain"), "a@example.com", ["b@example.net"],
                                   message("to-delete"))
    assert qid in srv.queue()
    rc, out, err = srv.cli("queue", "delete", qid)
    assert rc == 0, err
    assert qid not in srv.queue()
    rc, out, err = srv.cli("queue", "delete", qid)
    assert rc == 1, (rc, out, err)


def test_data_after_bdat_refused(srv):
    with mail_session(srv.port_of("plain")) as c:
        c.send(b"BDAT 5\r\nabcde")
        assert c.reply().code == 250
        r = c.cmd("DATA")
        assert r.code == 503, r


# ---------- SMTPUTF8 and 8BITMIME ----------

def test_smtputf8(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή>")
        assert r.code == 553 and r.lines[0].startswith("5.6.7"), r
        r = c.cmd("MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8")
        assert r.code == 250, r
        assert c.cmd("RCPT TO:<получатель@пример.рф>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(("From: δοκιμή@παράδειγμα.δοκιμή\r\nSubject: ünïcödé\r\n\r\nΓειά σου\r\n.\r\n")
               .encode())
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
    show = srv.queue_show(qid)
    assert "получатель@пример.рф" in show, show


def test_non_ascii_rcpt_without_smtputf8(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        r = c.cmd("RCPT TO:<получатель@пример.рф>")
        assert r.code == 553 and r.lines[0].startswith("5.6.7"), r


def test_8bitmime_body(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com> BODY=8BITMIME").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send("Subject: 8bit\r\n\r\ncafé ☕\r\n.\r\n".encode())
        assert c.reply().code == 250


# ---------- DSN ----------

def test_dsn_params_accepted(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com> RET=HDRS ENVID=abc")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<x@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@example.net")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<y@example.net> NOTIFY=NEVER")
        assert r.code == 250, r
        r = c.cmd("RCPT TO:<z@example.net> NOTIFY=BOGUS")
        assert r.code == 501, r
        r = c.cmd("RCPT TO:<z@example.net> NOTIFY=NEVER,SUCCESS")
        assert r.code == 501, r
        assert c.cmd("DATA").code == 354
        c.send(message("dsn").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
    assert len(srv.queue()[qid]["recipients"]) == 2


def test_dsn_bad_ret(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com> RET=SOMETIMES")
        assert r.code == 501, r
        assert c.cmd("MAIL FROM:<a@example.com> RET=FULL").code == 250


# ---------- SMTP smuggling ----------

SMUGGLED = ("MAIL FROM:<smuggler@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
            "Subject: smuggled\r\n\r\nsmuggled\r\n")


@pytest.mark.parametrize("sep", [
    b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\n.\n", b"\n..\n",
], ids=["crlf-dot-lf", "lf-dot-crlf", "cr-dot-crlf", "crlf-dot-cr", "lf-dot-lf", "lf-dotdot-lf"])
def test_smuggling_rejected(srv, sep):
    before = set(srv.queue())
    with mail_session(srv.port_of("plain")) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: outer\r\n\r\nhello" + sep + SMUGGLED.encode() + b".\r\n")
        r = c.reply()
        assert r.code == 550 and r.lines[0].startswith("5.6.11"), r
        # exactly one reply: the next one answers our NOOP
        r = c.cmd("NOOP")
        assert r.code == 250 and r.lines[0].startswith("2.0.0"), r
        assert c.buf == b""
        # the session goes on and a normal message is queued
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("after-smuggling").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
    after = srv.queue()
    assert set(after) - before == {qid}, "only the legitimate message is queued"
    assert "victim@example.net" not in srv.queue_show(qid)


def test_bare_lf_line_rejected(srv):
    before = set(srv.queue())
    with mail_session(srv.port_of("plain")) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        r = c.reply()
        assert r.code == 550 and r.lines[0].startswith("5.6.11"), r
        assert c.cmd("NOOP").code == 250
    assert set(srv.queue()) == before


def test_dot_stuffing_undone(srv):
    with mail_session(srv.port_of("plain")) as c:
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: dots\r\nX-Dot-Test: yes\r\n\r\n..leading dot\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r


# ---------- hostile input ----------

def test_size_overflow(srv):
    with RawSMTP(srv.port_of("plain")) as c:
        c.ehlo()
        for v in ("18446744073709551617", "99999999999999999999999999", "-1"):
            r = c.cmd(f"MAIL FROM:<a@example.com> SIZE={v}")
            assert r.code in (501, 552, 555), (v, r)
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250


def test_bdat_bad_sizes(srv):
    for arg in ("18446744073709551617", "99999999999999999999999", "-1", "abc", ""):
        with mail_session(srv.port_of("plain")) as c:
            c.send(f"BDAT {arg}\r\n".encode())
            try:
                r = c.reply()
            except ConnectionError:
                continue  # closing the connection is acceptable
            assert 500 <= r.code < 600, (arg, r)
    with RawSMTP(srv.port_of("plain")) as c:
        assert c.ehlo().code == 250


def test_client_vanishes_mid_data(srv):
    before = set(srv.queue())
    c = mail_session(srv.port_of("plain"))
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: vanished\r\n\r\npartial body\r\n")
    c.close()
    c = mail_session(srv.port_of("plain"))
    c.send(b"BDAT 100\r\nonly a part")
    c.close()
    # the server is fine and queued nothing for them
    qid = helpers.send_raw_message(srv.port_of("plain"), "a@example.com", ["b@example.net"],
                                   message("after-vanish"))
    assert set(srv.queue()) - before == {qid}
