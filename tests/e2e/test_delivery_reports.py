"""Bounce reports under load and at their bounds (issue 8, "Bounded memory
and a loop that never stalls"): reports are built off the event loop, each
report has a bounded size, and RET=HDRS returns only the headers.

The load test: 100 messages of 1 MB with RET=FULL wait in the queue for a
domain whose DNS fails temporarily; then the domain stops existing and one
`queue retry --all` makes all 100 bounce in one turn of the scheduler (a
dead destination fails its ready queue in one go). A second SMTP session
sends NOOP every few milliseconds meanwhile; its slowest reply is what the
event loop's longest stall costs a client.
"""
import smtplib
import threading
import time
import uuid

import helpers
from mx import (FakeUpstreamDNS, deliveries, dns, dsns_to, farm, log_excerpt,  # noqa: F401
                msg_bytes, mx_zone, parse_dsn, poll, start, wait_dsn)

SENDER_IP = "127.0.0.11"
UPSTREAM = {}

# The loop may not stall longer than this while the 100 reports are made.
# Measured on the 2-core test machine with other test suites running (load
# average about 5), three runs each: reports built on the event loop, the
# slowest NOOP took 177-313 ms (ASan build 341-368 ms); built on the work
# pool, 8-40 ms (ASan 9-56 ms). The bound sits between: twice the worst
# figure seen now, below the best figure of the old way, in either build.
MAX_STALL = 0.120


def build_zone():
    return mx_zone({"sender.test": SENDER_IP})


def dns_hook(zone, farm):
    """gone.test is forwarded to an upstream whose answer the test picks:
    SERVFAIL (2) first, NXDOMAIN (3) later."""
    up = FakeUpstreamDNS(rcode=2)
    UPSTREAM["gone"] = up
    zone.lines.append(f"server=/gone.test/127.0.0.1#{up.port}")


def big_message(frm, to, n):
    line = b"x" * 76 + b"\r\n"
    body = line * (1024 * 1024 // len(line))
    return msg_bytes(frm, to, f"big {n}", body=body)


class Prober(threading.Thread):
    """An SMTP session that sends NOOP in a loop and keeps the slowest
    reply time."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.s = helpers.smtp(port)
        self.s.ehlo("prober.test")
        self.worst = 0.0
        self.count = 0
        self.stopping = False

    def run(self):
        while not self.stopping:
            t0 = time.monotonic()
            code, _ = self.s.noop()
            dt = time.monotonic() - t0
            assert code == 250
            self.worst = max(self.worst, dt)
            self.count += 1
            time.sleep(0.002)

    def stop(self):
        self.stopping = True
        self.join(10)
        self.s.quit()


def test_hundred_full_bounces_do_not_stall_the_loop(start, farm):
    up = UPSTREAM["gone"]
    up.rcode = 2
    sender = f"big-{uuid.uuid4().hex[:8]}@sender.test"
    srv = start(relay={"retry": "1h"})
    with helpers.smtp(srv.port, timeout=120) as s:
        s.ehlo("client.test")
        for i in range(100):
            rcpt = f"u{i}@gone.test"
            code, text = s.mail(sender, ["RET=FULL"])
            assert code == 250, (code, text)
            assert s.rcpt(rcpt)[0] == 250
            code, text = s.data(big_message(sender, rcpt, i))
            assert code == 250, (code, text)
    poll(lambda: len([d for d in deliveries(srv) if d["status"] == "deferred"]) >= 100,
         timeout=120, what="100 deferrals")
    up.rcode = 3  # the domain is gone now
    prober = Prober(srv.port)
    prober.start()
    time.sleep(0.3)
    rc, out, err = srv.cli("queue", "retry", "--all")
    assert rc == 0, err
    poll(lambda: len([d for d in deliveries(srv) if d["status"] == "bounced"]) >= 100,
         timeout=120, what="100 bounces")
    time.sleep(0.3)
    prober.stop()
    print(f"slowest NOOP reply while 100 reports were made: {prober.worst * 1000:.1f} ms "
          f"({prober.count} NOOPs)")
    poll(lambda: len(dsns_to(farm, sender)) >= 100, timeout=120, what="100 reports")
    reports = dsns_to(farm, sender)
    assert len(reports) == 100
    for t in reports:
        # above the limit: the headers only, and the report says why
        assert len(t.content) < 64 * 1024, len(t.content)
        info = parse_dsn(t.content)
        assert info["returned"] == "headers", info
        assert b"too large to return" in t.content
    assert prober.worst < MAX_STALL, \
        f"a NOOP waited {prober.worst * 1000:.0f} ms\n{log_excerpt(srv, n=20)}"
