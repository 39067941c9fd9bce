"""Starting with a large queue (issue: with a million queued messages the
ports were bound but unanswered for 13 s while recovery ran). The server
now answers from its first second: the queue is read in slices on the
work pool while SMTP is served, mail accepted meanwhile is delivered, and
nothing queued is lost or sent twice (docs/delivery.md, "Starting with a
large queue").

The queue, 100,000 messages, is written straight into the spool
(spoolgen.py: the format of docs/spool.md); 98% of it goes to a paused
destination (it must only be indexed, not delivered), 2,000 messages to a
fake MX that counts every recipient it is offered."""
import os
import re
import socket
import time

import pytest

import helpers
import spoolgen
from mx import dns, farm, mxs, start, wait_rcpts  # noqa: F401

SENDER_IP = "127.0.0.11"
FAST_IP = "127.0.0.41"  # fast.test: the part of the queue delivered
LIVE_IP = "127.0.0.42"  # live.test: mail accepted during recovery
BULK_IP = "127.0.0.43"  # bulk.test: paused, only indexed
N = 100_000
EVERY = 50  # message i goes to fast.test when i % EVERY == 0
GREETING_WITHIN = 1.0


def build_zone():
    from mx import Zone
    z = Zone()
    for dom, ip in (("sender.test", SENDER_IP), ("fast.test", FAST_IP),
                    ("live.test", LIVE_IP), ("bulk.test", BULK_IP)):
        z.mx(dom, f"mx.{dom}", 10).host(f"mx.{dom}", ip)
    return z


def rcpts_of(i):
    return [f"f{i}@fast.test"] if i % EVERY == 0 else [f"b{i}@bulk.test"]


def greeting_time(port, t0, timeout=30):
    """Seconds from t0 until a connection to port gets its 220."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.settimeout(timeout)
                line = s.recv(512)
                assert line.startswith(b"220 "), line
                return time.monotonic() - t0
        except (ConnectionRefusedError, ConnectionResetError):
            time.sleep(0.005)
    pytest.fail("no greeting")


def metric(srv, name):
    import httpapi
    r = httpapi.request(srv, "GET", "/metrics")
    m = re.search(rf"^{name} (\S+)$", r.body.decode(), re.M)
    return float(m.group(1))


def test_answers_while_recovering(start, mxs):
    fast = mxs(FAST_IP)
    live = mxs(LIVE_IP)
    bulk = mxs(BULK_IP)
    s = start(start=False)
    spoolgen.make_queue(s.data_dir, N, rcpts_of)
    with open(os.path.join(s.data_dir, "paused"), "w") as f:
        f.write("bulk.test\n")
    t0 = time.monotonic()
    s.start(wait=False)
    took = greeting_time(s.port, t0)
    loaded_at_greeting = "event=queue_loaded" in s.log()
    # mail accepted during recovery
    qid = helpers.send_raw_message(s.port, "a@sender.test", ["now@live.test"],
                                   helpers.message(frm="a@sender.test", to="now@live.test"))
    recovering_after_submit = "event=queue_loaded" not in s.log()
    wait_rcpts(live, ["now@live.test"], s, timeout=60)
    helpers.wait_for(lambda: "event=queue_loaded" in s.log(), timeout=180,
                     what="the queue read")
    log = s.log()
    assert took < GREETING_WITHIN, f"greeting after {took:.2f}s"
    assert not loaded_at_greeting and recovering_after_submit, \
        "recovery ended before the checks: the queue is too small to show anything"
    progress = re.findall(r"event=recovery_progress recovered=(\d+) total=(\d+)", log)
    # a line every 10,000 messages or every second (the last one, so, within 10,000 of
    # the end); the end itself is queue_loaded's
    got = [int(r) for r, t in progress]
    assert len(progress) >= N // 10000 - 1 and all(t == str(N) for r, t in progress), progress[-3:]
    assert got == sorted(got) and N - 10000 <= got[-1] <= N, progress[-3:]
    assert re.search(rf"event=spool_recovered messages={N} tmp_removed=0 quarantined=0", log)
    assert re.search(rf"event=queue_loaded messages={N} ", log)
    # nothing lost, nothing twice: every fast.test recipient exactly once
    want = {f"f{i}@fast.test" for i in range(0, N, EVERY)}
    wait_rcpts(fast, want, s, timeout=180)
    assert len(fast.delivered_rcpts()) == len(want)
    assert max(fast.rcpt_tries.values()) == 1
    assert live.delivered_rcpts() == ["now@live.test"]
    assert qid and bulk.connections == 0  # paused: indexed, never tried
    helpers.wait_for(lambda: metric(s, "posthorn_queue_messages") == N - len(want),
                     timeout=30, what="the paused part still queued")
    assert metric(s, "posthorn_queue_oldest_message_age_seconds") >= 3000
