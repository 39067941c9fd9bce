"""State shared across nodes (issue 14; docs/cluster.md): the reputation
guard's sliding windows in a real Redis, with three nodes delivering to a
real fake MX that refuses some recipients (550 5.1.1); the unsubscribe,
tracking and VERP keys shared through a real PostgreSQL, sealed under
[cluster] secret_key_file, so that what one node made works on another."""
import email
import hashlib
import json
import email.policy
import os
import re
import socket
import threading
import time

import pytest

import helpers
from conftest import assert_no_sanitizer_report, pg_cluster
from deliv import dsn, event_lines, transaction, verp_address
from httpapi import create_key, request
from mx import dns, farm, msg_bytes, mx_zone, mxs, start, wait_status  # noqa: F401
from redisfix import redis  # noqa: F401
from test_bounce_loop import report
from test_cluster_redis import metric

SENDER_IP = "127.0.0.11"
STORM_IP = "127.0.0.67"
OK_IP = "127.0.0.68"
BOUNCES = "bounces.sender.test"
BAD = {f"gone-{t}{i}@storm.test" for t in ("n0", "n1", "n2", "a", "b") for i in range(5)}
GUARD = "[reputation]\nwindow = 10m\nmin_volume = 10\nmax_bounce_rate = 20%\n"
PAUSED_RE = re.compile(r"^4\.7\.1 account paused: bounce rate (?P<rate>[\d.]+) % over 10m "
                       r"\(threshold 20 %\)$")


def build_zone():
    return mx_zone({"sender.test": SENDER_IP, "storm.test": STORM_IP, "ok.test": OK_IP})


def nodes_of(start, redis, n=3):
    extra = GUARD + f"[cluster]\nredis = {redis.url}\nnodes = {n}\n"
    nodes = [start(extra=extra) for _ in range(n)]
    for s in nodes:
        helpers.wait_for(lambda s=s: "event=redis_up" in s.log(), 10, what="redis_up")
    return nodes


def send_mix(srv, tag, n_bad, n_good):
    """One message to n_bad refused and n_good taken recipients, delivered."""
    rcpts = [f"gone-{tag}{i}@storm.test" for i in range(n_bad)] + \
            [f"ok-{tag}{i}@storm.test" for i in range(n_good)]
    _, rs, dr = transaction(srv.port, "shop@sender.test", rcpts,
                            msg_bytes("shop@sender.test", rcpts[0], tag))
    assert all(r.code == 250 for r in rs) and dr.code == 250, (rs, dr)
    qid = helpers.queued_id(dr.text)
    for r in rcpts:
        wait_status(srv, qid, r, "bounced" if r.startswith("gone") else "sent")
    return qid


def mail_reply(srv):
    mail, _, _ = transaction(srv.port, "shop@sender.test", ["new@storm.test"])
    return mail


def test_bounces_over_three_nodes_pause_on_every_node(start, mxs, redis):
    mxs(STORM_IP, reject_rcpt=BAD)
    nodes = nodes_of(start, redis)
    # 4 outcomes on each node, 2 of them hard: each node's own window has
    # a volume of 4, below min_volume (10), so alone none would pause; the
    # cluster's window has 12 with 6 hard (50 % > 20 %)
    for i, s in enumerate(nodes[:2]):
        send_mix(s, f"n{i}", 2, 2)
    helpers.wait_for(lambda: redis_sums(redis)[0] == 8, 10, what="8 outcomes in Redis")
    for s in nodes:
        assert mail_reply(s).code == 250  # 8 of min_volume 10: not yet
        assert not event_lines(s, "account_paused")
    send_mix(nodes[2], "n2", 2, 2)
    for s in nodes:
        helpers.wait_for(lambda s=s: event_lines(s, "account_paused"), 10,
                         what="the pause on every node")
        # paused on the cluster's counts: at least min_volume of them, which
        # takes outcomes of all three nodes
        volume, hard = paused_counts(s)
        assert 10 <= volume <= 12 and hard * 5 > volume, (volume, hard)
        m = PAUSED_RE.match(mail_reply(s).text)
        assert m and float(m["rate"]) > 20, mail_reply(s)
        assert metric(s, "posthorn_cluster_fallback_total", limit="reputation") == 0
    assert redis_sums(redis) == (12, 6)
    # resumed: the shared window starts afresh, also within the slot that
    # holds the counts of the pause, which no node gives back
    for s in nodes:  # each has its own SQLite store here (Redis only)
        # once the node's flush has written its pause (at most a second)
        helpers.wait_for(lambda s=s: "resumed (paused since" in s.cli("user", "resume",
                                                                      "default")[2],
                         10, what="user resume")
    for s in nodes:
        helpers.wait_for(lambda s=s: event_lines(s, "account_resumed"), 10,
                         what="the resume on every node")
    time.sleep(3)  # the nodes push and read the shared sums every second
    for s in nodes:
        assert len(event_lines(s, "account_paused")) == 1, event_lines(s, "account_paused")
        assert mail_reply(s).code == 250
    assert redis_sums(redis) == (0, 0)


