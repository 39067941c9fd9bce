"""The reputation guard (SPEC 5; docs/deliverability.md): a storm of hard
bounces from a real fake MX pauses the account: new mail gets 450 4.7.1
with the rate, its queued mail is held, the pause is logged, recorded and
shown by `posthorn stats`, and survives a restart; `posthorn user resume`
lifts it and releases what was held. Complaints from the loop pause too."""
import json
import re
import time

import helpers
from deliv import arf, db, event_lines, transaction, verp_address, verp_key
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_status  # noqa: F401

SENDER_IP = "127.0.0.11"
STORM_IP = "127.0.0.64"
HELD_IP = "127.0.0.65"
OK_IP = "127.0.0.66"
GUARD = "[reputation]\nwindow = 10m\nmin_volume = 10\nmax_bounce_rate = 20%\n"
PAUSED_RE = re.compile(r"^4\.7\.1 account paused: bounce rate (?P<rate>[\d.]+) % over 10m "
                       r"\(threshold 20 %\)$")


def build_zone():
    return mx_zone({
        "sender.test": SENDER_IP,
        "storm.test": STORM_IP,
        "held.test": HELD_IP,
        "ok.test": OK_IP,
    })


def storm(srv, n_bad=8, n_good=4):
    """One message to n_bad addresses the MX rejects (550 5.1.1) and n_good
    it takes: its queue ID."""
    rcpts = [f"gone{i}@storm.test" for i in range(n_bad)] + \
            [f"ok{i}@storm.test" for i in range(n_good)]
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts[0], "storm"))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    return helpers.queued_id(dr.text)


def stats_json(srv):
    rc, out, err = srv.cli("stats", "--json")
    assert rc == 0, err
    return json.loads(out)


def test_bounce_storm_pauses_and_resume_lifts(start, mxs):
    bad = {f"gone{i}@storm.test" for i in range(8)}
    mxs(STORM_IP, reject_rcpt=bad)
    held_mx = mxs(HELD_IP, defer_always=True)
    srv = start(extra=GUARD)
    # mail already queued (its MX defers it for now)
    _, rs, dr = transaction(srv.port, "shop@sender.test", ["wait@held.test"],
                            msg_bytes("shop@sender.test", "wait@held.test", "queued"))
    held_id = helpers.queued_id(dr.text)
    wait_status(srv, held_id, "wait@held.test", "deferred")
    qid = storm(srv)
    wait_status(srv, qid, "gone7@storm.test", "bounced")
    paused = helpers.wait_for(lambda: event_lines(srv, "account_paused"), 10,
                              what="the pause")
    assert "account=default" in paused[0]
    assert "reason=\"bounce rate" in paused[0], paused
    # The pause is no event type of SPEC 6 (its log line is its record);
    # the bounces that made it are bounced events of the account.
    def bounced_events():
        with db(srv) as c:
            return c.execute("SELECT count(*) FROM events WHERE type = 'bounced' AND "
                             "account = 'default' AND message_id = ?", (qid,)).fetchone()[0]
    helpers.wait_for(lambda: bounced_events() == 8, 10, what="the storm's bounced events")
    # new mail: 450 at MAIL, with the rate
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["new@ok.test"])
    m = PAUSED_RE.match(mail.text)
    assert mail.code == 450 and m, mail
    assert float(m["rate"]) > 20
    # queued mail is held: its MX takes mail now, yet nothing goes
    held_mx.defer_always = False
    helpers.wait_for(lambda: f"queue={held_id} event=held" in srv.log(), 15,
                     what="the queued message held")
    time.sleep(1)
    assert held_mx.messages == []
    # stats: paused, with the rate against the threshold
    st = stats_json(srv)
    acct = st["accounts"]["default"]
    assert acct["paused"] and acct["paused_reason"].startswith("bounce rate"), acct
    assert acct["hard_bounces"] == 8 and acct["volume"] >= 12, acct
    assert st["reputation"]["max_bounce_rate"] == 20 and st["reputation"]["window"] == 600
    rc, out, err = srv.cli("stats")
    line = [l for l in out.splitlines() if l.startswith("default\t")][0].split("\t")
    assert line[4] == "20%" and line[10].startswith("paused since "), line
    # resume: new mail taken, the held message delivered, the rates start afresh
    rc, out, err = srv.cli("user", "resume", "default")
    assert rc == 0 and "resumed (paused since" in err and "bounce rate" in err, err

    def taken():
        mail, _, _ = transaction(srv.port, "shop@sender.test", [])
        return mail.code == 250
    helpers.wait_for(taken, 5, what="MAIL taken again")
    held_mx.wait_messages(1)
    assert re.search(r"event=account_resumed account=default held=[1-9]", srv.log())
    rc, out, err = srv.cli("user", "resume", "default")
    assert rc == 0 and "is not paused" in err, err
    acct = stats_json(srv)["accounts"]["default"]
    assert not acct["paused"] and acct["hard_bounces"] == 0, acct


