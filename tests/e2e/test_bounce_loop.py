"""The bounce and complaint loop (SPEC 3, 5; docs/deliverability.md): with
[bounces] domain set, each message leaves with a VERP return path whose
hash this test computes itself from the key in the data directory; an
asynchronous DSN and an ARF complaint sent there by an untrusted client,
without AUTH, become events and suppressions; forged, expired and
non-VERP addresses at that domain are refused at RCPT; what arrives there
is never queued for delivery."""
import time

import helpers
from deliv import (arf, db, dsn, event_lines, old_id, suppressions, transaction, verp_address,
                   verp_hash, verp_key)
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_dsn, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
OK_IP = "127.0.0.62"
BAD_IP = "127.0.0.63"
BOUNCES = "bounces.test"
OUTSIDER = "127.0.0.9"  # not in trusted_networks below


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "ok.test": OK_IP, "bad.test": BAD_IP})


def serve(start, **kw):
    return start(relay={"trusted_networks": "127.0.0.1/32"},
                 extra=f"[bounces]\ndomain = {BOUNCES}\n", **kw)


def deliver(srv, mx, rcpts, subject="hello"):
    """A message from the trusted client, delivered to mx; its queue ID."""
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts, subject))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    qid = helpers.queued_id(dr.text)
    for r in rcpts:
        wait_status(srv, qid, r, "sent")

    def recorded():  # the VERP record goes to the database with the next flush
        with db(srv) as c:
            return c.execute("SELECT 1 FROM verp_messages WHERE id = ?", (qid,)).fetchone()
    helpers.wait_for(recorded, 10, what=f"the VERP record of {qid}")
    return qid


def check_report_log(srv, qid):
    """docs/logging.md: one identity a line. A report's lines are its session's and name
    the message they are about as about=QID (not as a second identity)."""
    lines = helpers.check_identities(srv.log())
    mine = [l for l in lines if "event=report" in l and f"about={qid}" in l]
    assert mine, lines[-20:]
    for l in mine:
        assert set(helpers.identities(l)) == {"session"}, l
    return mine


def report(srv, verp, data, frm=""):
    """A report sent by an outsider (untrusted, no AUTH); its replies."""
    with helpers.RawSMTP(srv.port, source=OUTSIDER) as c:
        c.ehlo("mx.remote.test")
        mail = c.cmd(f"MAIL FROM:<{frm}>")
        rcpt = c.cmd(f"RCPT TO:<{verp}>")
        dr = None
        if rcpt.code == 250:
            assert c.cmd("DATA").code == 354
            c.send(data + b"\r\n.\r\n")
            dr = c.reply()
        c.cmd("QUIT")
    return mail, rcpt, dr


def test_verp_return_path(start, mxs, farm):
    """The MAIL FROM a remote host sees is bounces+ID=HASH@domain, HASH the
    documented HMAC; Posthorn's own bounce still goes to the real sender."""
    ok = mxs(OK_IP)
    mxs(BAD_IP, reject_rcpt=True)
    srv = serve(start)
    qid = deliver(srv, ok, ["ann@ok.test"])
    key = verp_key(srv)
    t = ok.messages[-1]
    assert t.mail_from == verp_address(key, qid, BOUNCES), t
    assert t.mail_from.split("@")[0] == f"bounces+{qid}={verp_hash(key, qid)}"
    # a failure is reported by Posthorn to the envelope's sender, not the VERP
    _, rs, dr = transaction(srv.port, "shop@sender.test", ["x@bad.test"],
                            msg_bytes("shop@sender.test", "x@bad.test", "b"))
    t = wait_dsn(farm, "shop@sender.test", srv)
    assert t.mail_from == ""


