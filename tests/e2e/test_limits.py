"""SPEC §3 limits that need their own config: disk space, timeouts,
connection caps, many idle clients, shutdown with idle sessions."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import helpers
from conftest import free_port
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


# The caps below count clients outside trusted_networks: only 127.0.0.1 is
# trusted here, the clients come from other 127.x addresses.
UNTRUSTED = {"trusted_networks": "127.0.0.1/32"}


def test_max_connections_per_ip(server_factory):
    s = server_factory(listeners={"mx": {"max_connections_per_ip": "3"}}, relay=UNTRUSTED)
    conns = [RawSMTP(s.port, source="127.0.2.1") for _ in range(3)]
    try:
        for c in conns:
            assert c.greeting.code == 220, c.greeting
        with RawSMTP(s.port, source="127.0.2.1") as c4:
            assert c4.greeting.code == 421 and c4.greeting.lines[0].startswith("4.7.0"), c4.greeting
            assert "from your address" in c4.greeting.text
            assert c4.closed(5)
        # another address is not affected
        with RawSMTP(s.port, source="127.0.2.2") as other:
            assert other.greeting.code == 220, other.greeting
        # the slot comes back once a connection ends
        conns[0].cmd("QUIT")
        conns[0].closed(5)
        conns[0].close()

        def slot_free():
            with RawSMTP(s.port, source="127.0.2.1") as c:
                return c.greeting.code == 220

        helpers.wait_for(slot_free, timeout=5, what="a freed per-IP slot")
    finally:
        for c in conns:
            c.close()


def test_trusted_clients_have_no_per_ip_cap(server_factory):
    """A trusted address is bounded by max_trusted_connections only."""
    s = server_factory(listeners={"mx": {"max_connections_per_ip": "2",
                                         "max_trusted_connections": "4"}}, relay=UNTRUSTED)
    conns = [RawSMTP(s.port) for _ in range(4)]
    try:
        assert [c.greeting.code for c in conns] == [220] * 4
        with RawSMTP(s.port) as c5:
            assert c5.greeting.code == 421 and c5.greeting.lines[0].startswith("4.7.0"), c5.greeting
            assert "too many connections," in c5.greeting.text
            assert c5.closed(5)
        # untrusted clients have their own room
        with RawSMTP(s.port, source="127.0.2.9") as u:
            assert u.greeting.code == 220, u.greeting
    finally:
        for c in conns:
            c.close()


def test_max_connections(server_factory):
    s = server_factory(listeners={"mx": {"max_connections": "5"}}, relay=UNTRUSTED)
    conns = [RawSMTP(s.port, source=f"127.0.1.{i + 1}") for i in range(5)]
    try:
        for c in conns:
            assert c.greeting.code == 220, c.greeting
        with RawSMTP(s.port, source="127.0.1.99") as c6:
            assert c6.greeting.code == 421 and c6.greeting.lines[0].startswith("4.7.0"), c6.greeting
            assert c6.closed(5)
        # a trusted client is not counted against max_connections
        with RawSMTP(s.port) as t:
            assert t.greeting.code == 220, t.greeting
    finally:
        for c in conns:
            c.close()

    def accepted():
        with RawSMTP(s.port, source="127.0.1.99") as c:
            return c.greeting.code == 220

    helpers.wait_for(accepted, timeout=5, what="connections accepted again")


def test_many_idle_clients_do_not_block_others(server_factory):
    s = server_factory(relay=UNTRUSTED)
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
    with socket.socket(socket.AF_INET6) as so:
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


# ---- per-address cap for IPv6 by /64 -------------------------------------
# Loopback holds only ::1, so the IPv6 clients need addresses of their own:
# the test runs the server and its clients in a private network namespace
# (unshare -n as root, -rn with a user namespace otherwise; nothing outside
# it changes) whose loopback gets 2001:db8:1::1 (the listener), three
# clients of 2001:db8:1::/64 and one of 2001:db8:2::/64.

V6_CLIENT = r'''
import json, os, signal, socket, subprocess, sys, time
conf, binary, log = sys.argv[1:4]
for a in ("2001:db8:1::1", "2001:db8:1::a", "2001:db8:1::b", "2001:db8:1::c", "2001:db8:2::a"):
    subprocess.run(["ip", "-6", "addr", "add", a + "/128", "dev", "lo", "nodad"], check=True)

def greet(port, host, source):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect((host, port))
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        line += chunk
    return s, line.decode().strip()

port6, port46 = int(sys.argv[4]), int(sys.argv[5])
with open(log, "ab") as err:
    p = subprocess.Popen([binary, "serve", "-c", conf], stdout=err, stderr=err)
    try:
        for _ in range(200):
            try:
                s, g = greet(port6, "2001:db8:1::1", "2001:db8:2::a")
                s.close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.2)
        out, keep = {}, []
        for src in ("2001:db8:1::a", "2001:db8:1::b", "2001:db8:1::c", "2001:db8:2::a"):
            s, out[src] = greet(port6, "2001:db8:1::1", src)
            keep.append(s)
        for src in ("127.0.0.2", "127.0.0.3"):
            s, out["mapped " + src] = greet(port46, "127.0.0.1", src)
            keep.append(s)
        print(json.dumps(out))
        for s in keep:
            s.close()
    finally:
        p.send_signal(signal.SIGTERM)
        print(json.dumps({"exit": p.wait(15)}))
'''


def test_per_ip_cap_counts_ipv6_by_64(server_factory):
    # As root no user namespace is needed (and a chroot may not allow one).
    flags = "-n" if os.geteuid() == 0 else "-rn"
    if not shutil.which("ip") or subprocess.run(["unshare", flags, "true"],
                                                capture_output=True).returncode != 0:
        pytest.skip(f"needs unshare {flags} (a network namespace) and iproute2")
    p6, p46 = free_port(), free_port()
    s = server_factory(start=False, relay={"trusted_networks": "127.0.0.1/32"},
                       listeners={"v6": {"address": f"[2001:db8:1::1]:{p6}",
                                         "max_connections_per_ip": "2"},
                                  "dual": {"address": f"[::]:{p46}",
                                           "max_connections_per_ip": "1"}})
    r = subprocess.run(["unshare", flags, "sh", "-c",
                        'ip link set lo up && exec "$0" "$@"', "/usr/bin/python3",
                        "-c", V6_CLIENT, s.conf, s.bin, s.log_path, str(p6), str(p46)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr, s.log()[-3000:])
    got, ended = [json.loads(l) for l in r.stdout.splitlines()]
    assert ended["exit"] == 0, s.log()[-3000:]
    assert got["2001:db8:1::a"].startswith("220") and got["2001:db8:1::b"].startswith("220"), got
    # the third address of the same /64 is over the cap of 2 ...
    assert got["2001:db8:1::c"].startswith("421 4.7.0"), got
    assert "from your address" in got["2001:db8:1::c"], got
    # ... another /64 is not
    assert got["2001:db8:2::a"].startswith("220"), got
    # IPv4 clients of a dual-stack listener count each alone (not as ::ffff:0:0/96)
    assert got["mapped 127.0.0.2"].startswith("220"), got
    assert got["mapped 127.0.0.3"].startswith("220"), got
    assert "event=refuse_connection ip=2001:db8:1::c" in s.log()
