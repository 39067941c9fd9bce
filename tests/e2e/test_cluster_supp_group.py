"""RCPT suppression checks grouped across sessions (docs/cluster.md, "How
fast a change reaches the other nodes"), on a real PostgreSQL (tests/e2e/pg.py): the RCPT batches
of many concurrent sessions of two accounts are checked together, one
statement per account in a group, and every RCPT still gets its own
account's answer (250, or 550 with that account's reason), in order. When
PostgreSQL stops, the RCPTs waiting in a group each get 451 4.3.0, a
session that closes while its batch waits does no harm, and RCPT is
answered again when the database is back. Batches still waiting when the
server stops are failed and freed (no leak under ASan)."""
import base64
import os
import re
import signal
import subprocess
import threading
import time

import helpers
import pg
from conftest import pg_cluster
from deliv import transaction

CAROL = ("carol", "carol's password")
# per account: address -> reason. shared@ is suppressed for default only,
# c1@ for carol only: an answer given to the wrong account shows.
LISTS = {
    "default": {"d1@far.test": "default list", "d2@far.test": "default list",
                "shared@far.test": "default only"},
    "carol": {"c1@far.test": "carol list", "c2@far.test": "carol list"},
}
RCPTS = ["d1@far.test", "D2@Far.TEST", "c1@far.test", "shared@far.test", "C2@far.test",
         "ok1@far.test", "ok2@far.test"]
SESSIONS = 10  # per account and round
ROUNDS = 3
SUPP_RE = re.compile(r"^5\.1\.1 <(?P<addr>[^>]+)> is on the suppression list "
                     r"\((?P<reason>.*), since \S+\)$")
GROUP_RE = re.compile(r"event=suppression_group sessions=(\d+) rcpts=(\d+)")


def sender(account):
    return "me@carol.test" if account == "carol" else "shop@example.com"


def node(server_factory, url=None, **kw):
    n = server_factory(start=False, cluster={"postgres": url or pg_cluster().new_db()}, **kw)
    n.add_user(CAROL[0], CAROL[1], domains=("carol.test",))
    for account, entries in LISTS.items():
        for addr, reason in entries.items():
            rc, _, err = n.cli("suppress", "add", addr, "--account", account, "--reason", reason)
            assert rc == 0, err
    n.start()
    return n


def open_session(port, account):
    """A session with MAIL accepted (AUTH as carol for hers), before the
    RCPTs."""
    c = helpers.RawSMTP(port, timeout=30)
    c.ehlo()
    if account == "carol":
        tok = base64.b64encode(f"\0{CAROL[0]}\0{CAROL[1]}".encode()).decode()
        assert c.cmd("AUTH PLAIN " + tok).code == 235
    assert c.cmd(f"MAIL FROM:<{sender(account)}>").code == 250
    return c


def rcpt_order(i):
    k = i % len(RCPTS)
    return RCPTS[k:] + RCPTS[:k]


