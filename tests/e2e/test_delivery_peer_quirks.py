"""Delivery edge cases found in review, against a raw scriptable peer used as
the smarthost (rawmx.py): extra or malformed lines after replies, slow
greetings during a drain, delay notices, odd peers."""
import re
import signal
import socket
import time

import helpers
from rawmx import RawMX


def msg(frm, to, subj, body=b"Hello.\r\n"):
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {subj}\r\n\r\n").encode() + body


def mk(server_factory, mx, extra="", relay=None, start=True):
    r = {"smarthost": f"127.0.0.1:{mx.port}", "smarthost_tls": "none"}
    r.update(relay or {})
    return server_factory(relay=r, extra=extra, start=start)


def wait(pred, t=20):
    end = time.monotonic() + t
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def stop_nocheck(srv):
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(15)
    except Exception:
        srv.proc.kill()
        srv.proc.wait()
    srv._close_files()
    return srv.proc.returncode


def stop_clean(srv, lines=""):
    """SIGTERM; the server must exit 0 with no sanitizer report. lines:
    only log lines containing it are printed (all when empty)."""
    rc = stop_nocheck(srv)
    log = srv.log()
    print("\n".join(l for l in log.splitlines() if lines in l)[-6000:])
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-6000:]
    assert rc == 0
    return log


def test_quit_then_garbage(server_factory):
    """max_messages_per_connection = 1; the dot reply comes with a
    malformed line right behind it."""
    mx = RawMX(dot_reply=b"250 OK\r\nxyz\r\n")
    srv = mk(server_factory, mx, extra="[domain.*]\nmax_messages_per_connection = 1")
    helpers.send_raw_message(srv.port, "a@sender.test", ["b@dest.test"],
                             msg("a@sender.test", "b@dest.test", "q"))
    assert wait(lambda: mx.messages, 20), "the message never reached the peer"
    assert wait(lambda: "status=sent" in srv.log(), 10), srv.log()[-3000:]
    time.sleep(2)
    stop_clean(srv)


def test_refused_then_extra_reply(server_factory):
    """SIZE 1000 and a bigger message (refused before MAIL: ev_refused),
    the EHLO reply followed by one more line in the same segment."""
    mx = RawMX(ehlo=b"250-raw.test\r\n250 SIZE 1000\r\n", after_ehlo_extra=b"250 extra\r\n")
    srv = mk(server_factory, mx)
    helpers.send_raw_message(srv.port, "a@sender.test", ["b@dest.test"],
                             msg("a@sender.test", "b@dest.test", "big", b"x" * 3000 + b"\r\n"))
    assert wait(lambda: "to=<b@dest.test>" in srv.log() or "AddressSanitizer" in srv.log()
                or srv.proc.poll() is not None, 10), "no delivery attempt logged"
    time.sleep(1)
    log = stop_clean(srv)
    assert re.search(r"event=delivery to=<b@dest\.test> .*status=bounced dsn=5\.3\.4 "
                     r"reply=\"message size \d+ exceeds size limit 1000 ", log), log[-3000:]
    assert mx.messages == [], "a message over the peer's SIZE was sent"


def test_drain_waits_for_inbound(server_factory):
    """SIGTERM while an outbound connection is still opening (slow greeting)
    and an inbound transaction is in DATA: the inbound one must be allowed
    to finish."""
    mx = RawMX(greet_delay=3.0)
    srv = mk(server_factory, mx)
    helpers.send_raw_message(srv.port, "a@sender.test", ["b@dest.test"],
                             msg("a@sender.test", "b@dest.test", "one"))
    time.sleep(0.5)  # the outbound connection is waiting for its greeting
    r = helpers.RawSMTP(srv.port, timeout=20)
    r.ehlo()
    assert r.cmd("MAIL FROM:<a@sender.test>").code == 250
    assert r.cmd("RCPT TO:<c@dest.test>").code == 250
    assert r.cmd("DATA").code == 354
    r.send("Subject: x\r\n\r\npart one\r\n")
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(5)  # greeting comes after ~2.5 s
    alive = srv.proc.poll() is None
    try:
        r.send("part two\r\n.\r\n")
        rep = r.reply()
        code = rep.code
    except Exception as e:
        code = repr(e)
    rc = None
    try:
        rc = srv.proc.wait(15)
    except Exception:
        srv.proc.kill()
    srv._close_files()
    log = srv.log()
    print(log[-4000:])
    assert alive, f"server exited within 5 s of SIGTERM with a transaction in progress; reply={code}"
    assert code == 250, code


