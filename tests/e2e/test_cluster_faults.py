"""Faults in a cluster (issue 14; docs/cluster.md, "Failure modes"): three
`posthorn serve`, each with its own data dir and spool, sharing one real
PostgreSQL 15 (tests/e2e/pg.py) and one real Redis (redisfix.py),
delivering through the test DNS (dnsmasq) to fake MX hosts on 127.0.0.x
(aiosmtpd, mx.py). Every message carries its own Message-ID, and the
checks count them at the MX.

- kill -9 of one node in the middle of an SMTP burst: the other two go on
  (their clients' mail all accepted and delivered once); every message the
  killed node acknowledged is delivered after it restarts on the same data
  dir; a message is delivered twice only if its first copy was out before
  the kill and its result not yet written (at least once,
  docs/delivery.md), never one the node's log said it had removed.
- PostgreSQL stopped for 10 s while clients keep sending: RCPT gets
  `451 4.3.0` at once (no crash, no hang), mail spooled before is
  delivered during the outage (and so is the mail of transactions whose
  recipients were accepted before it and whose DATA ends in it: the
  spool needs no database), every node accepts again within a few
  seconds of the database's return, nothing acknowledged is lost, and
  `posthorn cluster status` shows the three nodes up.
- A lost node's spool moved to another node, as docs/cluster.md tells an
  operator ("A node's disk is lost"): its mail is delivered once, by the
  other node."""
import collections
import json
import os
import re
import smtplib
import subprocess
import threading
import time
import uuid

import pytest

import helpers
from conftest import pg_cluster
from mx import dns, farm, mx_relay, mx_zone, mxs, msg_bytes, wait_queue_empty  # noqa: F401
from redisfix import redis, start_nodes  # noqa: F401

SENDER_IP = "127.0.0.11"
BURST_IP = "127.0.0.41"
PGDOWN_IP = "127.0.0.42"
MOVE_IP = "127.0.0.43"
FRM = "shop@sender.test"
KV = re.compile(r"(\w+)=(\S+)")


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "burst.test": BURST_IP,
                    "pgdown.test": PGDOWN_IP, "move.test": MOVE_IP})


@pytest.fixture
def three(server_factory, dns, farm, redis):  # noqa: F811
    """Three started nodes on one fresh database and one Redis."""
    db = pg_cluster().new_db()
    cl = {"postgres": db, "redis": redis.url, "nodes": 3}
    return start_nodes(server_factory, 3, cluster=cl, relay=mx_relay(dns.address, farm))


def new_msgid(tag):
    return f"<{tag}.{uuid.uuid4().hex[:12]}@sender.test>"


def copies(mx):
    """Message-ID -> the indexes in mx.messages of its copies."""
    out = collections.defaultdict(list)
    with mx.lock:
        for i, t in enumerate(mx.messages):
            out[t.header("Message-ID")].append(i)
    return out


def wait_msgids(mx, msgids, timeout, what, nodes=()):
    """Every one of msgids at mx (nodes: checked to be alive meanwhile)."""
    want = set(msgids)

    def there():
        for s in nodes:
            assert s.proc.poll() is None, f"a node exited:\n{s.log()[-3000:]}"
        return want <= set(copies(mx))
    try:
        helpers.wait_for(there, timeout, interval=0.1, what=what)
    except AssertionError as e:
        missing = sorted(want - set(copies(mx)))
        raise AssertionError(f"{e}: {len(missing)} missing, e.g. {missing[:3]}") from None


def queue_to(srv, rcpts, tag):
    """One message per recipient, each acknowledged; their Message-IDs."""
    ids = []
    with helpers.smtp(srv.port) as c:
        c.ehlo("client.test")
        for r in rcpts:
            mid = new_msgid(tag)
            c.sendmail(FRM, [r], msg_bytes(FRM, r, tag, msgid=mid))
            ids.append(mid)
    return ids


# ---------------------------------------------------------------- kill -9 during a burst

CLIENTS_PER_NODE = 3
MSGS_PER_CLIENT = 12
KILL_AFTER = 12  # the killed node's acknowledgements before the kill