def test_async_dsn_becomes_bounce_and_suppression(start, mxs):
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["ann@ok.test", "ben@ok.test"])
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    mail, rcpt, dr = report(srv, verp, dsn(verp, "Ann@ok.test"))
    assert (mail.code, rcpt.code, dr.code) == (250, 250, 250), (mail, rcpt, dr)
    assert dr.text == "2.0.0 Ok: report received"
    reason = suppressions(srv).get("Ann@ok.test") or suppressions(srv).get("ann@ok.test")
    assert reason == ("hard bounce: 550 5.1.1 <Ann@ok.test>: Recipient address rejected: "
                      "User unknown"), suppressions(srv)
    assert "ben@ok.test" not in suppressions(srv)
    bounced = event_lines(srv, "bounced")
    assert any(f"queue={qid}" in l and "ann@ok.test" in l and "5.1.1" in l for l in bounced)
    assert any(f"queue={qid}" in l and "ann@ok.test" in l
               for l in event_lines(srv, "suppressed"))
    _, rs, _ = transaction(srv.port, "shop@sender.test", ["ann@ok.test"])
    assert rs[0].code == 550 and "suppress" in rs[0].text, rs
    # never queued, never delivered
    assert srv.queue() == {}
    assert not [l for l in srv.log().splitlines() if "event=delivery" in l and BOUNCES in l]
    check_report_log(srv, qid)


def test_arf_complaint_becomes_complaint_and_suppression(start, mxs):
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["cora@ok.test"])
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    mail, rcpt, dr = report(srv, verp, arf(verp, "cora@ok.test"), frm="fbl@isp.test")
    assert dr.code == 250, dr
    assert suppressions(srv)["cora@ok.test"] == "complaint (abuse)"
    assert any(f"queue={qid}" in l and "cora@ok.test" in l and "abuse" in l
               for l in event_lines(srv, "complained"))
    check_report_log(srv, qid)


def test_redacted_complaint_of_a_single_recipient_message(start, mxs):
    """Feedback loops often hide the recipient: a message with one recipient
    still tells whom the complaint is about."""
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["dino@ok.test"])
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    data = arf(verp, "redacted@isp.test", feedback_type="fraud")
    mail, rcpt, dr = report(srv, verp, data, frm="fbl@isp.test")
    assert dr.code == 250
    assert suppressions(srv)["dino@ok.test"] == "complaint (fraud)"


def test_reports_about_others_change_nothing(start, mxs):
    """A report naming an address that was no recipient of the message, a
    delay notice, a not-spam report: accepted, logged, nothing suppressed."""
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["eli@ok.test", "fay@ok.test"])
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    for data in (dsn(verp, "stranger@ok.test"), dsn(verp, "eli@ok.test", status="4.2.2",
                                                     action="delayed"),
                 arf(verp, "fay@ok.test", feedback_type="not-spam")):
        _, _, dr = report(srv, verp, data)
        assert dr.code == 250, dr
    assert suppressions(srv) == {}
    lines = [l for l in srv.log().splitlines() if " event=report " in l]
    assert any("unmatched=1" in l and "kind=dsn" in l for l in lines), lines
    assert any("kind=none" in l for l in lines), lines
    check_report_log(srv, qid)


def test_text_bounce_is_matched(start, mxs):
    """A bounce that is no RFC 3464 report, in the shape of the common
    ones: the heuristics find the address and the code."""
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["gil@ok.test"])
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    data = (f"From: MAILER-DAEMON@mx.ok.test\r\nTo: <{verp}>\r\nSubject: failure notice\r\n\r\n"
            "Hi. This is the qmail-send program at mx.ok.test.\r\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
            "<gil@ok.test>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n").encode()
    _, _, dr = report(srv, verp, data)
    assert dr.code == 250
    assert suppressions(srv)["gil@ok.test"].startswith("hard bounce: ")