def test_delay_warning(server_factory):
    """NOTIFY=DELAY, delay_warning = 3s, retry every 2s: one delay notice
    should go out about 3 s after acceptance."""
    mx = RawMX(rcpt=lambda a: b"451 4.3.0 later\r\n" if a.startswith("slow@") else b"250 OK\r\n")
    srv = mk(server_factory, mx, relay={"retry": "2s", "delay_warning": "3s",
                                        "queue_lifetime": "40s"})
    with helpers.smtp(srv.port) as s:
        s.ehlo("client.test")
        code, _ = s.docmd("MAIL FROM:<a@sender.test>")
        assert code == 250
        code, t = s.docmd("RCPT TO:<slow@dest.test> NOTIFY=DELAY,FAILURE")
        assert code == 250, t
        code, t = s.data(msg("a@sender.test", "slow@dest.test", "d"))
        assert code == 250, t
    got = wait(lambda: any(m[0] == b"<>" for m in mx.messages), 16)
    log = srv.log()
    stop_nocheck(srv)
    print("\n".join(l for l in log.splitlines() if "delivery" in l or "dsn" in l))
    assert got, "no delay DSN after 16 s"


import pytest


@pytest.mark.parametrize("kind", ["rcpt421", "dot421", "dotgarbage_multi", "ehlo_only_extra"])
def test_odd_peers(server_factory, kind):
    kw = {}
    if kind == "rcpt421":
        kw = dict(rcpt=lambda a: b"421 4.3.2 go away\r\n" if a.startswith("b2") else b"250 OK\r\n")
    elif kind == "dot421":
        kw = dict(dot_reply=b"421 4.3.2 bye\r\n")
    elif kind == "dotgarbage_multi":
        kw = dict(dot_reply=b"250 OK\r\n250 extra\r\n")
    elif kind == "ehlo_only_extra":
        kw = dict(after_ehlo_extra=b"250 extra\r\n")
    mx = RawMX(**kw)
    srv = mk(server_factory, mx, relay={"retry": "1s"})
    for i in range(3):
        helpers.send_raw_message(srv.port, "a@sender.test", ["b1@dest.test", "b2@dest.test"],
                                 msg("a@sender.test", "b1@dest.test", f"m{i}"))
    time.sleep(3)  # a few attempts and retries against the odd peer
    log = stop_clean(srv, "event=delivery")
    # each recipient of each message has an outcome: deferred with the
    # peer's 421; deferred as a protocol error when an unasked line after
    # EHLO shifts every later reply (4.5.0: nothing sent out of step); sent
    # past an extra line after the final dot's reply
    got = set(re.findall(r"event=delivery to=<(b[12])@dest\.test> .*status=(\w+) dsn=([\d.]+)",
                         log))
    if kind in ("rcpt421", "dot421"):
        assert got == {("b1", "deferred", "4.3.2"), ("b2", "deferred", "4.3.2")}, got
    elif kind == "ehlo_only_extra":
        assert got == {("b1", "deferred", "4.5.0"), ("b2", "deferred", "4.5.0")}, got
        assert 'reply="protocol error: ' in log and "status=sent" not in log, log[-3000:]
    else:
        assert got == {("b1", "sent", "2.0.0"), ("b2", "sent", "2.0.0")}, got
        assert len(mx.messages) == 3 and log.count("status=sent") == 6, log[-3000:]


def test_deadline_with_inbound_in_data(server_factory):
    """SIGTERM with an inbound client stuck in DATA: after the drain
    deadline ([server] drain_timeout) the server must exit cleanly."""
    mx = RawMX()
    srv = server_factory(relay={"smarthost": f"127.0.0.1:{mx.port}", "smarthost_tls": "none"},
                         server={"drain_timeout": "2s"})
    r = helpers.RawSMTP(srv.port, timeout=60)
    r.ehlo()
    assert r.cmd("MAIL FROM:<a@sender.test>").code == 250
    assert r.cmd("RCPT TO:<c@dest.test>").code == 250
    assert r.cmd("DATA").code == 354
    r.send("Subject: x\r\n\r\npart one\r\n")
    srv.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = srv.proc.wait(45)
    assert time.monotonic() - t0 < 10, "drain_timeout = 2s not honoured"
    srv._close_files()
    log = srv.log()
    print(log[-3000:])
    assert "AddressSanitizer" not in log, log[-5000:]
    assert rc == 0


def test_remote_reply_bytes_are_escaped_in_the_log(server_factory):
    """A peer's reply is outside text: its 8-bit bytes reach the log as
    \\xNN inside quotes, its control bytes (an escape sequence a terminal
    would run) as '?', so one reply is one printable ASCII log line."""
    mx = RawMX(rcpt=lambda addr: b"550 5.1.1 caf\xc3\xa9 \x1b[31mred\x7f no such user\r\n")
    srv = mk(server_factory, mx)
    helpers.send_raw_message(srv.port, "a@sender.test", ["b@dest.test"],
                             msg("a@sender.test", "b@dest.test", "escape"))
    assert wait(lambda: "status=bounced" in srv.log(), 20), srv.log()[-3000:]
    with open(srv.log_path, "rb") as f:
        raw = f.read()
    line = next(ln for ln in raw.split(b"\n") if b"status=bounced" in ln)
    assert all(32 <= b < 127 for b in line), line
    assert b"said: 550 5.1.1 caf\\xc3\\xa9 ?[31mred? no such user" in line, line
    mx.stop()
