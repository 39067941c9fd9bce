"""SPEC §3 limits that need their own config: disk space, timeouts,
connection caps, many idle clients, shutdown with idle sessions."""
import signal
import socket
import time

import helpers
from helpers import RawSMTP, queued_id, message


def test_min_free_space(server_factory):
    s = server_factory(server={"min_free_space": "100000g"})
    with RawSMTP(s.port) as c:
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com>")
        assert r.code == 452 and r.lines[0].startswith("4.3.1"), r
        assert c.cmd("NOOP").code == 250


def test_idle_timeout(server_factory):
    s = server_factory(listeners={"mx": {"timeout": "2s", "data_timeout": "2s"}})
    with RawSMTP(s.port) as c1, RawSMTP(s.port) as c2:
        c2.ehlo()
        t0 = time.monotonic()
        r = c1.reply()
        waited = time.monotonic() - t0
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert 1.0 <= waited <= 8, waited
        assert c1.closed(5)
        r = c2.reply()
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert c2.closed(5)


def test_activity_resets_idle_timeout(server_factory):
    s = server_factory(listeners={"mx": {"timeout": "2s"}})
    with RawSMTP(s.port) as c:
        c.ehlo()
        t_end = time.monotonic() + 3.5
        while time.monotonic() < t_end:
            assert c.cmd("NOOP").code == 250
            time.sleep(0.5)


def test_data_timeout(server_factory):
    s = server_factory(listeners={"mx": {"timeout": "2s", "data_timeout": "2s"}})
    before = set(s.queue())
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stalled\r\n\r\npartial")
        r = c.reply()
        assert r.code == 421 and r.lines[0].startswith("4.4.2"), r
        assert c.closed(5)
    assert set(s.queue()) == before


def test_data_timeout_covers_the_whole_phase(server_factory):
    """A client trickling a byte a second never idles out, but data_timeout
    bounds the whole DATA phase: it cannot hold a slot forever."""
    s = server_factory(listeners={"mx": {"timeout": "5s", "data_timeout": "3s"}})
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        t0 = time.monotonic()
        c.sock.settimeout(0.5)
        while time.monotonic() - t0 < 8:
            try:
                c.send(b"x\r\n")
            except OSError:
                break
            try:
                data = c.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                continue
            c.buf += data
            break
        assert c.buf.startswith(b"421 4.4.2"), c.buf
        assert 2.5 < time.monotonic() - t0 < 6
    assert "what=data_timeout" in s.log()


def test_max_connections_per_ip(server_factory):
    s = server_factory(listeners={"mx": {"max_connections_per_ip": "3"}})
    conns = [RawSMTP(s.port) for _ in range(3)]
    try:
        for c in conns:
            assert c.greeting.code == 220, c.greeting
        with RawSMTP(s.port) as c4:
            assert c4.greeting.code == 421 and c4.greeting.lines[0].startswith("4.7.0"), c4.greeting
            assert c4.closed(5)
        # another address is not affected
        with RawSMTP(s.port, source="127.0.0.2") as other:
            assert other.greeting.code == 220, other.greeting
        # the slot comes back once a connection ends
        conns[0].cmd("QUIT")
        conns[0].closed(5)
        conns[0].close()

        def slot_free():
            with RawSMTP(s.port) as c:
                return c.greeting.code == 220

        helpers.wait_for(slot_free, timeout=5, what="a freed per-IP slot")
    finally:
        for c in conns:
            c.close()


def test_max_connections(server_factory):
    s = server_factory(listeners={"mx": {"max_connections": "5"}})
    conns = [RawSMTP(s.port, source=f"127.0.1.{i + 1}") for i in range(5)]
    try:
        for c in conns:
            assert c.greeting.code == 220, c.greeting
        with RawSMTP(s.port, source="127.0.1.99") as c6:
            assert c6.greeting.code == 421 and c6.greeting.lines[0].startswith("4.7.0"), c6.greeting
            assert c6.closed(5)
    finally:
        for c in conns:
            c.close()

    def accepted():
        with RawSMTP(s.port) as c:
            return c.greeting.code == 220

    helpers.wait_for(accepted, timeout=5, what="connections accepted again")


def test_many_idle_clients_do_not_block_others(server_factory):
    s = server_factory()
    idle = []
    try:
        for i in range(200):
            a = 2 + i
            idle.append(RawSMTP(s.port, source=f"127.0.{a // 256}.{a % 256}"))
        for c in idle:
            assert c.greeting.code == 220, c.greeting
        t0 = time.monotonic()
        with RawSMTP(s.port) as c:
            assert c.greeting.code == 220
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@example.com>").code == 250
            assert c.cmd("RCPT TO:<b@example.net>").code == 250
            assert c.cmd("DATA").code == 354
            c.send(message("among-idle").encode() + b".\r\n")
            r = c.reply()
            assert r.code == 250, r
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"took {elapsed:.2f}s with 200 idle clients"
        # the idle clients are all still connected
        for c in idle[::20]:
            assert c.cmd("NOOP").code == 250
    finally:
        for c in idle:
            c.close()
    assert queued_id(r.lines[0]) in s.queue()