def burst_client(node_no, port, client, acked, failed, kill_now):
    """MSGS_PER_CLIENT messages in one session; each Message-ID goes into
    acked once its 250 after DATA is read. The first error ends the
    client (recorded in failed)."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=helpers.TIMEOUT) as c:
            c.ehlo("client.test")
            for i in range(MSGS_PER_CLIENT):
                rcpt = f"n{node_no}c{client}m{i}@burst.test"
                mid = new_msgid(f"n{node_no}c{client}m{i}")
                c.sendmail(FRM, [rcpt], msg_bytes(FRM, rcpt, "burst", msgid=mid))
                acked[node_no].append(mid)
                if len(acked[node_no]) >= KILL_AFTER:
                    kill_now.set()
    except (OSError, smtplib.SMTPException) as e:
        failed[node_no].append(repr(e))


def done_before(srv):
    """The Message-IDs of the messages srv's log says it delivered and
    removed from its spool (`event=removed`: after the result was
    written)."""
    ids, removed = {}, set()
    for line in srv.log().splitlines():
        f = dict(KV.findall(line))
        if f.get("event") == "queued":
            ids[f["queue"]] = f.get("message_id")
        elif f.get("event") == "removed":
            removed.add(f["queue"])
    return {ids[q] for q in removed if ids.get(q)}


def test_kill9_one_node_during_a_burst(three, mxs):
    """Node 0's recipients with an even number are deferred by the MX
    while it runs, so that part of its acknowledged mail is certainly
    still queued when it dies; the rest of its mail may be out, or on the
    wire, at that moment."""
    victim = three[0]
    held = {f"n0c{c}m{i}@burst.test" for c in range(CLIENTS_PER_NODE)
            for i in range(0, MSGS_PER_CLIENT, 2)}
    mx = mxs(BURST_IP, defer_always=held)
    acked = {n: [] for n in range(3)}
    failed = {n: [] for n in range(3)}
    victim_ready = threading.Event()
    threads = [threading.Thread(target=burst_client,
                                args=(n, s.port, c, acked, failed,
                                      victim_ready if n == 0 else threading.Event()))
               for c in range(CLIENTS_PER_NODE) for n, s in enumerate(three)]
    for t in threads:
        t.start()
    assert victim_ready.wait(30), (acked, failed)
    victim.kill9()
    at_kill = len(acked[1]) + len(acked[2])
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    # the other two went on: every message of their clients accepted...
    assert failed[1] == [] and failed[2] == [], failed
    survivors = acked[1] + acked[2]
    assert len(survivors) == 2 * CLIENTS_PER_NODE * MSGS_PER_CLIENT
    assert at_kill < len(survivors), "the burst was over before the kill"
    # ... and delivered while the killed node is still down
    wait_msgids(mx, survivors, 30, "the other nodes' mail", nodes=three[1:])
    assert KILL_AFTER <= len(acked[0]) < CLIENTS_PER_NODE * MSGS_PER_CLIENT, acked[0]
    queued = [m for m in acked[0] if m not in copies(mx)]
    assert queued, "nothing of the killed node's acknowledged mail was left to deliver"
    recorded = done_before(victim)  # delivered, and the spool file gone, before the kill
    before_restart = len(mx.messages)  # nothing of the killed node's since the kill

    victim.start()  # the same config and data dir
    mx.defer_always = False
    wait_msgids(mx, acked[0], 30, "the killed node's acknowledged mail after its restart",
                nodes=three)
    for s in three:
        wait_queue_empty(s)
    seen = copies(mx)
    for m in survivors:
        assert len(seen[m]) == 1, (m, seen[m])
    sent = set(acked[0]) | set(survivors)
    for m, idx in seen.items():
        if m in sent:
            # a second copy only of a delivery that was out before the kill
            # (delivered, not yet recorded), sent again after the restart
            assert len(idx) == 1 or (len(idx) == 2 and idx[0] < before_restart <= idx[1]), (m, idx)
        else:
            # a message on the wire when the node died: spooled, never acknowledged
            assert m.startswith("<n0c") and len(idx) == 1, (m, idx)
    for m in recorded:
        assert len(seen[m]) == 1, (m, seen[m])  # never sent again


# ---------------------------------------------------------------- PostgreSQL stopped under load

OUTAGE = 10.0
REPLY_BOUND = 6.0  # connect_timeout (5 s) and a margin: no answer waits longer
BACK_WITHIN = 5.0  # every node accepts again this long after the database is back


class Load:
    """One client per node, one transaction after another until stopped;
    records (node, start, end, RCPT reply, DATA reply or None, Message-ID)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.stop = threading.Event()
        self.results, self.errors = [], []
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in range(len(nodes))]
        for t in self.threads:
            t.start()

    def one(self, n, k):
        rcpt = f"load{n}m{k}@pgdown.test"
        mid = new_msgid(f"load{n}m{k}")
        with helpers.RawSMTP(self.nodes[n].port) as c:
            c.ehlo()
            t0 = time.monotonic()
            mail = c.cmd(f"MAIL FROM:<{FRM}>")
            assert mail.code == 250, mail
            rr = c.cmd(f"RCPT TO:<{rcpt}>")
            dr = None
            if rr.code == 250:
                assert c.cmd("DATA").code == 354
                c.send(msg_bytes(FRM, rcpt, "load", msgid=mid) + b".\r\n")
                dr = c.reply()
            self.results.append((n, t0, time.monotonic(), rr, dr, mid))
            c.cmd("QUIT")

    def run(self, n):
        k = 0
        try:
            while not self.stop.is_set():
                self.one(n, k)
                k += 1
                time.sleep(0.05)
        except Exception as e:  # reported by the test
            self.errors.append((n, repr(e)))

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)
        assert not self.errors, self.errors
        return self.results