def test_pause_survives_restart_and_resume_while_stopped(start, mxs):
    mxs(STORM_IP, reject_rcpt={f"gone{i}@storm.test" for i in range(8)})
    srv = start(extra=GUARD)
    storm(srv)
    helpers.wait_for(lambda: event_lines(srv, "account_paused"), 15, what="the pause")

    def stored():
        with db(srv) as c:
            return c.execute("SELECT paused_at FROM accounts WHERE name = 'default'"
                             ).fetchone()[0]
    helpers.wait_for(stored, 5, what="the pause in the database")
    srv.restart()
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["x@ok.test"])
    assert mail.code == 450 and PAUSED_RE.match(mail.text), mail
    srv.stop()
    rc, out, err = srv.cli("user", "resume", "default")
    assert rc == 0, err
    srv.restart()
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["x@ok.test"])
    assert mail.code == 250, mail


def test_below_min_volume_or_threshold_no_pause(start, mxs):
    """Few recipients, or a rate at most the threshold: no pause."""
    mxs(STORM_IP, reject_rcpt={"gone0@storm.test", "gone1@storm.test"})
    srv = start(extra=GUARD)
    qid = storm(srv, n_bad=2, n_good=8)  # 20 %: not above 20 %
    wait_status(srv, qid, "gone1@storm.test", "bounced")
    wait_status(srv, qid, "ok7@storm.test", "sent")
    time.sleep(1.2)
    assert not event_lines(srv, "account_paused")
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["x@ok.test"])
    assert mail.code == 250


def test_complaints_pause(start, mxs):
    """Complaints come from the loop: one in ten delivered is above 5 %."""
    ok = mxs(OK_IP)
    srv = start(extra="[reputation]\nwindow = 10m\nmin_volume = 10\n"
                      "max_complaint_rate = 5%\n[bounces]\ndomain = bounces.test\n")
    rcpts = [f"u{i}@ok.test" for i in range(10)]
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts, "news"))
    qid = helpers.queued_id(dr.text)
    for r in rcpts:
        wait_status(srv, qid, r, "sent")

    def recorded():
        with db(srv) as c:
            return c.execute("SELECT 1 FROM verp_messages WHERE id = ?", (qid,)).fetchone()
    helpers.wait_for(recorded, 10, what="the VERP record")
    verp = verp_address(verp_key(srv), qid, "bounces.test")
    _, rs, dr = transaction(srv.port, "fbl@isp.test", [verp], arf(verp, "u3@ok.test"))
    assert dr.code == 250, dr
    helpers.wait_for(lambda: event_lines(srv, "account_paused"), 10, what="the pause")
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["x@ok.test"])
    assert mail.code == 450, mail
    assert mail.text == ("4.7.1 account paused: complaint rate 10 % over 10m "
                         "(threshold 5 %)"), mail
    # the same complaint again: not counted twice, no second pause event
    srv.cli("user", "resume", "default")
    time.sleep(1.3)
    transaction(srv.port, "fbl@isp.test", [verp], arf(verp, "u3@ok.test"))
    time.sleep(1.2)
    assert len(event_lines(srv, "account_paused")) == 1


def test_resume_errors(start):
    srv = start()
    rc, out, err = srv.cli("user", "resume", "nobody")
    assert rc == 1 and "no such account 'nobody'" in err, err
    rc, out, err = srv.cli("user", "resume")
    assert rc == 2, err
    rc, out, err = srv.cli("user", "resume", "a", "b")
    assert rc == 2, err
    rc, out, err = srv.cli("user", "resume", "--help")
    assert rc == 0 and "resume" in out