def test_forged_expired_and_other_addresses_refused(start, mxs):
    ok = mxs(OK_IP)
    srv = serve(start)
    qid = deliver(srv, ok, ["hal@ok.test"])
    key = verp_key(srv)
    good = verp_address(key, qid, BOUNCES)
    forged = good.replace("=" + verp_hash(key, qid), "=" + "a" * 12)
    other_key = verp_address(b"k" * 32, qid, BOUNCES)
    old = old_id(60)  # queue_lifetime (1h here) + 30 days ago, and more
    expired = verp_address(key, old, BOUNCES)
    cases = [(forged, "not a return path"), (other_key, "not a return path"),
             (expired, "expired"), (f"postmaster@{BOUNCES}", "no such mailbox"),
             (f"bounces+{qid}@{BOUNCES}", "no such mailbox")]
    for addr, words in cases:
        _, rcpt, _ = report(srv, addr, b"")
        assert rcpt.code == 550 and rcpt.text.startswith("5.1.1") and words in rcpt.text, \
            (addr, rcpt)
    # the true one, in another case, is taken
    _, rcpt, dr = report(srv, good.upper(), dsn(good, "hal@ok.test", status="4.4.1",
                                                action="delayed"))
    assert rcpt.code == 250 and dr.code == 250, (rcpt, dr)
    # the outsider may not relay elsewhere
    _, rcpt, _ = report(srv, "someone@ok.test", b"")
    assert rcpt.code == 554, rcpt


def test_valid_address_without_record_is_taken_and_logged(start):
    """A true return path whose record is gone (or was lost in a crash): the
    report is taken, and the log says it matched nothing."""
    srv = serve(start)
    qid = old_id(1)
    verp = verp_address(verp_key(srv), qid, BOUNCES)
    _, rcpt, dr = report(srv, verp, dsn(verp, "ivy@ok.test"))
    assert rcpt.code == 250 and dr.code == 250
    assert f"event=report_unmatched about={qid} reason=no_record" in srv.log()
    assert suppressions(srv) == {}
    assert any("event=report_unmatched" in l for l in check_report_log(srv, qid))


def test_reports_and_mail_go_apart(start):
    srv = serve(start)
    verp = verp_address(verp_key(srv), old_id(1), BOUNCES)
    _, rs, _ = transaction(srv.port, "", [verp, "joe@ok.test"])
    assert rs[0].code == 250 and rs[1].code == 452, rs
    _, rs, _ = transaction(srv.port, "", ["joe@ok.test", verp])
    assert rs[0].code == 250 and rs[1].code == 452, rs
    assert "separate transactions" in rs[1].text


def test_auth_required_listener_takes_reports(start):
    """Any listener: on one with auth = required, MAIL goes through without
    AUTH when a bounces domain is set; a VERP recipient is taken, any other
    one needs AUTH."""
    srv = start(relay={"trusted_networks": "127.0.0.1/32"},
                extra=f"[bounces]\ndomain = {BOUNCES}\n",
                listeners={"mx": {}, "sub": {"tls": "none", "auth": "required"}})
    verp = verp_address(verp_key(srv), old_id(1), BOUNCES)
    mail, rs, dr = transaction(srv.port_of("sub"), "", [verp, "kim@ok.test"],
                               host=srv.host_of("sub"))
    assert mail.code == 250 and rs[0].code == 250 and rs[1].code == 530, (mail, rs)
    _, rs, _ = transaction(srv.port_of("sub"), "x@sender.test", ["kim@ok.test"])
    assert rs[0].code == 530, rs


def test_without_bounces_domain_no_verp(start, mxs):
    """No [bounces] domain: the envelope sender goes out as it came."""
    ok = mxs(OK_IP)
    srv = start()
    _, rs, dr = transaction(srv.port, "shop@sender.test", ["lou@ok.test"],
                            msg_bytes("shop@sender.test", "lou@ok.test", "x"))
    qid = helpers.queued_id(dr.text)
    wait_status(srv, qid, "lou@ok.test", "sent")
    assert ok.messages[-1].mail_from == "shop@sender.test"
    _, rs, _ = transaction(srv.port, "", [f"bounces+{qid}=aaaaaaaaaaaa@{BOUNCES}"])
    assert rs[0].code == 250  # a trusted client: relayed like any address