def open_txn(srv, rcpt):
    c = helpers.RawSMTP(srv.port)
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{FRM}>").code == 250
    r = c.cmd(f"RCPT TO:<{rcpt}>")
    assert r.code == 250, r
    return c


def finish_txn(c, rcpt):
    """DATA on an open transaction; its Message-ID."""
    with c:
        assert c.cmd("DATA").code == 354
        mid = new_msgid("open")
        c.send(msg_bytes(FRM, rcpt, "open", msgid=mid) + b".\r\n")
        r = c.reply()
        assert r.code == 250, r  # the spool needs no database
        return mid


def test_postgres_stopped_10s_under_load(three, mxs):
    pgc = pg_cluster()
    pre = [f"pre{n}@pgdown.test" for n in range(3)]
    mx = mxs(PGDOWN_IP, defer_always=set(pre))
    # mail spooled before the outage, kept queued (deferred) until it starts
    pre_ids = [queue_to(s, [pre[n]], "pre")[0] for n, s in enumerate(three)]
    helpers.wait_for(lambda: all(mx.rcpt_tries[a] for a in pre), 20, what="first attempts")
    load = Load(three)
    try:
        helpers.wait_for(lambda: len(load.results) >= 6, 20, what="load running")
        opened = [open_txn(s, f"open{n}@pgdown.test") for n, s in enumerate(three)]
        pgc.stop()
        down = time.monotonic()
        try:
            # recipients accepted before the outage: their DATA ends in it
            open_ids = [finish_txn(c, f"open{n}@pgdown.test") for n, c in enumerate(opened)]
            mx.defer_always = False  # the queued mail's next attempt is during the outage
            wait_msgids(mx, pre_ids + open_ids, OUTAGE - 1, "mail spooled before and in the "
                        "open transactions, delivered during the outage", nodes=three)
            time.sleep(max(0.0, down + OUTAGE - time.monotonic()))
        finally:
            restarting = time.monotonic()  # it may answer before pg_ctl returns
            pgc.start()
        up = time.monotonic()

        def all_back():
            return all(any(r[0] == n and r[1] >= up and r[3].code == 250 for r in load.results)
                       for n in range(3))
        helpers.wait_for(all_back, 15, what="every node accepting again")
    finally:
        results = load.end()
    for s in three:
        assert s.proc.poll() is None, s.log()[-3000:]
    # during the outage: 451 4.3.0 to every RCPT, answered at once
    during = [r for r in results if r[1] > down and r[2] < restarting]
    assert {r[0] for r in during} == {0, 1, 2} and len(during) >= 9, during
    for n, t0, t1, rr, dr, _ in during:
        assert rr.code == 451 and rr.text.startswith("4.3.0"), (n, rr)
    assert max(r[2] - r[1] for r in results) < REPLY_BOUND, \
        sorted(r[2] - r[1] for r in results)[-5:]
    # back on its own: each node's first accepted RCPT after the return
    for n in range(3):
        first = min(r[1] for r in results if r[0] == n and r[1] >= up and r[3].code == 250)
        assert first - up < BACK_WITHIN, (n, first - up)
    # nothing acknowledged is lost, nothing is delivered twice
    acked = [r[5] for r in results if r[4] is not None and r[4].code == 250]
    assert len(acked) >= 6
    for r in results:  # a DATA that was answered at all was answered 250
        assert r[4] is None or r[4].code == 250, r
    every = acked + pre_ids + open_ids
    wait_msgids(mx, every, 20, "every acknowledged message", nodes=three)
    seen = copies(mx)
    assert all(len(seen[m]) == 1 for m in every), seen
    # and the nodes' heartbeats say all three are up again
    ids = {open(os.path.join(s.data_dir, "node-id")).read().strip() for s in three}

    def all_up():
        rc, out, err = three[2].cli("cluster", "status", "--json")
        assert rc == 0, err
        doc = json.loads(out)
        return {n["id"] for n in doc["nodes"] if n["state"] == "up"} == ids and \
            all(n["heartbeat_age"] <= 5 for n in doc["nodes"])
    helpers.wait_for(all_up, 15, interval=0.5, what="cluster status: three nodes up")
    # the subsystems that read the database every second said so once (a
    # line a minute at most), and said when it worked again
    for name in ("dkim_reload", "pools", "webhook_store"):
        counts = [s.log().count(f"event={name}_error ") for s in three]
        assert max(counts) <= 1, (name, counts)
        for s in three:
            if f"event={name}_error " in s.log():
                helpers.wait_for(lambda s=s, name=name: f"event={name}_ok failures=" in s.log(),
                                 10, what=f"event={name}_ok")
    assert all(f"event=dkim_reload_error " in s.log() for s in three)