def test_sigterm_with_idle_sessions(server_factory):
    s = server_factory()
    a = RawSMTP(s.port)
    b = RawSMTP(s.port)
    b.ehlo()
    try:
        s.proc.send_signal(signal.SIGTERM)
        for c in (a, b):
            r = c.reply()
            assert r.code == 421, r
            assert c.closed(5)
        rc = s.proc.wait(10)
        assert rc == 0, s.log()[-3000:]
    finally:
        a.close()
        b.close()
    # teardown (stop) checks the log for sanitizer reports


def test_ipv6_loopback_listener_trusted(server_factory):
    with __import__("socket").socket(__import__("socket").AF_INET6) as so:
        so.bind(("::1", 0))
        port = so.getsockname()[1]
    s = server_factory(listeners={"v6": {"address": f"[::1]:{port}"}},
                       relay={"trusted_networks": "::1/128"})
    with RawSMTP(port, host="::1") as c:
        assert c.greeting.code == 220
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        r = c.cmd("RCPT TO:<b@example.net>")
        assert r.code == 250, r
        assert c.cmd("DATA").code == 354
        c.send(message("over-ipv6").encode() + b".\r\n")
        r = c.reply()
        assert r.code == 250, r
    assert queued_id(r.lines[0]) in s.queue()


def test_sigterm_lets_a_transaction_in_progress_finish(server_factory):
    s = server_factory()
    c = RawSMTP(s.port)
    try:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.com>").code == 250
        assert c.cmd("RCPT TO:<b@example.net>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: in-flight\r\n\r\nfirst half\r\n")
        # wait until the server has read that much, then ask it to stop
        helpers.wait_for(lambda: "event=connect" in s.log(), timeout=5)
        s.proc.send_signal(signal.SIGTERM)
        helpers.wait_for(lambda: "shutdown" in s.log(), timeout=5, what="shutdown logged")
        c.send(b"second half\r\n.\r\n")
        r = c.reply()
        assert r.code == 250, r
        qid = queued_id(r.lines[0])
        # then the session is closed (421 now or on the next command)
        try:
            c.send(b"NOOP\r\n")
            r = c.reply()
            assert r.code == 421, r
        except (ConnectionError, OSError):
            pass
        assert s.proc.wait(10) == 0, s.log()[-3000:]
    finally:
        c.close()
    assert qid in s.queue()


def test_sighup_keeps_serving(server_factory):
    s = server_factory(listeners={"mx": {}, "sub": {"tls": "starttls"}})
    s.proc.send_signal(signal.SIGHUP)
    helpers.wait_for(lambda: "reload" in s.log(), timeout=5, what="reload logged")
    assert s.proc.poll() is None
    with RawSMTP(s.port_of("sub")) as c:
        c.ehlo()
        c.starttls()
        assert c.ehlo().code == 250


def test_tls_handshake_timeout(server_factory):
    """A client that connects to an implicit-TLS port and never starts the
    handshake is closed after `timeout`, like any idle client."""
    s = server_factory(listeners={"smtps": {"tls": "implicit", "timeout": "2s"}})
    import socket
    with socket.create_connection(("127.0.0.1", s.port), 10) as so:
        so.settimeout(8)
        try:
            data = so.recv(100)
        except ConnectionResetError:
            data = b""
        except (socket.timeout, TimeoutError):
            raise AssertionError("silent client on an implicit-TLS listener still connected "
                                 "8s after a 2s timeout")
        assert data == b"", data


def test_sigterm_with_silent_tls_client(server_factory):
    """Shutdown does not wait on a client stuck before the TLS handshake."""
    s = server_factory(listeners={"smtps": {"tls": "implicit"}})
    import socket
    with socket.create_connection(("127.0.0.1", s.port), 10):
        helpers.wait_for(lambda: s.log().count("event=connect") >= 2, timeout=5,
                         what="connection seen")
        s.stop()  # asserts exit 0 within 10s


def test_sigterm_right_after_a_message(server_factory):
    """SIGTERM just after a session has queued a message and quit: the
    server has nothing left to drain and exits at once (not after the 30 s
    drain timeout). Repeated because the window is a few milliseconds."""
    for i in range(4):
        s = server_factory()
        helpers.send_raw_message(s.port, "a@example.com", ["b@example.net"],
                                 message(f"just-before-sigterm-{i}"))
        t0 = time.monotonic()
        s.stop()  # asserts exit 0 within 10 s
        assert time.monotonic() - t0 < 5, f"exit took {time.monotonic() - t0:.1f}s"
