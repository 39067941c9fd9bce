"""Quotas (SPEC 1, 3, 5; docs/deliverability.md): per account, messages
per clock hour and per UTC day, counted per recipient and reserved at RCPT
(earlier recipients of the transaction count; a transaction that ends
without its message releases them); 450 4.7.1 at MAIL or RCPT naming the
quota and the reset time; kept across a SIGTERM restart; accepted again
once the window has passed (the stored window moved back by an hour while
the server is stopped: the clock is the real one); `user add|set`."""
import calendar
import re
import time

import helpers
from deliv import db, transaction
from mx import dns, farm, msg_bytes, mx_zone, start  # noqa: F401

SENDER_IP = "127.0.0.11"
QUOTA_RE = re.compile(r"^4\.7\.1 Quota exceeded: account (?P<acct>\S+) may send (?P<n>\d+) "
                      r"messages per (?P<per>hour|day); the quota resets at "
                      r"(?P<reset>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


def build_zone():
    return mx_zone({"sender.test": SENDER_IP})


def next_boundary(period, t):
    n = 3600 if period == "hour" else 86400
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((int(t) // n + 1) * n))


def over(r, per, n, acct="default", t0=None, t1=None):
    assert r.code == 450, r
    m = QUOTA_RE.match(r.text)
    assert m, r
    assert (m["acct"], m["per"], int(m["n"])) == (acct, per, n), r
    # the reset is the end of the window the refusal happened in
    assert m["reset"] in {next_boundary(per, t0), next_boundary(per, t1)}, (r, t0, t1)


def set_quota(srv, *args, account="default"):
    rc, out, err = srv.cli("user", "set", account, *args)
    assert rc == 0, err
    assert out == ""
    return err


def wait_quota_seen(srv, rcpt="probe@nowhere.test"):
    """The server reads `user set` within a second; give it that second
    without sending anything that would count."""
    time.sleep(1.3)


def test_quota_per_recipient_at_rcpt_and_mail(start):
    srv = start()
    err = set_quota(srv, "--quota-hour", "3")
    assert "quota 3 per hour" in err and "unlimited" in err
    wait_quota_seen(srv)
    t0 = time.time()
    rcpts = [f"r{i}@nowhere.test" for i in range(5)]
    mail, rs, dr = transaction(srv.port, "a@sender.test", rcpts,
                               msg_bytes("a@sender.test", rcpts[0], "q"))
    t1 = time.time()
    assert [r.code for r in rs] == [250, 250, 250, 450, 450], rs
    over(rs[3], "hour", 3, t0=t0, t1=t1)
    assert dr.code == 250, dr
    # at the limit: refused at MAIL already
    t0 = time.time()
    mail, rs, _ = transaction(srv.port, "a@sender.test", ["x@nowhere.test"])
    over(mail, "hour", 3, t0=t0, t1=time.time())
    assert rs == []
    # the null sender is not refused at MAIL, its recipients are at RCPT
    mail, rs, _ = transaction(srv.port, "", ["x@nowhere.test"])
    assert mail.code == 250 and rs[0].code == 450, (mail, rs)


def test_reservation_released_without_commit(start):
    """Recipients of a transaction that ends without its message (RSET, a
    refused DATA, a dropped connection) are given back."""
    srv = start()
    set_quota(srv, "--quota-hour", "3")
    wait_quota_seen(srv)
    with helpers.RawSMTP(srv.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@sender.test>").code == 250
        assert c.cmd("RCPT TO:<a@nowhere.test>").code == 250
        assert c.cmd("RCPT TO:<b@nowhere.test>").code == 250
        assert c.cmd("RCPT TO:<c@nowhere.test>").code == 250
        assert c.cmd("RCPT TO:<d@nowhere.test>").code == 450
        assert c.cmd("RSET").code == 250
        # RSET gave them back
        assert c.cmd("MAIL FROM:<a@sender.test>").code == 250
        assert c.cmd("RCPT TO:<a@nowhere.test>").code == 250
        assert c.cmd("RCPT TO:<b@nowhere.test>").code == 250
    # the connection went away with two reserved: given back as well
    mail, rs, dr = transaction(srv.port, "a@sender.test",
                               ["a@nowhere.test", "b@nowhere.test", "c@nowhere.test"],
                               msg_bytes("a@sender.test", "a@nowhere.test", "q"))
    assert [r.code for r in rs] == [250, 250, 250] and dr.code == 250, (rs, dr)


def test_day_quota_and_accounts_apart(start):
    """A day quota says "per day" and the next UTC midnight; another account
    has its own count."""
    srv = start(start=False)
    rc, _, err = srv.cli("user", "add", "shop", "--password-stdin", "--domain", "sender.test",
                         "--quota-day", "1", input=helpers.PASSWORD + "\n")
    assert rc == 0 and "quota unlimited per hour" in err and "1 per day" in err, err
    srv.start()
    login = ("shop", helpers.PASSWORD)
    _, rs, dr = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"],
                            msg_bytes("a@sender.test", "a@nowhere.test", "q"), login=login)
    t0 = time.time()
    assert rs[0].code == 250 and dr.code == 250
    over(rs[1], "day", 1, acct="shop", t0=t0, t1=time.time())
    # default is not shop
    _, rs, _ = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"])
    assert [r.code for r in rs] == [250, 250], rs


def test_config_default_and_user_set_default(start):
    """[quota] hour is the default; a quota of the account's own overrides
    it; `--quota-hour default` goes back to it; 0 is unlimited."""
    srv = start(extra="[quota]\nhour = 1\n")
    _, rs, _ = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"])
    assert [r.code for r in rs] == [250, 450], rs
    err = set_quota(srv, "--quota-hour", "0")
    assert "unlimited per hour" in err
    wait_quota_seen(srv)
    _, rs, _ = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"])
    assert [r.code for r in rs] == [250, 250], rs
    err = set_quota(srv, "--quota-hour=default")
    assert "1 per hour ([quota] default)" in err
    wait_quota_seen(srv)
    _, rs, _ = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"])
    assert [r.code for r in rs] == [250, 450], rs


def test_counts_survive_sigterm_and_the_window_passes(start):
    """Committed counts are written at SIGTERM: after a restart the quota
    is still used up. Moved back by an hour (as if the window had passed),
    the stored count belongs to an old window: mail is accepted again."""
    srv = start()
    set_quota(srv, "--quota-hour", "2")
    wait_quota_seen(srv)
    for i in range(2):
        _, rs, dr = transaction(srv.port, "a@sender.test", [f"r{i}@nowhere.test"],
                                msg_bytes("a@sender.test", f"r{i}@nowhere.test", "q"))
        assert rs[0].code == 250 and dr.code == 250
    srv.stop()
    with db(srv) as c:
        rows = c.execute("SELECT q.period, q.used, q.window_start FROM quota_counts q JOIN "
                         "accounts a ON a.id = q.account_id WHERE a.name = 'default'").fetchall()
    now = time.time()
    assert ("hour", 2, int(now) // 3600 * 3600) in rows or \
           ("hour", 2, int(now) // 3600 * 3600 - 3600) in rows, rows
    srv.restart()
    t0 = time.time()
    mail, _, _ = transaction(srv.port, "a@sender.test", ["x@nowhere.test"])
    over(mail, "hour", 2, t0=t0, t1=time.time())
    srv.stop()
    with db(srv) as c:
        c.execute("UPDATE quota_counts SET window_start = window_start - 3600 "
                  "WHERE period = 'hour'")
    srv.restart()
    _, rs, dr = transaction(srv.port, "a@sender.test", ["x@nowhere.test"],
                            msg_bytes("a@sender.test", "x@nowhere.test", "q"))
    assert rs[0].code == 250 and dr.code == 250, (rs, dr)


def test_counts_are_flushed_while_running(start):
    """No write per recipient on the loop, but a flush a second: the count
    reaches the database within about a second, without a restart."""
    srv = start()
    _, rs, dr = transaction(srv.port, "a@sender.test", ["a@nowhere.test", "b@nowhere.test"],
                            msg_bytes("a@sender.test", "a@nowhere.test", "q"))
    assert dr.code == 250

    def stored():
        with db(srv) as c:
            r = c.execute("SELECT used FROM quota_counts WHERE period = 'day'").fetchone()
        return r and r[0] == 2
    helpers.wait_for(stored, 5, what="the day count in the database")


def test_user_set_errors(start):
    srv = start()
    rc, out, err = srv.cli("user", "set", "nobody", "--quota-hour", "5")
    assert rc == 1 and "no such account 'nobody'" in err, err
    rc, out, err = srv.cli("user", "set", "default", "--quota-hour", "-5")
    assert rc == 2 and "whole number" in err, err
    rc, out, err = srv.cli("user", "set", "default", "--quota-hour", "lots")
    assert rc == 2 and "whole number" in err, err
    rc, out, err = srv.cli("user", "set", "default")
    assert rc == 2 and "--quota-hour" in err, err
    rc, out, err = srv.cli("user", "set", "default", "--quota-hour")
    assert rc == 2 and "needs a value" in err, err
    rc, out, err = srv.cli("user", "set", "default", "--color", "x")
    assert rc == 2 and "unknown option '--color'" in err, err  # the command tree's answer
    rc, out, err = srv.cli("user", "set", "default", "--pool", "nosuch")
    assert rc == 1 and "no section [pool.nosuch]" in err, err
    rc, out, err = srv.cli("user", "set", "--help")
    assert rc == 0 and "--quota-hour" in out, err
    rc, out, err = srv.cli("user", "add", "q", "--quota-day", "x", input="pw\n")
    assert rc == 2, err