def redis_array(redis, *args):
    """An array reply of Redis, as text."""
    req = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
        s.sendall(req.encode())
        f = s.makefile("rb")
        head = f.readline().rstrip(b"\r\n")
        assert head.startswith(b"*"), head
        items = []
        for _ in range(int(head[1:])):
            n = int(f.readline().rstrip(b"\r\n")[1:])
            items.append(f.read(n + 2)[:n].decode())
        return items


def redis_sums(redis):
    """(volume, hard) in the shared window of account default: its hash's
    fields are START:OUTCOME (0 delivered, 1 bounced, 2 hard, 3 complained)."""
    flat = redis_array(redis, "HGETALL", "posthorn:rep:{default}:600")
    total = [0, 0, 0, 0]
    for f, v in zip(flat[::2], flat[1::2]):
        if ":" in f:  # not 'r', the last resume
            total[int(f.split(":")[1])] += int(v)
    return total[0] + total[1], total[2]


def paused_counts(srv):
    line = event_lines(srv, "account_paused")[0]
    m = re.search(r"volume=(\d+) hard=(\d+)", line)
    return int(m[1]), int(m[2])


def test_redis_down_judges_the_local_window(start, mxs, redis):
    mxs(STORM_IP, reject_rcpt=BAD)
    a, b = nodes_of(start, redis, n=2)
    redis.stop()
    helpers.wait_for(lambda: "event=redis_down" in a.log(), 10, what="redis_down")
    send_mix(a, "a", 3, 7)  # 10 on this node, 30 % hard: pauses on its own window
    helpers.wait_for(lambda: event_lines(a, "account_paused"), 10, what="the local pause")
    assert paused_counts(a) == (10, 3)
    assert a.log().count("event=reputation_fallback") == 1
    assert metric(a, "posthorn_cluster_fallback_total", limit="reputation") >= 1
    assert PAUSED_RE.match(mail_reply(a).text)
    assert not event_lines(b, "account_paused")
    # Redis back: what node a counted meanwhile is pushed, and node b
    # judges the shared window when its own outcomes come
    redis.start()
    for s in (a, b):
        helpers.wait_for(lambda s=s: s.log().count("event=redis_up") == 2, 15, what="redis_up")
    helpers.wait_for(lambda: redis_sums(redis) == (10, 3), 15, what="the counts pushed")
    send_mix(b, "b", 0, 1)
    helpers.wait_for(lambda: event_lines(b, "account_paused"), 10, what="the shared pause")
    assert paused_counts(b) == (11, 3)
    assert "event=reputation_fallback" not in b.log()


# ---- keys shared through PostgreSQL