def run_together(sessions, orders):
    """Every session sends its RCPTs pipelined at the same moment; returns
    each one's replies (or the exception it met)."""
    gate = threading.Barrier(len(sessions))
    out = [None] * len(sessions)

    def one(i):
        try:
            gate.wait(10)
            sessions[i].send("".join(f"RCPT TO:<{a}>\r\n" for a in orders[i]))
            out[i] = [sessions[i].reply() for _ in orders[i]]
        except Exception as e:  # reported by the caller
            out[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def expect(account, addr, r):
    reason = LISTS[account].get(addr.lower())
    if reason is None:
        assert r.code == 250, (account, addr, r)
        return
    m = SUPP_RE.match(r.text)
    assert r.code == 550 and m, (account, addr, r)
    assert m["addr"] == addr and m["reason"] == reason, (account, addr, r)


def groups(n):
    return [(int(s), int(r)) for s, r in GROUP_RE.findall(n.log())]


def test_concurrent_sessions_of_two_accounts_each_get_their_own_answers(server_factory):
    n = node(server_factory)
    accounts = ["default", "carol"] * SESSIONS
    for _ in range(ROUNDS):
        sessions = [open_session(n.port, a) for a in accounts]
        try:
            orders = [rcpt_order(i) for i in range(len(sessions))]
            out = run_together(sessions, orders)
        finally:
            for c in sessions:
                c.close()
        for account, order, replies in zip(accounts, orders, out):
            assert isinstance(replies, list), replies
            for addr, r in zip(order, replies):
                expect(account, addr, r)
    # the checks were grouped: some job held several sessions' batches
    # (both accounts' among them, as they arrive together)
    g = groups(n)
    assert g and max(s for s, _ in g) >= 2, n.log()[-3000:]
    assert all(r == s * len(RCPTS) for s, r in g), g
    total = len(accounts) * ROUNDS
    print(f"{total} sessions' RCPT batches: {sum(s for s, _ in g)} checked in {len(g)} "
          f"grouped jobs, largest {max(s for s, _ in g)} sessions")
    # and one by one, after the burst, the answers are the same
    for account in LISTS:
        _, rs, _ = transaction(n.port, sender(account), RCPTS,
                               login=CAROL if account == "carol" else None)
        for addr, r in zip(RCPTS, rs):
            expect(account, addr, r)


def lock_suppressions(url):
    """A psql session holding the table suppressions locked (every lookup
    waits) until it ends: PostgreSQL stops, or it is killed."""
    pgc = pg_cluster()
    p = subprocess.Popen([os.path.join(pg.PG_BIN, "psql"), "-h", "127.0.0.1", "-p", str(pgc.port),
                          "-U", pg.USER, "-d", url.rsplit("/", 1)[1], "-At"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    p.stdin.write("BEGIN; LOCK TABLE suppressions IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
    p.stdin.flush()
    for line in p.stdout:  # BEGIN, LOCK TABLE, then our row
        if line.strip() == "locked":
            return p
    raise AssertionError("psql did not lock the table")


def test_rcpts_waiting_in_a_group_get_451_when_postgres_stops(server_factory):
    """The first check waits for a lock (a psql session holds the table),
    so the batches of the sessions after it wait in the queue, both
    accounts'; one of them closes meanwhile. PostgreSQL stops (pg_ctl stop
    -m fast): the first check fails, the group after it fails to connect,
    and each waiting RCPT gets 451 4.3.0. Started again, the answers are
    right again."""
    url = pg_cluster().new_db()
    n = node(server_factory, url)
    accounts = ["default", "carol"] * 6
    sessions = [open_session(n.port, a) for a in accounts + ["carol"]]
    first = open_session(n.port, "default")
    pgc = pg_cluster()
    locker = lock_suppressions(url)
    try:
        first.send("".join(f"RCPT TO:<{a}>\r\n" for a in RCPTS))
        time.sleep(0.3)  # its check waits for the lock
        quitter = sessions.pop()
        quitter.send("".join(f"RCPT TO:<{a}>\r\n" for a in RCPTS))
        threads_out = []
        t = threading.Thread(target=lambda: threads_out.append(
            run_together(sessions, [RCPTS] * len(sessions))))
        t.start()
        time.sleep(1)  # every batch waits in the queue
        quitter.close()  # gone before its answer
        pgc.stop()
        t.join(60)
        out = threads_out[0]
        first_replies = [first.reply() for _ in RCPTS]
    finally:
        locker.kill()
        locker.wait()
        if not os.path.exists(os.path.join(pgc.data, "postmaster.pid")):
            pgc.start()
        for c in sessions + [first]:
            c.close()
    for replies in out:
        assert isinstance(replies, list), replies
        for r in replies:
            assert r.code == 451 and r.text.startswith("4.3.0"), r
    # the first check: failed, or answered when the stop ended the lock's
    # holder before the backend that waited for it (a race of the stop's)
    assert len(first_replies) == len(RCPTS)
    if first_replies[0].code != 451:
        for addr, r in zip(RCPTS, first_replies):
            expect("default", addr, r)
    errors = re.findall(r"event=suppression_check_error account=(\S+) sessions=(\d+)", n.log())
    # after the first check, one group: 6 sessions of default's, and 7 of
    # carol's (the one that closed among them)
    group = [e for e in errors if e != ("default", "1")]
    assert group in ([("carol", "7"), ("default", "6")], [("default", "6"), ("carol", "7")]), errors

    def answered():
        _, rs, _ = transaction(n.port, "me@carol.test", RCPTS, login=CAROL)
        return all(r.code != 451 for r in rs) and rs
    rs = helpers.wait_for(answered, 15, what="RCPT answered again after PostgreSQL is back")
    for addr, r in zip(RCPTS, rs):
        expect("carol", addr, r)


def test_batches_still_waiting_at_exit_are_failed_and_freed(server_factory):
    """SIGTERM while one check waits for a lock and the batches of the other
    sessions wait behind it: the drain's deadline (1 s) stops the loop, the
    lock is then released, the check in flight ends, and the batches never
    checked are failed (logged failed=1) and freed at exit: exit 0, and
    (under ASan) no leak or use after free."""
    url = pg_cluster().new_db()
    n = node(server_factory, url, server={"drain_timeout": "1s"})
    sessions = [open_session(n.port, a) for a in ["default", "carol"] * 3]
    first = open_session(n.port, "default")
    locker = lock_suppressions(url)
    try:
        first.send("".join(f"RCPT TO:<{a}>\r\n" for a in RCPTS))
        time.sleep(0.3)  # its check waits for the lock
        for c in sessions:
            c.send("".join(f"RCPT TO:<{a}>\r\n" for a in RCPTS))
        time.sleep(0.5)  # every batch waits in the queue
        n.proc.send_signal(signal.SIGTERM)
        helpers.wait_for(lambda: "event=drain_timeout" in n.log(), 10, what="the drain's end")
        time.sleep(0.2)
    finally:
        locker.kill()
        locker.wait()
    n.proc.wait(10)
    assert n.proc.returncode == 0, n.log()[-3000:]
    log = n.log()
    assert len(re.findall(r"event=suppression_check rcpts=7 failed=1", log)) == len(sessions), \
        log[-3000:]
    assert len(re.findall(r"event=suppression_check rcpts=7 failed=0", log)) == 1, log[-3000:]
    for c in sessions + [first]:
        c.close()
    n.stop()  # checks the log for sanitizer reports
