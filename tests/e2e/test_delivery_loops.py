"""Mail loops and internal destinations (issue 8; SPEC 2 blocked_destinations,
SPEC 4 "Loops are stopped"). A recipient whose MX hosts or address literal
lead only to blocked addresses bounces 5.4.4 with the reason; an MX that is
the relay itself bounces 5.4.6 "mail for DOMAIN loops back to myself" once,
instead of going round (before: one such message came back thousands of
times in seconds).

The test DNS and fake MX servers of mx.py. The `start` fixture blocks only
192.0.2.0/24 (the fake MX hosts live on 127.0.0.x); the tests that want the
default list pass blocked_destinations=None.
"""
import time

import pytest

from conftest import free_port
from mx import (Zone, deliveries, dns, dsns_to, farm, log_excerpt, msg_bytes, mxs,  # noqa: F401
                parse_dsn, poll, start, submit, wait_dsn, wait_rcpts, wait_status)

SENDER_IP = "127.0.0.11"
MIXED_BLOCKED_IP = "127.0.0.40"
MIXED_OK_IP = "127.0.0.41"


def build_zone():
    z = Zone()
    z.mx("sender.test", "mx.sender.test").host("mx.sender.test", SENDER_IP)
    z.mx("loop.test", "mx.loop.test").host("mx.loop.test", "127.0.0.1")
    z.mx("mixed.test", "mx1.mixed.test", 10).host("mx1.mixed.test", MIXED_BLOCKED_IP)
    z.mx("mixed.test", "mx2.mixed.test", 20).host("mx2.mixed.test", MIXED_OK_IP)
    z.mx("internal.test", "mx.internal.test").host("mx.internal.test", "127.0.0.42")
    return z


def status_of(srv, qid, to):
    return [d for d in deliveries(srv, qid, to) if d["status"] != "deferred"]


@pytest.mark.parametrize("to", ["u@[127.0.0.1]", "u@[IPv6:::ffff:127.0.0.1]", "u@[IPv6:::1]",
                                "u@internal.test"])
def test_default_blocks_internal_destinations(start, to):
    """With the default blocked_destinations, a literal or an MX host on
    loopback (IPv4, IPv4-mapped IPv6, IPv6) bounces with the reason and no
    connection is made."""
    srv = start(relay={"blocked_destinations": None})
    qid = submit(srv, "a@sender.test", [to], msg_bytes("a@sender.test", to, "internal"))
    d = wait_status(srv, qid, to, "bounced")
    assert d["dsn"] == "5.4.4", d["line"]
    assert "blocked_destinations" in d["reply"], d["line"]
    assert "event=route_blocked" in srv.log()
    assert "event=smtpc_fail" not in srv.log(), "a connection was tried"


def test_blocked_report_says_why(start, farm):
    """The sender's bounce carries 5.4.4 and the reason (the sender's MX is
    reachable here: only 127.0.0.1 is blocked)."""
    srv = start(relay={"blocked_destinations": "127.0.0.1/32"})
    qid = submit(srv, "b@sender.test", ["u@[127.0.0.1]"],
                 msg_bytes("b@sender.test", "u@[127.0.0.1]", "blocked literal"))
    wait_status(srv, qid, "u@[127.0.0.1]", "bounced")
    t = wait_dsn(farm, "b@sender.test", srv)
    info = parse_dsn(t.content)
    r = info["recipients"][0]
    assert r["status"].strip() == "5.4.4", r
    assert "blocked_destinations" in r["diagnostic_code"], r


def test_blocked_address_skipped_other_used(start, mxs):
    """The best MX host has a blocked address, the next one an allowed one:
    mail goes to the allowed one, and the log says which was skipped."""
    mx = mxs(MIXED_OK_IP)
    srv = start(relay={"blocked_destinations": f"{MIXED_BLOCKED_IP}/32"})
    qid = submit(srv, "c@sender.test", ["u@mixed.test"],
                 msg_bytes("c@sender.test", "u@mixed.test", "mixed"))
    wait_rcpts(mx, ["u@mixed.test"], srv)
    assert f"addr={MIXED_BLOCKED_IP}" in log_excerpt(srv, "event=route_blocked")
    assert wait_status(srv, qid, "u@mixed.test", "sent")


def test_empty_list_blocks_nothing(start, mxs):
    """blocked_destinations = (empty): loopback MX hosts are used."""
    mx = mxs("127.0.0.42")
    srv = start(relay={"blocked_destinations": ""})
    submit(srv, "d@sender.test", ["u@internal.test"],
           msg_bytes("d@sender.test", "u@internal.test", "empty list"))
    wait_rcpts(mx, ["u@internal.test"], srv)


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
def test_relay_as_its_own_mx_bounces_once(start, listen):
    """The MX of loop.test is the relay itself (its listener's address and
    port; 0.0.0.0 stands for every local address): one 5.4.6 bounce, no
    loop. With the default blocked_destinations, which holds 127.0.0.1 too:
    the loop is the reason given."""
    port = free_port()
    srv = start(listeners={"mx": {"address": f"{listen}:{port}"}},
                relay={"blocked_destinations": None, "mx_port": str(port)})
    qid = submit(srv, "e@sender.test", ["u@loop.test"],
                 msg_bytes("e@sender.test", "u@loop.test", "loop"))
    d = wait_status(srv, qid, "u@loop.test", "bounced")
    assert d["dsn"] == "5.4.6", d["line"]
    assert d["reply"] == "mail for loop.test loops back to myself", d["line"]
    assert "event=route_loop" in srv.log()
    time.sleep(3)  # a loop would have brought it back many times by now
    log = srv.log()
    assert log.count(" event=queued ") == 1, log_excerpt(srv, "event=queued")
    assert len([d for d in deliveries(srv) if d["to"].strip("<>") == "u@loop.test"]) == 1