@pytest.fixture
def keyed(start, tmp_path):
    """make(n, secrets) -> n started nodes on one fresh database, each with
    its secret file (one per node, the same text unless told otherwise)."""
    db = pg_cluster().new_db()

    def make(n, secrets=None):
        make.db = db.rsplit("/", 1)[1]
        secrets = secrets or [os.urandom(32).hex()] * n
        nodes = []
        for i in range(n):
            path = tmp_path / f"secret{i}.key"
            path.write_text(secrets[i] + "\n")
            nodes.append(start(relay={"trusted_networks": "127.0.0.1/32"},
                               extra=f"public_url = https://relay.test\n"
                                     f"[bounces]\ndomain = {BOUNCES}\n",
                               cluster={"postgres": db, "secret_key_file": str(path)},
                               start=False))
        return nodes
    return make


def key_file(srv, name):
    with open(os.path.join(srv.data_dir, name), "rb") as f:
        return f.read()


def verp_recorded(db, qid):
    """Node 1 writes the message's VERP record with its next flush."""
    return pg_cluster().sql(db, f"SELECT count(*) FROM verp_messages WHERE id = '{qid}'"
                            ).strip() == "1"


def test_links_and_verp_made_by_node1_work_on_nodes_2_and_3(keyed, mxs):
    ok = mxs(OK_IP)
    n1, n2, n3 = keyed(3)
    n1.add_user("news", domains=("news.test",))
    rc, _, err = n1.cli("user", "set", "news", "--unsubscribe", "on")
    assert rc == 0, err
    n1.start()  # first: the cluster's keys are seeded with its own
    n2.start()
    n3.start()
    for name in ("unsubscribe", "tracking", "verp"):
        for s in (n1, n2, n3):
            assert f"event=node_key name={name} shared=1" in s.log(), s.log()
    # each node still made its own files: only the database makes them agree
    assert key_file(n2, "verp.key") != key_file(n1, "verp.key")
    assert key_file(n3, "unsubscribe.key") != key_file(n1, "unsubscribe.key")
    key = create_key(n1, "news")
    r = request(n1, "POST", "/v1/messages", key=key,
                body={"from": "letters@news.test", "to": "reader@ok.test", "subject": "s",
                      "html": "<p>hi</p>", "text": "hi", "track": {"opens": True},
                      "unsubscribe": True})
    assert r.status == 200, r
    qid = r.json()["messages"][0]["id"]
    t = ok.wait_messages(1)[0]
    m = email.message_from_bytes(t.content, policy=email.policy.default)
    # tracking: node 1's pixel answers on node 3
    pixel = re.findall(r'<img src="[^"]*(/t/o/[^"]+)" width="1"',
                       m.get_body(("html",)).get_content())
    assert len(pixel) == 1, m
    px = request(n3, "GET", pixel[0])
    assert px.status == 200 and px.body.startswith(b"GIF89a"), px
    # one-click unsubscribe: node 1's link unsubscribes through node 3
    link = re.match(r"^<https://relay\.test(/u/[A-Za-z0-9_-]+)>$", m["List-Unsubscribe"])
    assert link, m["List-Unsubscribe"]
    u = request(n3, "POST", link[1], body="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert u.status == 200, u
    rc, out, err = n2.cli("suppress", "list", "--account", "news")
    assert rc == 0 and "reader@ok.test\tunsubscribed" in out, (out, err)
    # VERP: node 1's return path is understood by node 2
    verp = t.mail_from
    assert verp.startswith(f"bounces+{qid}=") and verp.endswith("@" + BOUNCES), verp
    helpers.wait_for(lambda: verp_recorded(keyed.db, qid), 10, what="the VERP record")
    _, rcpt, dr = report(n2, verp, dsn(verp, "reader@ok.test"))
    assert rcpt.code == 250 and dr.code == 250, (rcpt, dr)
    helpers.wait_for(lambda: [l for l in event_lines(n2, "bounced") if f"queue={qid}" in l],
                     10, what="node 2 applying the bounce of node 1's message")


def test_another_secret_keeps_its_own_keys_and_says_so(keyed):
    n1, n2 = keyed(2, [os.urandom(32).hex(), os.urandom(32).hex()])
    n1.start()
    n2.start()  # as with a DKIM box that does not open: logged, the node runs
    for name in ("unsubscribe", "tracking", "verp"):
        assert re.search(rf"level=error event=node_key_box_error name={name} error=\S*does "
                         r"not open under \[cluster\] secret_key_file", n2.log()), n2.log()
        assert f"event=node_key name={name} shared=1" not in n2.log()
    # its VERP addresses are its own: node 1's are not understood there
    _, rs, dr = transaction(n1.port, "shop@sender.test", ["x@nowhere.test"],
                            msg_bytes("shop@sender.test", "x@nowhere.test", "v"))
    qid = helpers.queued_id(dr.text)
    mine = verp_address(key_file(n1, "verp.key"), qid, BOUNCES)
    _, rcpt, _ = report(n2, mine, dsn(mine, "x@nowhere.test"))
    assert rcpt.code == 550, rcpt
    _, rcpt, _ = report(n1, mine, dsn(mine, "x@nowhere.test"))
    assert rcpt.code == 250, rcpt


# ---- node tags claimed in PostgreSQL

ID_ALPHA = "0123456789ABCDEFGHJKLMNPQRSTVWXY"


def pg_nodes(server_factory, n):
    db = pg_cluster().new_db()
    nodes = [server_factory(start=False, cluster={"postgres": db}) for _ in range(n)]
    return db.rsplit("/", 1)[1], nodes


def with_id(srv, node_id):
    os.makedirs(srv.data_dir, exist_ok=True)
    with open(os.path.join(srv.data_dir, "node-id"), "w") as f:
        f.write(node_id + "\n")


def refused(srv):
    """Starts srv, which must exit non-zero: its log."""
    srv.start(wait=False)
    assert srv.proc.wait(20) != 0, srv.log()
    log = srv.log()
    srv.stop(check=False)
    assert_no_sanitizer_report(log, "posthorn serve")
    srv.proc = None  # its exit was the point
    return log


def test_a_tag_held_by_a_live_node_refuses_the_start(server_factory):
    _, (n1, n2) = pg_nodes(server_factory, 2)
    id1, id2 = "ABC" + "1" * 17, "ABC" + "2" * 17
    with_id(n1, id1)
    with_id(n2, id2)
    n1.start()
    assert f"event=node_tag tag=ABC id={id1}" in n1.log()
    log = refused(n2)
    assert f"node tag ABC of node {id2} is held by the live node {id1}" in log, log
    assert "remove its DATA_DIR/node-id to draw another ID" in log
    # node 1 stopped cleanly: its tag is free for node 2, which keeps its ID
    n1.stop()
    n2.start()
    assert f"event=node_tag tag=ABC id={id2}" in n2.log()
    _, _, dr = transaction(n2.port, "a@sender.test", ["x@nowhere.test"],
                           msg_bytes("a@sender.test", "x@nowhere.test", "tag"))
    assert helpers.queued_id(dr.text)[9:12] == "ABC"
    # and now node 1 is the one refused
    n1.proc = None
    assert f"is held by the live node {id2}" in refused(n1)


def test_a_new_node_draws_another_id_when_its_tag_is_held(server_factory):
    db, (n1, n2) = pg_nodes(server_factory, 2)
    n1.start()  # the schema; then 3/4 of all tags held by a live node
    held = ID_ALPHA[:24]
    chars = ",".join(ID_ALPHA)
    pg_cluster().sql(db, "INSERT INTO node_tags (tag, node_id, claimed_at) "
                         f"SELECT a || b || c, '{'Z' * 20}', {int(time.time()) + 3600} FROM "
                         f"unnest(string_to_array('{chars}', ',')) a, "
                         f"unnest(string_to_array('{chars}', ',')) b, "
                         f"unnest(string_to_array('{chars}', ',')) c "
                         f"WHERE strpos('{held}', a) > 0 ON CONFLICT (tag) DO NOTHING")
    n2.start()
    m = re.search(r"event=node_tag tag=(\w{3}) id=(\w{20})", n2.log())
    assert m and m[1][0] not in held, n2.log()
    with open(os.path.join(n2.data_dir, "node-id")) as f:
        assert f.read() == m[2] + "\n"
    assert pg_cluster().sql(db, f"SELECT node_id FROM node_tags WHERE tag = '{m[1]}'"
                            ).strip() == m[2]
    first = re.search(r"event=node id=(\w{20}) new=1", n2.log())[1]
    redrawn = re.findall(r"event=node_tag_redrawn id=(\w{20})", n2.log())
    assert (first[0] in held) == bool(redrawn), n2.log()
    assert all(r[0] in held for r in redrawn)


# ---- Idempotency-Key claims across nodes

def idem_post(srv, key, idem, body):
    return request(srv, "POST", "/v1/messages", key=key, body=json.dumps(body),
                   headers={"Idempotency-Key": idem, "Content-Type": "application/json"})


def idem_nodes(server_factory):
    db, nodes = pg_nodes(server_factory, 2)
    for s in nodes:
        s.start()
    nodes[0].add_user("alice", domains=("sender.test",))
    return db, nodes, create_key(nodes[0], "alice")


def test_one_key_posted_to_two_nodes_at_once_sends_once(server_factory):
    _, nodes, key = idem_nodes(server_factory)
    body = {"from": "a@sender.test", "to": "r@dest.test", "subject": "once", "text": "hi"}
    results, errors = [], []
    go = threading.Barrier(8)

    def worker(i):
        try:
            go.wait(10)
            results.append(idem_post(nodes[i % 2], key, "order-77", body))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(r.status in (200, 409) for r in results), [(r.status, r.body) for r in results]
    fresh = [r for r in results if r.status == 200 and
             r.headers.get("idempotent-replayed") != "true"]
    assert len(fresh) == 1, [(r.status, r.headers, r.body) for r in results]
    qid = fresh[0].json()["messages"][0]["id"]
    queued = [q for s in nodes for q in s.queue()]
    assert queued == [qid], queued
    # afterwards both nodes replay that one answer
    for s in nodes:
        r = idem_post(s, key, "order-77", body)
        assert r.status == 200 and r.headers.get("idempotent-replayed") == "true", r
        assert r.json()["messages"][0]["id"] == qid


def node_id_of(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def test_a_restart_leaves_another_nodes_claim_in_flight(server_factory):
    db, (n1, n2), key = idem_nodes(server_factory)
    body = {"from": "a@sender.test", "to": "r@dest.test", "subject": "flight", "text": "hi"}
    # node 1 is inside a request with key "in-flight": claimed, no answer
    h = hashlib.blake2b(json.dumps(body).encode(), digest_size=32).hexdigest()
    pg_cluster().sql(db, "INSERT INTO idempotency_keys (account, idem_key, body_hash, status,"
                         f" created_at, node_id) VALUES ('alice', 'in-flight', '{h}', 0,"
                         f" {int(time.time())}, '{node_id_of(n1)}')")
    n2.restart()
    assert "event=idempotency_recovered" not in n2.log()
    r = idem_post(n2, key, "in-flight", body)
    assert r.status == 409 and r.json()["error"]["code"] == "idempotency_key_in_use", r
    assert n1.queue() == {} and n2.queue() == {}
    # node 1's own restart resolves it: nothing was planned, so the key is given up
    n1.restart()
    assert "event=idempotency_recovered account=alice key=in-flight queued=0 " \
           "result=released" in n1.log()
    r = idem_post(n2, key, "in-flight", body)
    assert r.status == 200 and r.headers.get("idempotent-replayed") != "true", r


def test_without_a_secret_each_key_says_it_is_the_nodes_own(server_factory):
    """PostgreSQL without [cluster] secret_key_file: each of the three keys
    is this node's own, and the start says so for each."""
    s = server_factory(cluster={"postgres": pg_cluster().new_db()})
    for name in ("unsubscribe", "tracking", "verp"):
        assert re.search(rf"event=node_key name={name} shared=0 ", s.log()), s.log()
