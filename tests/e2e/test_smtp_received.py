"""The Received header Posthorn adds, and the HELO name in it and in the log
(issue 8: only a valid HELO name reaches the header, 8-bit and control bytes
are escaped in log lines; issue 9: received_header = full | hide_client)."""
import re
import socket

import pytest

import helpers
from helpers import RawSMTP, queued_id, message


def header_values(show, name):
    unfolded = re.sub(r"\r?\n[ \t]+", " ", show)
    return re.findall(rf"(?im)^{re.escape(name)}:[ \t]*(.*)$", unfolded)


def send_with_helo(port, helo, host="127.0.0.1"):
    """EHLO helo (bytes or str), one message; returns its queue ID."""
    with RawSMTP(port, host=host) as c:
        if isinstance(helo, str):
            helo = helo.encode()
        c.send(b"EHLO " + helo + b"\r\n")
        assert c.reply().code == 250
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(message("received").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
        assert c.cmd("QUIT").code == 221
        return queued_id(r.lines[0])


def received_of(s, qid):
    got = header_values(s.queue_show(qid), "Received")
    assert len(got) == 1, got
    return got[0]


def test_valid_helo_and_address_literal(server_factory):
    s = server_factory()
    rcvd = received_of(s, send_with_helo(s.port, "client.example"))
    assert rcvd.startswith("from client.example ([127.0.0.1]) by relay.test (Posthorn) with ESMTP id "), rcvd
    rcvd = received_of(s, send_with_helo(s.port, "[127.0.0.1]"))
    assert rcvd.startswith("from [127.0.0.1] ([127.0.0.1]) by relay.test"), rcvd


@pytest.mark.parametrize("helo", ["café.example".encode(), b"bad(name)", b"x;y",
                                  b"under_score.example", b"trailing.dot.", b"[300.1.1.1]"])
def test_invalid_helo_is_replaced_in_received(server_factory, helo):
    s = server_factory()
    qid = send_with_helo(s.port, helo)
    rcvd = received_of(s, qid)
    assert rcvd.startswith("from [127.0.0.1] ([127.0.0.1] helo=[invalid]) by relay.test"), rcvd
    assert helo.decode() not in rcvd


def test_8bit_helo_is_escaped_in_the_log(server_factory):
    s = server_factory()
    send_with_helo(s.port, "café.example\x01".encode()[:-1] + b"\xff")
    send_with_helo(s.port, "café.example".encode())
    helpers.wait_for(lambda: s.log().count("event=disconnect") >= 3, timeout=10,
                     what="the disconnect lines")  # the harness's probe, and ours
    with open(s.log_path, "rb") as f:
        raw = f.read()
    assert all(b < 0x80 for b in raw), [l for l in raw.splitlines() if any(b >= 0x80 for b in l)]
    log = raw.decode()
    assert 'helo="caf\\xc3\\xa9.example\\xff"' in log, log[-2000:]
    assert 'helo="caf\\xc3\\xa9.example"' in log, log[-2000:]


def test_hide_client(server_factory):
    s = server_factory(listeners={"mx": {}, "private": {"received_header": "hide_client"}})
    qid = send_with_helo(s.port_of("private"), "secret-app.internal")
    rcvd = received_of(s, qid)
    assert rcvd.startswith("by relay.test (Posthorn) with ESMTP id "), rcvd
    assert "127.0.0.1" not in rcvd and "secret-app" not in rcvd and "from" not in rcvd, rcvd
    head = s.queue_show(qid).split("Subject: received", 1)[0]
    assert "secret-app" not in head.split("Received:", 1)[1], head
    # the other listener (default full) names both
    rcvd = received_of(s, send_with_helo(s.port_of("mx"), "secret-app.internal"))
    assert rcvd.startswith("from secret-app.internal ([127.0.0.1]) by relay.test"), rcvd


def test_ipv6_address_literal(server_factory):
    with socket.socket(socket.AF_INET6) as so:
        so.bind(("::1", 0))
        port = so.getsockname()[1]
    s = server_factory(listeners={"v6": {"address": f"[::1]:{port}"}},
                       relay={"trusted_networks": "::1/128"})
    rcvd = received_of(s, send_with_helo(port, "client.example", host="::1"))
    assert rcvd.startswith("from client.example ([IPv6:::1]) by relay.test"), rcvd
    rcvd = received_of(s, send_with_helo(port, "bad_name", host="::1"))
    assert rcvd.startswith("from [IPv6:::1] ([IPv6:::1] helo=[invalid]) by relay.test"), rcvd
