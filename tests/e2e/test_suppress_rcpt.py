"""Suppression at RCPT (SPEC 3, 5; docs/deliverability.md): a hard bounce
from a real fake MX puts the address on the account's list and the next
RCPT gets 550 5.1.1 with the reason; a `posthorn suppress add` on a running
server refuses RCPT within a second; pipelined RCPTs are checked in one
batch and answered in order; each account has its own list (mail relayed
from a trusted network without AUTH is the account `default`'s)."""
import re
import time

import helpers
from deliv import event_lines, suppressions, transaction
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
GONE_IP = "127.0.0.60"
OK_IP = "127.0.0.61"
SUPP_RE = re.compile(r"^5\.1\.1 <(?P<addr>[^>]+)> is on the suppression list \((?P<reason>.*), "
                     r"since (?P<since>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)$")


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "gone.test": GONE_IP, "ok.test": OK_IP})


def supp_reply(r):
    assert r.code == 550, r
    m = SUPP_RE.match(r.text)
    assert m, r
    assert "suppress" in r.text
    return m


def test_hard_bounce_suppresses_next_rcpt(start, mxs):
    """A 550 5.1.1 from the MX: the address is listed with the remote reply,
    a suppressed event is logged, and the next RCPT to it (any case) is
    refused with that reason; other recipients are unaffected."""
    mxs(GONE_IP, reject_rcpt={"nobody@gone.test"})
    ok = mxs(OK_IP)
    srv = start()
    mail, rs, dr = transaction(srv.port, "shop@sender.test", ["nobody@gone.test", "ann@ok.test"],
                               msg_bytes("shop@sender.test", "nobody@gone.test", "first"))
    assert [r.code for r in rs] == [250, 250] and dr.code == 250, (rs, dr)
    qid = helpers.queued_id(dr.text)
    wait_status(srv, qid, "nobody@gone.test", "bounced")
    ok.wait_messages(1)

    def listed():
        return suppressions(srv).get("nobody@gone.test")
    reason = helpers.wait_for(listed, 10, what="the suppression")
    assert reason == "hard bounce: 550 5.1.1 <nobody@gone.test>: fake mailbox unavailable here"
    ev = event_lines(srv, "suppressed")
    assert any(f"queue={qid}" in l and "nobody@gone.test" in l for l in ev), ev
    mail, rs, _ = transaction(srv.port, "shop@sender.test", ["NoBody@Gone.TEST", "ann@ok.test"])
    m = supp_reply(rs[0])
    assert m["addr"] == "NoBody@Gone.TEST"
    assert m["reason"] == reason
    assert rs[1].code == 250, rs
    # the refusal is counted as suppressed and recorded as an event (a line
    # of no message: no queue=, and never session=NOQUEUE)
    assert any("event=suppressed" in l and "queue=" not in l and "NOQUEUE" not in l
               and "NoBody@Gone.TEST" in l for l in srv.log().splitlines())


def test_soft_and_policy_bounces_do_not_suppress(start, mxs):
    """Only "no such user" statuses are hard: a 550 5.7.1 (policy) bounces
    without listing the address."""
    mx = mxs(GONE_IP)
    mx.data_reply = "550 5.7.1 fake policy rejection"
    srv = start()
    _, rs, dr = transaction(srv.port, "shop@sender.test", ["policy@gone.test"],
                            msg_bytes("shop@sender.test", "policy@gone.test", "p"))
    qid = helpers.queued_id(dr.text)
    wait_status(srv, qid, "policy@gone.test", "bounced")
    time.sleep(1.5)  # one flush and more: nothing may come
    assert "policy@gone.test" not in suppressions(srv)
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["policy@gone.test"])
    assert rs[0].code == 250, rs


def test_cli_add_refuses_within_a_second(start):
    """suppress add on a running server: the next RCPT, under a second
    later, is refused; suppress remove lets it through again."""
    srv = start()
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["carol@ok.test"])
    assert rs[0].code == 250
    rc, out, err = srv.cli("suppress", "add", "carol@ok.test", "--reason", "asked by phone")
    assert rc == 0, err
    t0 = time.monotonic()
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["carol@ok.test"])
    assert time.monotonic() - t0 < 1.0
    m = supp_reply(rs[0])
    assert m["reason"] == "asked by phone"
    rc, out, err = srv.cli("suppress", "remove", "carol@ok.test")
    assert rc == 0, err
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["carol@ok.test"])
    assert rs[0].code == 250, rs


def test_pipelined_rcpts_one_check_in_order(start):
    """Pipelined RCPTs: one suppression check for the group, replies in the
    order asked, a syntax error in the middle answered in its place."""
    srv = start()
    for a in ("p2@ok.test", "p4@ok.test"):
        rc, _, err = srv.cli("suppress", "add", a, "--reason", f"listed {a}")
        assert rc == 0, err
    rcpts = ["p1@ok.test", "p2@ok.test", "bad address", "p4@ok.test", "p5@ok.test"]
    mail, rs, _ = transaction(srv.port, "shop@sender.test", rcpts, pipelined=True)
    assert mail.code == 250
    assert [r.code for r in rs] == [250, 550, 501, 550, 250], rs
    assert supp_reply(rs[1])["reason"] == "listed p2@ok.test"
    assert supp_reply(rs[3])["reason"] == "listed p4@ok.test"
    checks = [l for l in srv.log().splitlines() if "event=suppression_check" in l]
    assert any("rcpts=4" in l for l in checks), checks
    # one at a time (not pipelined): one check each, no group
    before = len(checks)
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["p1@ok.test", "p2@ok.test"])
    assert [r.code for r in rs] == [250, 550], rs
    checks = [l for l in srv.log().splitlines() if "event=suppression_check" in l]
    assert len(checks) == before, checks


def test_lists_are_per_account(start):
    """The account `default` (trusted relay without AUTH) and an
    authenticated account each have their own list."""
    srv = start(start=False)
    srv.add_user("shop", domains=("sender.test",))
    srv.start()
    rc, _, err = srv.cli("suppress", "add", "dora@ok.test", "--account", "shop")
    assert rc == 0, err
    # trusted relay: account default, whose list does not have it
    _, rs, _ = transaction(srv.port, "x@sender.test", ["dora@ok.test"])
    assert rs[0].code == 250, rs
    # as shop: refused
    _, rs, _ = transaction(srv.port, "x@sender.test", ["dora@ok.test"],
                           login=("shop", helpers.PASSWORD))
    assert supp_reply(rs[0])["reason"] == "manual"
    rc, _, err = srv.cli("suppress", "add", "eve@ok.test")
    assert rc == 0, err
    _, rs, _ = transaction(srv.port, "x@sender.test", ["eve@ok.test"])
    assert rs[0].code == 550
    _, rs, _ = transaction(srv.port, "x@sender.test", ["eve@ok.test"],
                           login=("shop", helpers.PASSWORD))
    assert rs[0].code == 250, rs


def test_untrusted_client_gets_relay_denied_not_suppression(start):
    """Relay checks come first: an untrusted client learns nothing of the
    list (554, not 550 with a reason)."""
    srv = start(relay={"trusted_networks": "10.255.255.0/24"})
    rc, _, err = srv.cli("suppress", "add", "fred@ok.test")
    assert rc == 0, err
    _, rs, _ = transaction(srv.port, "x@sender.test", ["fred@ok.test"])
    assert rs[0].code == 554 and "suppress" not in rs[0].text, rs