# ---------------------------------------------------------------- a lost node's spool moved


def queue_files(srv):
    return sorted(os.listdir(os.path.join(srv.data_dir, "spool", "queue")))


def test_lost_nodes_spool_moved_to_another_node(three, mxs):
    """docs/cluster.md, "A node's disk is lost", step by step: node A dies
    (kill -9) with mail queued for an MX that defers; the operator stops
    node B, moves the files of A's spool/queue/ into B's spool/queue/
    (mv -n), starts B and asks for a retry; B delivers A's mail once."""
    a, b, c = three
    mx = mxs(MOVE_IP, defer_always=True)
    a_ids = queue_to(a, [f"a{i}@move.test" for i in range(4)], "from-a")
    b_ids = queue_to(b, ["b0@move.test"], "from-b")
    helpers.wait_for(lambda: all(mx.rcpt_tries[f"a{i}@move.test"] for i in range(4)), 20,
                     what="node A's first attempts")
    a.kill9()
    a_files = queue_files(a)
    assert len(a_files) == 4, a_files
    # the documented procedure
    b.stop()
    src = os.path.join(a.data_dir, "spool", "queue")
    dst = os.path.join(b.data_dir, "spool", "queue")
    p = subprocess.run(["mv", "-n", "-t", dst] + [os.path.join(src, f) for f in a_files],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert queue_files(a) == []
    b.start()
    assert set(a_files) <= set(b.queue()), b.queue()  # A's mail is B's queue now
    mx.defer_always = False
    rc, _, err = b.cli("queue", "retry", "--all")
    assert rc == 0, err
    wait_msgids(mx, a_ids + b_ids, 20, "node A's mail, delivered by node B", nodes=[b, c])
    wait_queue_empty(b)
    time.sleep(1.5)  # the retry schedule's next step: nothing comes again
    seen = copies(mx)
    assert all(len(seen[m]) == 1 for m in a_ids + b_ids), seen
    assert "status=sent" in b.log() and all(f"queue={q}" in b.log() for q in a_files)
